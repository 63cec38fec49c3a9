"""The learnt echo path (device/audio/echopath.py): a pure core, on band powers."""

from __future__ import annotations

import numpy as np

from device.audio.echopath import EchoPath


def test_it_learns_a_delayed_band_gain_and_predicts_the_echo_from_it() -> None:
    rng = np.random.default_rng(3)
    path = EchoPath(bands=4, lags=8, mu=0.3)
    gain = np.array([0.5, 0.1, 0.05, 0.2])  # power gain per band, echo 2 frames late
    refs = rng.uniform(0.0, 1e6, size=(600, 4)) * (rng.uniform(size=(600, 1)) > 0.3)
    errs = []
    for t in range(2, len(refs)):
        pred = path.predict(refs[t])
        echo = gain * refs[t - 2]
        errs.append(np.abs(pred - echo).sum() / (echo.sum() + 1.0))
        path.learn(echo, echo_only=True, floor=1.0)
    assert np.mean(errs[-100:]) < 0.3 < np.mean(errs[:20]), (np.mean(errs[:20]), np.mean(errs[-100:]))
    # Reference silent: after the lags it looks back over, no echo is predicted.
    for _ in range(8):
        pred = path.predict(np.zeros(4))
    assert pred.max() == 0.0


def test_frames_with_the_user_teach_it_slowly() -> None:
    a, b = EchoPath(bands=1, lags=2, mu=0.5), EchoPath(bands=1, lags=2, mu=0.5)
    for p in (a, b):
        p.predict(np.array([1e6]))
    a.learn(np.array([4e6]), echo_only=True, floor=1.0)
    b.learn(np.array([4e6]), echo_only=False, floor=1.0)
    assert a.h.sum() > 5 * b.h.sum() > 0
