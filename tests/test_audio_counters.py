"""Audio trouble reaches the journal, at most once a minute while it goes on."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from device import config as cfg
from device.audio.counters import CounterWatch
from device.audio.player import Player
from device.audio.sim import SimAudio
from device.conversation.agent import Agent
from device.link.twin import RecordingLink
from device.listen.vad import build_vad
from device.listen.wakeword import NoWake
from device.timeline import Timeline


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_growth_is_said_at_once_then_at_most_once_a_minute() -> None:
    clock = FakeClock()
    w = CounterWatch(clock=clock)
    zero = {"xruns": 0, "overflows": 0, "underruns": 0, "callback_errors": 0}
    assert w.check(zero) is None  # nothing wrong: nothing said
    assert w.check({**zero, "xruns": 2}) == "xruns 2 (+2)"
    lines = []
    for second in range(1, 150):  # an xrun every second for 2.5 minutes
        clock.t = float(second)
        line = w.check({**zero, "xruns": 2 + second, "underruns": 1 if second > 30 else 0})
        if line is not None:
            lines.append((second, line))
    assert lines == [(60, "xruns 62 (+60), underruns 1 (+1)"), (120, "xruns 122 (+60)")]
    clock.t = 500.0  # what grew after the last line is said at the next check allowed
    assert w.check({**zero, "xruns": 151, "underruns": 1}) == "xruns 151 (+29)"
    clock.t = 1000.0
    assert w.check({**zero, "xruns": 151, "underruns": 1}) is None  # stopped growing: quiet


def test_the_summary_and_the_journal_carry_the_sound_cards_trouble(caplog: pytest.LogCaptureFixture) -> None:
    settings = cfg.Settings()
    player = Player(settings.audio.output_rate)
    sim = SimAudio(np.zeros((3 * 16000, 1), np.int16), 16000, player, speed=1e9)
    sim.stats.xruns, sim.stats.overflows, sim.stats.callback_errors = 3, 2, 1  # PortAudio's thread counted these
    timeline = Timeline(None, keep=True)
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=build_vad(settings.vad), link=RecordingLink().attach)
    with caplog.at_level(logging.WARNING, logger="voxbox.agent"):
        asyncio.run(agent.run())
    summary = timeline.records[-1]
    assert summary["event"] == "summary"
    assert (summary["xruns"], summary["overflows"], summary["underruns"], summary["callback_errors"]) == (3, 2, 0, 1)
    said = [r.getMessage() for r in caplog.records if "audio trouble" in r.getMessage()]
    assert said == ["audio trouble: xruns 3 (+3), overflows 2 (+2), callback_errors 1 (+1)"]
