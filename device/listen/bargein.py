"""The fast stage of barge-in: a suspicion from the VAD's per-chunk probability while the device speaks.

The strict VAD (vad.speaking_threshold over speaking_min_speech_ms) confirms a barge-in,
but during double talk AEC3's residual-echo suppressor hides the user's first 100-150 ms
and Silero needs a chunk or two more: too slow for the speaker to go quiet within 100 ms.
One chunk at or above vad.suspect_threshold is enough to *pause* the reply (the
conversation machine's SuspectSpeech → PausePlayback): once the speaker is quiet its echo
dies away, the suppressor lets the user through, and the strict VAD confirms or, within
conversation.confirm_ms, does not (the reply resumes where it paused).
"""

from __future__ import annotations

from device.listen.vad import SAMPLE_RATE, VadSegmenter


class SuspectGate:
    """Fires at most once per VAD chunk whose probability is >= `threshold`."""

    def __init__(self, vad: VadSegmenter, threshold: float) -> None:
        self.vad = vad
        self.threshold = threshold
        self._seen = -1  # index of the last chunk looked at

    def check(self) -> bool:
        """Call after feeding the VAD: True when a new chunk reached the threshold."""
        chunk = int(round(self.vad.fed_s * SAMPLE_RATE)) // self.vad.engine.chunk_samples
        if chunk == self._seen or chunk == 0:
            return False
        self._seen = chunk
        return self.threshold > 0 and self.vad.last_probability >= self.threshold
