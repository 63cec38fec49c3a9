"""The barge-in bench's signal-to-echo ratio (device/bench/ser.py): the echo it rebuilds is the one the
simulated room puts in the mic, and the ratio and its bands are what the report counts by."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from device.audio.player import Player
from device.audio.sim import SimAudio, room_response
from device.bench.barge_in import _by_ser
from device.bench.ser import reply_echo, ser_band, word_ser_db

RATE = 16000


def _speech_like(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts at 24 kHz with 80 ms gaps: a reply with the level swings of speech."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(24000 * seconds)) * 4000
    x[(np.arange(len(x)) // 2400) % 4 == 3] = 0.0
    return np.clip(x, -32767, 32767).astype(np.int16)


@pytest.mark.parametrize("rt60", [None, 250.0])
def test_the_rebuilt_echo_is_the_one_the_simulated_room_puts_in_the_mic(rt60: float | None) -> None:
    reply = _speech_like(1.2, seed=1)
    room = None if rt60 is None else room_response(RATE, rt60_ms=rt60)
    player = Player(24000)
    sim = SimAudio(np.zeros((2 * RATE, 1), dtype=np.int16), RATE, player, speed=1000.0, echo_gain=0.7,
                   echo_delay_ms=30, room_ir=room)

    async def go() -> list[np.ndarray]:
        blocks = []
        while (b := await sim.read()) is not None:
            if len(blocks) == 30:  # the reply starts 0.3 s in (the player starts on its next pull)
                player.enqueue("r", reply)
                player.mark_complete()
            blocks.append(b)
        return blocks

    mic = np.concatenate(asyncio.run(go()))[:, 0].astype(np.float64)
    start_s = player.notes[0].sample / 24000  # the reply's first sample on the speaker's clock
    model = reply_echo(reply, 24000, start_s, mic_rate=RATE, length=len(mic), echo_gain=0.7, echo_delay_ms=30,
                       room_ir=room)
    w = slice(int(0.5 * RATE), int(1.4 * RATE))  # within the reply, its start's resampler warm-up past
    err = 10 * np.log10(np.mean((mic[w] - model[w]) ** 2) / np.mean(mic[w] ** 2))
    assert err < -30.0, err


def test_the_ratio_is_the_words_power_over_the_echos_on_the_words_frames() -> None:
    n = RATE  # 1 s: the word from 0.2 s for 0.3 s at 2000 rms, a quieter breath after it
    user = np.zeros(n)
    t = np.arange(int(0.3 * RATE)) / RATE
    user[int(0.2 * RATE): int(0.5 * RATE)] = 2000 * np.sqrt(2) * np.sin(2 * np.pi * 300 * t)
    user[int(0.5 * RATE): int(0.7 * RATE)] = 20.0  # 40 dB under the word: not its frames
    echo = np.full(n, 4000.0)  # twice the word's rms: -6.0 dB
    echo[int(0.5 * RATE):] = 40000.0  # loud echo on the breath only: does not count
    assert word_ser_db(user.astype(np.int16), echo, 0.2, RATE) == pytest.approx(-6.0, abs=0.1)
    assert word_ser_db(np.zeros(n, dtype=np.int16), echo, 0.2, RATE) is None  # no word
    assert word_ser_db(user.astype(np.int16), echo, 0.999, RATE) is None  # no whole frame left


def test_the_bands_and_the_reports_count_by_them() -> None:
    assert [ser_band(x) for x in (4.0, 0.0, -0.1, -5.0, -9.9, -10.0, -10.1, -25.0)] == [
        ">=0", ">=0", "-5..0", "-5..0", "-10..-5", "-10..-5", "<-10", "<-10"]
    rows = [
        {"family": "talk", "ser_db": 3.0, "detected": True, "warm": {"ser_db": 3.0, "detected": True,
                                                                     "warm_up_barge_ins": 0}},
        {"family": "talk", "ser_db": -12.0, "detected": False, "warm": {"ser_db": -12.0, "detected": True,
                                                                        "warm_up_barge_ins": 0}},
        # a first reply interrupted by the device: no second turn to count
        {"family": "talk", "ser_db": -12.0, "detected": True, "warm": {"ser_db": -12.0, "detected": False,
                                                                       "warm_up_barge_ins": 1}},
        {"family": "silent", "false_barge_ins": 0},
    ]
    assert _by_ser(rows) == {">=0": {"cold": [1, 1], "warm": [1, 1]}, "<-10": {"cold": [1, 2], "warm": [1, 1]}}
