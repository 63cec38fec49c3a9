"""Session per conversation (GPT-Live) in the pure machine and the dialects: open on wake, close
after the follow-up window, renewal on expiry, mute, full duplex, barge-in without cancel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from live_support import check_live_client_event

from device import config as cfg
from device.audio import wavio
from device.audio.player import Player
from device.config import ConversationSettings, RealtimeSettings, Settings
from device.conversation import machine as cv
from device.errors import ConfigError
from device.link import dialect as dl
from device.link.protocol import ServerEvent

PCM = b"\1\0" * 480


def live(**kw: object) -> cv.Conversation:
    m = cv.Conversation(ConversationSettings(**kw), sessions=True, mute_close_s=5.0)  # type: ignore[arg-type]
    m.start()
    m.handle(cv.Connected(0.0))
    return m


def kinds(actions: list[cv.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_wake_opens_a_session_and_the_follow_up_window_closes_it() -> None:
    m = live(follow_up_s=6.0, first_turn_s=8.0)
    out = m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    assert kinds(out)[:3] == ["ResetWake", "OpenSession", "OpenUplink"] and out[1] == cv.OpenSession(renew=False)
    assert m.handle(cv.SessionStarted(1.2)) == []
    m.handle(cv.SpeechStart(1.5, "local_vad"))
    m.handle(cv.SpeechEnd(3.0, "local_vad"))
    out = m.handle(cv.AudioDelta(3.4, "live_1", "", PCM))
    assert "CloseUplink" not in kinds(out)  # full duplex: the model hears the user while it speaks
    assert ("Play" in kinds(out)) and m.phase == "speaking"
    out = m.handle(cv.PlaybackIdle(5.0))
    assert m.phase == "listening" and m.session_open
    assert m.handle(cv.Tick(10.9)) == []  # the follow-up window is still open
    out = m.handle(cv.Tick(11.0))
    assert "CloseSession" in kinds(out) and m.phase == "idle" and not m.session_open
    assert kinds(m.handle(cv.Tick(30.0))) == []  # idle: nothing opened, nothing sent


def test_button_opens_a_session_too_and_a_second_press_ends_it() -> None:
    m = live()
    out = m.handle(cv.Button(1.0, "release"))
    assert "OpenSession" in kinds(out)
    out = m.handle(cv.Button(2.0, "release"))  # nothing said: the press ends the conversation
    assert "CloseSession" in kinds(out) and m.phase == "idle"


def test_expired_or_dropped_session_mid_conversation_is_renewed() -> None:
    m = live()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.SessionStarted(1.1))
    m.handle(cv.SpeechStart(1.5, "local_vad"))
    assert m.handle(cv.SessionEnded(2.0, "expired")) == [cv.OpenSession(renew=True)]
    assert m.phase == "listening" and m.session_open
    out = m.handle(cv.Disconnected(3.0, "connection lost"))
    assert cv.OpenSession(renew=True) in out
    # A session ended by the content filter or a remote hangup ends the conversation instead.
    out = m.handle(cv.SessionEnded(4.0, "content"))
    assert m.phase == "idle" and "OpenSession" not in kinds(out)


def test_session_closed_while_idle_is_not_renewed() -> None:
    m = live(follow_up_s=1.0, first_turn_s=1.0)
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.Tick(2.5))  # nobody spoke: conversation over, CloseSession
    assert m.phase == "idle"
    assert m.handle(cv.SessionEnded(2.6, "close_requested")) == []
    assert m.handle(cv.SessionEnded(2.7, "expired")) == []


def test_mute_keeps_the_session_briefly_then_closes_it() -> None:
    m = live()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.AudioDelta(2.0, "live_1", "", PCM))
    out = m.handle(cv.Button(3.0, "hold"))
    assert [a for a in out if isinstance(a, (cv.StopPlayback, cv.MuteChanged, cv.CloseUplink))] == [
        cv.StopPlayback("button"), cv.CloseUplink(), cv.MuteChanged(True)]
    assert m.session_open and m.shown == "muted"
    assert m.handle(cv.AudioDelta(3.1, "live_1", "", PCM)) == []  # nothing plays while muted
    assert "CloseSession" not in kinds(m.handle(cv.Tick(7.9)))
    out = m.handle(cv.Tick(8.0))  # muted for 5 s: the session closes
    assert "CloseSession" in kinds(out) and m.phase == "idle" and m.muted


def test_unmute_in_time_goes_on_listening() -> None:
    m = live()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.Button(2.0, "hold"))
    m.handle(cv.Button(2.1, "release"))
    out = m.handle(cv.Button(4.0, "hold"))
    assert cv.MuteChanged(False) in out and "OpenUplink" in kinds(out) and "OpenSession" not in kinds(out)
    assert m.phase == "listening" and not m.muted and m.session_open
    assert "CloseSession" not in kinds(m.handle(cv.Tick(8.0)))


def test_local_barge_in_flushes_and_drops_the_model_until_it_pauses() -> None:
    m = live()
    m.handle(cv.Wake(1.0, "hey_jarvis", 0.9))
    m.handle(cv.AudioDelta(2.0, "live_1", "", PCM))
    out = m.handle(cv.SpeechStart(2.5, "local_vad"))
    assert cv.StopPlayback("barge_in") in out
    assert m.handle(cv.AudioDelta(2.6, "live_1", "", PCM)) == []  # the model talks on a little: dropped
    assert m.handle(cv.AudioDelta(2.8, "live_1", "", PCM)) == []
    out = m.handle(cv.AudioDelta(4.0, "live_2", "", PCM))  # after a pause: its answer to the user
    assert "Play" in kinds(out) and m.phase == "speaking"


def test_realtime_machine_never_opens_sessions() -> None:
    m = cv.Conversation(ConversationSettings())
    m.start()
    m.handle(cv.Connected(0.0))
    out = m.handle(cv.Wake(1.0, "hey_jarvis", 0.9)) + m.handle(cv.Tick(20.0))
    assert not {"OpenSession", "CloseSession"} & set(kinds(out))


def _ev(type_: str, **data: object) -> ServerEvent:
    return ServerEvent(type_, {"type": type_, **data})


def test_live_dialect_wire_events_validate_and_renewal_carries_the_transcripts() -> None:
    s = Settings(realtime=RealtimeSettings(api="live", voice="cedar", instructions="be brief"))
    d = dl.for_settings(s)
    assert isinstance(d, dl.LiveDialect) and d.model == "gpt-live-1"
    played = lambda _: 0  # noqa: E731
    first = d.wire(cv.OpenSession(), played)
    assert [e["type"] for e in first] == ["session.start"] and "input" not in first[0]["session"]
    for t, kind, text in [(1.0, "input", "what is "), (1.1, "input", "the time"), (2.0, "output", "ten past four")]:
        assert d.machine_events(_ev(f"session.{kind}_transcript.delta", delta=text, start_ms=0, end_ms=1), t) == []
    assert d.machine_events(_ev("session.closed", reason="expired"), 3.0) == [cv.SessionEnded(3.0, "expired")]
    renew = d.wire(cv.OpenSession(renew=True), played)[0]
    check_live_client_event(renew)
    assert [(m["role"], m["content"][0]["text"]) for m in renew["session"]["input"]] == [
        ("user", "what is the time"), ("assistant", "ten past four")]
    assert [e["type"] for e in d.wire(cv.MuteChanged(True), played)] == ["session.input_audio.mute"]
    for a in (cv.SendCancel(), cv.SendTruncate("live_1"), cv.SendCommit(), cv.SendClear(), cv.SendResponseCreate()):
        assert d.wire(a, played) == []  # GPT-Live has no cancel, truncate, commit or clear
    close = d.wire(cv.CloseSession(), played)
    assert [e["type"] for e in close] == ["session.close"] and d.wire(cv.CloseSession(), played) == []
    assert d.wire(cv.MuteChanged(False), played) == []  # no session: nothing to unmute
    fresh = d.wire(cv.OpenSession(), played)[0]
    assert "input" not in fresh["session"]  # a new conversation starts without the old one
    for e in first + close + [fresh]:
        check_live_client_event(json.loads(json.dumps(e)))


def test_live_dialect_numbers_utterances_by_pauses() -> None:
    d = dl.LiveDialect()
    ids = [d.machine_events(ServerEvent("session.output_audio.delta", {}, PCM), t)[0].item_id  # type: ignore[union-attr]
           for t in (1.0, 1.1, 1.2, 2.0, 2.1)]
    assert ids == ["live_1", "live_1", "live_1", "live_2", "live_2"]


def test_realtime_dialect_keeps_the_realtime_wire() -> None:
    d = dl.for_settings(Settings())
    assert isinstance(d, dl.RealtimeDialect)
    types = [d.wire(a, lambda _: 480)[0]["type"] for a in (cv.SendCancel(), cv.SendTruncate("i1"), cv.SendCommit(),
                                                          cv.SendResponseCreate(), cv.SendClear())]
    assert types == ["response.cancel", "conversation.item.truncate", "input_audio_buffer.commit", "response.create",
                     "input_audio_buffer.clear"]
    assert d.wire(cv.SendTruncate("i1"), lambda _: 480)[0]["audio_end_ms"] == 480
    assert d.wire(cv.OpenSession(), lambda _: 0) == [] and d.wire(cv.MuteChanged(True), lambda _: 0) == []


def test_api_setting_defaults_and_refused_combinations() -> None:
    live = cfg.load(path=None, env={"VOXBOX_REALTIME_API": "live", "VOXBOX_CONFIG": "/dev/null"})
    assert cfg.endpoint(live.realtime) == ("wss://api.openai.com/v1/live/sessions", "gpt-live-1")
    assert cfg.endpoint(cfg.Settings().realtime) == ("wss://api.openai.com/v1/realtime?model=gpt-realtime", "")
    bad = [
        {"VOXBOX_REALTIME_API": "live", "VOXBOX_REALTIME_URL": "wss://h/v1/realtime?model=x"},
        {"VOXBOX_REALTIME_API": "live", "VOXBOX_REALTIME_URL": "wss://h/v1/live/sessions?model=x"},
        {"VOXBOX_REALTIME_API": "live", "VOXBOX_REALTIME_TURN_DETECTION": "none"},
        {"VOXBOX_REALTIME_URL": "ws://127.0.0.1:8765/v1/live/sessions"},
        {"VOXBOX_REALTIME_MODEL": "gpt-live-1"},
        {"VOXBOX_REALTIME_API": "gpt-live"},
    ]
    for env in bad:
        with pytest.raises(ConfigError) as info:
            cfg.load(path=None, env={**env, "VOXBOX_CONFIG": "/dev/null"})
        assert "\n" not in str(info.value) and "realtime." in str(info.value)


def test_cli_refuses_a_live_run_with_a_realtime_url(tmp_path: Path) -> None:
    mic = tmp_path / "mic.wav"
    wavio.write_wav(mic, np.zeros(2400, np.int16), 24000)
    env = {**os.environ, "VOXBOX_REALTIME_URL": "ws://127.0.0.1:9/v1/realtime?model=parrot",
           "VOXBOX_CONFIG": "/dev/null"}
    r = subprocess.run([sys.executable, "-m", "device", "simulate", "--mic", str(mic), "--api", "live"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Realtime endpoint" in r.stderr


def test_player_trim_bounds_the_lag_behind_a_stream() -> None:
    p = Player(24000)
    p.enqueue("a", np.arange(24000, dtype=np.int16))  # 1 s
    p.pull(2400)  # 100 ms played
    p.enqueue("a", np.full(12000, 7, np.int16))  # +0.5 s
    assert p.queued_ms() == 1400
    assert p.trim(600) == 24000 * 800 // 1000 and p.queued_ms() == 600
    out = p.pull(24000)  # the newest 600 ms play on, oldest first: the end of "a", then the rest
    assert out[0] == 21600 and out[2399] == 23999 and (out[2400:14400] == 7).all() and not out[14400:].any()
    assert p.dropped_samples == 19200
