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
in step, as the echo canceller gets them. Cost: one FFT call (2 x 320 points) per frame,
~0.01 CPU s per audio s here.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from device.audio.echopath import EchoPath
from device.audio.tail import TailMeter

RATE = 16000
FRAME = 160
NFFT = 320
# 16 bands, 125 Hz - 8 kHz, log-spaced (rfft bins of 50 Hz)
_EDGES = np.unique(np.round(np.geomspace(125, 8000, 17) / (RATE / NFFT)).astype(int))
BANDS = len(_EDGES) - 1


class EchoGate:
    def __init__(self, window: int = 16, decay_db: float = 2.5, cold_decay_db: float = 1.2,
                 margin_db: float = 0.0, share: float = 0.15,
                 learn_frames: int = 30, forget_db_per_s: float = 3.0, ref_floor_db: float = 40.0,
                 path_margin_db: float = 6.0) -> None:
        self.window = window
        self.decay_db = decay_db
        self.cold_decay_db = cold_decay_db
        self.decay = 10 ** (-decay_db / 10)
        self.tail_decay = self.decay  # until the room's decay is measured
        self.left_decay = 10 ** (-cold_decay_db / 10)  # ... and for echo_left_db, a long room's till then
        self.margin = 10 ** (margin_db / 10)
        self.share = share
        self.learn_frames = learn_frames
        self.forget = 10 ** (-forget_db_per_s / 10 / 100)
        self.ref_floor = (10 ** (ref_floor_db / 10)) * FRAME  # band-summed power of a "loud" reference
        nb = len(_EDGES) - 1
        self._win = np.hanning(NFFT).astype(np.float32)
        self._prev_ref = np.zeros(FRAME, dtype=np.float32)
        self._prev_mic = np.zeros(FRAME, dtype=np.float32)
        self._refs = np.zeros((window, nb))  # band powers of the last `window` reference frames
        self._w = 0
        self._env = np.zeros(nb)
        self._tail_env = np.zeros(nb)  # the same at the room's decay, once measured
        self._left_env = np.zeros(nb)  # the same at tail_db (a long room's until measured)
        self._path_left = 0.0  # the echo path's prediction (with margin), held and decaying at tail_db
        self._held = 0.0  # the same at the room's own decay, however fast (tail_share)
        self.held_decay = self.left_decay
        self.gain = np.zeros(nb)  # echo path band gain (mic / reference power), learnt
        self.floor = np.full(nb, np.inf)  # the mic's noise floor per band: falls at once, rises 1 dB/s
        self._rise = 10 ** (1.0 / 10 / 100)
        self._grow = 10 ** (0.5 / 10)
        self.learnt = 0  # frames of loud reference seen
        self.path = EchoPath(nb)
        self.tail = TailMeter()  # the room's decay, measured in the reply's gaps
        self.path_margin = 10 ** (path_margin_db / 10)
        self.echo_share = 1.0  # the last frame's predicted echo power / the mic's, with margin (1.0: unknown)
        self.tail_share = 1.0  # the same with the prediction held at the room's decay (a pause's tail)
        self.echo_left_db = np.inf  # the last frame's bound on the echo over the mic's noise floor (dB; inf: unknown)
        self.near = False  # the last frame's verdict
        self.loud = False  # the last frame's echo envelope was loud (the echo path learnt from it)
        self.ref_bands = np.zeros(nb)  # the last frame's reference band powers
        self.history: deque[bool] = deque(maxlen=64)  # verdicts per frame, for the agent to drain

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
        x = np.concatenate((prev, frame), axis=-1) * self._win
        p = np.square(np.abs(np.fft.rfft(x)))
        return np.add.reduceat(p, _EDGES[:-1], axis=-1)[..., : len(_EDGES) - 1]

    def _room_measured(self) -> None:
        """The tail meter's rate changed: the bound and the held predictions decay at it from now on."""
        self.tail_decay = self.left_decay = 10 ** (-self.tail_db / 10)
        self.held_decay = 10 ** (-float(self.tail.rate_db or self.cold_decay_db) / 10)

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
        m = mic.astype(np.float32)
        r = np.zeros(FRAME, dtype=np.float32) if ref is None else ref.astype(np.float32)
        pm, pr = self.band_powers(np.stack((self._prev_mic, self._prev_ref)), np.stack((m, r)))
        self._prev_mic, self._prev_ref = m, r
        self._refs[self._w % self.window] = pr
        self._w += 1
        if lag is not None and 0 <= lag < self.window - 1:
            ages = [(self._w - 1 - a) % self.window for a in range(max(0, lag - 1), lag + 2)]
            now = self._refs[ages].max(axis=0)
        else:
            now = self._refs.max(axis=0)
        self._env = np.maximum(now, self._env * self.decay)
        self._tail_env = np.maximum(now, self._tail_env * self.tail_decay)
        self._left_env = np.maximum(now, self._left_env * self.left_decay)
        self.ref_bands = pr
        ref_power = float(pr.sum())
        quiet = ref_power < self.ref_floor  # the reference fell silent: its echo, 40+ dB down, under the noise
        loud = self._env.sum() > self.ref_floor
        # The gain is learnt against the envelope at decay_db, as it always was; a room whose tail is
        # slower keeps the bound up after the reference falls (the tail envelope is the larger then).
        echo = self.gain * self._tail_env
        self.loud = loud
        if loud:
            self.learnt += 1
        total = float(pm.sum()) + 1e-9
        self.floor = np.minimum(self.floor * self._rise, pm)
        if ref is None:
            self.tail.abort()  # an earcon of ours (or no reference): not the replies' room tail
        elif self.tail.push(quiet, total, float(self.floor.sum()), 3 if lag is None else lag,
                            ref_loud=ref_power > 1e3 * self.ref_floor):
            self._room_measured()
        # power the echo (with margin) and the noise floor (x10, 10 dB) cannot explain
        excess = np.clip(pm - self.margin * echo - 10.0 * self.floor, 0.0, None)
        near = bool(self.ready and float(excess.sum()) / total >= self.share)
        predicted = self.path.predict(pr)
        self.echo_share = min(1.0, self.path_margin * float(predicted.sum()) / total) if self.ready else 1.0
        # The echo left: the bound at the room's decay, or the echo path's prediction where lower (the
        # bound's learnt gain is loose in bands the reply seldom fills; with no echo at all, very). The
        # prediction is held at the room's decay too: the path's late taps learn to zero, and a tail
        # longer than the path would read as no echo at all.
        expected = self.path_margin * float(predicted.sum())
        self._path_left = max(expected, self._path_left * self.left_decay)
        left = min(float((self.gain * self._left_env).sum()), self._path_left)
        self._held = max(expected, self._held * self.held_decay)
        self.tail_share = min(1.0, self._held / total) if self.ready else 1.0
        self.echo_left_db = (10 * float(np.log10((left + 1e-9) / (float(self.floor.sum()) + 1e-9)))
                             if self.ready else np.inf)
        # what the prediction cannot explain: the echo path learns from such frames at a tenth of its step
        unexplained = np.clip(pm - self.path_margin * predicted - 10.0 * self.floor, 0.0, None)
        path_near = self.ready and float(unexplained.sum()) / total >= self.share
        if loud:
            self.path.learn(pm, echo_only=not (near or path_near), floor=1e-3 * self.ref_floor)
            # Learn the echo path: the largest mic/reference ratio seen, forgotten slowly. Frames
            # the prediction explains teach at once; near-end frames only 0.5 dB per frame, so a
            # short word is not learnt as echo but a band the gate had wrong is within ~20 frames.
            ratio = pm / (self._env + 1e-3 * self.ref_floor)
            grown = np.maximum(self.gain * self.forget, ratio)
            self.gain = np.minimum(grown, self.gain * self._grow) if near else grown
        self.near = near
        self.history.append(near)
        return near
