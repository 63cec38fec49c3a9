"""The playback queue's sample accounting and the simulated sound card's alignment."""

from __future__ import annotations

import asyncio

import numpy as np

from device.audio.frontend import Frontend, Uplink
from device.audio.player import Player
from device.audio.sim import SimAudio


def test_player_counts_what_was_pulled_and_flush_silences_the_next_block() -> None:
    p = Player(24000)
    p.enqueue("a", np.full(4800, 1000, dtype=np.int16))  # 200 ms
    first = p.pull(240)
    assert (first == 1000).all()
    assert [n.kind for n in p.notes] == ["start"]
    p.pull(2400)
    assert p.played_ms("a") == 110
    p.flush()
    assert (p.pull(240) == 0).all()
    assert p.played_ms("a") == 110 and not p.busy


def test_player_reports_idle_when_it_runs_dry_and_subtracts_device_latency() -> None:
    p = Player(24000, latency_samples=480)
    p.enqueue("a", np.ones(1000, dtype=np.int16))
    out = p.pull(1200)
    assert out[:1000].all() and not out[1000:].any()
    assert [n.kind for n in p.notes] == ["start", "idle"]
    assert p.played_ms("a") == (1000 - 480) * 1000 // 24000


def test_player_is_bounded() -> None:
    p = Player(24000, max_seconds=1.0)
    p.enqueue("a", np.ones(30000, dtype=np.int16))
    assert p.queued_ms() == 1000 and p.dropped_samples == 6000


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_an_echo_path_change_scales_and_delays_the_echo_from_its_time_on() -> None:
    # An echo path change as the bench makes one (device/bench/barge_in.py PATH_CHANGE, x1.4 and
    # +8 ms there): here from 0.5 s the echo is twice as loud and 10 ms later.
    rate = 16000
    player = Player(24000)
    sim = SimAudio(np.zeros((rate, 1), dtype=np.int16), rate, player, speed=1000.0, echo_gain=0.5,
                   echo_delay_ms=30, path_change=(0.5, 2.0, 10.0))

    async def go() -> list[np.ndarray]:
        blocks = []
        while (b := await sim.read()) is not None:
            if len(blocks) in (20, 70):  # 100 ms bursts at 0.2 s and 0.7 s
                player.enqueue(f"x{len(blocks)}", np.full(2400, 8000, dtype=np.int16))
            blocks.append(b)
        return blocks

    micsig = np.concatenate(run(go()))[:, 0].astype(np.float64)
    loud = np.flatnonzero(np.abs(micsig) > 1000)
    first, second = loud[loud < rate // 2], loud[loud >= rate // 2]
    assert abs(first[0] / rate - (0.21 + 0.030)) < 0.003 and abs(np.median(micsig[first]) - 4000) < 200
    assert abs(second[0] / rate - (0.71 + 0.040)) < 0.003 and abs(np.median(micsig[second]) - 8000) < 400


def test_out_wav_starts_with_in_wav_and_echo_is_delayed_and_scaled() -> None:
    rate = 16000
    mic = np.zeros((rate, 2), dtype=np.int16)  # 1 s stereo silence
    player = Player(24000)
    sim = SimAudio(mic, rate, player, speed=1000.0, echo_gain=0.5, echo_delay_ms=30)

    async def go() -> list[np.ndarray]:
        blocks = []
        while True:
            b = await sim.read()
            if b is None:
                return blocks
            if len(blocks) == 20:  # at 200 ms the reply starts: a 100 ms burst
                player.enqueue("x", np.full(2400, 8000, dtype=np.int16))
            blocks.append(b)

    blocks = run(go())
    out = sim.speaker_audio()
    assert len(out) == 24000  # exactly as long as IN.wav, at the playback rate
    nz = np.flatnonzero(out)
    assert abs(nz[0] / 24000 - 0.21) < 0.0011  # enqueued after the 21st block was pulled
    micsig = np.concatenate(blocks)[:, 0].astype(np.float64)
    onset = np.flatnonzero(np.abs(micsig) > 1000)[0] / rate
    assert abs(onset - (0.21 + 0.030)) < 0.003
    assert abs(np.median(micsig[np.abs(micsig) > 1000]) - 4000) < 200


def test_frontend_mixes_channels_and_frames_at_16k() -> None:
    fe = Frontend(48000, channels=[0, 1])
    block = np.zeros((480 * 10, 4), dtype=np.int16)
    block[:, 0] = 1000
    block[:, 1] = 3000
    block[:, 2] = 30000
    frames = fe.mic(block)
    assert frames.shape[1] == 160 and 8 <= frames.shape[0] <= 10
    assert abs(int(np.median(frames)) - 2000) < 50
    up = Uplink(chunk_ms=40)
    chunks = up.push(np.zeros((50, 160), dtype=np.int16))  # 500 ms
    assert all(len(c) == 24000 * 40 // 1000 * 2 for c in chunks) and 10 <= len(chunks) <= 12


def test_pause_plays_silence_keeps_the_queue_and_stops_the_count() -> None:
    p = Player(24000)
    p.enqueue("a", np.arange(1, 4801, dtype=np.int16))  # 200 ms, no zeros
    first = p.pull(240)
    p.pause()
    assert p.paused and (p.pull(2400) == 0).all()
    assert p.played_ms("a") == 10 and p.busy and not [n for n in p.notes if n.kind == "idle"]
    p.resume()
    nxt = p.pull(240)
    assert nxt[0] == first[-1] + 1  # on from exactly where it paused
    assert p.played_ms("a") == 20 and p.clock == 2880
    p.pause()
    p.flush()
    assert not p.paused and not p.busy
