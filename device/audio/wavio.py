"""WAV files in and out: any rate, any channel count, 8/16/24/32-bit PCM or float.

Everything inside voxbox is int16 PCM; float work happens in numpy where it is
needed. Reading returns (samples[n, channels] int16, rate).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from device.audio import dsp
from device.errors import AudioFileError


def _read_float_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read WAVE_FORMAT_IEEE_FLOAT (the stdlib wave module refuses it)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError(f"{path}: not a WAV file")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise AudioFileError(f"{path}: WAV file has no fmt or data chunk")
    tag = int.from_bytes(fmt[0:2], "little")
    channels = int.from_bytes(fmt[2:4], "little")
    rate = int.from_bytes(fmt[4:8], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag in the subformat GUID
        tag = int.from_bytes(fmt[24:26], "little")
    if tag != 3 or bits not in (32, 64) or channels < 1:
        raise AudioFileError(f"{path}: unsupported WAV encoding (format {tag}, {bits} bit)")
    dtype = np.float32 if bits == 32 else np.float64
    n = len(payload) // (channels * bits // 8)
    samples = np.frombuffer(payload[: n * channels * bits // 8], dtype=f"<{np.dtype(dtype).str[1:]}")
    samples = np.nan_to_num(samples.reshape(n, channels).astype(np.float32))
    return dsp.float_to_int16(samples), rate


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (int16 samples shaped [frames, channels], sample rate)."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except wave.Error as exc:
        if "unknown format: 3" in str(exc) or "unknown format: 65534" in str(exc):
            return _read_float_wav(path)
        raise AudioFileError(f"{path}: not a readable WAV file ({exc})") from None
    except EOFError:
        raise AudioFileError(f"{path}: truncated WAV file") from None
    if channels < 1 or rate < 1000:
        raise AudioFileError(f"{path}: implausible WAV header ({channels} ch, {rate} Hz)")
    frames = len(raw) // (channels * width)
    raw = raw[: frames * channels * width]
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2").copy()
    elif width == 1:  # 8-bit WAV is unsigned
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        samples = b[:, 2].astype(np.int8).astype(np.int16) << 8 | b[:, 1].astype(np.int16)
        samples = samples.astype(np.int16)
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise AudioFileError(f"{path}: unsupported sample width {width * 8} bit")
    return samples.reshape(frames, channels), rate


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
