"""The demo's and the bench's reading of speaker.wav: what was really played, pauses excluded."""

from __future__ import annotations

import numpy as np

from device.dev.demo_report import barge_in_facts, played_samples

RATE = 24000


def reply(ms: int, seed: int = 0) -> np.ndarray:
    """Reply audio with a TTS-like noise floor: never a run of exact zeros."""
    x = np.random.default_rng(seed).integers(1, 200, RATE * ms // 1000).astype(np.int16)
    return x * np.where(np.arange(len(x)) % 2, 1, -1).astype(np.int16)


def test_a_pause_inside_the_reply_is_not_counted_as_played() -> None:
    # 0.5 s before the reply, 400 ms played, paused 300 ms (exact zeros), 200 ms more, then silent.
    x = np.concatenate((np.zeros(RATE // 2, np.int16), reply(400), np.zeros(RATE * 3 // 10, np.int16),
                        reply(200, 1), np.zeros(RATE, np.int16)))
    assert played_samples(x, RATE // 2, len(x), RATE) == RATE * 600 // 1000
    # A single zero sample inside the reply (a zero crossing) is not a pause.
    y = reply(400)
    y[1000] = 0
    assert played_samples(y, 0, len(y), RATE) == len(y)


def test_barge_in_facts_compare_the_truncate_with_what_played_less_the_pause() -> None:
    x = np.concatenate((np.zeros(RATE // 2, np.int16), reply(400), np.zeros(RATE * 3 // 10, np.int16),
                        reply(200, 1), np.zeros(RATE, np.int16)))
    records = [
        {"t": 0.5, "event": "playback_start", "item_id": "i1", "speaker_s": 0.5},
        {"t": 0.9, "event": "playback_pause", "item_id": "i1", "played_ms": 400},
        {"t": 1.2, "event": "playback_resume", "item_id": "i1", "played_ms": 400},
        {"t": 1.4, "event": "barge_in", "source": "local_vad"},
        {"t": 1.4, "event": "send", "type": "conversation.item.truncate", "item_id": "i1", "audio_end_ms": 600},
    ]
    facts = barge_in_facts(records, x, RATE, onset_s=1.25)
    assert facts is not None
    assert facts["silent_t"] == 1.4 and facts["latency_ms"] == 150
    assert facts["played_ms"] == 600 == facts["audio_end_ms"]
