"""The conversation machine, driven by plain events (no I/O)."""

from __future__ import annotations

from device.config import ConversationSettings
from device.conversation import machine as cv


def machine(**kw: object) -> cv.Conversation:
    m = cv.Conversation(ConversationSettings(**kw))  # type: ignore[arg-type]
    m.start()
    m.handle(cv.Connected(0.0))
    return m


def kinds(actions: list[cv.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def shown(actions: list[cv.Action]) -> list[str]:
    return [a.state for a in actions if isinstance(a, cv.Show)]


def talk_until_speaking(m: cv.Conversation) -> None:
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.SpeechStart(1.5, "local_vad"))
    m.handle(cv.Committed(3.0))
    m.handle(cv.ResponseCreated(3.1, "resp_1"))
    m.handle(cv.AudioDelta(3.2, "item_1", "resp_1", b"\0\0" * 240))


def test_offline_until_connected_then_idle() -> None:
    m = cv.Conversation(ConversationSettings())
    assert shown(m.start()) == ["offline"]
    assert shown(m.handle(cv.Connected(0.1))) == ["idle"]
    assert shown(m.handle(cv.Disconnected(5.0, "closed"))) == ["offline"]


def test_wake_word_opens_the_uplink_and_the_full_turn_comes_back_to_listening() -> None:
    m = machine()
    out = m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    assert shown(out) == ["listening"] and any(isinstance(a, cv.OpenUplink) for a in out)
    assert shown(m.handle(cv.Committed(3.0))) == ["thinking"]
    m.handle(cv.ResponseCreated(3.1, "resp_1"))
    out = m.handle(cv.AudioDelta(3.2, "item_1", "resp_1", b"\1\0"))
    assert shown(out) == ["speaking"]
    assert any(isinstance(a, cv.Play) and a.item_id == "item_1" for a in out)
    # local barge-in: the reply must not be sent back up while it plays
    assert any(isinstance(a, cv.CloseUplink) for a in out)
    assert cv.StrictVad(True) in out
    m.handle(cv.ResponseDone(4.0, "resp_1", "completed"))
    assert m.phase == "speaking"  # still playing
    out = m.handle(cv.PlaybackIdle(6.0))
    assert shown(out) == ["listening"] and cv.StrictVad(False) in out
    assert any(isinstance(a, cv.OpenUplink) for a in out)


def test_follow_up_window_closes_the_conversation() -> None:
    m = machine(follow_up_s=6.0)
    talk_until_speaking(m)
    m.handle(cv.ResponseDone(4.0, "resp_1", "completed"))
    m.handle(cv.PlaybackIdle(6.0))
    assert m.handle(cv.Tick(11.9)) == []
    out = m.handle(cv.Tick(12.0))
    assert shown(out) == ["idle"]
    assert kinds(out).count("CloseUplink") == 1 and "SendClear" in kinds(out) and "ResetWake" in kinds(out)


def test_speech_in_the_follow_up_window_keeps_the_conversation_open() -> None:
    m = machine(follow_up_s=6.0)
    talk_until_speaking(m)
    m.handle(cv.ResponseDone(4.0, "resp_1", "completed"))
    m.handle(cv.PlaybackIdle(6.0))
    m.handle(cv.SpeechStart(8.0, "local_vad"))
    assert m.handle(cv.Tick(20.0)) == []  # the user is talking: no timeout
    m.handle(cv.SpeechEnd(21.0, "local_vad"))
    assert m.phase == "listening"
    assert shown(m.handle(cv.Tick(27.0))) == ["idle"]


def test_local_barge_in_stops_cancels_and_truncates() -> None:
    m = machine()
    talk_until_speaking(m)
    out = m.handle(cv.SpeechStart(4.0, "local_vad"))
    assert kinds(out)[:4] == ["BargeIn", "StopPlayback", "SendCancel", "SendTruncate"]
    assert cv.SendTruncate("item_1") in out and cv.StopPlayback("barge_in") in out
    assert cv.OpenUplink(preroll=True) in out
    assert shown(out) == ["listening"]
    # late audio of the cancelled response is not played
    assert m.handle(cv.AudioDelta(4.05, "item_1", "resp_1", b"\1\0")) == []


def test_barge_in_after_the_response_finished_truncates_without_cancel() -> None:
    m = machine()
    talk_until_speaking(m)
    m.handle(cv.ResponseDone(3.5, "resp_1", "completed"))
    out = m.handle(cv.SpeechStart(4.0, "local_vad"))
    assert "SendCancel" not in kinds(out)
    assert cv.SendTruncate("item_1") in out


def test_barge_in_source_follows_the_setting() -> None:
    m = machine(barge_in="server")
    talk_until_speaking(m)
    assert m.handle(cv.SpeechStart(4.0, "local_vad")) == []
    out = m.handle(cv.SpeechStart(4.1, "server_vad"))
    assert cv.BargeIn("server_vad") in out
    off = machine(barge_in="off")
    talk_until_speaking(off)
    assert off.handle(cv.SpeechStart(4.0, "local_vad")) == []
    assert off.phase == "speaking"


def test_button_press_starts_a_conversation_and_stops_a_reply() -> None:
    m = machine()
    m.handle(cv.Button(1.0, "press"))
    assert shown(m.handle(cv.Button(1.1, "release"))) == ["listening"]
    m.handle(cv.SpeechStart(1.5, "local_vad"))
    m.handle(cv.Committed(3.0))
    m.handle(cv.ResponseCreated(3.1, "resp_1"))
    m.handle(cv.AudioDelta(3.2, "item_1", "resp_1", b"\1\0"))
    m.handle(cv.Button(4.0, "press"))
    out = m.handle(cv.Button(4.1, "release"))
    assert cv.BargeIn("button") in out and cv.StopPlayback("button") in out and cv.SendTruncate("item_1") in out


def test_hold_toggles_mute_and_nothing_is_heard_while_muted() -> None:
    m = machine()
    talk_until_speaking(m)
    m.handle(cv.Button(5.0, "press"))
    out = m.handle(cv.Button(7.0, "hold"))
    assert cv.MuteChanged(True) in out and shown(out) == ["muted"]
    assert "StopPlayback" in kinds(out) and "CloseUplink" in kinds(out)
    assert m.handle(cv.Button(7.5, "release")) == []  # the release ending a hold is not a press
    assert m.handle(cv.Wake(8.0, "hey_jarvis", 0.99)) == []
    m.handle(cv.Button(9.0, "press"))
    m.handle(cv.Button(9.1, "release"))
    assert m.phase == "idle" and m.muted
    m.handle(cv.Button(10.0, "press"))
    out = m.handle(cv.Button(12.0, "hold"))
    assert cv.MuteChanged(False) in out and shown(out) == ["idle"]


def test_local_turns_commit_and_request_a_response() -> None:
    m = cv.Conversation(ConversationSettings(), local_turns=True)
    m.start()
    m.handle(cv.Connected(0.0))
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.SpeechStart(1.4, "local_vad"))
    out = m.handle(cv.SpeechEnd(3.0, "local_vad"))
    assert kinds(out)[:2] == ["SendCommit", "SendResponseCreate"] and shown(out) == ["thinking"]


