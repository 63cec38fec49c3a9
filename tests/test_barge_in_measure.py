"""The barge-in bench's count of one run (device/bench/barge_in.measure): what is the user's, what is not."""

from __future__ import annotations

import numpy as np

from device.bench import barge_in as bb

RATE = 24000


def _talk(onset: float) -> dict:
    return {"name": "talk", "family": "talk", "echo_gain": 1.0, "echo_delay_ms": 10, "room": False,
            "onset_s": onset}


def _run(onset: float, pauses: list[float], barges: list[float], played_s: float) -> dict:
    out = np.ones(int(played_s * RATE), dtype=np.int16)  # the reply, played from t = 0
    recs = [{"event": "playback_pause", "t": t} for t in pauses] + [{"event": "barge_in", "t": t} for t in barges]
    return bb.measure(_talk(onset), recs, out, RATE)


def test_a_pause_long_after_a_missed_word_is_a_false_pause_and_its_reply_time_counts() -> None:
    # The word at 1.5 s was missed; the reply played on to 8 s and paused at 6 s on its own echo.
    r = _run(1.5, [6.0], [], 8.0)
    assert r["false_pauses"] == 1 and not r["detected"]
    assert r["reply_before_onset_s"] == 1.5
    assert r["reply_after_window_s"] == 8.0 - 1.5 - bb.DETECT_WINDOW_S


def test_the_word_s_own_pause_and_barge_in_are_not_false() -> None:
    r = _run(1.5, [1.6], [1.8], 1.8)
    assert r["false_pauses"] == 0 and r["false_barge_ins"] == 0 and r["detected"]
    assert r["reply_after_window_s"] == 0.0
    # ... and one before the onset is false, and the word is then not counted caught
    r = _run(1.5, [0.7, 1.6], [0.8, 1.8], 1.8)
    assert r["false_pauses"] == 1 and r["false_barge_ins"] == 1 and not r["detected"]
