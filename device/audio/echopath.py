"""The echo path in band magnitudes: how much of each reference band reaches the mic, per lag.

`EchoPath` predicts the echo's band powers in the current mic frame from the band powers of
the last `lags` reference frames: for each band b, sqrt(echo_b) = sum_k H[b, k] sqrt(ref_b[t-k])
(magnitudes add roughly linearly over a room's taps; powers would not). H is learnt by NLMS
(step `mu`, kept >= 0) on frames the caller says hold only echo, and at a tenth of that step
on the others, so a prediction that was too low cannot lock itself out of learning.

The prediction tracks the reference syllable by syllable, where a bound over a window of
frames (device/audio/echogate.py) stays at the loudest: a user's word a few dB below the
echo shows in the bands and frames the reply leaves quiet.

The paths learn the echo, not the room's noise: the mic's band powers less their noise floor
(`echo_mags`). A path has no constant term, so a noise floor under a loud reference was learnt as
echo: in a 45 dB room, a word 10-16 dB over the noise was predicted away as the reply's echo.

The reference's history (`RefHistory`) can be shared by several paths fed the same reference
(the echo gate's and the residual gate's): it is shifted, and its NLMS norm summed, once per
frame; `PathStack` predicts and teaches such paths together. Cost: per frame one [bands, lags]
product for a path (a stack: one for all of them and the norm), and an NLMS step when it learns.
"""

from __future__ import annotations

import numpy as np

# The noise floors the gates hand in are min-tracked, and read under a band's mean noise: white noise
# at 45 dB, 2.5 dB in the widest band (37 rfft bins), 25-30 dB in the 1-bin bands under 300 Hz.
# Taken once, the floor takes about half the noise out of the wide bands and little out of the
# narrow ones, where the gates' excess tests (the mic less 10 x the floor) need the paths to explain
# it. Measured on the dev harness: twice the floor paused a first reply twice more after its echo
# path changed; a smoothed floor (0.4-3.6 dB under the mean) out of every band made a false
# barge-in in a noisy first start.
NOISE_X = 1.0


def echo_mags(power: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """What a path learns towards: the band magnitudes of the echo in a frame, sqrt(max(power -
    NOISE_X * noise, 0)); power: the frame's band powers, noise: their noise floor (the same shape,
    band power units; any leading axes, one row per path)."""
    return np.sqrt(np.maximum(power - NOISE_X * noise, 0.0))


class RefHistory:
    """The band magnitudes (sqrt of the band powers) of the last `lags` reference frames, [bands,
    lags], column 0 the newest; pushed once per frame by its owner, read by every EchoPath on it."""

    def __init__(self, bands: int, lags: int = 32) -> None:
        self.mags = np.zeros((bands, lags))
        self._norm: np.ndarray | None = None  # this frame's NLMS norm, once a path asked for it

    def push(self, mags: np.ndarray) -> None:
        """The newest reference frame's band magnitudes [bands] (sqrt of its band powers)."""
        self.mags[:, 1:] = self.mags[:, :-1]
        self.mags[:, 0] = mags
        self._norm = None

    @property
    def norm(self) -> np.ndarray:
        """Sum over lags of the squared magnitudes [bands] (NLMS's normaliser; computed once a frame)."""
        if self._norm is None:
            self._norm = np.einsum("bk,bk->b", self.mags, self.mags)
        return self._norm


class EchoPath:
    """history: a RefHistory shared with other paths, pushed by its owner before predict (which is
    then called with no ref_power); None: a history of the path's own, pushed by predict."""

    def __init__(self, bands: int, lags: int = 32, mu: float = 0.1, history: RefHistory | None = None) -> None:
        self.mu = mu
        self.h = np.zeros((bands, lags))
        self.history = RefHistory(bands, lags) if history is None else history
        self._pred = np.zeros(bands)  # the last prediction in magnitudes (learn's, h unchanged since)
        self._err = np.zeros(bands)  # learn's scratch
        self._upd = np.zeros((bands, lags))

    def predict(self, ref_power: np.ndarray | None = None) -> np.ndarray:
        """Take the newest reference frame's band powers [bands] (None: the shared history has it
        already); the echo band powers predicted for the mic frame in step with it [bands]."""
        if ref_power is not None:
            self.history.push(np.sqrt(ref_power))
        self._pred = np.einsum("bk,bk->b", self.h, self.history.mags)
        return np.square(self._pred)

    def learn(self, mic_power: np.ndarray, echo_only: bool, floor: float, *,
              mic_mags: np.ndarray | None = None) -> None:
        """One NLMS step towards the mic's band magnitudes [bands] (after predict on the same
        frame); floor: regularises the step where the reference is near silent (band power
        units); mic_mags: sqrt(mic_power), if the caller has it."""
        err = np.subtract(np.sqrt(mic_power) if mic_mags is None else mic_mags, self._pred, out=self._err)
        err *= self.mu if echo_only else self.mu / 10
        err /= self.history.norm + floor
        upd = np.multiply(err[:, None], self.history.mags, out=self._upd)
        np.add(self.h, upd, out=self.h)
        np.maximum(self.h, 0.0, out=self.h)


class PathStack:
    """EchoPaths on one shared RefHistory, their h and the history's magnitudes made rows of one array
    [paths + 1, bands, lags]: one product per frame gives every path's prediction and the NLMS norm
    (the history against itself), one NLMS step teaches them all (the same arithmetic as each path's
    own predict and learn). While stacked, predict and learn them here."""

    def __init__(self, paths: list[EchoPath]) -> None:
        self.history = paths[0].history
        if any(p.history is not self.history for p in paths):
            raise ValueError("PathStack: the paths must share one RefHistory")
        n = len(paths)
        self._rows = np.stack([p.h for p in paths] + [self.history.mags])
        for i, p in enumerate(paths):
            p.h = self._rows[i]
        self.history.mags = self._rows[n]  # pushed in place by the history's owner
        self.h = self._rows[:n]
        # each path's step per row, for every combination of echo_only flags (index: their bits)
        self._steps = np.array([[[p.mu if (k >> (n - 1 - i)) & 1 else p.mu / 10] for i, p in enumerate(paths)]
                                for k in range(2 ** n)])
        self._pred = np.zeros(self.h.shape[:2])
        self._err = np.zeros(self.h.shape[:2])
        self._upd = np.zeros(self.h.shape)

    def predict(self) -> np.ndarray:
        """Each path's predicted echo band powers [paths, bands] (the history pushed this frame already)."""
        out = np.einsum("pbk,bk->pb", self._rows, self.history.mags)
        self._pred = out[:-1]
        self.history._norm = out[-1]
        return np.square(self._pred)

    def learn(self, mic_mags: np.ndarray, echo_only: tuple[bool, ...], floor: float) -> None:
        """One NLMS step of every path towards its mic's band magnitudes [paths, bands] (after predict);
        echo_only and floor as EchoPath.learn's, per path and for all."""
        err = np.subtract(mic_mags, self._pred, out=self._err)
        k = 0
        for e in echo_only:
            k = 2 * k + bool(e)
        err *= self._steps[k]
        err /= self.history.norm + floor
        upd = np.multiply(err[:, :, None], self.history.mags, out=self._upd)
        np.add(self.h, upd, out=self.h)
        np.maximum(self.h, 0.0, out=self.h)
