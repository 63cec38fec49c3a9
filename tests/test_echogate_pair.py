"""The echo gate paired with the residual gate (EchoGate.pair, as the frontend wires them): one FFT
call, one reference history and one product for both echo paths per frame, and the very same
verdicts, levels and learnt paths as the two gates pushed on their own."""

from __future__ import annotations

import numpy as np
import pytest
from test_residualgate import _reply  # the same reply-like reference and echo

from device.audio.echogate import BAND_DB, FRAME, EchoGate
from device.audio.echopath import EchoPath, PathStack, RefHistory
from device.audio.frontend import Frontend
from device.audio.residualgate import ResidualGate

RATE = 16000


def _frames(seconds: float, seed: int = 2) -> list[tuple[np.ndarray | None, np.ndarray, int | None]]:
    """(reference, mic, lag) per frame: a reply-like reference, its echo 30 ms late through a short
    tail, a voice in the middle, a stretch with no reference (an earcon) and one with no lag known."""
    ref16, mic = _reply(seconds, seed)
    n = len(mic)
    t = np.arange(n) / RATE
    v = min(RATE // 3, n - n // 2)
    mic[n // 2 : n // 2 + v] += np.sin(2 * np.pi * 180 * t[:v]) * 3000
    mic16 = np.clip(mic, -32768, 32767).astype(np.int16)
    out: list[tuple[np.ndarray | None, np.ndarray, int | None]] = []
    for k in range(n // FRAME):
        sl = slice(k * FRAME, (k + 1) * FRAME)
        r = None if 120 <= k < 140 else ref16[sl]
        out.append((r, mic16[sl], None if 60 <= k < 80 else 3))
    return out


def _run(gate: EchoGate, residual: ResidualGate, frames: list, unpair_at: int | None = None) -> list[tuple]:
    rows = []
    for k, (ref, mic, lag) in enumerate(frames):
        if k == unpair_at:
            gate.pair(None)
        if k == 150:
            gate.pause_unconfirmed()
        near = gate.push(ref, mic, lag)
        rnear = residual.push(ref, mic, gate, lag)
        rows.append((near, gate.echo_share, gate.tail_share, gate.echo_left_db, gate.envelope.copy(),
                     gate.gain.copy(), gate.path.h.copy(), rnear, residual.level_db, residual.floor.copy(),
                     residual.path.h.copy(), gate.tail.rate_db, residual.coherence.score))
    return rows


def _same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for k, (ra, rb) in enumerate(zip(a, b, strict=True)):
        for x, y in zip(ra, rb, strict=True):
            assert np.array_equal(x, y), k


@pytest.mark.parametrize("warm_learnt", [1000, 100])
def test_paired_gates_give_what_the_gates_give_on_their_own(warm_learnt: int) -> None:
    # warm_learnt 100: the reference's coherence with the residual (RefCoherence) is computed from
    # 1 s in, from the echo gate's spectra paired and from the residual gate's own alone.
    frames = _frames(4.0)
    alone = _run(EchoGate(), ResidualGate(warm_learnt=warm_learnt), frames)
    gate, residual = EchoGate(), ResidualGate(warm_learnt=warm_learnt)
    gate.pair(residual)
    paired = _run(gate, residual, frames)
    _same(alone, paired)
    assert any(r[0] for r in alone) and any(r[7] for r in alone)  # the voice is seen by both
    assert residual.path.history is gate.path.history
    scores = [r[12] for r in alone]
    assert (max(scores) > 0.0) == (warm_learnt == 100)


@pytest.mark.parametrize("warm_learnt", [1000, 100])
def test_unpaired_mid_reply_they_go_on_as_they_were(warm_learnt: int) -> None:
    frames = _frames(3.0)
    alone = _run(EchoGate(), ResidualGate(warm_learnt=warm_learnt), frames)
    gate, residual = EchoGate(), ResidualGate(warm_learnt=warm_learnt)
    gate.pair(residual)
    _same(alone, _run(gate, residual, frames, unpair_at=170))
    assert gate.residual is None and residual.path.history is not gate.path.history


def test_pairing_needs_fresh_gates_and_the_echo_gate_pushed_first() -> None:
    frames = _frames(0.5)
    gate, residual = EchoGate(), ResidualGate()
    gate.push(*frames[0])
    with pytest.raises(ValueError):
        gate.pair(residual)
    gate, residual = EchoGate(), ResidualGate()
    gate.pair(residual)
    with pytest.raises(RuntimeError):
        residual.push(frames[0][0], frames[0][1], gate)
    gate.push(*frames[0])
    residual.push(frames[0][0], frames[0][1], gate)
    with pytest.raises(RuntimeError):  # once per frame
        residual.push(frames[0][0], frames[0][1], gate)


def test_the_frontend_pairs_its_gates_and_unpairs_them_without_a_residual_gate() -> None:
    gate, residual = EchoGate(), ResidualGate()
    Frontend(RATE, echo_gate=gate, residual_gate=residual)
    assert gate.residual is residual
    Frontend(RATE, echo_gate=gate, residual_gate=residual)  # the agent's reopened audio: as they were
    assert gate.residual is residual
    Frontend(RATE, echo_gate=gate)  # a frontend without one
    assert gate.residual is None


def test_stacked_paths_predict_and_learn_as_each_path_does() -> None:
    rng = np.random.default_rng(5)
    own = [EchoPath(4, lags=6, mu=0.3), EchoPath(4, lags=6, mu=0.2)]
    history = RefHistory(4, lags=6)
    shared = [EchoPath(4, lags=6, mu=0.3, history=history), EchoPath(4, lags=6, mu=0.2, history=history)]
    stack = PathStack(shared)
    for t in range(200):
        ref = rng.uniform(0.0, 1e6, 4) * (rng.uniform() > 0.2)
        mics = rng.uniform(0.0, 1e5, (2, 4)).astype(np.float32)
        flags = (bool(t % 3), bool(t % 5))
        want = [p.predict(ref) for p in own]
        history.push(np.sqrt(ref))
        got = stack.predict()
        assert np.array_equal(got, np.array(want))
        for p, m, e in zip(own, mics, flags, strict=True):
            p.learn(m, echo_only=e, floor=1.0)
        stack.learn(np.sqrt(mics), flags, 1.0)
        for p, q in zip(own, shared, strict=True):
            assert np.array_equal(p.h, q.h)


def _noisy_room(echo_gain: float, seconds: float = 5.0) -> tuple[float, float, float]:
    """A reply-like reference, its echo at echo_gain 3 frames late, white noise at 45 dB re 1 LSB RMS
    (a fridge, a fan: the set's floor is 30): (the mic's noise, the echo's and the echo path's mean
    prediction after the first second, dB re 1 LSB RMS; the paired gates as the frontend wires them)."""
    rng = np.random.default_rng(1)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    ref = rng.standard_normal(n) * 6000 * (0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 4 * t)))
    echo = np.concatenate((np.zeros(3 * FRAME), ref[: n - 3 * FRAME])) * echo_gain
    noise = rng.standard_normal(n) * 10 ** (45 / 20)
    mic = np.clip(np.rint(echo + noise), -32768, 32767).astype(np.int16)
    ref16 = np.rint(ref).astype(np.int16)
    gate, residual = EchoGate(), ResidualGate()
    gate.pair(residual)
    predicted = []
    for k in range(n // FRAME):
        sl = slice(k * FRAME, (k + 1) * FRAME)
        gate.push(ref16[sl], mic[sl], 3)
        residual.push(ref16[sl], mic[sl], gate, 3)
        if k >= 100:
            path = gate.path  # its prediction for this frame, from what it has learnt so far
            predicted.append(float(np.sum(np.square(np.einsum("bk,bk->b", path.h, path.history.mags)))))
    start = 100 * FRAME
    return (10 * np.log10(np.mean(noise[start:] ** 2)), 10 * np.log10(np.mean(echo[start:] ** 2) + 1e-9),
            10 * np.log10(np.mean(predicted) + 1e-9) - BAND_DB)


def test_in_a_noisy_room_the_echo_path_learns_the_echo_not_the_noise() -> None:
    # A path has no constant term: learnt on the mic itself, it took a 45 dB floor under a loud
    # reference for echo (0.1 dB under the noise here; 2.6 dB under once learnt less the floor) and
    # predicted a word 10 dB over the noise away as the reply's.
    noise_db, _, predicted_db = _noisy_room(0.0)
    assert predicted_db < noise_db - 1.5, (noise_db, predicted_db)
    # ... and an echo 8 dB over that noise is still learnt as echo, within 1.5 dB
    noise_db, echo_db, predicted_db = _noisy_room(0.1)
    assert echo_db - noise_db > 6.0
    assert abs(predicted_db - echo_db) < 1.5, (echo_db, predicted_db)