def test_no_answer_returns_to_listening_and_a_lost_link_does_not_hang_thinking() -> None:
    m = machine()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.Committed(3.0))
    assert shown(m.handle(cv.Tick(30.0))) == ["listening"]
    m.handle(cv.SpeechStart(31.0, "local_vad"))
    m.handle(cv.Committed(33.0))
    out = m.handle(cv.Disconnected(33.5, "server closed"))
    assert m.phase == "listening" and shown(out) == ["offline"]


def test_an_unrequested_response_while_idle_is_cancelled_and_its_audio_dropped() -> None:
    m = machine()
    out = m.handle(cv.ResponseCreated(1.0, "resp_9"))
    assert "SendCancel" in kinds(out)
    assert m.handle(cv.AudioDelta(1.1, "item_9", "resp_9", b"\1\0")) == []
    assert m.phase == "idle"


def test_suspected_speech_pauses_then_local_vad_confirms_the_barge_in() -> None:
    m = machine(confirm_ms=300)
    talk_until_speaking(m)
    out = m.handle(cv.SuspectSpeech(4.0))
    assert kinds(out) == ["PausePlayback"] and m.phase == "speaking"
    assert m.handle(cv.SuspectSpeech(4.05)) == []  # already paused
    out = m.handle(cv.SpeechStart(4.2, "local_vad"))
    assert kinds(out)[:4] == ["BargeIn", "StopPlayback", "SendCancel", "SendTruncate"]
    assert m.phase == "listening" and m.paused_until is None
    assert "ResumePlayback" not in kinds(m.handle(cv.Tick(5.0)))


def test_an_unconfirmed_suspicion_resumes_the_reply() -> None:
    m = machine(confirm_ms=300)
    talk_until_speaking(m)
    m.handle(cv.SuspectSpeech(4.0))
    assert m.handle(cv.Tick(4.29)) == []
    out = m.handle(cv.Tick(4.3))
    assert kinds(out) == ["ResumePlayback"] and m.phase == "speaking"
    assert kinds(m.handle(cv.SuspectSpeech(5.0))) == ["PausePlayback"]  # and it may pause again


