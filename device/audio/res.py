"""Residual echo suppression for the uplink: what the echo canceller left of the reply, per band.

AEC3 takes 25-45 dB of the reply's echo out of the mic, but what is left is still speech to a
listening model: with GPT-Live the uplink stays open while the device speaks, and the model
stops its own reply when it hears speech (it "hears itself"). This post-filter removes, band
by band, the residual echo it can predict, and lets through what it cannot: the user.

Per 10 ms frame (16 kHz, 160 samples) of the canceller's output, with `echo`: the echo gate's
envelope of the reference for that frame (device/audio/echogate.py: its 16 band powers at the
canceller's estimated delay, with the room's decay; zeros when no echo is expected):
- it learns the residual echo path per band, `coupling` = output power / reference envelope
  (the echo path's gain over the canceller's ERLE), as the largest ratio seen in frames the gate
  did not call near-end and where the reference is loud, forgotten by `forget_db_per_s`; in
  near-end frames it may rise only 0.5 dB per frame (the user's words are not learnt as echo);
- the predicted residual is coupling x envelope; each band gets the spectral subtraction gain
  max(floor, 1 - over x predicted / output power), from what was learnt before the frame: a
  band the user dominates passes, a band that holds only the residual is floored.
Analysis and synthesis: 20 ms sqrt-Hann windows, 10 ms hop (overlap-add reconstructs exactly
where every gain is 1), so the output runs one frame (10 ms) behind the input.
Cost: one rfft and one irfft of 320 points per frame.
"""

from __future__ import annotations

import numpy as np

from device.audio.dsp import round_int16
from device.audio.echogate import _EDGES, BANDS, FRAME, NFFT

_NB = BANDS
# Each rfft bin's band (bins below the first edge go with the first band, the top one with the last).
_BIN_BAND = np.clip(np.searchsorted(_EDGES, np.arange(NFFT // 2 + 1), side="right") - 1, 0, _NB - 1)


class ResidualEchoSuppressor:
    def __init__(self, over_db: float = 6.0, floor_db: float = -40.0, forget_db_per_s: float = 3.0) -> None:
        self.over = 10 ** (over_db / 10)
        self.floor = 10 ** (floor_db / 20)  # amplitude gain
        self.forget = 10 ** (-forget_db_per_s / 10 / 100)
        # sqrt of a periodic Hann: analysis x synthesis = Hann, which sums to 1 at 50 % overlap.
        self._win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)).astype(np.float32)
        self._prev = np.zeros(FRAME, dtype=np.float32)
        self._tail = np.zeros(FRAME, dtype=np.float32)
        self.coupling = np.zeros(_NB)  # residual echo power per unit of the reference envelope, per band
        self.gains = np.ones(_NB)  # the last frame's band gains (amplitude)
        self.rise = 10 ** (1.0 / 10)
        self.fall = 10 ** (0.2 / 10)
        self.learn_frames = 1
        self.jump = 10.0  # a band 10 dB above its learnt residual is someone talking, not learnt
        self.learnt = 0
        self.loud = 1e4  # a band's reference envelope must exceed this to be learnt from (~-50 dBFS speech: 1e7)

    def restart(self, last: np.ndarray | None = None) -> None:
        """A new stream: the overlap-add state is that of `last` ([160] int16, the frame just before
        the stream, already sent some other way) having passed with gain 1, or empty without it.
        With `last`, the next process() returns `last` again as its first frame (drop it: then the
        stream continues `last` without a gap, 10 ms behind); without it, that first frame is
        silence. What was learnt of the echo path stays."""
        if last is None:
            self._prev[:] = 0
            self._tail[:] = 0
            return
        x = last.astype(np.float32)
        self._prev = x
        self._tail = x * np.square(self._win[FRAME:])  # its second half's share of the overlap-add

    def process(self, frames: np.ndarray, echo: np.ndarray, near: np.ndarray) -> np.ndarray:
        """[k, 160] int16 canceller output, `echo` [k, 16] envelopes, `near` bool[k] (the echo gate's
        verdicts) → [k, 160] int16, 10 ms behind the input."""
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):  # the overlap-add state runs frame to frame
            x = frame.astype(np.float32)
            spec = np.fft.rfft(np.concatenate((self._prev, x)) * self._win)
            self._prev = x
            g = self._gains(np.add.reduceat(np.square(np.abs(spec)), _EDGES[:-1])[:_NB], echo[i], bool(near[i]))
            y = np.fft.irfft(spec * g[_BIN_BAND], NFFT).astype(np.float32) * self._win
            out[i] = round_int16(self._tail + y[:FRAME])
            self._tail = y[FRAME:]
        return out

    def _gains(self, power: np.ndarray, env: np.ndarray, near: bool) -> np.ndarray:
        """Band gains for one frame: output band `power`, reference envelope `env` (see the module
        doc). The gains use what was learnt before this frame; then this frame is learnt."""
        # In a frame the echo gate calls near-end the user is there for sure: subtract the residual only.
        residual = self.coupling * env * (1.0 if near else self.over)
        self.gains = np.sqrt(np.clip(1.0 - residual / (power + 1e-9), self.floor ** 2, 1.0))
        total = float(env.sum())
        # Learn only where the reference is loud: a ratio over a near-silent band says nothing.
        loud = env > max(self.loud, 1e-4 * total)
        if not loud.any():
            self.coupling *= self.forget
            return self.gains
        ratio = np.where(loud, power / np.where(loud, env, 1.0), 0.0)
        if self.learnt < self.learn_frames:  # the first frame of echo: a start
            self.learnt += 1
            self.coupling = np.maximum(self.coupling, ratio)
            return self.gains
        # Then an upper percentile of the ratio: up 1 dB when above it, down 0.2 dB when below
        # (~83rd; it follows the canceller converging at 20 dB/s), never up in a near-end frame nor
        # by a jump of `jump` or more: a word of the user's is not learnt as residual echo.
        up = (ratio > self.coupling) & (ratio < self.coupling * self.jump) & loud & (not near)
        down = (ratio < self.coupling) & loud
        self.coupling = np.where(up, self.coupling * self.rise, np.where(down, self.coupling / self.fall,
                                                                              self.coupling * self.forget))
        return self.gains
