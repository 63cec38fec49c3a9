"""The uplink just after a reply played to its end: the room's tail of it is not the user.

While the device speaks, the uplink passes only what the barge-in detectors open it for
(speaking.BargeIn.suppress). Once the reply has played out, the conversation listens again and
the uplink (server barge-in mode, GPT-Live: it never closed) carries the canceller's output
whole. But the reply's echo is still in the room for a reverberation time, and AEC3's suppressor
lets go of it as soon as the reference stops: after the echo path changed (the device moved, a
speaker's own volume turned), AEC3's output rose from the 29-31 dB noise floor to 37-50 dB for
the 300 ms after the reply while the mic fell from 60 to 44 dB, and the server's VAD started on
it (bench, server mode, second turn, RT60 500 ms, gain 0.5: human_silent_022). The echo gate's
bound on the echo left reached the noise floor 320 ms after the reply's end.

So for that long (EchoGate.echo_left_db over 0 dB), `TailGate` passes only frames the caller hears
the user in, and everything for `hold_s` after each; the other frames are silence (gain 0). The
caller (speaking.BargeIn.tail) hears the user where the echo path's prediction, held at the room's
decay, explains at most half of the mic: over the tail that reached the server's VAD it explained
0.72 of every frame or more; of a user answering 50 ms after the reply, 0.04-0.2 from their first
voiced frame.

Cost, dev harness (the bench's 144 words, each said 50, 150 and 300 ms after a second turn's reply
played out, server mode, the local server's VAD on the uplink): heard 144 of 144 at each, as
before. The VAD's start the same for 109, 107 and 121 of them, sooner for 25, 25 and 11, later for
10, 12 and 12, by up to 192-224 ms: p50/p95 95/227 -> 76/301 ms, 78/214 -> 68/307 ms and 61/216 ->
67/224 ms. Some of the later ones lost nothing of the word: that VAD starts later on a word after
digital silence than after the room's noise. Of the words 50 ms after the reply, the first 100 ms
lost more than 1 dB in 19 (37.6 dB at most), the first 300 ms at most 0.6 dB. Passing the frames at
the noise floor instead (6 dB over it or less) kept the VAD's starts but the switching between
noise and silence made clicks: the server's VAD started on 2 echo-only replies (server mode, cold,
RT60 500 ms), which it had not without this gate.
"""

from __future__ import annotations

import numpy as np


class TailGate:
    """Gains for the uplink after a reply played out (see the module doc).

    hold_s: how long the uplink stays open after a frame of the user's (s); closed_gain: the gain of a
    frame the gate holds back (amplitude, 0..1)."""

    def __init__(self, hold_s: float = 0.5, closed_gain: float = 0.0) -> None:
        self.hold_s, self.closed_gain = hold_s, closed_gain
        self.active = False  # a reply's tail is being gated
        self._open_until = -1.0  # mic time until which the uplink passes (s)
        self._gain = 1.0  # the last frame's gain, where the next frame's ramp starts
        self._prev_user = False  # the last frame's verdict: the uplink's frames run one frame late

    def start(self, now: float, open_until: float, gain: float) -> None:
        """The reply played to its end at mic time `now` (s). open_until: the uplink was open for the
        user until then (mic time, s; the barge-in detectors' hold); gain: the uplink's last gain."""
        self.active = True
        self._open_until = max(open_until, -1.0)
        self._gain = gain
        self._prev_user = False

    def stop(self) -> None:
        """Another reply plays (its own gate takes over), or the conversation ended."""
        self.active = False

    def process(self, frames: np.ndarray, user: np.ndarray, left_db: np.ndarray, now: float) -> np.ndarray:
        """frames [k, 160] int16 (the uplink's, one frame behind the mic's); user bool[k], the mic's
        frames of the same block the caller hears the user in, and left_db float[k], the echo gate's
        bound on the echo left over the noise floor there (dB; -inf with no echo expected); now: the
        block's mic time (s) → [k, 160] int16, each frame times a gain ramped from the last frame's.
        Not active: frames as they are."""
        k = len(frames)
        if not self.active or k == 0:
            return frames
        targets = np.ones(k, dtype=np.float32)
        n = min(k, len(user), len(left_db))
        for i in range(n):  # per 10 ms frame, as the gate's verdicts come
            if not left_db[i] > 0.0:  # the bound reached the floor: the tail has died away
                self.active = False
                break
            if user[i] or self._prev_user:
                self._open_until = now + self.hold_s
            self._prev_user = bool(user[i])
            if now > self._open_until:
                targets[i] = self.closed_gain
        starts = np.concatenate(([self._gain], targets[:-1])).astype(np.float32)
        self._gain = float(targets[-1])
        ramp = starts[:, None] + (targets - starts)[:, None] * np.linspace(0.0, 1.0, frames.shape[1], dtype=np.float32)
        return np.rint(frames * ramp).astype(np.int16)
