"""The demo's and the bench's reading of speaker.wav: what was really played, pauses excluded."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_timer_facts_read_the_ring_off_speaker_wav() -> None:
    from device.dev.demo_report import summary_lines, timer_facts

    rate = 1000
    speaker = np.zeros(10 * rate, np.int16)
    speaker[1000:2000] = 500  # a reply, long before the ring
    speaker[5012:8000] = 300  # the ring, 12 ms after it was due
    recs = [
        {"t": 2.0, "event": "tool_call", "name": "set_timer", "call_id": "c1", "arguments": {"duration_s": 3}},
        {"t": 2.0, "event": "tool_result", "name": "set_timer", "call_id": "c1", "ok": True},
        {"t": 2.0, "event": "timer", "action": "set", "id": "t1", "due_t": 5.0},
        {"t": 5.01, "event": "timer", "action": "ring", "id": "t1"},
        {"t": 7.95, "event": "timer", "action": "stop", "id": "t1", "reason": "button"},
    ]
    f = timer_facts(recs, speaker, rate)
    assert f is not None
    assert (f["onset_t"], f["onset_error_ms"], f["stop_reason"]) == (5.012, 12.0, "button")
    assert f["silent_after_stop"] is True and f["tool"] == "set_timer" and f["tool_ok"] is True
    line = next(x for x in summary_lines(recs, speaker, rate, None) if x.startswith("timer"))
    assert "set_timer (ok)" in line and "+12.0 ms" in line and "stopped by button" in line
    assert timer_facts(recs[:2], speaker, rate) is None


def test_the_ring_onset_is_its_own_sound_not_a_reply_starting_just_before() -> None:
    """A reply rising out of silence 10 ms before the ring is due, playing under it: the onset is the
    ring's (matched on its own sound), not the reply's first sample."""
    from device.audio import wavio
    from device.dev.demo_report import RING_WAV, ring_onset, timer_facts

    rate = 24000
    ring = wavio.read_mono(RING_WAV, rate).astype(np.float64)[: rate]
    speaker = np.zeros(6 * rate)
    reply = 3000 * np.sin(2 * np.pi * 180 * np.arange(rate) / rate)
    speaker[int(2.99 * rate):int(3.99 * rate)] += reply
    at = int(3.007 * rate)  # the ring, 7 ms after due
    speaker[at:at + len(ring)] += ring
    x = np.clip(np.rint(speaker), -32768, 32767).astype(np.int16)
    recs = [{"t": 1.0, "event": "timer", "action": "set", "id": "t1", "due_t": 3.0},
            {"t": 3.0, "event": "timer", "action": "ring", "id": "t1"}]
    f = timer_facts(recs, x, rate)
    assert f is not None and f["onset_error_ms"] == pytest.approx(7.0, abs=0.5)
    assert ring_onset(np.zeros(6 * rate, np.int16), rate, 3.0) is None  # nothing to match: no claim
