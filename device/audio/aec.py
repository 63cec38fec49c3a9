"""Acoustic echo cancellation: WebRTC's AEC3 through livekit's AudioProcessingModule.

`WebRtcAec` implements the frontend's EchoCanceller protocol on 10 ms frames at
16 kHz: `reference(frame)` gets what the speaker played (far end),
`process(frame)` returns the cleaned mic frame (near end). One bytearray per
direction, viewed by numpy in place, is what AEC3 reads and writes, so a frame
costs two 160-sample copies and one FFI call per direction, each a request
serialised once per APM (`device.audio._apm_ffi.ApmPort`; ~0.011 CPU s per
audio s with the delay estimator, in the bench's pipeline).

Stream delay: `stream_delay_ms >= 0` is handed to the APM as is; `-1` turns on
a cheap estimator (`DelayEstimator`): 1 kHz envelopes of both sides, a
cross-correlation with numpy's FFT over 2 s every 0.5 s while the speaker
plays, and `set_stream_delay_ms` when two estimates agree. AEC3 has its own
delay estimator, which does the heavy lifting: in the simulated path, telling it the
delay (once, or before every frame) changed ERLE by nothing measurable, so it is set
only when it changes. What does matter is causality: AEC3 cancels nothing of an
echo that reaches the mic before its reference reaches the APM, so when the
estimate says the reference is late, `WebRtcAec` holds the mic back (see there).

Earcons: a short sound that plays alone (no reply under it: `earcon = True`, set by the
frontend per frame) is cancelled by an APM of its own, a fresh one per earcon, so AEC3's
state for the replies never adapts on it. Measured (demo echo path, 0.5, 30 ms, room): with
the wake chime as a cold APM's first reference, ERLE over the reply that followed was 3-18 dB
for its first 1-2 s (47-50 dB without the chime), and three chimes in a row through one APM
left the third at 9 dB: AEC3 adapts on the plucked notes' few partials and then trusts what
it learnt. Each fresh APM first gets WARM_FRAMES of silence (AEC3 cancelled a chime by 36 dB
without them, 56-61 dB with 20 or more), done ahead of time, not at the earcon's onset.

`erle_db` measures echo return loss enhancement for tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device.audio._apm_ffi import ApmPort
from device.config import AecSettings
from device.errors import ConfigError

RATE = 16000
FRAME = RATE // 100  # 10 ms
ENV_DECIM = 16  # envelope: one value per 1 ms
ENV_PER_FRAME = FRAME // ENV_DECIM

NOT_INSTALLED = "aec.enabled: livekit is not installed (pip install livekit, or set aec.enabled = false)"
# A livekit built from its source archive (what pip does where no wheel exists) lacks liblivekit_ffi:
# it imports, then the first AudioProcessingModule raises ImportError (livekit/rtc/_ffi_client.py).
NO_NATIVE_LIB = ("aec.enabled: livekit cannot load its native library ({why}); install livekit from a "
                 "wheel (Linux x86-64/aarch64, 64-bit only) or set aec.enabled = false")


def _rtc() -> Any:
    try:
        from livekit import rtc
    except ImportError:
        raise ConfigError(NOT_INSTALLED) from None
    return rtc


class DelayEstimator:
    """Echo path delay (speaker reference → mic) from envelope cross-correlation.

    Per frame it keeps ten 1 ms mean-absolute values of each side (a reshape and
    a mean: no Python loop). Every `every_s` it correlates the last `window_s`
    (mean removed, one FFT pair) when the reference was active enough, and keeps
    a peak that stands clearly above the rest. The lag may be negative: the echo
    reached the mic before its reference reached us (a reference path with more
    latency than the acoustic one). A value is reported once two consecutive
    estimates agree within `agree_ms`.
    """

    def __init__(self, window_s: float = 2.0, max_delay_ms: int = 400, max_lead_ms: int = 120,
                 every_s: float = 0.5, agree_ms: int = 4, min_active: float = 0.3) -> None:
        self.n = int(window_s * 1000)  # envelope samples (1 ms each)
        self.max_lag = max_delay_ms
        self.max_lead = max_lead_ms
        self.every = max(1, int(every_s * 100))  # frames
        self.agree_ms = agree_ms
        self.min_active = min_active
        self.nfft = 1 << int(np.ceil(np.log2(self.n + max(max_delay_ms, max_lead_ms) + 1)))
        self._ref = np.zeros(self.n, dtype=np.float32)
        self._mic = np.zeros(self.n, dtype=np.float32)
        self._pos = 0  # ring write position (envelope samples)
        self._frames = 0
        self._last: int | None = None
        self.delay_ms: int | None = None  # latest agreed estimate
        self.estimates = 0  # correlations run
        self.last_peak = 0.0  # normalised correlation at the last estimate's lag

    @staticmethod
    def _env(frame: np.ndarray) -> np.ndarray:
        # a sum and a power-of-two divide: .mean()'s float32 values without its Python overhead
        return np.add.reduce(np.abs(frame.reshape(ENV_PER_FRAME, ENV_DECIM).astype(np.float32)), axis=1) / ENV_DECIM

    def push(self, ref: np.ndarray | None, mic: np.ndarray) -> int | None:
        """One 10 ms frame of each side (ref None = speaker silent). Returns a new agreed delay or None."""
        p = self._pos
        self._ref[p : p + ENV_PER_FRAME] = 0.0 if ref is None else self._env(ref)
        self._mic[p : p + ENV_PER_FRAME] = self._env(mic)
        self._pos = (p + ENV_PER_FRAME) % self.n
        self._frames += 1
        if self._frames % self.every:
            return None
        est = self.estimate()
        if est is None:
            return None
        agreed = self._last is not None and abs(est - self._last) <= self.agree_ms
        self._last = est
        if agreed and est != self.delay_ms:
            self.delay_ms = est
            return est
        return None

    def estimate(self) -> int | None:
        """Delay in ms over the current window (negative: echo before reference), or None when unclear."""
        ref = np.roll(self._ref, -self._pos)
        peak = float(ref.max())
        if peak <= 0 or np.mean(ref > 0.05 * peak) < self.min_active:
            return None
        mic = np.roll(self._mic, -self._pos)
        self.estimates += 1
        ref = ref - ref.mean()
        mic = mic - mic.mean()
        norm = float(np.sqrt(np.dot(ref, ref) * np.dot(mic, mic)))
        if norm <= 0:
            return None
        xc = np.fft.irfft(np.fft.rfft(mic, self.nfft) * np.conj(np.fft.rfft(ref, self.nfft)), self.nfft)
        # lags -max_lead .. max_lag, normalised (1.0: the mic envelope is a delayed copy of the reference's)
        xc = np.concatenate((xc[self.nfft - self.max_lead :], xc[: self.max_lag + 1])) / norm
        i = int(np.argmax(xc))
        self.last_peak = float(xc[i])
        if xc[i] < 0.3 or xc[i] < np.median(xc) + 3 * np.std(xc):
            return None
        return i - self.max_lead


def _level_db(frame: np.ndarray) -> float:
    """RMS level in dB re 1 LSB (0 dB = digital silence's floor)."""
    x = frame.astype(np.float32)
    return float(10.0 * np.log10(float(np.dot(x, x)) / len(x) + 1.0))


class WebRtcAec:
    """EchoCanceller over livekit's AudioProcessingModule (WebRTC AEC3), 10 ms int16 frames at 16 kHz.

    With `stream_delay_ms = -1` the delay estimator also guards causality: AEC3
    can only cancel echo that reaches the mic after its reference reached the
    APM, with some lead (`MIN_LEAD_MS`). When the estimate says the reference
    comes later than that (e.g. a resampler that hands out reference samples in
    bursts), the mic is held back by whole frames until it does. That adds the
    same latency to the cleaned mic; it is 0 whenever the reference is on time.
    """

    MIN_LEAD_MS = 20
    MAX_HOLD = 16  # frames (160 ms)
    # Held back as soon as the speaker plays (estimating): an echo up to 20 ms ahead of
    # what the estimator will find is causal before the first estimate (~1.5 s of reply),
    # and the hold never shrinks, so AEC3 never sees the near end jump back in time.
    # Measured (bench barge_in): with 0 here, the 10 ms echo of the simulated card
    # arrives with its reference (lag 0), is not cancelled until the first estimate,
    # and the VAD fired on it in 6 of 48 echo-only scenarios.
    INITIAL_HOLD = 2
    WARM_FRAMES = 25  # silent frames a fresh earcon APM gets before its earcon (see the module doc)

    def __init__(self, settings: AecSettings | None = None) -> None:
        s = settings or AecSettings()
        self._rtc = _rtc()
        self.settings = s
        rtc = self._rtc
        # One buffer per direction, wrapped once by an AudioFrame and viewed by numpy.
        self._near_buf = bytearray(FRAME * 2)
        self._far_buf = bytearray(FRAME * 2)
        self._near = np.frombuffer(self._near_buf, dtype=np.int16)
        self._far = np.frombuffer(self._far_buf, dtype=np.int16)
        self._near_frame = rtc.AudioFrame(self._near_buf, RATE, 1, FRAME)
        self._far_frame = rtc.AudioFrame(self._far_buf, RATE, 1, FRAME)
        try:
            self._apm = self._new_apm()
        except (ImportError, OSError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0]  # livekit's message has 3 lines
            raise ConfigError(NO_NATIVE_LIB.format(why=why)) from None
        self._estimator = DelayEstimator(max_lead_ms=self.MAX_HOLD * 10 - self.MIN_LEAD_MS) \
            if s.stream_delay_ms < 0 else None
        self._ref_for_est: np.ndarray | None = None  # the reference paired with the next mic frame
        self._ref_copy = np.zeros(FRAME, dtype=np.int16)
        # Mic hold-back ring (only used once the estimator asks for it).
        self._ring = np.zeros((self.MAX_HOLD + 1, FRAME), dtype=np.int16)
        self._w = 0
        self.hold_frames = 0
        self.delay_ms = max(0, s.stream_delay_ms)  # what the APM is told
        self._primed = False  # INITIAL_HOLD applied (at the first played reference)
        self._apm.set_stream_delay_ms(self.delay_ms)
        self.frames = 0
        # Set by the frontend while the speaker has been digitally silent for a while (past any
        # room's echo tail): the APM is bypassed then. Idle is most of a smart speaker's life and
        # AEC3 its biggest idle cost; the hold-back ring still runs, so the mic timing does not
        # jump when the canceller comes back.
        self.idle = False
        # (mic dB, cleaned dB) of the last frame `process` returned, for the barge-in double-talk
        # test (the frontend collects them per block); None when that frame was bypassed (idle).
        self.last_levels: tuple[float, float] | None = None
        self.bypassed = 0  # mic frames passed through while idle
        self._earcon_apm: ApmPort | None = None  # the APM of the earcon playing now (None: none is)
        self._spare_apm: ApmPort | None = self._warm(self._new_apm())  # the next earcon's, warmed up
        self.earcons = 0  # earcons cancelled by an APM of their own

    def _new_apm(self) -> ApmPort:
        """A fresh APM bound to this canceller's two frame buffers."""
        s = self.settings
        apm = self._rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=s.noise_suppression,
            high_pass_filter=s.high_pass, auto_gain_control=s.auto_gain)
        return ApmPort(apm, self._near_buf, self._far_buf, self._near_frame, self._far_frame)

    def _warm(self, apm: ApmPort) -> ApmPort:
        """`apm` after WARM_FRAMES of silence on both sides (uses both buffers: between frames only)."""
        self._far[:] = 0
        for _ in range(self.WARM_FRAMES):
            self._near[:] = 0
            apm.render()
            apm.capture()
        return apm

    @property
    def earcon(self) -> bool:
        """Set by the frontend before each frame: the reference is a lone earcon (see the module
        doc). It is cleaned whether or not `idle` is set: idle means the replies' APM rests."""
        return self._earcon_apm is not None

    @earcon.setter
    def earcon(self, value: bool) -> None:
        if value and self._earcon_apm is None:
            self._earcon_apm = self._spare_apm if self._spare_apm is not None else self._warm(self._new_apm())
            self._spare_apm = None
            self._earcon_apm.set_stream_delay_ms(self.delay_ms)
            self.earcons += 1
        elif not value and self._earcon_apm is not None:
            self._earcon_apm = None
            self._spare_apm = self._warm(self._new_apm())  # now, not at the next earcon's onset

    def _current(self) -> ApmPort:
        """The APM for this frame: the earcon's while one plays alone, else the replies'."""
        return self._apm if self._earcon_apm is None else self._earcon_apm

    def reference(self, frame: np.ndarray) -> None:
        """Far end: 160 int16 samples the speaker played."""
        if self.idle and not self.earcon:
            self._ref_for_est = None
            return
        apm = self._current()
        self._far[:] = frame
        if self._estimator is not None:
            # The APM may change the far buffer in place: the estimator gets a copy (silence: none).
            if self._far.any():
                self._ref_copy[:] = self._far
                self._ref_for_est = self._ref_copy
            else:
                self._ref_for_est = None
        apm.render()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Near end: 160 int16 mic samples in, the echo-cancelled frame out (a new array)."""
        # A lone earcon is cleaned even while the replies' APM rests (idle): it has its own.
        active = not self.idle or self.earcon
        if self._estimator is not None and active:
            if not self._primed and self._ref_for_est is not None:
                self._primed = True
                if self.hold_frames < self.INITIAL_HOLD:
                    self._set_hold(self.INITIAL_HOLD)
                    self.delay_ms = 10 * self.INITIAL_HOLD
                    self._tell_delay()
            # The delay is estimated on the replies only, as their APM is tuned to it.
            new = self._estimator.push(None if self.earcon else self._ref_for_est, frame)
            self._ref_for_est = None
            if new is not None:
                self._retune(new)
        if self.hold_frames:
            r = len(self._ring)
            self._ring[self._w % r] = frame
            self._near[:] = self._ring[(self._w - self.hold_frames) % r]
            self._w += 1
        else:
            self._near[:] = frame
        if not active:
            self.bypassed += 1
            self.last_levels = None
            return self._near.copy()
        mic_db = _level_db(self._near)  # the (held-back) mic frame the APM is about to clean
        self._current().capture()
        self.last_levels = (mic_db, _level_db(self._near))
        self.frames += 1
        return self._near.copy()

    def forget_echo_path(self) -> None:
        """Start the replies' side afresh, as at construction: a fresh APM and delay estimator. What the
        old ones learnt is another room's (a wrong rehearsal, Frontend.on_room_checked): an APM sure of a
        wrong path lets its echo through where a fresh one suppresses it (bench, a restart after a move:
        Silero heard the leak and a false barge-in followed). Kept: the counters, `idle`, and the mic's
        hold-back (the mic's timing must not jump: made anew, the held frames were dropped and the
        initial hold's silence inserted, and two moved runs paused on Silero where a first start did
        not, one of them into a false barge-in: talk_095, talk_057). The delay the APM is told is the
        hold's alone, as when the first reference primed it, until the fresh estimator finds this
        room's lag: the lag in it was the old room's (bench, a restart after a move, human_talk_113:
        told the old room's 67 ms where this one's is 42 ms, AEC3 leaked the reply 0.6 s in and Silero
        heard it, a false barge-in; none in 240 runs once told the hold's 20 ms). A fixed delay
        (stream_delay_ms, no estimator) stays. The earcons' APMs are made anew too (bound to the frame
        buffers made here). Call between frames, not while a lone earcon plays."""
        kept = (self.frames, self.bypassed, self.earcons, self.idle, self.hold_frames, self._w, self._primed,
                self._ring.copy())
        self.__init__(self.settings)  # type: ignore[misc]
        (self.frames, self.bypassed, self.earcons, self.idle, self.hold_frames, self._w, self._primed,
         self._ring[:]) = kept
        if self._estimator is not None:
            self.delay_ms = 10 * self.hold_frames
        self._tell_delay()

    def _retune(self, echo_lag_ms: int) -> None:
        """A new estimate of the echo's lag behind the reference (mic not held back)."""
        hold = min(self.MAX_HOLD, max(self.hold_frames, -(-(self.MIN_LEAD_MS - echo_lag_ms) // 10)))
        self._set_hold(hold)
        self.delay_ms = max(0, echo_lag_ms + 10 * hold)
        self._tell_delay()

    def _tell_delay(self) -> None:
        for apm in (self._apm, self._earcon_apm):
            if apm is not None:
                apm.set_stream_delay_ms(self.delay_ms)

    def _set_hold(self, hold: int) -> None:
        if hold > self.hold_frames:
            # Frames already handed out must not come back: what the longer hold re-reads is silence.
            r = len(self._ring)
            if self.hold_frames == 0:
                self._ring[:] = 0
                self._w = 0
            for k in range(self.hold_frames + 1, hold + 1):
                self._ring[(self._w - k) % r] = 0
        self.hold_frames = hold

    @property
    def estimated_delay_ms(self) -> int | None:
        """The estimator's echo lag behind the reference in ms, before any hold-back (None: no estimate)."""
        return None if self._estimator is None else self._estimator.delay_ms


_SILENT = np.zeros(0, dtype=np.int16)


def build_aec(settings: AecSettings) -> WebRtcAec | None:
    """The echo canceller the settings ask for; None when disabled.

    ConfigError (one line) when livekit is missing or cannot load its native library.
    """
    if not settings.enabled:
        return None
    if settings.stream_delay_ms < -1:
        raise ConfigError(f"aec.stream_delay_ms: {settings.stream_delay_ms} (use -1 to estimate, or >= 0 ms)")
    return WebRtcAec(settings)


def erle_db(mic_echo: np.ndarray, cleaned: np.ndarray, rate: int = RATE, converge_s: float = 1.0,
            floor_db: float = -30.0) -> float:
    """Echo return loss enhancement in dB: mic energy / cleaned energy where echo is present.

    `mic_echo` is the mic with echo only (no near-end talker), `cleaned` the AEC's
    output for it, sample-aligned. Counted: 10 ms frames whose mic level is within
    `floor_db` of the loudest frame, from `converge_s` after the first such frame.
    """
    n = min(len(mic_echo), len(cleaned)) // (rate // 100) * (rate // 100)
    if n == 0:
        raise ValueError("erle_db: no audio")
    fr = rate // 100
    e_mic = np.square(mic_echo[:n].astype(np.float64)).reshape(-1, fr).sum(axis=1)
    e_out = np.square(cleaned[:n].astype(np.float64)).reshape(-1, fr).sum(axis=1)
    active = e_mic > e_mic.max() * 10 ** (floor_db / 10)
    if not active.any():
        raise ValueError("erle_db: no echo in mic_echo")
    first = int(np.flatnonzero(active)[0])
    active[: first + int(converge_s * 100)] = False
    if not active.any():
        raise ValueError("erle_db: no echo after the convergence time")
    return float(10 * np.log10(e_mic[active].sum() / max(e_out[active].sum(), 1.0)))
