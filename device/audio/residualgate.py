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
Not where the residual has the echo's spectral shape, though: the correlation across bands of its
log band powers with the reference's echo envelope (EchoGate.envelope) at least `echo_corr`. That
is the canceller itself leaking, as after the echo path changed (the device moved, a speaker's own
volume turned) and it no longer matches; the user's voice has a shape of its own. Recorded on the
frames this gate called near-end (dev harness, a third of the bench set as second turns): 0.87
median (5 % under 0.61) on the echo 0-300 ms after a path change (x1.4, +8 ms), 0.26 (5 % over
0.77) on the users' words. Such frames teach the residual's path at the full step: it learns the
new echo. Harness, 240 runs each, at 0.9: second turns with the path changed 3 s in, interrupted
72 -> 20 of 96; earcons off, false pauses 4 -> 1; warm, espeak caught 72 -> 71 (talk_083); cold
(earcons on) and server mode unchanged. At 0.8: 72 -> 10, but warm caught 72 -> 71 and 67 -> 65.

Where the shape test misses the leak, its linearity tells it: the share of the residual the
reference explains at the echo's lag (device/audio/coherence.py). A run of `coherent_frames` or more
near-end frames whose mean share is `coherent_share` or more is the leak too, from that frame on. Only
once the echo gate has learnt `warm_learnt` frames of loud reference (10 s of reply): in a first
reply's first seconds the averages still hold the reply's loud onset, and two espeak words caught
cold were missed (talk_090, talk_106). Harness, 96 second turns with the path changed 3 s in: runs
with a false barge-in 18 -> 5; warm, 240 runs: caught unchanged, two words later (talk_071 84 -> 124
ms, human_talk_070 91 -> 261 ms); cold and server mode unchanged run by run.

A canceller that no longer matches the room does what a user's voice hardly ever does: adds power.
Its output is the mic minus its estimate of the echo; where that estimate no longer matches the
echo in the mic (a few ms late, its high bands no longer line up with the echo's), the output holds
both and is louder than the mic. A user's voice is in the mic and the output alike and brings the
output up to the mic, not over it. Recorded (bench, second turns, 20 ms windows): on 2,446 frames
this gate called near-end in the 0.6 s after users' onsets, the output over the mic by 0.1 dB at
the 95th percentile, 4 frames over 1 dB, the most 2.9 dB; on 853 in the first second after the
path change (x1.4, +8 ms), 1.1 dB median, 42 % over 1.5 dB. So a run with a frame whose output is
`over_mic_db` (1.5 dB) over the mic is the leak from that frame on, warm or cold. At 1.0 dB a word's
first frame (human_talk_080, 1.3 dB) held its pause back 230 ms.
Harness, 96 second turns with the path changed 3 s in: runs with a false barge-in 5 -> 0, false
pauses 15 -> 4; server mode, the server's VAD on echo 2 -> 1. Warm and cold (240 runs each): caught
the same, one word 30 ms later each (talk_115, warm; talk_110's confirmation, cold).

`level_db` is 50 dB: a word's soft start (human_talk_067, warm: 70 ms at 46-47 dB, a third to
half of it over the prediction) waits for its voiced part there, 240 ms later. So once warm the
least level is `warm_level_db`, 45 dB. Harness, warm, 240 runs: caught 71 -> 72 and 67 -> 68 of 72
(talk_083, human_talk_069), 39 words sooner and none later, onset -> silent p50/p95 69/168 -> 63/158
ms (espeak) and 158/304 -> 131/268 ms (human); one false pause more (talk_106, RT60 500 ms, gain
1.0, 0.5 s before the user's onset). It confirmed in the pause too, a false barge-in, so the agent's
confirming run keeps 50 dB (speaking.py, RESIDUAL_CONFIRM_DB). The path change: interrupted 5 of 96
as before, paused 11 -> 15. At 45 dB before warm too, the first replies' false pauses went 3 -> 8
(full bench on 1c9ac52); cold, caught the same, 2 words sooner.

Where the reference explains almost nothing of the residual (RefCoherence under 0.07), what stands
over the prediction is hardly the reply's, so once warm such a frame's margin is 8 dB, not 10: a
word 9.5-11.5 dB over the reply's predicted residual (a share of 0.3 over the margin) counts, a
frame or more sooner. Not under 50 dB, though: a reply's late tail stands over a prediction that
does not hold it, and the coherence, taken at the echo's lag, does not see it there (second turns
with the path changed 3 s in: at 45 dB one false pause more, human_silent_031, RT60 500 ms, the
residual 47-52 dB, 6-8 dB over its prediction, as the mic fell 66 -> 56 dB; at 50 dB none).
Harness, second turns, 240 runs: the same outcome, 11 words caught 10-80 ms sooner and none later,
p95 onset -> silent 118.6 -> 99.1 ms (espeak); at 45 dB 13 sooner, human p95 195.1 -> 179.5 ms.
Server mode, second turns: the same, the server's VAD heard one espeak word more (talk_117). At 6
dB (coherence under 0.1) 7 false pauses more.

Measured offline (bench set, 240 scenarios, warm, runs of 8 frames): interruptions seen in
72/72 (espeak) and 66/72 (human) against the 59 and 40 the other detectors caught, and no run on
the reply's echo alone. In the agent (device/conversation/speaking.py: 8 frames pause the reply, 6
once the echo gate has learnt 10 s of reply, 5 more in the pause confirm it, once the linear
canceller takes 15 dB off), warm: caught 70 and 61 (with 8 throughout).

