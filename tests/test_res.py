"""The uplink's residual echo suppressor (device/audio/res.py), on synthetic frames: no echo
expected -> the canceller's output passes unchanged (10 ms late); a residual that follows the
reference -> floored; the user's voice over that residual -> passes."""

from __future__ import annotations

import numpy as np

from device.audio.echogate import BANDS
from device.audio.res import ResidualEchoSuppressor


def _tone(hz: float, n_frames: int, amp: float, phase: int = 0) -> np.ndarray:
    t = (np.arange(n_frames * 160) + phase) / 16000
    return np.rint(amp * np.sin(2 * np.pi * hz * t)).astype(np.int16).reshape(n_frames, 160)


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9))


def test_without_echo_the_output_is_the_input_one_frame_late() -> None:
    res = ResidualEchoSuppressor()
    x = (np.random.default_rng(1).standard_normal((50, 160)) * 1000).astype(np.int16)
    y = res.process(x, np.zeros((50, BANDS)), np.zeros(50, bool))
    assert np.max(np.abs(y[1:].astype(int) - x[:-1].astype(int))) <= 1


def test_the_residual_is_floored_and_the_user_passes() -> None:
    res = ResidualEchoSuppressor()
    env = np.full((1, BANDS), 1e8)  # a loud reference in every band
    residual = _tone(1000, 200, 300)  # what the canceller left: follows the reference, steady
    y = res.process(residual, np.repeat(env, 200, 0), np.zeros(200, bool))
    assert _db(y[100:]) < _db(residual) - 30  # learnt, then floored
    user = _tone(300, 50, 3000, phase=200 * 160)  # the user, in another band, 20 dB above it
    mixed = np.clip(residual[:50].astype(int) + user, -32768, 32767).astype(np.int16)
    y = res.process(mixed, np.repeat(env, 50, 0), np.zeros(50, bool))
    assert _db(y[5:]) > _db(user) - 3  # the user's band passes
