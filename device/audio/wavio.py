"""WAV files in and out: any rate, any channel count, 8/16/24/32-bit PCM or float, any header.

Everything inside voxbox is int16 PCM; float work happens in numpy where it is
needed. Reading returns (samples[n, channels] int16, rate).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soundfile as sf

from device.audio import dsp
from device.errors import AudioFileError


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (int16 samples shaped [frames, channels], sample rate in Hz).

    Any WAV variant libsndfile reads (plain or extensible header, 8/16/24/32-bit PCM, 32/64-bit
    float, any channel count; also FLAC/OGG): PCM is converted by libsndfile exactly as a shift
    to 16 bits, float is clipped to [-1, 1]. AudioFileError (one line) if it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
        if info.subtype in ("FLOAT", "DOUBLE"):
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            samples = dsp.float_to_int16(np.nan_to_num(data))
        else:
            samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioFileError(f"{path}: not a readable WAV file ({why})") from None
    if samples.shape[1] < 1 or rate < 1000:
        raise AudioFileError(f"{path}: implausible WAV header ({samples.shape[1]} ch, {rate} Hz)")
    return np.ascontiguousarray(samples, dtype=np.int16), int(rate)


def read_mono(path: str | Path, rate: int, channels: list[int] | None = None) -> np.ndarray:
    """Read a WAV as int16 mono at `rate`, mixing or picking channels as the daemon does."""
    samples, src_rate = read_wav(path)
    mono = dsp.select_channels(samples, channels)
    return dsp.resample(mono, src_rate, rate)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write int16 samples ([n] or [n, ch]) as a PCM16 WAV."""
    samples = np.asarray(samples, dtype=np.int16)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
