"""The barge-in set's recorded words (scripts/make_barge_in_set.py, scripts/human_voices.py): the same
files on every machine, and an onset where the user's speech begins, not where the recording does."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest

from device.bench import versions

RATE = 16000


@pytest.fixture(scope="module")
def scripts() -> Iterator[tuple[ModuleType, ModuleType]]:
    sys.path.insert(0, str(versions.HUMAN_VOICES.parent))
    try:
        import human_voices
        import make_barge_in_set
    finally:
        sys.path.pop(0)
    yield human_voices, make_barge_in_set


def _word(hv: ModuleType, name: str) -> np.ndarray:
    try:
        return np.asarray(hv.user(name, RATE))
    except hv.MissingVoices as exc:
        pytest.skip(str(exc))


def test_a_recorded_word_reads_the_same_every_time(scripts: tuple[ModuleType, ModuleType]) -> None:
    """sox dithered its 16-bit decode of ktuberling's Vorbis words at random: each set made had its own
    words, and 43 of the 240 scenarios' IN.wav differed between two makes (the full bench on two such
    sets gave the same outcome in every run, but a bench is only comparable on the same input)."""
    hv, _ = scripts
    for name in ("kt_en_f_hat", "kt_en_f_stick"):
        assert np.array_equal(_word(hv, name), _word(hv, name)), name


def test_the_onset_is_where_the_speech_begins_not_the_recordings_hum(
        scripts: tuple[ModuleType, ModuleType]) -> None:
    _, mk = scripts
    t = np.arange(RATE) / RATE
    hum = 300.0 * np.sin(2 * np.pi * 50 * t[:1280])  # 80 ms of mains hum, 40 dB under the word
    word = 30000.0 * np.sin(2 * np.pi * 700 * t[:4000])
    assert mk.speech_start(np.concatenate((hum, word)), RATE) == 1280
    assert mk.speech_start(word, RATE) == 0
    # ktuberling's "stick": the trimmed clip opens on 80 ms of hum under 200 Hz before its "s"
    hv, _ = scripts
    assert mk.speech_start(_word(hv, "kt_en_f_stick"), RATE) == 1280
    assert mk.speech_start(_word(hv, "allison_cancelled"), RATE) == 0  # no hum: where the trim cut
