"""Does the linear echo canceller's output hold the user? (per 10 ms frame, while the reply plays)

AEC3's output hides a user's first 100-300 ms of double talk behind its suppressor, and the
echo gate (device/audio/echogate.py) sees a word only where it adds more than its margin to the
echo at the mic: a word 6-12 dB under a loud reply does not. A linear canceller (SpeexDSP's MDF,
device/audio/speex.py) takes 20-35 dB of the reply out once converged and nothing of the user, so there the word
stands over what is left. What is left is still the reply's voice, though, and a level alone
cannot tell it from the user's (bench, warm: 76-105 false fires per 10 min at the rates that
catch the words). So `ResidualGate` predicts it too: a second echo path (device/audio/echopath.py)
learns the linear canceller's residual from the reference's band powers, and a frame is
*near-end* when the residual exceeds that prediction by `margin_db` (and its own noise floor by
10 dB) in bands holding at least `share` of its power, and the residual is at least `level_db`.

Measured offline (bench set, 240 scenarios, warm, runs of 8 frames): interruptions seen in
72/72 (espeak) and 66/72 (human) against the 59 and 40 the other detectors caught, and no run on
the reply's echo alone. In the agent (device/conversation/agent.py: 8 frames pause the reply, 5
more in the pause confirm it, once the linear canceller takes 15 dB off), warm: caught 70 and 61.

Inputs per frame, after EchoGate.push on the same frame: the reference (None: the speaker plays
nothing of a reply) and the raw mic, int16[160] at 16 kHz, in step. Cost: ~0.010 CPU s per audio
s here, about half of it the linear canceller (4096 taps), the rest one 320-point FFT and the path.
"""

from __future__ import annotations

import numpy as np

from device.audio.echogate import BANDS, FRAME, EchoGate
from device.audio.echopath import EchoPath
from device.audio.speex import LinearCanceller

# Band powers (Hann-windowed 20 ms, rfft bins summed, see EchoGate.band_powers) over a frame's
# power in dB re 1 LSB RMS: 320/2 x 320 x 0.375 (white noise measures 42.75 dB more).
_BAND_DB = 42.8


class ResidualGate:
    """Near-end verdicts from the linear canceller's residual, per 10 ms frame (see the module doc).

    margin_db: how far over its predicted residual the residual must stand; share: the part of its
    power that must do so; level_db: the least residual that counts (dB re 1 LSB RMS); taps: the
    linear canceller's filter length in samples at 16 kHz. VoxboxError (one line) if libspeexdsp is
    missing."""

    def __init__(self, margin_db: float = 10.0, share: float = 0.3, level_db: float = 50.0,
                 taps: int = 4096) -> None:
        self.margin = 10 ** (margin_db / 10)
        self.share = share
        self.level = 10 ** ((level_db + _BAND_DB) / 10)  # in band-power units
        self.canceller = LinearCanceller(FRAME, taps)
        self.path = EchoPath(BANDS)
        self.floor = np.full(BANDS, np.inf)  # the residual's noise floor per band: falls at once, rises 1 dB/s
        self._rise = 10 ** (1.0 / 10 / 100)
        self._prev = np.zeros(FRAME, dtype=np.float32)
        self.near = False  # the last frame's verdict
        self.level_db = -np.inf  # the last frame's residual (dB re 1 LSB RMS, from its band powers)

    def push(self, ref: np.ndarray | None, mic: np.ndarray, gate: EchoGate) -> bool:
        """One frame (see the module doc); gate: the echo gate, pushed this frame already (its
        reference band powers, loudness, readiness and verdict). True: the residual holds more
        than the reply's predicted residual (near-end speech)."""
        r = np.zeros(FRAME, dtype=np.int16) if ref is None else ref
        out = self.canceller.process(mic, r).astype(np.float32)
        po = gate.band_powers(self._prev[None, :], out[None, :])[0]
        self._prev = out
        predicted = self.path.predict(gate.ref_bands)
        self.floor = np.minimum(self.floor * self._rise, po)
        total = float(po.sum())
        self.level_db = 10 * float(np.log10(total + 1e-9)) - _BAND_DB
        unexplained = np.clip(po - self.margin * predicted - 10.0 * self.floor, 0.0, None)
        over = gate.ready and float(unexplained.sum()) >= self.share * (total + 1e-9)
        if gate.loud:
            # Learn the residual from frames neither gate calls near-end; the others at a tenth of the
            # step (EchoPath.learn), so a word is not learnt as the reply's residual.
            self.path.learn(po, echo_only=not (over or gate.near), floor=1e-3 * gate.ref_floor)
        self.near = bool(over and total >= self.level)
        return self.near
