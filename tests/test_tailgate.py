"""The uplink just after a reply played out (device/conversation/tailgate.py): the room's tail of
the reply is held back, the user answering over it is not."""

from __future__ import annotations

import numpy as np

from device.conversation.tailgate import TailGate


def _voice(k: int, amp: float = 3000.0) -> np.ndarray:
    """k frames [k, 160] int16 of a 300 Hz tone (what the canceller let through)."""
    t = np.arange(k * 160) / 16000
    return (np.sin(2 * np.pi * 300 * t) * amp).astype(np.int16).reshape(k, 160)


def _rms(frames: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(frames.astype(float)), axis=1))


def test_the_reply_s_room_tail_with_no_user_heard_in_it_does_not_go_uplink() -> None:
    # Bench, server mode, second turn (human_silent_022, RT60 500 ms): after the echo path changed,
    # AEC3 let the reply's tail through at 37-50 dB for 300 ms after the reply, and the server's VAD
    # started on it; the echo path's held prediction explained over 0.72 of every frame (no user).
    gate = TailGate()
    gate.start(now=10.0, open_until=-1.0, gain=0.0)
    left = np.linspace(36.0, 1.0, 32)  # the gate's bound on the echo left falls to the floor
    out = gate.process(_voice(32), np.zeros(32, bool), left, now=10.32)
    assert _rms(out).max() == 0.0
    assert gate.active
    # ... and once the bound is at the noise floor the uplink passes again, from that frame on.
    after = gate.process(_voice(4), np.zeros(4, bool), np.array([0.5, -1.0, -np.inf, -np.inf]), now=10.36)
    assert not gate.active
    assert _rms(after)[0] == 0.0 and _rms(after)[2:].min() > 2000.0


def test_a_user_answering_over_the_tail_goes_uplink_from_the_frame_they_are_heard_in() -> None:
    gate = TailGate(hold_s=0.5)
    gate.start(now=10.0, open_until=-1.0, gain=0.0)
    user = np.array([False] * 5 + [True] * 3 + [False] * 12)  # a word the tail explains little of, then more
    out = gate.process(_voice(20), user, np.full(20, 20.0), now=10.2)
    levels = _rms(out)
    assert levels[:5].max() == 0.0  # the tail before them
    assert levels[6:].min() > 2000.0  # the word, held open through its quieter frames (hold_s)
    # The hold runs out on the block clock: a later block of tail is held back again.
    later = gate.process(_voice(5), np.zeros(5, bool), np.full(5, 10.0), now=10.8)
    assert _rms(later)[1:].max() == 0.0


def test_a_user_the_barge_in_detectors_opened_the_uplink_for_stays_heard_as_the_reply_ends() -> None:
    gate = TailGate(hold_s=0.5)
    gate.start(now=10.0, open_until=10.3, gain=1.0)  # open for the user when the reply played out
    out = gate.process(_voice(10), np.zeros(10, bool), np.full(10, 20.0), now=10.1)
    assert _rms(out).min() > 2000.0


def test_not_started_or_stopped_the_gate_passes_the_uplink_as_it_is() -> None:
    gate = TailGate()
    frames = _voice(3)
    assert gate.process(frames, np.zeros(3, bool), np.full(3, 30.0), now=1.0) is frames
    gate.start(now=1.0, open_until=-1.0, gain=0.0)
    gate.stop()  # another reply plays: its own gate decides
    assert gate.process(frames, np.zeros(3, bool), np.full(3, 30.0), now=1.03) is frames

