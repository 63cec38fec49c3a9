"""RefCoherence (device/audio/coherence.py): the share of a residual the reference explains
linearly at the echo's lag, on synthetic spectra framed as the echo gate frames them (20 ms Hann
windows every 10 ms at 16 kHz)."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.coherence import RefCoherence

RATE, FRAME = 16000, 160


def _spectra(x: np.ndarray) -> np.ndarray:
    """[frames, 161] complex: 20 ms Hann-windowed spectra every 10 ms, as EchoGate.spectra."""
    win = np.hanning(2 * FRAME)
    n = len(x) // FRAME - 1
    return np.fft.rfft(np.stack([x[k * FRAME:(k + 2) * FRAME] for k in range(n)]) * win)


def _speechy(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    return rng.standard_normal(n) * 3000 * (0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 4 * t)))


def _room(delay_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = np.zeros(delay_samples + 480)
    h[delay_samples] = 0.5
    h[delay_samples + 1:] = rng.standard_normal(479) * np.exp(-np.arange(1, 480) / 80) * 0.1
    return h


def _scores(ref: np.ndarray, residual: np.ndarray, lag: int | None) -> np.ndarray:
    coh = RefCoherence()
    out = []
    for x, r in zip(_spectra(ref), _spectra(residual), strict=True):
        coh.push(x, r, lag)
        out.append(coh.score)
    return np.array(out)


def test_a_leak_of_the_echo_is_explained_at_its_lag_and_not_at_another() -> None:
    # The canceller's leak after a path change: the reference through a room, 30 ms late, plus the
    # mic's noise 40 dB down.
    ref = _speechy(3.0, seed=1)
    leak = np.convolve(ref, _room(480, seed=2))[: len(ref)]
    leak += np.random.default_rng(3).standard_normal(len(ref)) * np.std(leak) * 0.01
    at_lag = _scores(ref, leak, lag=3)[100:]
    assert float(np.median(at_lag)) > 0.8
    assert float(np.median(_scores(ref, leak, lag=12)[100:])) < 0.1  # the wrong lag explains nothing


def test_a_voice_the_reference_does_not_hold_is_not_explained() -> None:
    ref = _speechy(3.0, seed=1)
    voice = _speechy(3.0, seed=4)  # another talker: the same kind of signal, not a function of the reply
    assert float(np.percentile(_scores(ref, voice, lag=3)[100:], 95)) < 0.1


def test_a_voice_over_the_leak_is_explained_by_the_leak_s_share() -> None:
    # Equal powers: about half the residual follows the reference.
    ref = _speechy(4.0, seed=1)
    leak = np.convolve(ref, _room(480, seed=2))[: len(ref)]
    voice = _speechy(4.0, seed=4)
    mixed = leak + voice * np.std(leak) / np.std(voice)
    assert 0.3 < float(np.median(_scores(ref, mixed, lag=3)[150:])) < 0.7


def test_silence_explains_nothing_and_bad_settings_are_refused() -> None:
    ref = _speechy(1.0, seed=1)
    assert not _scores(np.zeros_like(ref), ref, lag=None).any()  # no reference: nothing explained
    assert not _scores(ref, np.zeros_like(ref), lag=3).any()  # no residual: nothing to explain
    with pytest.raises(ValueError):
        RefCoherence(alpha=0.0)