def test_no_pause_stage_when_disabled_or_outside_speaking_or_without_local_barge_in() -> None:
    m = machine(confirm_ms=0)
    talk_until_speaking(m)
    assert m.handle(cv.SuspectSpeech(4.0)) == []
    m = machine(barge_in="server")
    talk_until_speaking(m)
    assert m.handle(cv.SuspectSpeech(4.0)) == []
    m = machine()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    assert m.handle(cv.SuspectSpeech(1.2)) == []


def test_talking_on_after_the_turn_closed_drops_the_half_answer() -> None:
    for local in (False, True):
        m = cv.Conversation(ConversationSettings(), local_turns=local)
        m.start()
        m.handle(cv.Connected(0.0))
        m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
        m.handle(cv.SpeechStart(1.4, "local_vad"))
        if local:
            m.handle(cv.SpeechEnd(2.5, "local_vad"))
        else:
            m.handle(cv.Committed(2.5))
        m.handle(cv.ResponseCreated(2.6, "resp_1"))
        assert m.phase == "thinking"
        out = m.handle(cv.SpeechStart(2.8, "local_vad" if local else "server_vad"))
        assert "SendCancel" in kinds(out) and shown(out) == ["listening"]
        assert m.handle(cv.AudioDelta(2.9, "item_1", "resp_1", b"\1\0")) == []  # its audio is not played


def test_a_function_call_asks_the_model_again_when_its_response_is_done() -> None:
    m = machine()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.Committed(3.0))
    m.handle(cv.ResponseCreated(3.1, "resp_1"))  # a response with only a function call in it
    assert kinds(m.handle(cv.ToolDone(3.2, "resp_1"))) == []  # the response is still open
    out = m.handle(cv.ResponseDone(3.3, "resp_1", "completed"))
    assert kinds(out) == ["SendResponseCreate"] and m.phase == "thinking"  # not back to listening
    m.handle(cv.ResponseCreated(3.4, "resp_2"))
    assert shown(m.handle(cv.AudioDelta(3.5, "item_2", "resp_2", b"\1\0"))) == ["speaking"]


def test_a_call_found_in_response_done_asks_again_at_once_and_never_after_the_conversation() -> None:
    m = machine()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.Committed(3.0))
    m.handle(cv.ResponseCreated(3.1, "resp_1"))
    m.handle(cv.ResponseDone(3.3, "resp_1", "completed"))
    assert m.phase == "listening"
    assert kinds(m.handle(cv.ToolDone(3.4, "resp_1"))) == ["SendResponseCreate", "Show"] and m.phase == "thinking"
    m.handle(cv.Tick(100.0))
    m.handle(cv.Tick(200.0))
    assert m.phase == "idle"
    assert kinds(m.handle(cv.ToolDone(201.0, "resp_9"))) == []


def test_the_stop_tool_stops_the_reply_and_ends_the_conversation() -> None:
    m = machine()
    talk_until_speaking(m)
    out = m.handle(cv.ToolDone(4.0, "resp_1", stop=True))
    assert cv.StopPlayback("barge_in") in out and cv.SendTruncate("item_1") in out
    assert cv.SendCancel() in out and m.phase == "idle"
    assert not any(isinstance(a, cv.SendResponseCreate) for a in out)


def test_a_turn_talked_without_a_pause_is_closed_after_max_turn_s() -> None:
    m = machine(max_turn_s=10.0)
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.SpeechStart(2.0, "local_vad"))
    assert m.handle(cv.Tick(11.9)) == [] and m.phase == "listening"  # still within the limit
    out = m.handle(cv.Tick(12.0))
    assert kinds(out)[:2] == ["SendCommit", "SendResponseCreate"] and shown(out) == ["thinking"]
    # A pause starts the count again: 9 s, a pause, 9 s more is two normal stretches of one turn.
    m = machine(max_turn_s=10.0)
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.SpeechStart(2.0, "server_vad"))
    m.handle(cv.SpeechEnd(11.0, "server_vad"))
    m.handle(cv.SpeechStart(11.5, "server_vad"))
    assert m.handle(cv.Tick(20.0)) == [] and m.phase == "listening"


def test_the_thinking_timeout_is_a_setting() -> None:
    m = machine(thinking_timeout_s=5.0)
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.Committed(3.0))
    assert m.handle(cv.Tick(7.9)) == [] and m.phase == "thinking"
    assert shown(m.handle(cv.Tick(8.0))) == ["listening"]
