"""`voxbox detect` and `voxbox vad` on WAV files (cli.py prints the dicts as JSON lines).

Files of any rate and channel count are mapped to mono exactly as the daemon maps
its microphone (`audio.channels`: pick one channel or average the listed ones, all
when empty) and resampled to 16 kHz (wavio.read_mono). A file that cannot be read gives
{"file", "error"} and the next file is still done; the models are loaded once,
before the first file is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from device.audio import wavio
from device.config import Settings
from device.errors import AudioFileError
from device.listen.vad import VadEvent, build_vad
from device.listen.wakeword import SAMPLE_RATE, build_wake_detector


def _read_all(paths: Iterable[str | Path], channels: list[int]) -> Iterator[tuple[str | Path, np.ndarray | None, dict]]:
    """(path, 16 kHz mono audio, {}) per file, or (path, None, {"file", "error"}) if unreadable.

    `channels`: the config's audio.channels (a channel the file lacks is that file's error).
    """
    for path in paths:
        try:
            yield path, wavio.read_mono(path, SAMPLE_RATE, channels or None), {}
        except AudioFileError as exc:
            yield path, None, {"file": str(path), "error": str(exc)}
        except ValueError as exc:  # dsp.select_channels: the file has fewer channels than configured
            yield path, None, {"file": str(path), "error": f"{path}: config audio.channels: {exc}"}


def detect_files(paths: Iterable[str | Path], settings: Settings) -> Iterator[dict]:
    """{"file", "detections": [{"wake_word", "t", "score"}]} per file."""
    detector = build_wake_detector(settings.wake)
    for path, audio, error in _read_all(paths, settings.audio.channels):
        if audio is None:
            yield error
            continue
        detector.reset()
        found = detector.process(audio)
        yield {
            "file": str(path),
            "detections": [{"wake_word": d.wake_word, "t": round(d.t, 3), "score": round(d.score, 4)} for d in found],
        }


def segments(events: Iterable[VadEvent]) -> list[list[float]]:
    """start/end events → [[start_s, end_s], ...] (an unmatched start is dropped)."""
    out: list[list[float]] = []
    start: float | None = None
    for ev in events:
        if ev.kind == "start":
            start = ev.t
        elif start is not None:
            out.append([round(start, 3), round(ev.t, 3)])
            start = None
    return out


def vad_files(paths: Iterable[str | Path], settings: Settings) -> Iterator[dict]:
    """{"file", "speech": [[start_s, end_s], ...]} per file."""
    vad = build_vad(settings.vad)
    for path, audio, error in _read_all(paths, settings.audio.channels):
        if audio is None:
            yield error
            continue
        vad.reset()
        events = vad.process(audio) + vad.flush()
        yield {"file": str(path), "speech": segments(events)}
