"""Does the microphone hold more than the echo of what the speaker played? (per 10 ms frame)

The device knows its own reference signal exactly. `EchoGate` predicts, per frequency band,
the most echo the microphone can hold from it: the reference's band powers (at the echo's
estimated lag, else the loudest over the last `window` frames), decaying by `decay_db` per
frame after that, times the echo path's band gain learnt from the microphone itself (the
largest mic/reference ratio seen, slowly forgotten; during frames it calls near-end it rises
at most 0.5 dB per frame). Where the room's tail is slower than `decay_db` (measured in the
reply's gaps, see `tail_db`), the bound decays at the room's rate instead: once the speaker
stops, a long room's tail is still echo. A frame is *near-end* when the microphone exceeds that
prediction by `margin_db`, and its own noise floor by 10 dB, in bands that hold at least
`share` of its power: the user's voice adds power the reply cannot explain, whatever voice
the reply is in, and however far the echo canceller has converged.

`near_tail` is the same verdict against the bound decaying at `tail_db` instead: the room's
decay as far as the gate knows, a long room's (`cold_decay_db`, RT60 500 ms) until measured, and
then the bound itself (the two verdicts are one). The bound keeps decay_db until then (see
`tail_db`), so in an unmeasured long room its gaps' tail is near-end, not near_tail. Recorded
voices leave few gaps quiet enough to measure a room in (their reference rarely falls under
`ref_floor_db`): bench, RT60 500 ms, first replies 2.5-7.2 s in, the room not measured yet.
`near_onset` is near_tail, or near-end with the mic's power in the bands over the bound not
under the last frame's: a room's tail only falls, a word under a reply's dip rises, where
near_tail, in a dry room not measured yet, holds it under the long room's bound. The barge-in's
double-talk pause and the uplink go by near_tail, the gate's own pause by near_onset
(device/conversation/speaking.py).

Until the gate has seen `learn_frames` frames of loud reference it cannot tell (`ready` is
False): it counts nothing as near-end then. What it learnt persists across replies, as the
echo path does.

`echo_share` is a second, tighter measure: the echo the learnt echo path predicts for this
very frame (device/audio/echopath.py), with `path_margin_db` of room, as a share of the mic's
power. The bound above holds the loudest reference of `window` frames; the prediction follows
the reply syllable by syllable and, once the speaker stops, the room's tail as it dies away
(the barge-in's pause uses it to tell when the mic holds only the user). The path spans
`lags` frames (320 ms); a longer room's tail outlives its prediction, so `tail_share` is the
same share with the prediction held at the room's measured decay (`tail.rate_db`, however fast;
a long room's until measured), for the pause's frames.

Inputs: int16[160] frames at 16 kHz, the reference (None: speaker silent) and the raw mic
in step, as the echo canceller gets them. Cost: one FFT call (2 x 320 points) per frame, ~0.005
CPU s per audio s here (x86-64, bench frames replayed); paired with the residual gate (`pair`: its
FFT row, echo path and verdict run here too), ~0.011 for both, 0.0046 of it the linear canceller
(in the running agent, caches colder: ~0.015 for both).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from device.audio.echopath import EchoPath, PathStack, echo_mags
from device.audio.tail import TailMeter, decay_from_response

if TYPE_CHECKING:
    from device.audio.residualgate import ResidualGate

RATE = 16000
FRAME = 160
NFFT = 320
# 16 bands, 125 Hz - 8 kHz, log-spaced (rfft bins of 50 Hz)
_EDGES = np.unique(np.round(np.geomspace(125, 8000, 17) / (RATE / NFFT)).astype(int))
BANDS = len(_EDGES) - 1
# Band powers (Hann-windowed 20 ms, rfft bins summed: band_powers) over a frame's power in dB re
# 1 LSB RMS: 320/2 x 320 x 0.375 (white noise measures 42.75 dB more).
BAND_DB = 42.8
_STARTS = _EDGES[:-1]  # reduceat's segments: the last runs to the top bin, _EDGES[-1]
# numpy >= 2 transforms float32 in float32 and writes into a given array; 1.x does neither
_SPECTRUM = np.fft.rfft(np.zeros(NFFT, dtype=np.float32)).dtype
_POWER = np.abs(np.zeros(1, dtype=_SPECTRUM)).dtype
_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


class EchoGate:
    def __init__(self, window: int = 16, decay_db: float = 2.5, cold_decay_db: float = 1.2,
                 margin_db: float = 0.0, share: float = 0.15,
                 learn_frames: int = 30, forget_db_per_s: float = 3.0, ref_floor_db: float = 40.0,
                 path_margin_db: float = 6.0) -> None:
        self.window = window
        self.decay_db = decay_db
        self.cold_decay_db = cold_decay_db
        nb = len(_EDGES) - 1
        # Per frame, the three envelopes (rows of _envs) decay by these (power ratios), in one op: the
        # bound's at decay_db; the bound at the room's decay, decay_db's until that is measured; and
        # echo_left_db's and the held prediction's at tail_db, a long room's until measured.
        decay = 10 ** (-decay_db / 10)
        self._decays = np.repeat([[decay], [decay], [10 ** (-cold_decay_db / 10)]], nb, axis=1)
        self.margin = 10 ** (margin_db / 10)
        self.share = share
        self.learn_frames = learn_frames
        self.forget = 10 ** (-forget_db_per_s / 10 / 100)
        self.ref_floor = (10 ** (ref_floor_db / 10)) * FRAME  # band-summed power of a "loud" reference
        self._ref_eps = 1e-3 * self.ref_floor  # the echo path's regulariser where the reference is silent
        self._win = np.hanning(NFFT).astype(np.float32)
        self._win_halves = (self._win[:FRAME], self._win[FRAME:])
        # The sides' last two frames, one row each (mic, reference; and a paired residual gate's linear
        # canceller output): the newest in half _cur, the one before in the other, so nothing is shifted.
        self._halves = np.zeros((2, 2, FRAME), dtype=np.float32)
        self._cur = 0
        self._sides(2)
        self._refs = np.zeros((window, nb))  # band powers of the last `window` reference frames
        self._w = 0
        # The envelope, the same at the room's decay (once measured), and at tail_db (a long room's until
        # measured); a new array each frame, so an envelope handed out is never changed.
        self._envs = np.zeros((3, nb))
        self._env = self._envs[0]
        self._now = np.zeros(nb)
        # push's scratch, rows: the power the bound, the path's prediction and a paired residual gate
        # path's cannot explain; the echo left
        self._work = np.zeros((4, nb))
        self._path_left = 0.0  # the echo path's prediction (with margin), held and decaying at tail_db
        self._held = 0.0  # the same at the room's own decay, however fast (tail_share)
        self.held_decay = float(self._decays[2, 0])
        self.gain = np.zeros(nb)  # echo path band gain (mic / reference power), learnt
        self._gain_src = np.zeros(nb)  # ... as it was on the last frame the echo's source was loud
        self._quiet_run = 0  # frames since then
        self.floor = np.full(nb, np.inf)  # the mic's noise floor per band: falls at once, rises 1 dB/s
        self._rise = 10 ** (1.0 / 10 / 100)
        self._grow = 10 ** (0.5 / 10)
        self.learnt = 0  # frames of loud reference seen
        self.path = EchoPath(nb)  # its reference history is pushed here (a paired residual gate's path reads it)
        self.tail = TailMeter()  # the room's decay, measured in the reply's gaps
        self.path_margin = 10 ** (path_margin_db / 10)
        self.echo_share = 1.0  # the last frame's predicted echo power / the mic's, with margin (1.0: unknown)
        self.tail_share = 1.0  # the same with the prediction held at the room's decay (a pause's tail)
        self.echo_left_db = np.inf  # the last frame's bound on the echo over the mic's noise floor (dB; inf: unknown)
        self.floor_db = np.inf  # the mic's noise floor as of the last frame (dB re 1 LSB RMS; inf: unknown)
        self.near = False  # the last frame's verdict
        self.mic_power = 0.0  # the last frame's mic power, summed over the bands (band-power units)
        # ... and near-end against the bound decaying at tail_db too (see the module doc)
        self.near_tail = False
        self.near_onset = False  # ... or near-end and the mic not falling over the bound (see the module doc)
        self._pm_prev = np.zeros(BANDS)  # the last frame's mic band powers
        self._tail_row = np.zeros(BANDS)
        self.loud = False  # the last frame's echo envelope was loud (the echo path learnt from it)
        self.ref_bands = np.zeros(nb)  # the last frame's reference band powers
        self.history: deque[bool] = deque(maxlen=64)  # verdicts per frame, for the agent to drain
        self.residual: ResidualGate | None = None  # the paired residual gate (see pair)
        # Paired: both echo paths stacked, their margins, and both noise floors (rows handed out as floor)
        self._paths: PathStack | None = None
        self._margins = np.zeros((2, 1))
        self._floors = np.zeros((2, nb))

    @property
    def ready(self) -> bool:
        return self.learnt >= self.learn_frames

    @property
    def envelope(self) -> np.ndarray:
        """The reference's band powers as the echo arriving now may hold them ([16] float: at the
        echo's lag, decaying by decay_db per frame after; 20 ms Hann-windowed band powers). The
        uplink's residual echo suppressor (device/audio/res.py) scales it by what it learnt."""
        return self._env

    @property
    def tail_db(self) -> float:
        """The room's decay in dB per 10 ms frame as far as the gate knows: measured in the reply's
        gaps (device/audio/tail.py), at most decay_db; cold_decay_db (RT60 500 ms, a living room's
        long end) until measured. The bound itself keeps decay_db until then: a bound held up in
        every dip of the reply would cost a voice under the echo its first seconds."""
        rate = self.tail.rate_db
        return self.cold_decay_db if rate is None else min(self.decay_db, rate)

    @property
    def active(self) -> bool:
        """Echo is (or may still be) arriving: the prediction is not negligible."""
        return bool(self._env.sum() > self.ref_floor * 1e-3)

    def band_powers(self, prev: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Band powers of the last 20 ms (Hann-windowed); rows of prev/frame are sides (one FFT call)."""
        return self._bands(np.concatenate((prev, frame), axis=-1) * self._win)

    def spectra(self, prev: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Spectra of the last 20 ms (Hann-windowed, as band_powers'): complex [rows, NFFT // 2 + 1]."""
        return np.fft.rfft(np.concatenate((prev, frame), axis=-1) * self._win)

    @staticmethod
    def _bands(xw: np.ndarray, spec: np.ndarray | None = None, pw: np.ndarray | None = None) -> np.ndarray:
        """Band powers of windowed 20 ms rows [..., NFFT] (a new array: ref_bands keeps this frame's);
        spec, pw: buffers for the spectrum and its powers [..., NFFT // 2 + 1] (numpy >= 2)."""
        p = np.abs(np.fft.rfft(xw, out=spec) if spec is not None else np.fft.rfft(xw), out=pw)
        np.square(p, out=p)
        return np.add.reduceat(p, _STARTS, axis=-1)

    def _sides(self, n: int) -> None:
        """n rows of the FFT's input (2: mic, reference; 3: and a paired residual gate's), buffers to match."""
        h = self._halves
        self._halves = np.zeros((2, n, FRAME), dtype=np.float32)
        k = min(n, h.shape[1])
        self._halves[:, :k] = h[:, :k]
        self._xw = np.empty((n, NFFT), dtype=np.float32)
        self._spec = np.empty((n, NFFT // 2 + 1), dtype=_SPECTRUM) if _FFT_OUT else None
        self._pow = np.empty((n, NFFT // 2 + 1), dtype=_POWER) if _FFT_OUT else None

    def pair(self, residual: ResidualGate | None) -> None:
        """Run `residual` in this gate's push: its linear canceller, its band powers in this gate's
        FFT call, its echo path stacked with this gate's on this gate's reference history (one
        product predicts both, one step teaches both) and its verdict; its push takes the verdict,
        and must follow this gate's on every frame (as the frontend's does). ValueError once this
        gate has been pushed or the residual gate has seen a reference. None: unpair (the residual
        gate, if pushed on, goes on from where it was, on its own)."""
        old = self.residual
        if old is not None and old is not residual:
            old.path.history = copy.deepcopy(old.path.history)
            self.path.history.mags = self.path.history.mags.copy()  # off the stack's rows
            self.path.h, old.path.h = self.path.h.copy(), old.path.h.copy()
            old.prev_out = self._halves[self._cur, 2].copy()
            old.prev_ref = self._halves[self._cur, 1].copy()
            self.residual, self._paths = None, None
            self._sides(2)
        if residual is None or residual is old:
            return
        if self._w or residual.path.history.mags.any():
            raise ValueError("EchoGate.pair: pair the gates before either is pushed")
        residual.path.history = self.path.history
        self.residual = residual
        self._paths = PathStack([self.path, residual.path])
        self._margins = np.array([[self.path_margin], [residual.margin]])
        self._floors = np.stack((self.floor, residual.floor))
        self._sides(3)
        self._halves[self._cur, 2] = residual.prev_out

    def seed_floor(self, other: EchoGate) -> None:
        """Start from `other`'s noise floors (the mic's, and its paired residual gate's for this one's),
        as measured so far: fresh gates put in once the mic is open (a wrong rehearsal,
        Agent._room_checked) would otherwise take an earcon's or a reply's echo for the floor."""
        self.floor = other.floor.copy()
        if self.residual is not None and other.residual is not None:
            self.residual.floor = other.residual.floor.copy()
            self._floors = np.stack((self.floor, self.residual.floor))

    def _room_measured(self) -> None:
        """The tail meter's rate changed: the bound and the held predictions decay at it from now on."""
        self._decays[1:] = 10 ** (-self.tail_db / 10)
        self.held_decay = 10 ** (-float(self.tail.rate_db or self.cold_decay_db) / 10)

    def read_room(self) -> None:
        """Read the room's decay off the paired residual gate's linear canceller's filter (call it
        once that canceller has converged; nothing without a paired gate): see filter_decay."""
        if self.residual is not None:
            self.filter_decay(decay_from_response(self.residual.canceller.impulse_response()))

    def filter_decay(self, slope: float | None) -> None:
        """The room's decay read off the paired linear canceller's filter (dB per frame; None: nothing
        read; device/audio/tail.py decay_from_response): for pause_tail_db only."""
        self.tail.filter_reading(slope)

    @property
    def pause_tail_db(self) -> float:
        """The room's decay (dB per frame) the barge-in's pause waits out its tail at: tail_db, or,
        where the gaps have not measured the room, the linear canceller's filter's reading (at most
        decay_db). The gate's own bounds and predictions keep tail_db: applied to them the reading
        put a false pause in a dip of a reply (harness, cold, RT60 500 ms, human_silent_047: read
        1.34 dB per frame, 11 % faster than the room)."""
        rate = self.tail.rate_db if self.tail.rate_db is not None else self.tail.filter_db
        return self.cold_decay_db if rate is None else min(self.decay_db, rate)

    @property
    def short_room_db(self) -> float:
        """The room's decay (dB per frame) as the slower of its two readings, the reply's gaps
        (tail.rate_db) and the linear canceller's filter (tail.filter_db); 0.0 where neither has read
        it. For a decision that must not take a long room for a short one: a recorded voice fading
        into its gaps reads as the room's tail (harness, earcons off, RT60 500 ms, human_silent_039:
        the gaps read 2.25 dB per frame, the filter 1.45, the room 1.2)."""
        reads = [r for r in (self.tail.rate_db, self.tail.filter_db) if r is not None]
        return min(reads) if reads else 0.0

    # Once the reference falls silent, the envelope the gain is learnt against decays at decay_db while
    # the mic holds the room's slower tail, then only its noise: the ratio grows every frame, and the
    # gain with it, until the envelope is no longer loud. In a reply's gaps that keeps the room's tail
    # under the bound until the room is measured. After a reply it left the gain (summed over bands)
    # 11.5 dB over what the reply had taught (bench, second turn, carlo in a RT60 500 ms room: the
    # bound 19 dB over the mic as the next reply began, still 6.5 dB looser 2.25 s in). So on the
    # first loud frame after this many frames of a silent reference (300 ms: a gap between words is
    # shorter; a pause between sentences as long starts afresh too), the gain is again what it was
    # on the last loud one. Never learning on such frames instead paused 4 first replies more (RT60
    # 500 ms) and 2 cold runs (harness). Harness, 240 runs each: second turns, caught the same, 6
    # words sooner (human_talk_070 281 -> 121 ms), one 10 ms later, p95 onset -> silent 274.4 ->
    # 252.5 ms (human) and 141.4 -> 138.3 ms (espeak); first replies the same run by run.
    TAIL_FORGET_FRAMES = 30

    def pause_unconfirmed(self) -> None:
        """The reply paused and resumes: nothing in the pause was the user, so its silence held the
        room's tail alone, a measurement of the room's decay (TailMeter.echo_only)."""
        if self.tail.echo_only():
            self._room_measured()

    def push(self, ref: np.ndarray | None, mic: np.ndarray, lag: int | None = None) -> bool:
        """One frame of each side; True when the mic holds near-end speech (see the module doc).

        lag: the echo's delay behind the reference in frames, if known (the canceller's delay
        estimate): the prediction then takes the reference from lag-1..lag+1 frames back instead
        of the loudest of the whole window, a bound several dB tighter on speech."""
        residual, paths = self.residual, self._paths
        prev = self._halves[self._cur]
        self._cur ^= 1
        cur = self._halves[self._cur]
        cur[0] = mic
        cur[1] = 0.0 if ref is None else ref
        if residual is not None:
            residual.cancel(ref, mic, out=cur[2])
        xw = self._xw
        np.multiply(prev, self._win_halves[0], out=xw[:, :FRAME])
        np.multiply(cur, self._win_halves[1], out=xw[:, FRAME:])
        bands = self._bands(xw, self._spec, self._pow)
        sums = np.add.reduce(bands, axis=1).tolist()  # each side's, as its own sum
        pm, pr = bands[0], bands[1]
        refs = self._refs
        w = self._w % self.window
        refs[w] = pr
        self._w += 1
        if lag is not None and 0 <= lag < self.window - 1:
            # the max over the frames lag-1..lag+1 back (max is exact: any order)
            now = np.maximum(refs[(w - lag) % self.window], refs[(w - lag - 1) % self.window], out=self._now)
            if lag:
                np.maximum(now, refs[(w - lag + 1) % self.window], out=now)
        else:
            now = np.maximum.reduce(refs, axis=0)
        self._envs = envs = np.maximum(now, self._envs * self._decays)
        self._env = env = envs[0]
        self.ref_bands = pr
        ref_power = sums[1]
        quiet = ref_power < self.ref_floor  # the reference fell silent: its echo, 40+ dB down, under the noise
        loud = np.add.reduce(env) > self.ref_floor
        self.loud = loud
        if loud:
            self.learnt += 1
        ready = self.learnt >= self.learn_frames
        total = sums[0] + 1e-9
        self.mic_power = sums[0]
        if residual is None:
            self.floor = floor = np.minimum(self.floor * self._rise, pm)
        else:  # the residual's floor too, by the same rule
            self._floors = floors = np.minimum(self._floors * self._rise, bands[::2])
            self.floor = floor = floors[0]
            residual.floor = floors[1]
        floor_power = float(np.add.reduce(floor))
        self.floor_db = 10 * math.log10(floor_power + 1e-9) - BAND_DB
        if ref is None:
            self.tail.abort()  # an earcon of ours (or no reference): not the replies' room tail
        elif self.tail.push(quiet, total, floor_power, 3 if lag is None else lag,
                            ref_loud=ref_power > 1e3 * self.ref_floor):
            self._room_measured()
        self.path.history.push(np.sqrt(pr))  # the paths learn the mic's and residual's less the floor (echo_mags)
        if paths is None:
            predicted = self.path.predict()
        else:  # this gate's path and the paired residual gate's, in one product
            predicted_both = paths.predict()
            predicted = predicted_both[0]
        expected = self.path_margin * float(np.add.reduce(predicted))
        # The echo left: the bound at the room's decay, or the echo path's prediction where lower (the
        # bound's learnt gain is loose in bands the reply seldom fills; with no echo at all, very). The
        # prediction is held at the room's decay too: the path's late taps learn to zero, and a tail
        # longer than the path would read as no echo at all.
        self._path_left = max(expected, self._path_left * float(self._decays[2, 0]))
        self._held = max(expected, self._held * self.held_decay)
        near = path_near = near_tail = near_onset = False
        res_unexplained = None
        if ready:
            # Rows of wk: the power the echo bound (its gain is learnt against the envelope at decay_db,
            # as it always was; a room whose tail is slower keeps the bound up after the reference falls:
            # the tail envelope is the larger then), the echo path's prediction and a paired residual
            # gate path's (each with its margin), and the noise floor (x10, 10 dB) cannot explain; and
            # the echo left, the bound at tail_db.
            wk = self._work
            np.multiply(self.gain, envs[1:], out=wk[::3])
            if self.margin != 1.0:  # x 1.0 is exact: skipped
                wk[0] *= self.margin
            if residual is None:
                rows = wk[:2]
                np.multiply(predicted, self.path_margin, out=wk[1])
                np.subtract(pm, rows, out=rows)
                np.subtract(rows, 10.0 * floor, out=rows)
            else:
                rows = wk[:3]
                np.multiply(predicted_both, self._margins, out=wk[1:3])
                floors10 = 10.0 * floors
                np.subtract(pm, wk[:2], out=wk[:2])
                np.subtract(wk[:2], floors10[0], out=wk[:2])
                np.subtract(bands[2], wk[2], out=wk[2])
                np.subtract(wk[2], floors10[1], out=wk[2])
            np.maximum(rows, 0.0, out=rows)
            excess, unexplained, res_unexplained, left_bound = np.add.reduce(wk, axis=1).tolist()
            near = excess / total >= self.share
            if near:  # ... and against the bound at tail_db (wk[3], still whole)
                np.multiply(wk[3], self.margin, out=self._tail_row)
                np.subtract(pm, self._tail_row, out=self._tail_row)
                np.subtract(self._tail_row, 10.0 * floor, out=self._tail_row)
                np.maximum(self._tail_row, 0.0, out=self._tail_row)
                near_tail = float(np.add.reduce(self._tail_row)) / total >= self.share
                # ... or not falling where the mic is over the bound (wk[0] > 0): a room's tail only falls
                over = wk[0] > 0.0
                near_onset = near_tail or (float(np.add.reduce(pm[over]))
                                           >= float(np.add.reduce(self._pm_prev[over])))
            # what the prediction cannot explain: the echo path learns from such frames at a tenth of its step
            path_near = unexplained / total >= self.share
            self.echo_share = min(1.0, expected / total)
            left = min(left_bound, self._path_left)
            self.tail_share = min(1.0, self._held / total)
            self.echo_left_db = 10 * float(np.log10((left + 1e-9) / (floor_power + 1e-9)))
        else:
            self.echo_share = self.tail_share = 1.0
            self.echo_left_db = np.inf
        self.near = near
        self.near_tail = near_tail
        self.near_onset = near_onset
        self._pm_prev = pm
        if residual is not None and paths is not None:
            # the paired residual gate's verdict (its push hands it on); both paths learn in one step
            if residual.warm(self):  # the reference's and the residual's spectra, rows 1 and 2
                spec = self._spec if self._spec is not None else np.fft.rfft(xw)
                residual.coherence.push(spec[1], spec[2], lag)
            res_echo_only = residual.judge(sums[2], res_unexplained if ready else None, self, bands[2],
                                           predicted_both[1])
            if loud:
                paths.learn(echo_mags(bands[::2], floors), (not (near or path_near), res_echo_only), self._ref_eps)
        elif loud:
            self.path.learn(pm, echo_only=not (near or path_near), floor=self._ref_eps, mic_mags=echo_mags(pm, floor))
        # What the silence after a reply taught goes once the reference is loud again (see TAIL_FORGET_FRAMES).
        if float(np.add.reduce(now)) > self.ref_floor:
            if self._quiet_run >= self.TAIL_FORGET_FRAMES:
                self.gain[:] = self._gain_src
            self._quiet_run = 0
        else:
            self._quiet_run += 1
        if loud:
            # Learn the echo path: the largest mic/reference ratio seen, forgotten slowly. Frames
            # the prediction explains teach at once; near-end frames only 0.5 dB per frame, so a
            # short word is not learnt as echo but a band the gate had wrong is within ~20 frames.
            ratio = pm / (env + self._ref_eps)
            grown = np.maximum(self.gain * self.forget, ratio, out=ratio)
            self.gain = np.minimum(grown, self.gain * self._grow, out=grown) if near else grown
            if self._quiet_run == 0:
                self._gain_src[:] = self.gain
        self.history.append(near)
        return near
