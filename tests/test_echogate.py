"""The echo gate (device/audio/echogate.py) and the canceller's measured convergence
(device/listen/bargein.Convergence): pure cores, on synthetic signals.

The reference is noise with a syllable-like envelope (4 Hz), the echo a delayed, attenuated
copy of it; the "user" a 180 Hz pulse train (a voice's harmonics) added to the mic.
"""

from __future__ import annotations

import numpy as np

from device.audio.echogate import FRAME, EchoGate
from device.listen.bargein import Convergence

RATE = 16000


def _signals(seconds: float, delay_frames: int = 3, gain: float = 0.7,
             stop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    env = 0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 4 * t))
    ref = rng.standard_normal(n) * 6000 * env
    if stop_s is not None:
        ref[int(stop_s * RATE) :] = 0.0  # the speaker goes quiet
    echo = np.concatenate((np.zeros(delay_frames * FRAME), ref[: n - delay_frames * FRAME])) * gain
    mic = echo + rng.standard_normal(n) * 30  # the mic's own noise floor
    return ref, mic


def _voice(n: int, level: float) -> np.ndarray:
    x = np.zeros(n)
    x[:: RATE // 180] = 1.0
    x = np.convolve(x, np.hanning(40), mode="same")
    return x / np.sqrt(np.mean(x**2)) * level


def _run(gate: EchoGate, ref: np.ndarray, mic: np.ndarray, lag: int | None = 3) -> np.ndarray:
    frames = len(ref) // FRAME
    out = np.zeros(frames, dtype=bool)
    for k in range(frames):
        sl = slice(k * FRAME, (k + 1) * FRAME)
        out[k] = gate.push(np.rint(ref[sl]).astype(np.int16), np.rint(mic[sl]).astype(np.int16), lag)
    return out


def test_the_reply_s_own_echo_is_never_near_end_speech() -> None:
    ref, mic = _signals(4.0)
    gate = EchoGate()
    near = _run(gate, ref, mic)
    assert gate.ready
    assert not near.any(), np.flatnonzero(near)[:10]


def test_a_voice_6_db_below_the_echo_is_near_end_speech_while_the_reply_plays() -> None:
    ref, mic = _signals(4.0)
    echo_rms = float(np.sqrt(np.mean(mic[RATE:] ** 2)))
    at = 2 * RATE
    mic[at : at + RATE // 2] += _voice(RATE // 2, echo_rms * 10 ** (-6 / 20))
    near = _run(EchoGate(), ref, mic)
    k = at // FRAME
    assert not near[:k].any()
    hits = np.flatnonzero(near[k : k + 50])
    assert len(hits) >= 5 and hits[0] <= 5, hits  # within 50 ms of its onset, and a run of it


def test_the_gate_says_nothing_until_it_has_learnt_the_echo_path() -> None:
    ref, mic = _signals(0.5)
    mic += _voice(len(mic), 3000.0)  # the user talks from the first frame on
    gate = EchoGate(learn_frames=30)
    near = _run(gate, ref, mic)
    assert not near[:30].any()


def test_the_echo_tail_after_the_reply_stops_is_not_near_end_speech() -> None:
    ref, mic = _signals(3.0, stop_s=2.0)  # the echo path still delivers 3 frames after that
    near = _run(EchoGate(), ref, mic)
    assert not near.any()


def test_convergence_follows_the_canceller_s_attenuation_of_loud_echo() -> None:
    c = Convergence(erle_db=25.0, loud_db=60.0)
    assert not c.converged  # nothing measured yet
    for _ in range(20):
        c.update(80.0, 40.0, echo=True)  # 40 dB taken off
    assert c.converged
    for _ in range(5):
        c.update(80.0, 72.0, echo=True)  # a leak: 8 dB taken off
    assert not c.converged
    before = c.erle
    c.update(40.0, 39.0, echo=True)  # quiet frames (between words) do not count
    c.update(80.0, 79.0, echo=False)  # nor frames the gate calls near-end speech
    assert c.erle == before


def test_a_convergence_meter_that_falls_slowly_rides_out_a_short_drop_but_not_a_lasting_one() -> None:
    # The linear canceller's meter (BargeIn.LINEAR_FALL_ALPHA): it rises as fast as AEC3's, falls a
    # sixth as fast, so a word's first frames read as a leak do not make it unconverged at once.
    fast, slow = Convergence(erle_db=15.0), Convergence(erle_db=15.0, fall_alpha=0.05)
    for c in (fast, slow):
        c.update(72.0, 62.0, echo=True)  # 10 dB off: not yet
        for _ in range(5):
            c.update(72.0, 45.0, echo=True)  # 27 dB off
    assert fast.converged and slow.converged  # both rose within 5 frames
    for c in (fast, slow):
        for _ in range(2):
            c.update(62.0, 63.0, echo=True)  # two frames of a word read as a leak: nothing taken off
    assert slow.converged and not fast.converged
    for _ in range(30):
        slow.update(72.0, 64.0, echo=True)  # a canceller that stopped cancelling: 8 dB off for 0.3 s
    assert not slow.converged



def _shares(ref: np.ndarray, mic: np.ndarray) -> np.ndarray:
    gate = EchoGate()
    out = []
    for k in range(len(ref) // FRAME):
        sl = slice(k * FRAME, (k + 1) * FRAME)
        gate.push(np.rint(ref[sl]).astype(np.int16), np.rint(mic[sl]).astype(np.int16), 3)
        out.append(gate.echo_share)
    return np.array(out)


def test_echo_share_covers_the_echo_while_the_reply_plays_and_falls_once_its_tail_is_gone() -> None:
    ref, mic = _signals(3.0, stop_s=2.0)
    shares = _shares(ref, mic)
    assert np.median(shares[100:195]) >= 0.5  # echo alone: the prediction (x4 margin) covers it
    # The reply stopped at frame 200 (its echo 3 frames later): within 0.3 s the learnt path
    # predicts no echo left, and the mic's noise floor is all there is.
    assert shares[230:].max() < 0.1, shares[200:240].round(2)


def test_echo_share_is_low_in_the_pause_when_the_user_speaks() -> None:
    ref, mic = _signals(3.0, stop_s=2.0)
    at = int(2.3 * RATE)
    mic[at : at + RATE // 2] += _voice(RATE // 2, 1000.0)  # the user, 0.3 s into the silence
    shares = _shares(ref, mic)
    assert shares[232:280].max() < 0.1  # the user's frames: no echo to explain them


def test_the_mic_s_noise_floor_is_read_in_db_re_1_lsb_rms() -> None:
    # The barge-in's pause takes a voice well over it as loud enough to confirm (BargeIn.SOFT_OVER_FLOOR_DB).
    gate = EchoGate()
    assert gate.floor_db == np.inf  # nothing heard yet
    rng = np.random.default_rng(3)
    for _ in range(50):
        gate.push(None, (rng.standard_normal(FRAME) * 100).astype(np.int16))  # 40 dB re 1 LSB RMS
    # the floor follows the quietest frames, per band: a few dB under the noise's mean level
    assert 34.0 <= gate.floor_db <= 40.5, gate.floor_db


def test_the_silence_after_a_reply_does_not_loosen_the_bound_the_next_reply_starts_with() -> None:
    # Once the reference stops, the envelope decays faster than the mic's room tail and noise, and the
    # gain grew on them: bench, second turn (carlo, RT60 500 ms), the bound 19 dB over the mic as the
    # next reply began, its words 6-12 dB under the echo within the bound.
    ref1, mic1 = _signals(3.0, stop_s=2.0)
    gate = EchoGate()
    _run(gate, ref1[: 2 * RATE + 4 * FRAME], mic1[: 2 * RATE + 4 * FRAME])  # the reply and its echo
    taught = 10 * np.log10(gate.gain.sum())
    _run(gate, ref1[2 * RATE + 4 * FRAME :], mic1[2 * RATE + 4 * FRAME :])  # ~1 s of silence after it
    assert 10 * np.log10(gate.gain.sum()) > taught + 6.0  # its tail and noise over the decaying envelope
    ref2, mic2 = _signals(1.0)
    _run(gate, ref2[: 5 * FRAME], mic2[: 5 * FRAME])  # the next reply's first frames, its echo arriving
    assert 10 * np.log10(gate.gain.sum()) < taught + 1.0
    # ... while a gap within a reply keeps what its tail taught (the room's, until the gate measures it)
    gate2 = EchoGate()
    ref3, mic3 = _signals(3.0)
    ref3[int(1.5 * RATE) : int(1.7 * RATE)] = 0.0  # a 200 ms gap
    _run(gate2, ref3[: int(1.5 * RATE)], mic3[: int(1.5 * RATE)])
    before = 10 * np.log10(gate2.gain.sum())
    _run(gate2, ref3[int(1.5 * RATE) : int(1.7 * RATE) + FRAME], mic3[int(1.5 * RATE) : int(1.7 * RATE) + FRAME])
    assert 10 * np.log10(gate2.gain.sum()) >= before
