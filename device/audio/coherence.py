"""How much of the linear canceller's residual the reference explains linearly (per 10 ms frame).

After the echo path changes (the device moved, the speaker's own volume turned), the linear
canceller (device/audio/speex.py) no longer matches it and leaks the reply's echo. That leak is
still a linear function of the reference: per FFT bin, the residual R(f) at frame t is about
H(f) X(f) at frame t - lag, with the echo's lag in frames. The user's voice is not. So the share of
the residual's power a linear fit on the reference explains, at the echo's lag, tells the leak from
a word: the power-weighted magnitude-squared coherence

    score = sum_f |S_xr(f)|^2 / S_xx(f)  /  sum_f S_rr(f)

with S_xr, S_xx, S_rr the cross- and auto-spectra averaged over frames (exponentially, `alpha` per
frame: ~200 ms at 0.05), taken at the lag (the canceller's delay estimate, lag - 1 .. lag + 1, the
best of the three), over the bins lo..hi-1 of a 320-point FFT at 16 kHz (50 Hz each: 50-5950 Hz
by default). 0: nothing of the residual follows the reference; 1: all of it does.

Recorded per frame (dev harness, second turns: the residual gate's near-end frames 0-1 s after an
echo path change in 33 of 96 echo-only runs, and 0-0.6 s after 72 users' onsets): median 0.26 on
the changed echo (5 % under 0.05), 0.01 on the users' words (5 % over 0.09). The averages follow a
new state over ~1 / alpha frames, so a leak's first frames read low, and a word's first frames read
what the residual held before it. The residual gate (device/audio/residualgate.py) takes a run of
near-end frames whose mean is 0.15 or more for the leak: over 6 frames, 7 of those 33 runs were
kept as near-end, no user's word lost. ErleDrop's frames (device/listen/bargein.py) take a frame at
0.15 or more for it.

Cost: the averages kept every frame (a complex multiply-add over [lags, hi - lo]), the score when
read (the frontend reads it every frame once warm): ~14 + ~8 us per frame here (x86-64, the
machine busy), ~0.002 CPU s per audio s.
"""

from __future__ import annotations

import numpy as np


class RefCoherence:
    """The reference's coherence with the residual at the echo's lag (see the module doc).

    lags: frames of reference history (the lags looked at: 0 .. lags - 1); lo, hi: the FFT bins
    used (lo .. hi - 1); alpha: the averages' step per frame (0 < alpha <= 1)."""

    def __init__(self, lags: int = 16, lo: int = 1, hi: int = 120, alpha: float = 0.05) -> None:
        if not 0.0 < alpha <= 1.0 or lags < 2 or not 0 <= lo < hi:
            raise ValueError(f"RefCoherence: bad lags {lags}, bins {lo}..{hi} or alpha {alpha}")
        self.lags, self.lo, self.hi, self.alpha = lags, lo, hi, alpha
        nb = hi - lo
        # The reference's spectra, each written twice (rows p and p + lags) so rows p .. p + lags - 1
        # are X[t], X[t - 1], ... as one view, nothing copied.
        self._x = np.zeros((2 * lags, nb), np.complex64)
        # S_xx is the same average at every lag, only older: kept per frame the same way.
        self._xx = np.zeros((2 * lags, nb), np.float32)
        self._p = 0
        self._sxr = np.zeros((lags, nb), np.complex64)  # S_xr per lag: X[t - k] R*[t] averaged
        self._rr = np.zeros(nb, np.float32)
        self._prod = np.zeros((lags, nb), np.complex64)
        self._lag = 3
        self._score: float | None = 0.0  # the last frame's (None: not computed yet)

    def push(self, ref: np.ndarray, residual: np.ndarray, lag: int | None) -> None:
        """One frame's spectra, complex [NFFT // 2 + 1] each (or longer than hi): the reference's and
        the residual's, windowed alike; lag: the echo's delay behind the reference in frames (None:
        3, 30 ms, a USB speaker's usual). The score is `score`'s."""
        a, lo, hi, n = self.alpha, self.lo, self.hi, self.lags
        self._p = p = (self._p - 1) % n
        x = ref[lo:hi]
        self._x[p] = x
        self._x[p + n] = x
        xx = np.square(x.real, dtype=np.float32) + np.square(x.imag, dtype=np.float32)
        xx = (1 - a) * self._xx[(p + 1) % n] + a * xx
        self._xx[p] = xx
        self._xx[p + n] = xx
        r = residual[lo:hi]
        rc = np.conj(r)
        np.multiply(self._x[p:p + n], rc, out=self._prod)
        self._sxr *= 1 - a
        self._prod *= a
        self._sxr += self._prod
        self._rr *= 1 - a
        self._rr += a * (np.square(r.real, dtype=np.float32) + np.square(r.imag, dtype=np.float32))
        self._lag = 3 if lag is None else lag
        self._score = None

    @property
    def score(self) -> float:
        """The last frame's score (see the module doc), computed when first read after a push and
        kept for the frame's other readers (the frontend's per-frame record, the residual gate's run)."""
        if self._score is None:
            n, k, p = self.lags, self._lag, self._p
            lo, hi = max(0, k - 1), min(n, k + 2)
            if lo >= hi:
                self._score = 0.0
            else:
                s = self._sxr[lo:hi]
                explained = (s.real ** 2 + s.imag ** 2) / (self._xx[p + lo:p + hi] + 1e-3)
                self._score = float(explained.sum(axis=1).max() / (float(self._rr.sum()) + 1e-3))
        return self._score
