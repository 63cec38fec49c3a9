"""The echo path in band magnitudes: how much of each reference band reaches the mic, per lag.

`EchoPath` predicts the echo's band powers in the current mic frame from the band powers of
the last `lags` reference frames: for each band b, sqrt(echo_b) = sum_k H[b, k] sqrt(ref_b[t-k])
(magnitudes add roughly linearly over a room's taps; powers would not). H is learnt by NLMS
(step `mu`, kept >= 0) on frames the caller says hold only echo, and at a tenth of that step
on the others, so a prediction that was too low cannot lock itself out of learning.

The prediction tracks the reference syllable by syllable, where a bound over a window of
frames (device/audio/echogate.py) stays at the loudest: a user's word a few dB below the
echo shows in the bands and frames the reply leaves quiet. Cost: two [bands, lags] products
per 10 ms frame.
"""

from __future__ import annotations

import numpy as np


class EchoPath:
    def __init__(self, bands: int, lags: int = 32, mu: float = 0.1) -> None:
        self.mu = mu
        self.h = np.zeros((bands, lags))
        self._ref = np.zeros((bands, lags))  # reference band magnitudes, column 0 the newest

    def predict(self, ref_power: np.ndarray) -> np.ndarray:
        """Take the newest reference frame's band powers [bands]; the echo band powers predicted
        for the mic frame in step with it [bands]."""
        self._ref[:, 1:] = self._ref[:, :-1]
        self._ref[:, 0] = np.sqrt(ref_power)
        return np.square(np.einsum("bk,bk->b", self.h, self._ref))

    def learn(self, mic_power: np.ndarray, echo_only: bool, floor: float) -> None:
        """One NLMS step towards the mic's band magnitudes [bands] (after predict); floor:
        regularises the step where the reference is near silent (band power units)."""
        pred = np.einsum("bk,bk->b", self.h, self._ref)
        err = np.sqrt(mic_power) - pred
        norm = np.einsum("bk,bk->b", self._ref, self._ref) + floor
        step = self.mu if echo_only else self.mu / 10
        self.h += (step * err / norm)[:, None] * self._ref
        np.maximum(self.h, 0.0, out=self.h)
