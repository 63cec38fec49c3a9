"""The barge-in bench's count of one run (device/bench/barge_in.measure): what is the user's, what is not."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_the_server_s_vad_starting_after_the_word_s_window_started_on_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Server mode: the server missed the user's word and the reply plays on; a start of its VAD after
    # the word's window is the device's echo, as one before the word is (uplink_echo counted only those
    # before). Where it heard the user, it stops the reply: what comes after does not count.
    from device.dev import server_vad

    def starts(*times: float) -> type:
        class Starts:
            def process(self, pcm24: np.ndarray) -> list[server_vad.TurnEvent]:
                return [server_vad.TurnEvent("start", int(t * 1000), int(t * 1000)) for t in times]
        return Starts

    sc = {**_talk(2.0), "reply_start_s": 0.5}
    recs = [{"event": "playback_start", "t": 0.5}, {"event": "playback_stop", "t": 8.0}]
    mic = np.full(8 * 16000, 1000, dtype=np.int16)
    up = np.zeros(8 * RATE, dtype=np.int16)
    monkeypatch.setattr(server_vad, "ServerVad", starts(1.0, 5.0))
    r = bb.uplink_echo(sc, recs, mic, up)
    assert r["vad_on_echo"] == 2 and not r["vad_on_user"]
    monkeypatch.setattr(server_vad, "ServerVad", starts(1.0, 2.1, 5.0))
    r = bb.uplink_echo(sc, recs, mic, up)
    assert r["vad_on_echo"] == 1 and r["vad_on_user"]
