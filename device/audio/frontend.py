"""Mic frontend: channel map → 16 kHz mono 10 ms frames (→ echo canceller) → detectors / uplink.

The mic arrives in blocks of any size at the card's rate and channel count.
The frontend picks or averages channels, resamples with soxr (streaming) and
cuts exact 10 ms frames at 16 kHz. The speaker's reference goes through the
same framing so an echo canceller gets both sides in step. The uplink path
turns processed 16 kHz frames into 24 kHz PCM16 for the Realtime API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

from device.audio import dsp
from device.audio.echogate import BANDS as ECHO_BANDS
from device.audio.echogate import EchoGate
from device.audio.residualgate import ResidualGate
from device.audio.room import EchoRecord, RoomMemory

DETECT_RATE = 16000
FRAME = DETECT_RATE // 100  # 10 ms at 16 kHz
UPLINK_RATE = 24000


class EchoCanceller(Protocol):
    """10 ms frames at 16 kHz. `reference` gets what the speaker played, `process` cleans the mic.

    `idle` is set by the frontend once the speaker has been digitally silent for IDLE_AFTER_S:
    the canceller may then pass the mic through untouched (and skip its cost).
    `last_levels` is the (mic dB, cleaned dB) of the frame `process` returned last, in dB re
    1 LSB RMS (the double-talk test's input), or None when that frame was not cleaned (idle).
    `estimated_delay_ms` is the echo's measured lag behind the reference (None: no estimate yet).
    `earcon` is set by the frontend before each frame's reference: True when what played is a lone
    earcon (no reply under it), which the canceller keeps apart from the replies' adaptation.
    Implemented by `device.audio.aec.WebRtcAec`; `device.bench.barge_in.MeteredAec` wraps one.
    """

    idle: bool
    earcon: bool

    def reference(self, frame: np.ndarray) -> None: ...

    def process(self, frame: np.ndarray) -> np.ndarray: ...

    def forget_echo_path(self) -> None: ...  # start the replies' adaptation afresh (another room)

    @property
    def last_levels(self) -> tuple[float, float] | None: ...

    @property
    def estimated_delay_ms(self) -> int | None: ...


class MicFrames(NamedTuple):
    """One mic block after the frontend: `frames` [k, 160] int16 at 16 kHz, and per frame the
    canceller's (mic dB, cleaned dB) as `levels` [k, 2] float, or None when there is no canceller
    or it did not clean every frame of the block (idle)."""

    frames: np.ndarray
    levels: np.ndarray | None


class Framer:
    """Accumulates int16 samples and hands out whole frames of `size` (one reshape, no loops)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Returns [k, size] frames (k may be 0)."""
        buf = np.concatenate((self._buf, x)) if len(self._buf) else x
        k = len(buf) // self.size
        self._buf = buf[k * self.size :].copy()
        return buf[: k * self.size].reshape(k, self.size)


class Frontend:
    def __init__(self, in_rate: int, channels: list[int] | None = None, aec: EchoCanceller | None = None,
                 out_rate: int = UPLINK_RATE, echo_gate: EchoGate | None = None,
                 residual_gate: ResidualGate | None = None, record: EchoRecord | None = None) -> None:
        self.in_rate = in_rate
        # The reply's last seconds as the canceller met them, for RoomMemory.learn (device/audio/room.py)
        self.record = record
        self.channels = channels or None
        self.aec = aec
        # Per frame: does the raw mic hold more than the reference's echo? (barge-in, uplink)
        self.echo_gate = echo_gate
        self.near = np.zeros(0, dtype=bool)  # echo_gate's verdict for each frame of the last mic()
        self.near_tail = np.zeros(0, dtype=bool)  # ... and its EchoGate.near_tail
        self.near_onset = np.zeros(0, dtype=bool)  # ... and its EchoGate.near_onset
        # ... and the linear canceller's residual's (needs the echo gate: its bands and verdict)
        self.residual_gate = residual_gate if echo_gate is not None else None
        if echo_gate is not None and echo_gate.residual is not self.residual_gate:
            echo_gate.pair(self.residual_gate)  # one FFT call and one reference history for both
        self.residual_near = np.zeros(0, dtype=bool)
        self.residual_db = np.zeros(0)  # ... and the linear canceller's output level (ResidualGate.level_db)
        self.residual_bands = np.zeros((0, ECHO_BANDS))  # ... and its band powers (ResidualGate.bands)
        self.residual_coherence = np.zeros(0)  # ... and the reference's coherence with it (RefCoherence.score)
        self.residual_excess = np.zeros(0)  # ... and the share of it over its prediction (ResidualGate.excess)
        self.residual_adding = np.zeros(0, dtype=bool)  # ... and whether it is leaking a changed path (.adding)
        self.residual_shape = np.zeros(0)  # ... and its correlation with the echo's shape (.shape)
        # ... and its echo envelope for each (EchoGate.envelope; zeros where no echo was expected)
        self.echo = np.zeros((0, ECHO_BANDS))
        self.raw = np.zeros((0, FRAME), dtype=np.int16)  # the last mic() frames before the canceller
        self.echo_share = np.zeros(0)  # per frame: EchoGate.echo_share (0.0 where it did not look)
        self.echo_left = np.zeros(0)  # per frame: EchoGate.echo_left_db (-inf where it did not look)
        self.floor_db = np.zeros(0)  # ... and EchoGate.floor_db (inf: not known there)
        self.tail_share = np.zeros(0)  # per frame: EchoGate.tail_share
        self._mic_rs = dsp.StreamResampler(in_rate, DETECT_RATE)
        self._mic_framer = Framer(FRAME)
        # QQ: no burst buffering, so the reference reaches the canceller before its echo does.
        self._ref_rs = dsp.StreamResampler(out_rate, DETECT_RATE, quality="QQ")
        self._ref_framer = Framer(FRAME)
        self._ref_backlog: list[np.ndarray] = []
        self._earcon_backlog: list[bool] = []  # per backlog frame: a lone earcon played it
        self._spk_silent = 0
        self._idle_samples = int(out_rate * self.IDLE_AFTER_S)
        # After a rehearsal, its check on the real echo's first loud frames (see rehearse)
        self._verify_left = 0  # loud echo frames still to check (0: no check pending)
        self._verify_mic = 0.0  # ... the raw mic's power summed over those checked
        self._verify_res = 0.0  # ... and the linear canceller's output's
        self._kept: RoomMemory | None = None  # the rehearsed room, for the earcon check
        # The record takes a lone earcon's frames instead of the replies' (the start-up sound, measured
        # apart from the replies' canceller and gates: Agent._probe_room)
        self.record_earcons = False
        self._earcon_pairs: list[tuple[np.ndarray, np.ndarray]] = []  # (reference, raw mic) of a lone earcon
        self.room_check_db: float | None = None  # the check's echo reduction once made (dB)
        # Called with it once made: the agent forgets a room that is not this one (fresh gates:
        # replace_gates); None: nothing is done but the check's own hold on the gates' verdicts.
        self.on_room_checked: Callable[[float], None] | None = None

    # The echo canceller may rest once the speaker has been exactly silent this long (the
    # player outputs exact zeros when it has nothing; checked before resampling adds dither).
    IDLE_AFTER_S = 1.0
    # A rehearsal's check: over the first VERIFY_FRAMES frames of the next reply whose raw mic is
    # VERIFY_MIC_DB or more (dB re 1 LSB RMS), the linear canceller must take VERIFY_DB off the echo,
    # else the room is not the one kept (the device was moved) and the gates start afresh. Until
    # then the gates call no frame near-end: what they learnt may be another room's.
    VERIFY_FRAMES = 15
    VERIFY_DB = 10.0
    VERIFY_MIC_DB = 45.0
    # ... or earlier, on a lone earcon before it (the wake chime: before the first reply the gates and
    # AEC3 can start afresh as on a first start): the kept path's prediction of the earcon's echo
    # must leave VERIFY_DB of it unexplained or less, on EARCON_LOUD_FRAMES frames or more
    # (VERIFY_MIC_DB) of at most EARCON_FRAMES, in the bands where the path was measured (the voice's
    # own, room.measured_bins: a chime's energy above a 4 kHz voice's band is not a moved room's sign).
    EARCON_FRAMES = 100
    EARCON_LOUD_FRAMES = 10
    # ... and a failing check counts only if the mic's power where the earcon has none (room.foreign_db)
    # is this far under its whole: the earcon's echo alone there (bench, moved rooms: 34-47 dB); a word
    # over the chime in the device's own room read 1.5-16.8 dB (7 scenarios), and its part in the
    # chime's own bands failed the check there.
    EARCON_CLEAN_DB = 20.0

    def speaker(self, played: np.ndarray, earcon: bool = False) -> None:
        """What the speaker just played (at the playback rate): the echo canceller's reference.

        earcon: it is a lone earcon (no reply under it): the canceller cleans it apart from the
        replies, and the echo gate, which predicts the replies' echo, does not learn from it."""
        if self.aec is None:
            return
        # A lone earcon does not wake the replies' canceller from idle: it has one of its own, and
        # the replies' one, kept busy by the chime, would clean the user's turn and come back
        # from idle with it in its state (measured: a false pause 30 ms into the demo's reply).
        self._spk_silent = 0 if played.any() and not earcon else self._spk_silent + len(played)
        idle = self._spk_silent >= self._idle_samples
        if idle and self.aec.idle and not earcon:
            if not self._ref_backlog:
                self.aec.earcon = False  # the earcon and its queued frames are over
            return  # resting: no reference to resample or frame
        if not (idle and self._ref_backlog):  # let the canceller finish queued frames first
            self.aec.idle = idle
        frames = self._ref_framer.push(self._ref_rs(played))
        self._ref_backlog.extend(frames)
        self._earcon_backlog.extend([earcon] * len(frames))
        # Bounded: a stalled mic must not grow this forever (1 s).
        if len(self._ref_backlog) > 100:
            del self._ref_backlog[: len(self._ref_backlog) - 100]
            del self._earcon_backlog[: len(self._earcon_backlog) - 100]

    def mic(self, block: np.ndarray) -> np.ndarray:
        """Mic block [n, ch] or [n] int16 at in_rate → processed [k, 160] int16 frames at 16 kHz."""
        return self.process(block).frames

    def process(self, block: np.ndarray) -> MicFrames:
        """Like `mic`, with the echo canceller's per-frame levels (see MicFrames); `near` is then
        bool[k], the echo gate's verdict per frame (all False without one), `near_tail` and
        `near_onset` bool[k] its EchoGate.near_tail and near_onset (False there), `echo` [k, 16] its
        echo envelope per frame (zeros without one, or where it expected no echo), `echo_share`
        float[k] its EchoGate.echo_share (0.0 there), `tail_share` float[k] its EchoGate.tail_share
        (0.0 there), `echo_left` float[k] its EchoGate.echo_left_db (-inf there), `floor_db` float[k]
        its EchoGate.floor_db, the mic's noise floor (inf there), `residual_near`
        bool[k] the ResidualGate's verdict (False there, or without one), `residual_db` float[k] its
        level_db (-inf there), `residual_bands` [k, 16] its band powers (zeros there),
        `residual_coherence` float[k] the reference's coherence with its residual (RefCoherence.score,
        once ResidualGate.warm; nan there and before), `residual_excess` float[k] the share of the
        residual's power over its predicted residual (ResidualGate.excess; 0.0 there), `residual_adding`
        bool[k] its ResidualGate.adding (False there), `residual_shape` float[k] its ResidualGate.shape
        (the residual's correlation with the echo's spectral shape where over its prediction; nan there
        and elsewhere), and `raw` the frames before the canceller."""
        mono = dsp.select_channels(block, self.channels)
        return self._cancel(self._mic_framer.push(self._mic_rs(mono)))

    def rehearse(self, ref: np.ndarray, mic: np.ndarray, room: RoomMemory | None = None) -> None:
        """Run the canceller and the gates over a rehearsal before the mic opens (RoomMemory.rehearsal,
        device/audio/room.py): ref and mic int16[n] at 16 kHz in step, as the reference and the mic
        would be (whole frames used). Their output is dropped; what they learnt of the room stays.
        The next lone earcon, or else the next reply, checks it (VERIFY_*, on_room_checked); room, the
        rehearsed room (its echo path and the voice's spectrum it was measured with), lets an earcon
        check it."""
        if self.aec is None:
            return
        k = min(len(ref), len(mic)) // FRAME
        queued, record, idle = (self._ref_backlog, self._earcon_backlog), self.record, self.aec.idle
        self._ref_backlog = list(ref[: k * FRAME].reshape(k, FRAME))
        self._earcon_backlog = [False] * k
        self.record = None  # a rehearsal is not the room
        self._verify_left, self._kept = 0, None  # ... nor the reply an earlier rehearsal's check waits for
        self.aec.idle = False  # resting, the replies' canceller would skip it (a rehearsal after start)
        try:
            self._cancel(mic[: k * FRAME].reshape(k, FRAME))
        finally:
            (self._ref_backlog, self._earcon_backlog), self.record, self.aec.idle = queued, record, idle
        if self.residual_gate is not None:  # the check needs the linear canceller
            self._verify_left, self._verify_mic, self._verify_res = self.VERIFY_FRAMES, 0.0, 0.0
            self._kept = room if room is not None and room.known else None
            self._earcon_pairs = []

    def _earcon_check(self, ref: np.ndarray | None, frame: np.ndarray) -> None:
        """One frame for the earcon check (EARCON_*): ref, the lone earcon's reference frame (None: the
        earcon is over); frame, the raw mic. Makes the check once the earcon is over or EARCON_FRAMES
        long, if it had EARCON_LOUD_FRAMES loud frames (else the reply makes it)."""
        if ref is not None and len(self._earcon_pairs) < self.EARCON_FRAMES:
            self._earcon_pairs.append((ref.copy(), frame.copy()))
            return
        if not self._earcon_pairs or self._kept is None:
            return
        x = np.concatenate([p[0] for p in self._earcon_pairs])
        y = np.concatenate([p[1] for p in self._earcon_pairs])
        self._earcon_pairs = []
        db = self._kept.explained_db(x, y, self.VERIFY_MIC_DB, self.EARCON_LOUD_FRAMES)
        if db is None:
            return
        if db < self.VERIFY_DB:
            # ... unless the mic held more than the earcon's echo: the user talking over the chime (a
            # voice where the chime has nothing, which no path explains) is not a moved room; the
            # reply checks it then (a restart in its room, the start-up sound off, a word over the
            # chime: the check read 0.7-4.8 dB and the device forgot the room, in 4 of 6 scenarios).
            foreign = self._kept.foreign_db(x, y, self.VERIFY_MIC_DB, self.EARCON_LOUD_FRAMES)
            if foreign is not None and foreign < self.EARCON_CLEAN_DB:
                return
        self._check_made(db)

    def room_measured(self, explained_db: float) -> None:
        """The rehearsed room was checked outside the frontend, by the start-up sound (Agent._probed: its
        path explained explained_db of the sweep's echo): the pending check is made with that, and the
        wake chime's is not. The chime sounds while the user may already talk ("hey Jarvis, what's
        the..."): their voice is echo the path does not explain, and a room the sweep had just found
        right was forgotten (bench, a restart in the same room with the word over the chime: the check
        read 0.7-5.4 dB in 5 of 6 runs, and the first reply started cold)."""
        if self._verify_left:
            self._earcon_pairs = []
            self._check_made(explained_db)

    def _check_made(self, reduction_db: float) -> None:
        """A rehearsal's check made: reduction_db, how much of the raw mic's echo the kept path explained
        (EARCON_*, or the start-up sound's: room_measured) or the linear canceller took off (VERIFY_*), is
        room_check_db, passed to on_room_checked; the gates' hold ends."""
        self._verify_left = 0
        self.room_check_db = reduction_db
        if self.on_room_checked is not None:
            self.on_room_checked(reduction_db)

    def replace_gates(self, echo_gate: EchoGate, residual_gate: ResidualGate | None) -> None:
        """Fresh gates in place of the ones the frontend has (a wrong rehearsal: on_room_checked), paired."""
        self.echo_gate, self.residual_gate = echo_gate, residual_gate
        if residual_gate is not None and echo_gate.residual is not residual_gate:
            echo_gate.pair(residual_gate)

    def _verify(self, frame: np.ndarray, residual_db: float) -> None:
        """One frame of a rehearsal's check (VERIFY_*): frame, the raw mic int16[160]; residual_db, the
        linear canceller's output level (dB re 1 LSB RMS)."""
        f = frame.astype(np.float64)
        mic = float(np.dot(f, f)) / FRAME
        if mic < 10 ** (self.VERIFY_MIC_DB / 10):
            return
        self._verify_mic += mic
        self._verify_res += 10 ** (residual_db / 10)
        self._verify_left -= 1
        if self._verify_left == 0:
            self._check_made(10 * float(np.log10(self._verify_mic / max(self._verify_res, 1e-9))))

    def _cancel(self, frames: np.ndarray) -> MicFrames:
        """process() on [k, 160] int16 frames at 16 kHz, each with the reference's next queued frame."""
        self.near = np.zeros(len(frames), dtype=bool)
        self.near_tail = np.zeros(len(frames), dtype=bool)
        self.near_onset = np.zeros(len(frames), dtype=bool)
        self.echo = np.zeros((len(frames), ECHO_BANDS))
        self.raw = frames
        self.echo_share = np.zeros(len(frames))  # the gate skips frames with no echo to expect
        self.echo_left = np.full(len(frames), -np.inf)  # ... and there is no echo left over the noise
        self.floor_db = np.full(len(frames), np.inf)
        self.tail_share = np.zeros(len(frames))
        self.residual_near = np.zeros(len(frames), dtype=bool)
        self.residual_db = np.full(len(frames), -np.inf)
        self.residual_bands = np.zeros((len(frames), ECHO_BANDS))
        self.residual_coherence = np.full(len(frames), np.nan)
        self.residual_excess = np.zeros(len(frames))
        self.residual_adding = np.zeros(len(frames), dtype=bool)
        self.residual_shape = np.full(len(frames), np.nan)
        if self.aec is None or len(frames) == 0:
            return MicFrames(frames, None)
        out = np.empty_like(frames)
        levels: np.ndarray | None = np.empty((len(frames), 2))
        gate = self.echo_gate
        for i, frame in enumerate(frames):  # per 10 ms frame: the APM works on exactly 10 ms
            ref = self._ref_backlog.pop(0) if self._ref_backlog else None
            earcon_ref = None
            if ref is not None:
                self.aec.earcon = self._earcon_backlog.pop(0)
                self.aec.reference(ref)
                # an earcon recorded for the room (the start-up sound) is checked whole by its taker
                if self._verify_left and self._kept is not None and not self.record_earcons:
                    self._earcon_check(ref if self.aec.earcon else None, frame)
                    gate = self.echo_gate  # on_room_checked may have put fresh ones in
                if self.aec.earcon:
                    earcon_ref, ref = ref, None  # for the echo gate: not the replies' echo path
            if self.record is not None:
                self.record.push(earcon_ref if self.record_earcons else ref, frame)
            if gate is not None and (ref is not None or gate.active):
                delay = self.aec.estimated_delay_ms
                lag = None if delay is None else int(round(delay / 10))
                self.near[i] = gate.push(ref, frame, lag)
                self.near_tail[i] = gate.near_tail
                self.near_onset[i] = gate.near_onset
                self.echo[i] = gate.envelope
                self.echo_share[i] = gate.echo_share
                self.echo_left[i] = gate.echo_left_db
                self.floor_db[i] = gate.floor_db
                self.tail_share[i] = gate.tail_share
                residual = self.residual_gate
                if residual is not None:
                    self.residual_near[i] = residual.push(ref, frame, gate, lag)
                    self.residual_db[i] = residual.level_db
                    self.residual_excess[i] = residual.excess
                    self.residual_adding[i] = residual.adding
                    self.residual_shape[i] = residual.shape
                    if residual.bands is not None:
                        self.residual_bands[i] = residual.bands
                    if residual.warm(gate):
                        self.residual_coherence[i] = residual.coherence.score
                if self._verify_left:
                    self.near[i] = self.near_tail[i] = self.near_onset[i] = self.residual_near[i] = False
                    if ref is not None and residual is not None:
                        self._verify(frame, float(self.residual_db[i]))
                        gate = self.echo_gate  # on_room_checked may have put fresh ones in
            out[i] = self.aec.process(frame)
            lv = self.aec.last_levels
            if lv is None:
                levels = None
            elif levels is not None:
                levels[i] = lv
        return MicFrames(out, levels)


class Uplink:
    """Processed 16 kHz frames → 24 kHz PCM16 bytes in chunks of `chunk_ms` (one append each)."""

    def __init__(self, chunk_ms: int = 40) -> None:
        self._chunk = UPLINK_RATE * chunk_ms // 1000
        self.reset()

    def push(self, frames16k: np.ndarray) -> list[bytes]:
        if frames16k.size == 0:
            return []
        chunks = self._framer.push(self._rs(frames16k.reshape(-1)))
        return [c.astype("<i2").tobytes() for c in chunks]

    def reset(self) -> None:
        """A fresh stream: no resampler history, no partial chunk (a new turn's audio)."""
        self._rs = dsp.StreamResampler(DETECT_RATE, UPLINK_RATE)
        self._framer = Framer(self._chunk)