Inputs per frame, after EchoGate.push on the same frame: the reference (None: the speaker plays
nothing of a reply) and the raw mic, int16[160] at 16 kHz, in step. Paired with the echo gate
(EchoGate.pair, as the frontend does), the echo gate's push runs this gate's frame: the linear
canceller, its FFT as a row of the echo gate's, its echo path stacked with the echo gate's on one
reference history, and its verdict, which push then hands on. Cost (x86-64 here, bench frames
replayed): ~0.006 CPU s per audio s paired, ~0.0085 on its own; 0.0046 of it the linear canceller
(4096 taps).
"""

from __future__ import annotations

import numpy as np

from device.audio.coherence import RefCoherence
from device.audio.echogate import BAND_DB, BANDS, FRAME, EchoGate
from device.audio.echopath import EchoPath, echo_mags
from device.audio.speex import LinearCanceller


class ResidualGate:
    """Near-end verdicts from the linear canceller's residual, per 10 ms frame (see the module doc).

    margin_db: how far over its predicted residual the residual must stand; share: the part of its
    power that must do so; level_db: the least residual that counts (dB re 1 LSB RMS); taps: the
    linear canceller's filter length in samples at 16 kHz; echo_corr: the correlation with the echo's
    spectral shape at which the residual is the canceller's leak, not the user (see the module doc);
    coherent_frames, coherent_share, warm_learnt: once the echo gate has learnt the echo path on
    warm_learnt frames, a run of coherent_frames or more near-end frames whose residual the reference
    explains by coherent_share on average (RefCoherence) is the canceller's leak too; warm_level_db:
    the least residual that counts from then on; over_mic_db: a run with a frame whose residual is
    this much over the mic (band power, this frame) is the canceller's leak from that frame on;
    mismatch_frames: and where that frame's mic was loud (level_db or more), every frame over the
    prediction is the leak for this many frames after it, runs broken or not: a canceller that no
    longer matches the echo path leaks on and off until it has learnt it anew (bench harness, the
    path changed 3 s into a first reply, 96 runs: frames over the prediction or the canceller's drop
    50-240 ms after the last such frame, neither echo-shaped nor coherent, read as the user; with the
    hold 3 pauses and the one barge-in fewer, second turns the same run by run);
    incoherent_margin_db, incoherent_score, incoherent_level_db: once warm, on a frame whose residual
    is incoherent_level_db or more and the reference explains less than incoherent_score of it
    (RefCoherence), the margin over the prediction is incoherent_margin_db (see the module doc).
    VoxboxError (one line) if libspeexdsp is missing."""

    def __init__(self, margin_db: float = 10.0, share: float = 0.3, level_db: float = 50.0,
                 taps: int = 4096, echo_corr: float = 0.9, coherent_frames: int = 6,
                 coherent_share: float = 0.15, warm_learnt: int = 1000, warm_level_db: float = 45.0,
                 over_mic_db: float = 1.5, mismatch_frames: int = 30, incoherent_margin_db: float = 8.0,
                 incoherent_score: float = 0.07, incoherent_level_db: float = 50.0) -> None:
        self.margin = 10 ** (margin_db / 10)
        self.incoherent_margin = 10 ** (incoherent_margin_db / 10)
        self.incoherent_score = incoherent_score
        self.incoherent_level = 10 ** ((incoherent_level_db + BAND_DB) / 10)
        self.share = share
        self.echo_corr = echo_corr
        self.coherent_frames, self.coherent_share, self.warm_learnt = coherent_frames, coherent_share, warm_learnt
        self.coherence = RefCoherence()
        self._run, self._run_coherence = 0, 0.0  # frames in a row over the prediction, their scores' sum
        self.over_mic = 10 ** (over_mic_db / 10)
        self._adding = False  # the run has had a frame the canceller added power in (over_mic_db)
        self.mismatch_frames = mismatch_frames
        self._mismatch = 0  # frames left of the hold after the last such frame over a loud mic
        # unpaired: the reference's last frame (paired: the echo gate keeps it)
        self.prev_ref = np.zeros(FRAME, dtype=np.float32)
        self.level = 10 ** ((level_db + BAND_DB) / 10)  # in band-power units
        self.warm_level = 10 ** ((warm_level_db + BAND_DB) / 10)
        self.canceller = LinearCanceller(FRAME, taps)
        self.path = EchoPath(BANDS)  # its history becomes the echo gate's when paired (EchoGate.pair)
        self.floor = np.full(BANDS, np.inf)  # the residual's noise floor per band: falls at once, rises 1 dB/s
        self._rise = 10 ** (1.0 / 10 / 100)
        # the canceller's last output, the first half of its 20 ms window (paired: the echo gate keeps it)
        self.prev_out = np.zeros(FRAME, dtype=np.float32)
        self._silence = np.zeros(FRAME, dtype=np.int16)
        self.near = False  # the last frame's verdict
        self.level_db = -np.inf  # the last frame's residual (dB re 1 LSB RMS, from its band powers)
        self.bands: np.ndarray | None = None  # ... and its band powers [16] (None: not judged yet)
        self.excess = 0.0  # ... and the share of its power over the predicted residual (0.0: not judged)
        self.shape = np.nan  # ... and, over it, its correlation with the echo's shape (shape_corr; nan: not judged)
        self._judged = False  # paired: the echo gate ran this frame for it (push takes the verdict)

    def cancel(self, ref: np.ndarray | None, mic: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The linear canceller on one frame (ref None: the speaker silent): its output, int16[160]
        (or written into `out`). A paired echo gate's push calls it; this gate's push when unpaired."""
        return self.canceller.process(mic, self._silence if ref is None else ref, out)

    def push(self, ref: np.ndarray | None, mic: np.ndarray, gate: EchoGate, lag: int | None = None) -> bool:
        """One frame (see the module doc); gate: the echo gate, pushed this frame already (its
        reference band powers, loudness, readiness and verdict; paired, see EchoGate.pair, it ran
        this frame for this gate too, and `lag` is the one it was given); lag: the echo's delay behind
        the reference in frames (None: not known). True: the residual holds more than the reply's
        predicted residual (near-end speech)."""
        if gate.residual is self:
            if not self._judged:
                raise RuntimeError("ResidualGate.push: push the paired echo gate first, once per frame")
            self._judged = False
            return self.near
        out = self.cancel(ref, mic).astype(np.float32)
        po = gate.band_powers(self.prev_out[None, :], out[None, :])[0]
        now_ref = self.prev_ref * 0.0 if ref is None else ref.astype(np.float32)
        if self.warm(gate):
            spec = gate.spectra(np.stack((self.prev_ref, self.prev_out)), np.stack((now_ref, out)))
            self.coherence.push(spec[0], spec[1], lag)
        self.prev_out, self.prev_ref = out, now_ref
        predicted = self.path.predict(gate.ref_bands)
        self.floor = floor = np.minimum(self.floor * self._rise, po)
        unexplained = self._unexplained(po, predicted, self.margin) if gate.ready else None
        echo_only = self.judge(float(po.sum()), unexplained, gate, po, predicted)
        self._judged = False
        if gate.loud:
            self.path.learn(po, echo_only=echo_only, floor=1e-3 * gate.ref_floor, mic_mags=echo_mags(po, floor))
        return self.near

    @property
    def adding(self) -> bool:
        """The last frame is in a run over the prediction that has had a frame the canceller added
        power in (its residual over_mic_db over the mic), or within mismatch_frames of such a frame
        over a loud mic: the canceller leaking a changed echo path."""
        return self._adding or self._mismatch > 0

    def warm(self, gate: EchoGate) -> bool:
        """The echo gate has learnt the echo path on warm_learnt frames of loud reference (10 s of
        reply): the coherence test runs (RefCoherence is pushed, a run of coherent frames is the
        leak) and a residual from warm_level_db counts. Before that a user's word following the
        reply's loud first seconds is too often coherent enough (harness, cold: two espeak words
        missed, talk_090 and talk_106), and the path changing is a later reply's risk."""
        return gate.learnt >= self.warm_learnt

    def echo_like(self, bands: np.ndarray, envelope: np.ndarray) -> bool:
        """The residual's band powers [16] have the echo's spectral shape: shape_corr at echo_corr or
        more (not judged: False)."""
        return bool(self.shape_corr(bands, envelope) >= self.echo_corr)

    @staticmethod
    def shape_corr(bands: np.ndarray, envelope: np.ndarray) -> float:
        """The correlation of the residual's log band powers [16] with the echo envelope's [16], over
        the bands the envelope holds (6 at least; fewer, or a flat spectrum with no shape to compare:
        nan)."""
        held = envelope > 1e-6 * float(envelope.max())
        if int(held.sum()) < 6:
            return float("nan")
        x, y = np.log(bands[held] + 1e-9), np.log(envelope[held] + 1e-9)
        if float(x.std()) == 0.0 or float(y.std()) == 0.0:
            return float("nan")
        return float(np.corrcoef(x, y)[0, 1])

    def _unexplained(self, bands: np.ndarray, predicted: np.ndarray, margin: float) -> float:
        """What the predicted residual [16] (x margin) and the floor (x10) cannot explain of the
        residual's band powers [16], summed (band-power units; the paired echo gate computes the same
        in its stacked rows)."""
        excess = margin * predicted
        np.subtract(bands, excess, out=excess)
        np.subtract(excess, 10.0 * self.floor, out=excess)
        return float(np.add.reduce(np.maximum(excess, 0.0, out=excess)))

    def judge(self, total: float, unexplained: float | None, gate: EchoGate,
              bands: np.ndarray | None = None, predicted: np.ndarray | None = None) -> bool:
        """This frame's verdict (near, level_db), the floor updated and the echo gate's verdict in:
        total, the residual's band power; unexplained, what its predicted residual (x margin) and
        its floor (x10) cannot explain, summed over bands (None: the echo gate is not ready); bands,
        the residual's band powers [16] (None: its shape is not judged); predicted, its predicted
        band powers [16] (None: the incoherent margin is not tried). The echo path's lesson,
        learnt on loud frames (the caller's): True when at the full step."""
        self.level_db = 10 * float(np.log10(total + 1e-9)) - BAND_DB
        self.bands = bands
        if (unexplained is not None and bands is not None and predicted is not None and total >= self.incoherent_level
                and self.warm(gate) and self.coherence.score < self.incoherent_score):
            # The reference explains almost none of the residual: what stands over its prediction is
            # hardly the reply's, so a smaller margin does (see the module doc).
            unexplained = self._unexplained(bands, predicted, self.incoherent_margin)
        self.excess = 0.0 if unexplained is None else min(1.0, unexplained / (total + 1e-9))
        over = unexplained is not None and unexplained >= self.share * (total + 1e-9)
        adds = False  # this very frame's residual is over the mic
        self.shape = np.nan
        if over and bands is not None:
            self._run += 1
            self._run_coherence += self.coherence.score
            adds = total >= self.over_mic * gate.mic_power
            self._adding = self._adding or adds
            self.shape = self.shape_corr(bands, gate.envelope)
            if self._adding or self._mismatch or self.shape >= self.echo_corr or (
                    self._run >= self.coherent_frames and self.warm(gate)
                    and self._run_coherence >= self.coherent_share * self._run):
                over = False  # the canceller leaking the echo it no longer matches: learnt, not the user
        else:
            self._run, self._run_coherence, self._adding = 0, 0.0, False
        if adds and gate.mic_power >= self.level:
            # Not over a quiet mic: at a reply's first frames, before its echo arrives, the output stood
            # over a 38-45 dB mic (bench, second turn, human_talk_114: a hold from there missed a word).
            self._mismatch = self.mismatch_frames
        elif self._mismatch:
            self._mismatch -= 1
        self.near = bool(over and total >= (self.warm_level if self.warm(gate) else self.level))
        self._judged = True
        # Learn the residual from frames neither gate calls near-end; the others at a tenth of the
        # step (EchoPath.learn), so a word is not learnt as the reply's residual.
        return not (over or gate.near)
