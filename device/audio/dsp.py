"""Small numpy helpers for the audio path: channel maps, conversions, resampling.

No per-sample Python loops: numpy and soxr do the work.
"""

from __future__ import annotations

import numpy as np
import soxr

INT16_MAX = 32767


def round_int16(x: np.ndarray) -> np.ndarray:
    """int16-scale floats → int16, rounded and clipped (no wrap-around on loud input)."""
    return np.clip(np.rint(x), -32768, INT16_MAX).astype(np.int16)


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """[-1, 1] float → int16 with clipping (no wrap-around on loud input)."""
    return round_int16(x * INT16_MAX)


def int16_to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / INT16_MAX


def select_channels(samples: np.ndarray, channels: list[int] | None = None) -> np.ndarray:
    """[n, ch] int16 → [n] int16: pick one channel, or average the listed ones (all if None)."""
    if samples.ndim == 1:
        return samples.astype(np.int16, copy=False)
    n_ch = samples.shape[1]
    chosen = list(range(n_ch)) if not channels else channels
    bad = [c for c in chosen if c < 0 or c >= n_ch]
    if bad:
        raise ValueError(f"channel {bad[0]} does not exist (the input has {n_ch})")
    if len(chosen) == 1:
        return np.ascontiguousarray(samples[:, chosen[0]], dtype=np.int16)
    mixed = samples[:, chosen].astype(np.int32).sum(axis=1) // len(chosen)
    return mixed.astype(np.int16)


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution through one real FFT: float64[len(x) + len(h) - 1] (np.convolve is O(n m): a
    10 s reply through a 500 ms room is seconds of CPU)."""
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Whole-signal int16 resampling (files). Streams use soxr.ResampleStream instead."""
    if src_rate == dst_rate or len(x) == 0:
        return np.ascontiguousarray(x, dtype=np.int16)
    return soxr.resample(np.ascontiguousarray(x, dtype=np.int16), src_rate, dst_rate, quality="HQ")


DITHER_SEED = 0x766F78  # fixed: the same input, the same output


class StreamResampler:
    """Streaming int16 resampler with state across blocks (soxr): int16 in, int16 out.

    soxr's own int16 stream output adds TPDF dither seeded per stream from the clock, so the same
    input gave ±2 LSB different audio on every run (and `simulate` was not a function of its
    inputs). The stream runs in float32 and the same kind of dither (TPDF, ±1 LSB) is added here
    from a fixed seed: the signal keeps its noise floor (the echo canceller's reference is never
    exact digital silence mid-reply; without it a recorded female reply interrupted itself), and
    the same input gives the same samples on every run.
    """

    def __init__(self, src_rate: int, dst_rate: int, quality: str = "HQ") -> None:
        self.src_rate, self.dst_rate = src_rate, dst_rate
        self._passthrough = src_rate == dst_rate
        self._stream = None if self._passthrough else soxr.ResampleStream(src_rate, dst_rate, 1, dtype="float32",
                                                                          quality=quality)
        self._rng = np.random.default_rng(DITHER_SEED)

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self._passthrough:
            return np.ascontiguousarray(x, dtype=np.int16)
        assert self._stream is not None
        y = self._stream.resample_chunk(np.asarray(x, dtype=np.float32), last=last)
        dither = self._rng.random(len(y), dtype=np.float32) - self._rng.random(len(y), dtype=np.float32)
        return round_int16(y + dither)


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of int16 audio in dBFS (-120 for digital silence)."""
    if len(x) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) / INT16_MAX
    return 20 * np.log10(max(rms, 1e-6))
