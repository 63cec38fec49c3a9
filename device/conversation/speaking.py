"""Barge-in while the device speaks: per 10 ms mic frame, pause the reply, confirm the barge-in in
the pause, open the uplink for the user.

The frontend hands each frame's verdicts over (device/audio/frontend.py: the echo gate's against
its bounds, the echo path's predicted share of the mic, the residual gate's, the cancellers'
levels); the VAD hears the canceller's output (or the raw mic where no echo can be in it). A
detector that fires while the reply plays pauses it (two-stage barge-in, `_pause_first`); only
what is heard in the pause confirms it (a SpeechStart to the conversation machine), else the
machine resumes the reply. In server barge-in mode (GPT-Live) the same decisions open the uplink
instead (`uplink_passes`, `suppress`), so the server hears the user and never the device.

`BargeIn.frames` takes each frame through seven steps in order, sharing one record (`_Frame`):
the gates' verdicts and hold times (`_measure`), the echo gate's near-end runs and the uplink
(`_near_runs`), the cancellers' meters (`_meters`), the pause's state (`_pause_state`), the gates'
pauses and confirmations (`_gate_decisions`), Silero (`_vad`) and its fast stage with the
double-talk test (`_fast_stage`, not on our own sound).

Each rule below says what it was measured on: the bench's barge-in set (`voxbox bench --section
barge_in`: espeak and recorded human replies, echo-only and interrupted runs, rooms of RT60 250
and 500 ms; "cold" the first reply, "warm" a second turn).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np

from device.audio.echogate import EchoGate
from device.audio.frontend import Frontend
from device.audio.tail import TailCeiling
from device.config import Settings
from device.conversation import machine as cv
from device.conversation.tailgate import TailGate
from device.listen.bargein import Convergence, EchoDoubleTalk, ErleDrop, SuspectGate
from device.listen.vad import VadEvent, VadSegmenter


@dataclass(slots=True)
class _Frame:
    """One 10 ms frame as BargeIn.frames' steps read it: its index in the block, what the VAD hears
    (int16[160]: the canceller's output, or the raw mic where the echo cannot be in it), the block's
    levels [k, 2] (None: not measured), echo gate, whether it has learnt enough for its own pause
    and whether our own sound is in the mic; then, set by the steps, the gates' verdicts and the
    pause's state on this frame."""

    i: int
    audio: np.ndarray
    levels: np.ndarray | None
    gate: EchoGate | None
    learnt: bool
    masked: bool
    near: bool = False  # the echo gate's verdict (against its fast bound)
    residual: bool = False  # the residual gate's
    share: float = 1.0  # the echo path's predicted echo as a share of the mic (held at the room's decay in a pause)
    cancellers: bool = False  # the cancellers show the user (the residual gate, the linear canceller's drop)
    tail_near: bool = False  # near-end against the gate's bound at the room's decay
    excess: float = 0.0  # the share of the linear canceller's output over its predicted residual (ResidualGate.excess)
    coherence: float = 1.0  # ... and the share the reference explains (RefCoherence.score; 1.0: not measured)
    leak: bool | None = None  # BargeIn._leak on this frame, once asked (both the drop and ErleDrop ask it)
    adding: bool = False  # the linear canceller leaking a changed echo path (ResidualGate.adding)
    shape: float = float("nan")  # its residual's correlation with the echo's shape (ResidualGate.shape; nan: none)
    linear_db: float = float("-inf")  # the linear canceller's output level (dB; -inf: the residual gate did not look)
    paused: bool = False  # the reply is paused (as of the pause state; refreshed after the gates' decisions)
    clear: bool = False  # in a pause, old enough and the echo gone: a loud frame may confirm it
    clear_tail: bool = False  # ... and the room's tail too, for the gates' runs and double talk


class Host(Protocol):
    """What the barge-in decisions need of the agent (device/conversation/agent.py)."""

    machine: cv.Conversation
    frontend: Frontend
    vad: VadSegmenter
    uplink_open: bool

    @property
    def now(self) -> float: ...  # mic time, s

    def log(self, event: str, **fields: Any) -> None: ...

    def apply(self, actions: list[cv.Action]) -> None: ...  # carry out the machine's actions

    def masked(self) -> bool: ...  # our own earcon or ring is in the mic

    def vad_events(self, events: list[VadEvent]) -> None: ...  # the VAD's start/end events, to the machine


class BargeIn:
    """The barge-in decisions of one agent (see the module doc); `frames` per mic block while the
    device speaks, `reply_over` per block of a conversation while it does not (not while idle or muted)."""

    def __init__(self, host: Host, settings: Settings) -> None:
        self._host = host
        self.settings = settings
        self.suspect = SuspectGate(host.vad, settings.vad.suspect_threshold)
        self.dtd = EchoDoubleTalk(settings.vad.dtd_ratio_db, settings.vad.dtd_level_db, settings.vad.dtd_frames)
        self.convergence = Convergence()  # AEC3's ERLE on echo alone: converged, its output is the user's
        # ... and the linear canceller's (the residual gate's): its verdicts count once it takes this
        # much off the reply's echo (bench: 20-35 dB warm, 2-18 dB 1 s into the first reply; not
        # converged, the reply's tail in a pause stood over its predicted residual and confirmed a
        # false barge-in: human_talk_105's first reply, RT60 500 ms, gain 1.0). It falls at a sixth of
        # the rate it rises (LINEAR_FALL_ALPHA): a linear canceller does not leak in bursts as AEC3
        # does, and a word within the echo path's margin read as its leak made it unconverged in one
        # frame, so the residual gate's run on the rest of the word counted for nothing (bench, warm,
        # human_talk_058: 6 dB under a reply at gain 0.3, RT60 500 ms; the pause resumed unconfirmed).
        self.linear = Convergence(erle_db=15.0, fall_alpha=self.LINEAR_FALL_ALPHA)
        self.erle_drop = ErleDrop()  # double talk: both cancellers' ERLE falls at once
        self._near_until = -1.0  # mic time until which the echo gate lets barge-in decisions through
        self._unexplained_until = -1.0  # ... and the echo path's prediction left part of the mic unexplained
        self._sign_until = -1.0  # ... and a frame showed the user for a Silero decision (_heard_enough)
        self._aec3_leak_until = -1.0  # ... and AEC3 leaked the reply far over the linear canceller (_aec3_leaking)
        # the last frames' mic levels as the canceller measured them (dB; the last frame's last)
        self._mic_recent: deque[float] = deque(maxlen=self.LINEAR_DROP_SPAN)
        self._agree_until = -1.0  # ... and both gates called a frame near-end (_explained)
        self._residual_until = -1.0  # ... and the residual gate called one near-end, or share < 0.4 (double talk)
        self._near_run = 0  # consecutive frames the echo gate called near-end speech
        self._onset_run = 0  # ... of them EchoGate.near_onset: not a room's tail the gate's bound missed
        self._onset_shown = False  # ... and one of the onset run's frames showed the user by a second measure
        self._young_run = 0  # ... of them with the echo path predicting at most YOUNG_PAUSE_SHARE of the mic
        self._up_run = 0  # ... of those that count towards opening the uplink (see frames)
        self._res_run = 0  # consecutive frames the residual gate called near-end speech
        self._res_excess = 0.0  # ... the sum of their shares over the predicted residual (ResidualGate.excess)
        self._res_coherent = 0.0  # ... and of their coherence with the reference (_Frame.coherence)
        self._cold_run = 0  # ... the same run not in a pause, the cancellers converged or not (before warm)
        self._cold_excess = 0.0  # ... and the sum of its shares over the predicted residual
        self._cold_shape = 0.0  # ... and of its frames' correlations with the echo's shape (where judged)
        self._cold_shaped = 0  # ... and how many frames that sum holds
        self._agree_run = 0  # ... and the echo gate too, against its bound at the room's decay
        self._run_converged = False  # the canceller was converged as the near-end run began
        self._strong_run = 0  # ... of those in a pause, with the predicted echo under a tenth of the mic
        self.tail_ceiling = TailCeiling(self.TAIL_OVER_DB)  # in a pause, the most the room's tail can hold
        self._over_tail = 0  # ... and frames in a row a loud mic stood over it
        # ... and AEC3's own double-talk verdict once its echo has all arrived (PASSED_*)
        self.pause_dtd = EchoDoubleTalk(-self.PASSED_WITHIN_DB, self.PASSED_LEVEL_DB, self.PASSED_FRAMES,
                                        warm_s=self.PASSED_AFTER_S)
        self._passed = False  # ... which this frame completed
        self._room_read_at = -np.inf  # mic time the room's decay was last read off the linear canceller
        self._paused_at = -1.0  # mic time of the last pause on a suspicion
        self._left_now = -np.inf  # EchoGate.echo_left_db of the frame being decided (dB)
        self._left_at_pause = -np.inf  # ... of the frame the last pause was made at
        self._left_peak = -np.inf  # ... or of a later frame of that pause it rose at (the echo in flight)
        self._peak_at = -1.0  # mic time of that frame
        self._near_times: deque[float] = deque(maxlen=8)  # mic times of the last near-end frames
        self._near_all: deque[float] = deque(maxlen=8)  # ... the same whatever the echo path predicted
        self._pause_detector = ""  # which detector asked for it (the timeline's playback_pause)
        self._uplink_until = -1.0  # mic time until which the uplink passes unsuppressed
        self._uplink_gain = 1.0
        self.tail_gate = TailGate(self.UPLINK_HOLD_S, self.CLOSED_GAIN)  # ... and after a reply played out

    # The agent's clock, machine, frontend and VAD, read through on every use.
    @property
    def now(self) -> float:
        return self._host.now

    @property
    def machine(self) -> cv.Conversation:
        return self._host.machine

    @property
    def frontend(self) -> Frontend:
        return self._host.frontend

    @property
    def vad(self) -> VadSegmenter:
        return self._host.vad

    @property
    def pause_detector(self) -> str:
        """Which detector asked for the last pause (the timeline's playback_pause)."""
        return self._pause_detector

    @property
    def uplink_passes(self) -> bool:
        """The uplink passes the mic unsuppressed now (the user heard while the reply plays)."""
        return self.now <= self._uplink_until

    def frames(self, frames: np.ndarray, levels: np.ndarray | None) -> None:
        """One mic block while the device speaks: `frames` [k, 160] int16, the canceller's output at
        16 kHz, and `levels` [k, 2] its (mic dB, output dB) per frame (None: not measured); the
        gates' verdicts on the same frames are read off the host's frontend. Pauses, confirms
        and uplink openings are carried out through the host."""
        # Frame by frame: the barge-in detector's fast stage looks at every VAD chunk, and
        # the double-talk test at the echo canceller's levels of the same frame. Each needs the
        # echo gate open: the raw mic held more than the reply's predicted echo lately.
        self.dtd.arm(self.now)
        self.tail_gate.stop()  # this reply's uplink is suppress's
        gate = self.frontend.echo_gate
        masked = self._host.masked()  # our own earcon or ring in the mic: no barge-in from it
        # The gate has learnt the echo path for its own pause (the same for every frame of the block).
        learnt = gate is not None and gate.learnt >= self.PAUSE_LEARNT_FRAMES
        if gate is not None and self.linear.converged and self.now >= self._room_read_at + self.ROOM_READ_S:
            # The room's decay, read off the linear canceller's converged filter, for the pause's
            # wait for its tail (EchoGate.pause_tail_db): with a recorded voice the reply's gaps
            # rarely measure it. Harness, second turns: human caught 65 -> 66 of 72
            # (human_talk_073: a word 12 dB down, no room, confirmed at 236 ms; the gate had
            # waited out RT60 500 ms); first replies and espeak unchanged.
            self._room_read_at = self.now
            gate.read_room()
        for i, f in enumerate(frames):
            fr = _Frame(i, f, levels, gate, learnt, masked)
            self._measure(fr)
            self._near_runs(fr)
            erle_drop = self._meters(fr)
            self._pause_state(fr)
            self._gate_decisions(fr, erle_drop)
            self._vad(fr)
            if not masked:
                self._fast_stage(fr)

    def _measure(self, fr: _Frame) -> None:
        """Frame fr.i's verdicts off the frontend into fr (near, residual, share, cancellers, tail_near), and
        the hold times they set."""
        m, i = self.machine, fr.i
        residual_near, near = self.frontend.residual_near, self.frontend.near
        res_near = i < len(residual_near) and bool(residual_near[i])  # the residual gate's verdict
        near_i = i < len(near) and bool(near[i])  # ... and the echo gate's (against its fast bound)
        # The echo path's predicted echo as a share of the mic (1.0: not known, or all of it).
        share = float(self.frontend.echo_share[i]) if i < len(self.frontend.echo_share) else 1.0
        if m.paused_until is not None and i < len(self.frontend.tail_share):
            # In a pause the path's prediction dies with its last tap (320 ms), a long room's
            # tail does not: the prediction held at the room's decay (bench: a tail 250 ms
            # into a pause at RT60 500 ms read 0.14 and confirmed a false barge-in).
            share = max(share, float(self.frontend.tail_share[i]))
        if share < 1.0:  # the mic holds more than the echo path predicts, with its margin
            self._unexplained_until = self.now + self.NEAR_HOLD_S
        # A second measure than the gate's bound shows the user: the cancellers' (the residual
        # gate's verdict, the linear canceller's drop), for the gate's own pause, and with the
        # path's share lower, for Silero's decisions (_heard_enough).
        if i < len(self.frontend.residual_db):
            fr.linear_db = float(self.frontend.residual_db[i])
        drop = self._linear_drop(fr)  # on every frame: it keeps the mic's last level
        self._aec3_leak(fr)
        cancellers = res_near or drop
        little = share < self.SILERO_SIGN_SHARE
        if cancellers or little:
            self._sign_until = self.now + self.NEAR_HOLD_S
        # ... and the residual gate's verdict, or that share, for a double-talk pause (below).
        if res_near or little:
            self._residual_until = self.now + self.NEAR_HOLD_S
        # Near-end against the gate's bound at the room's decay too (EchoGate.near_tail): until
        # the room is measured, a long room's tail beats the bound at decay_db in the reply's
        # gaps; double talk on such frames paused the reply (bench, cold, RT60 500 ms: talk_095
        # and 4 more) and they opened the server-mode uplink (its VAD heard the tail in 4 of 60
        # runs there). A frame that is rising only does not count for these (measured: the
        # false pauses came back, and the server VAD on echo 2 -> 3 runs).
        tail_near = i < len(self.frontend.near_tail) and bool(self.frontend.near_tail[i])  # implies near
        fr.residual, fr.near, fr.share = res_near, near_i, share
        fr.cancellers, fr.tail_near = cancellers, tail_near
        fe = self.frontend
        if i < len(fe.residual_excess):
            fr.excess = float(fe.residual_excess[i])
        if i < len(fe.residual_coherence) and not np.isnan(fe.residual_coherence[i]):
            fr.coherence = float(fe.residual_coherence[i])
        fr.adding = i < len(fe.residual_adding) and bool(fe.residual_adding[i])
        if i < len(fe.residual_shape):
            fr.shape = float(fe.residual_shape[i])

    def _near_runs(self, fr: _Frame) -> None:
        """The echo gate's near-end runs on frame fr.i, and the uplink's opening on them."""
        i, levels, gate, learnt = fr.i, fr.levels, fr.gate, fr.learnt
        near_i, share, cancellers, tail_near = fr.near, fr.share, fr.cancellers, fr.tail_near
        if near_i:
            if self.frontend.near_onset[i]:
                # ... and the gate lets Silero's decisions through (_gate_open): not on an
                # unmeasured long room's tail in a gap (bench, cold, RT60 500 ms: a fast-stage
                # chunk paused human_silent_047 7.82 s in; the only change in 480 runs)
                self._near_until = self.now + self.NEAR_HOLD_S
            self._near_all.append(self.now)
            if share < 1.0:
                # ... what a VAD start in a pause needs (_near_recent): just after a pause,
                # the reverberant echo of the reply can still beat the gate's bound (bench,
                # RT60 500 ms), but not the echo path's prediction as well. (A user within
                # 6 dB of the echo reads 1.0 too: 70 ms into the pause, such frames still
                # confirmed 1 of 24 echo-only runs in that room.)
                self._near_times.append(self.now)
            self._near_run += 1
            # A run of them pauses the reply where each is near-end against the bound at the room's
            # decay or the mic did not fall over the bound (EchoGate.near_onset): the tail of an
            # unmeasured long room only falls (bench, cold, RT60 500 ms: 7 false pauses of 27
            # were 5 frames of it), a word rises (quick set: "shoe" 6 dB down in a dip of a
            # reply, a room not measured yet, was near_tail in 3 of the 5 frames that caught it).
            self._onset_run = self._onset_run + 1 if bool(self.frontend.near_onset[i]) else 0
            # ... and one frame of the run, at least, shows the user by a second measure: the echo
            # path leaves part of the mic unexplained (share < 1), or the cancellers show it
            # (`cancellers`). The bound alone fell short of the reply's echo in every one of the
            # gate's 12 false pauses on the bench (first replies and second turns, earcons on),
            # and a second measure was in 89 of the 93 runs that paused on a word within
            # DETECT_WINDOW_S of its onset. Neither shows it within the linear canceller's mismatch
            # (ResidualGate.adding: its output went over a loud mic within mismatch_frames): the
            # echo path changed, and the path's prediction falls short of the louder echo as the
            # cancellers leak it. Harness, the path changing 3 s into a first reply (96 runs): the
            # gate's pauses in the 300 ms after the change 4 -> 0 runs (share 0.83-0.96, or the
            # cancellers' sign between leak frames; human_silent_022, _027, _031, _039); second
            # turns (240 runs) the same run by run. Nor does a share under 1 where the linear
            # canceller has converged and its residual stays within its predicted residual
            # (excess under SHOWN_LINEAR_EXCESS): it passes a user whole, so the mic's excess over
            # the path's prediction is the echo's (the same harness, 3.7 s after the change,
            # human_silent_030: share 0.77-0.84, the residual at its floor; 1 pause -> 0; cold and
            # warm the same run by run).
            if self._onset_run:
                shown = self._onset_shown and self._onset_run > 1
                quiet_linear = self.linear.converged and fr.excess < self.SHOWN_LINEAR_EXCESS
                self._onset_shown = shown or (((share < 1.0 and not quiet_linear) or cancellers) and not fr.adding)
            self._young_run = self._young_run + 1 if self._onset_run and share <= self.YOUNG_PAUSE_SHARE else 0
            # The uplink opens on near-end frames (against the bound at the room's decay,
            # tail_near) that the echo path does not explain whole, or, in a run begun with
            # the canceller converged, where its output rose to within its converged ERLE of
            # the mic and the cancellers show the user (`cancellers`): the echo it removes is
            # there, and what it lets through over it is the user (a word 6 dB under the
            # reply is within the path's margin: share 1.0). Bench, server mode, cold, each
            # a run the server's VAD started on: a canceller not converged leaks the reply at
            # the mic's level, near-end to the gate's bound but not to the prediction (RT60
            # 500 ms, human_silent_038); with its output at the floor the bound was loose
            # (RT60 250 ms, silent_019); in a long room AEC3's fast ERLE meter reads converged
            # between leaks (RT60 500 ms, talk_057 and talk_106: echo uplinked at up to -11 dB
            # re the reply at the mic, without the cancellers' sign). Before the gate has
            # learnt the echo path (PAUSE_LEARNT_FRAMES) its prediction falls short of the
            # echo: there, as for a young pause, the path must explain at most
            # YOUNG_PAUSE_SHARE of the mic (0.3-0.7 s into a first reply, runs at share
            # 0.53-0.95: silent_047 and talk_119). The local detectors open it for the
            # words these miss (_open_for_user).
            if self._near_run == 1:
                self._run_converged = self.convergence.converged
            young = gate is not None and not learnt
            unexplained = share < 1.0 and (not young or share <= self.YOUNG_PAUSE_SHARE)
            counts = tail_near and (unexplained or (
                self._run_converged and levels is not None and cancellers
                and float(levels[i, 0] - levels[i, 1]) < self.convergence.erle_db))
            self._up_run = self._up_run + 1 if counts else 0
            if counts and (self._up_run >= self.UPLINK_NEAR_FRAMES or self.now <= self._uplink_until):
                self._uplink_until = self.now + self.UPLINK_HOLD_S
        else:
            self._near_run = self._up_run = self._onset_run = self._young_run = 0

    def _meters(self, fr: _Frame) -> bool:
        """The cancellers' ERLE meters on frame fr.i, and the residual gate's runs; True: ErleDrop's run
        of double talk completed on it."""
        m, i, levels, gate = self.machine, fr.i, fr.levels, fr.gate
        near_i, res_near, share, tail_near = fr.near, fr.residual, fr.share, fr.tail_near
        erle_drop = False
        res_db = fr.linear_db  # -inf where the residual gate did not look: the meters skip it
        if levels is not None and gate is not None and gate.active:
            # The ERLE is measured on echo alone: frames the gate's bound and the echo path's
            # prediction both explain. A word the path does not explain, read as the canceller
            # leaking, closed the gate on the word itself (bench, warm, human_talk_049: a word
            # 12 dB down, share 0.17-0.32, Silero at 0.94, missed).
            echo = not near_i and share >= 1.0
            if m.paused_until is None:  # in a pause the reply's echo is dying: no ERLE to fall
                erle_drop = self.erle_drop.update(float(levels[i, 0]), float(levels[i, 1]), res_db,
                                                  echo=echo, converged=self.convergence.converged,
                                                  leak=partial(self._frame_leak, fr), room_decay_db=gate.short_room_db)
            else:
                self.erle_drop.end_run()
            # ... and a frame both cancellers' ERLE fell in at once is double talk, not a leak: read
            # as one, the user's word made both meters read unconverged and closed the residual
            # gate on it (bench, warm, human_talk_068: 13 frames over the residual's prediction
            # in the pause, none counted).
            echo = echo and not self.erle_drop.double_talk
            self.convergence.update(float(levels[i, 0]), float(levels[i, 1]), echo=echo)
            self.linear.update(float(levels[i, 0]), res_db,
                               echo=echo and not res_near)
        residual = res_near and self.linear.converged
        if residual and m.paused_until is not None:
            residual = res_db >= self.RESIDUAL_CONFIRM_DB
        self._res_run = self._res_run + 1 if residual else 0
        cold = res_near and m.paused_until is None
        self._cold_run = self._cold_run + 1 if cold else 0
        self._cold_excess = self._cold_excess + fr.excess if cold else 0.0
        if not cold:
            self._cold_shape, self._cold_shaped = 0.0, 0
        elif not np.isnan(fr.shape):
            self._cold_shape += fr.shape
            self._cold_shaped += 1
        self._res_excess = self._res_excess + fr.excess if residual else 0.0
        self._res_coherent = self._res_coherent + fr.coherence if residual else 0.0
        self._agree_run = self._agree_run + 1 if res_near and tail_near else 0
        if res_near and near_i:
            self._agree_until = self.now + self.NEAR_HOLD_S
        return erle_drop

    def _pause_state(self, fr: _Frame) -> None:
        """Frame fr.i in or out of a pause: fr.paused, what the VAD hears (fr.audio) and whether a run
        may confirm the pause (fr.clear, fr.clear_tail); the pause's echo and its strong run."""
        m, i, levels, gate, masked, f = self.machine, fr.i, fr.levels, fr.gate, fr.masked, fr.audio
        near_i, share = fr.near, fr.share
        paused = m.paused_until is not None
        # Whether the mic is loud: with no echo left, the gate calls a room's quiet tail, or its
        # noise once its floor estimate is stale, near-end. In a pause, SOFT_OVER_FLOOR_DB over the
        # mic's own noise floor is loud too: a word 12 dB under a reply at gain 0.3 reaches 34-49 dB
        # re 1 LSB, never the absolute level (bench, warm, human_talk_055: 11 near-end frames in a
        # row in the pause, none loud, the word missed).
        level = float(levels[i, 0]) if levels is not None else -np.inf
        floor_db = float(self.frontend.floor_db[i]) if i < len(self.frontend.floor_db) else np.inf
        loud = (level >= self.settings.vad.dtd_level_db
                or (paused and level >= floor_db + self.SOFT_OVER_FLOOR_DB))
        # ... and whether the gate's bound on the echo, the room's tail included, is down in the noise.
        left = float(self.frontend.echo_left[i]) if i < len(self.frontend.echo_left) else -np.inf
        if paused and left > self._left_now + 1.0 and not near_i:
            # The echo rose after the pause: what the speaker had already played was still on
            # its way (output buffer, echo lag). A rise of 1 dB or less is the noise floor's
            # estimate moving, not echo; in a near-end frame, the bound's gain growing on the
            # user's voice (bench, no echo in the mic: re-timed on it, a word caught 170 ms
            # after its onset was caught only after a second pause, 480 ms).
            self._left_peak, self._peak_at = left, self.now
        self._left_now = left  # for a pause made at this frame
        quiet = self._echo_gone(left, paused, self._paused_at, self._left_at_pause)
        # ... the same with the tail timed from the echo's peak in the pause, for what the tail
        # itself can make: near-end runs of the gate and double talk (bench, warm, RT60 500 ms:
        # the mic 55 dB at the pause and 71 dB 70 ms later; timed from the pause, the tail
        # counted as gone 0.25 s in and the gate's near-end run in it confirmed a false
        # barge-in). A VAD start keeps the pause's timing: the echo that rose is, as often,
        # the last of the reply under the user's first syllables (a warm 250 ms room run
        # caught at 83 ms is missed when its VAD start waits for the peak's tail).
        gone = self._echo_gone(left, paused, self._peak_at, self._left_peak)
        # A frame of the pause the reply's echo cannot be in: near-end by the gate's bound, loud,
        # and the prediction under a tenth of it (never in the bench's echo-only runs). A frame
        # not in a pause ends the run, so a new pause starts with none.
        strong = (paused and not masked and near_i
                  and share < self.PAUSE_ECHO_SHARE and loud)
        self._strong_run = self._strong_run + 1 if strong else 0
        # ... and one the mic stands over what the room's tail can still hold (TailCeiling), loud (both
        # start afresh with the pause: _end_runs).
        if paused and gate is not None:
            over = self.tail_ceiling.push(level, gate.pause_tail_db, gate.tail.settled) and loud and not masked
            self._over_tail = self._over_tail + 1 if over else 0
            out = float(levels[i, 1]) if levels is not None and gate.tail.settled and not masked else -np.inf
            self.pause_dtd.arm(self._paused_at)  # counts from PASSED_AFTER_S into the pause
            self._passed = self.pause_dtd.update(self.now, level, out)
        if gate is not None and i < len(self.frontend.raw):
            # AEC3's suppressor takes the user out with the reply's echo while it plays, and
            # for 200-300 ms after it stops (bench, no echo in the mic at all: a 61 dB word
            # left at the 27 dB floor). The VAD hears the raw mic instead where the learnt
            # echo path predicts less than a tenth of it, and in a pause once the room's tail
            # has died away.
            if (paused and quiet) or share < self.PAUSE_ECHO_SHARE:
                f = self.frontend.raw[i]
        # In a pause, a loud frame may confirm the barge-in once the reply's echo has died away.
        clear = (paused and self.now >= self._paused_at + self.CONFIRM_AFTER_S
                 and (gate is None  # no canceller, no echo gate: nothing to wait for
                      or (i < len(self.frontend.echo_share)
                          and (share < self.CONFIRM_ECHO_SHARE or quiet) and loud)))
        # For the gate's runs and double talk: the tail timed from its peak, and, where the
        # canceller shows the echo is there (converged), the held prediction not explaining
        # all of the mic even then (the meter's first gaps in a long room read its decay
        # fast: bench, RT60 500 ms, 2.0-2.5 dB per frame where later gaps read 1.0-1.7; timed
        # so, the tail was "gone" with the mic still 53-57 dB of it). With no echo reaching
        # the mic, the path learns the noise and the user, and explains the user's voice; AEC3
        # then never converges. It does not after the echo path changed either, and there the
        # tail the path no longer matches confirmed false barge-ins, so an unconverged AEC3 counts
        # only on a frame the linear canceller's residual shows a voice in (with a residual gate):
        # over its prediction by CONFIRM_RESIDUAL_EXCESS of its power (harness, the path changed x1.4,
        # +8 ms 3 s into a first reply: 0.00-0.02 on the tails that confirmed, RT60 500 ms; a word
        # in such a pause, human_talk_057 cold, 0.27-0.70).
        shown = self.frontend.residual_gate is None or fr.excess >= self.CONFIRM_RESIDUAL_EXCESS
        clear_tail = clear and (gate is None or share < self.CONFIRM_ECHO_SHARE
                                or (gone and (share < 1.0 or (not self.convergence.converged and shown))))
        fr.paused, fr.audio, fr.clear, fr.clear_tail = paused, f, clear, clear_tail

    def _gate_decisions(self, fr: _Frame, erle_drop: bool) -> None:
        """The gates' pauses and confirmations on frame fr.i (echo gate, both gates, residual gate,
        ErleDrop), and the uplink kept open on double talk."""
        m, gate, learnt, masked = self.machine, fr.gate, fr.learnt, fr.masked
        near_i, paused, clear_tail = fr.near, fr.paused, fr.clear_tail
        if paused and (self._over_tail >= self.TAIL_OVER_FRAMES or self._passed):
            # A voice in the pause where the room's tail cannot be, or that AEC3's suppressor lets
            # through whole with the reply's echo all arrived: the user.
            self._host.log("speech_start", source="local_vad",
                           detector="echo_tail" if self._over_tail >= self.TAIL_OVER_FRAMES else "echo_passed")
            self._host.apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
            return
        if near_i and not masked:
            if not paused and gate is not None and (
                    (learnt and self._onset_run >= self.PAUSE_NEAR_FRAMES and self._onset_shown)
                    or (not learnt and self._young_run >= self.PAUSE_NEAR_FRAMES)):
                self._pause_first("echo_gate")  # a run of frames the reply's echo cannot explain
            elif not paused and gate is not None and self._agree_run >= self.AGREE_NEAR_FRAMES:
                self._pause_first("echo_agree")  # ... or both gates call near-end (AGREE_NEAR_FRAMES)
            elif ((gate_run := (clear_tail and self._near_run >= self.CONFIRM_NEAR_FRAMES)
                   or self._strong_run >= self.CONFIRM_STRONG_FRAMES)
                  or (paused and self.now >= self._paused_at + self.CONFIRM_AFTER_S
                      and self._agree_run >= self.AGREE_CONFIRM_FRAMES)):
                # ... and another run in the pause, the reply's echo dying away: the user.
                self._host.log("speech_start", source="local_vad",
                               detector="echo_gate" if gate_run else "echo_agree")
                self._host.apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
        if not masked and gate is not None and (
                (self._res_run >= self.RESIDUAL_CONFIRM_FRAMES and gate.learnt >= self.PAUSE_LEARNT_FRAMES)
                if paused else self._residual_run_pauses()):
            # The linear canceller's output holds more than the reply's predicted residual: the
            # user, though the mic is within the echo path's margin (device/audio/residualgate.py).
            # A run in the pause (the pause resets it) confirms: the canceller and the residual's
            # prediction follow the reply's echo as it dies away.
            if not paused:
                self._pause_first("echo_residual")
            else:
                self._host.log("speech_start", source="local_vad", detector="echo_residual")
                self._host.apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
        if erle_drop and not masked:
            # Both cancellers take far less off the mic than they take off the reply: double
            # talk, though the word is within the gates' margins (listen/bargein.ErleDrop).
            if not paused and gate is not None and gate.learnt >= self.PAUSE_LEARNT_FRAMES:
                self._pause_first("echo_erle")
            # ... the user, for the uplink too (server mode, GPT-Live): bench, second turns, human
            # voices, server mode: the server heard the user in 39 -> 46 of 72, its VAD on echo
            # and the uplink's residual echo unchanged.
            self._uplink_until = self.now + self.UPLINK_HOLD_S
        elif not masked and self.erle_drop.double_talk and self.now <= self._uplink_until:
            self._uplink_until = self.now + self.UPLINK_HOLD_S  # ... open while the double talk goes on

    def _vad(self, fr: _Frame) -> None:
        """Silero (the strict VAD) on what frame fr.i gives it: its starts pause, confirm or are forgotten;
        its events go to the host; fr.paused as after them."""
        m, masked, f, clear = self.machine, fr.masked, fr.audio, fr.clear
        # A pause made just now counts for the rest of this frame: what confirms it comes after.
        paused = m.paused_until is not None
        events = self.vad.process(f)
        if (m.phase == "speaking" and any(e.kind == "start" for e in events)
                and (not self._gate_open() or (not masked and self._explained())
                     or (not paused and not self._heard_enough()))):
            # The VAD heard the reply's own voice leaking through the canceller: forget that
            # segment, so the user, if it was them, starts a new one once the gate opens.
            self.vad.reset()
            events = [e for e in events if e.kind != "start"]
        if not masked and any(e.kind == "start" for e in events):
            if self._pause_first("local_vad"):
                # A new segment: a voice that goes on starts again in the pause and confirms it
                # (kept, the VAD stays in this one until 500 ms of silence, past confirm_ms).
                self.vad.reset()
                events = [e for e in events if e.kind != "start"]
            elif not (self._gate_open() if not paused else clear or self._near_recent(self._paused_at)):
                self.vad.reset()
                events = [e for e in events if e.kind != "start"]
        self._host.vad_events(events)
        # ... and so does one the VAD made just now: the double-talk test below must not
        # confirm it on the very frame that made it (bench: a leak of the canceller paused a
        # reply and confirmed a false barge-in in one frame, RT60 500 ms, gain 1.0).
        paused = m.paused_until is not None
        fr.paused = paused

    def _fast_stage(self, fr: _Frame) -> None:
        """Silero's fast stage (a chunk over the suspect threshold) and the double-talk test on frame fr.i."""
        m, i, levels, gate = self.machine, fr.i, fr.levels, fr.gate
        near_i, tail_near, paused, clear_tail = fr.near, fr.tail_near, fr.paused, fr.clear_tail
        if (m.phase == "speaking" and self.suspect.check() and self._gate_open() and not self._explained()
                and self._heard_enough()):
            self._suspect("vad_chunk")
            paused = m.paused_until is not None
        # The double-talk test sees a leak of the canceller as well as the user: it needs the
        # gate's own verdict on this very frame (to pause: against the bound at the room's decay)
        # and, to pause, the residual gate's verdict or the echo path's share under
        # SILERO_SIGN_SHARE within NEAR_HOLD_S. In a long room early in a first reply AEC3 and
        # the linear canceller both leak the reverberation, on a loud frame too: recorded per
        # frame (bench, cold, earcons on), the 10 double-talk runs on echo alone that made a
        # reply's first pause had neither; 14 of the 16 on a user had the residual gate's
        # verdict in the run itself, and 15 within NEAR_HOLD_S.
        if (m.phase == "speaking" and levels is not None and self.dtd.update(self.now, *levels[i])
                and (gate is None or (clear_tail and near_i if paused
                                      else tail_near and self.now <= self._residual_until))
                and not self._pause_first("echo_dtd")):
            self._host.log("speech_start", source="local_vad", detector="echo_dtd")
            self._host.apply(m.handle(cv.SpeechStart(self.now, "local_vad")))

    def _leak(self, i: int) -> bool:
        """Frame i's linear residual has the echo's spectral shape (ResidualGate.echo_like), or the
        reference explains coherent_share of it or more (RefCoherence, once the residual gate is warm),
        or it is in a run over the residual's prediction that has had a frame over the mic, or within
        mismatch_frames of one over a loud mic (ResidualGate.adding: a canceller that no longer matches
        the echo adds power; so can one diverging under double talk, late in a word: human_talk_070).
        Without the last, the echo path changing (x1.4, +8 ms) 3 s into a second turn's reply opened the
        server-mode uplink to the leak (quick set, human_silent_002, RT60 500 ms: AEC3 leaking too from
        110 ms after the change, its residual neither echo-shaped nor coherent enough on those frames,
        the linear canceller's 7.7 dB over the mic 20 ms before them; -24.9 dB re the reply at the mic,
        the server's VAD started)."""
        res = self.frontend.residual_gate
        fe = self.frontend
        if res is None or i >= len(fe.residual_bands):
            return False
        shape = float(fe.residual_shape[i]) if i < len(fe.residual_shape) else float("nan")
        # ResidualGate.shape is worked out on the frames over its prediction only (nan elsewhere).
        like = shape >= res.echo_corr if not np.isnan(shape) else res.echo_like(fe.residual_bands[i], fe.echo[i])
        return bool(fe.residual_adding[i]) or like or bool(fe.residual_coherence[i] >= res.coherent_share)

    def _frame_leak(self, fr: _Frame) -> bool:
        """_leak on frame fr.i, worked out once per frame."""
        if fr.leak is None:
            fr.leak = self._leak(fr.i)
        return fr.leak

    def reply_over(self) -> None:
        """A mic block of a conversation while the device does not speak: the next reply's runs start afresh."""
        self.dtd.disarm()
        self._end_runs()
        self._up_run = 0
        self.erle_drop.end_run()
        self._near_times.clear()
        self._near_all.clear()

    def resumed(self) -> None:
        """The reply resumed after a pause that did not confirm: its near-end runs were the room's
        tail, not the user; a new pause needs a new run (bench, cold, RT60 500 ms: a run of 14 tail
        frames paused the resumed reply on its first frame, 3 times in a row, human_silent_007), and
        the rest of what the gate heard in it opens nothing after the resume."""
        self._end_runs()
        self._near_all.clear()
        self._near_times.clear()
        self._near_until = self._unexplained_until = self._sign_until = self._residual_until = self.now
        if self.frontend.echo_gate is not None:
            self.frontend.echo_gate.pause_unconfirmed()

    # After a frame the echo gate found near-end speech in, barge-in decisions may go through this
    # long: Silero's 32 ms chunks and the strict VAD's 64 ms come after the frames that made them.
    NEAR_HOLD_S = 0.15
    # The uplink while the device speaks and the gate is closed carries silence (gain 0), so the
    # server's VAD, or GPT-Live's model, does not hear the device; once open, the post-filter
    # (device/audio/res.py) still takes out the residual echo band by band. With the gate alone the
    # parrot heard itself on a human reply at gain 1.0 (bench live: allison, 2.8 s in). A closed
    # gate at -40 dB was not enough: Silero hears speech 40 dB down, and early in a cold first reply
    # AEC3 leaks the reply at 60-72 dB (bench, server mode, cold, RT60 500 ms: the server's VAD
    # started on echo in 3 of 120 human runs, the uplink never open).
    CLOSED_GAIN = 0.0
    # ... and opens after this many near-end frames in a row (single frames come from the echo too),
    # each unexplained by the echo path or, in a run begun with the canceller converged, with its
    # output within its converged ERLE of the mic and the cancellers' sign (see frames for both),
    # or on a local barge-in decision (_open_for_user).
    UPLINK_NEAR_FRAMES = 3
    UPLINK_HOLD_S = 0.5  # then it stays open this long after each such frame: the rest of a word
    # The reply pauses after this many near-end frames in a row (the VAD on AEC3's output in double
    # talk often stays below vad.suspect_threshold through a short word).
    PAUSE_NEAR_FRAMES = 5
    # ... once the gate has learnt the echo path on this many frames of loud reference (measured:
    # with 30, 22 false pauses in 11 min of espeak replies came 0.4-0.5 s into the first one; with
    # 50, 12 in 9.3 min of echo-only espeak replies, 0.5-0.7 s in; with 80, 8).
    PAUSE_LEARNT_FRAMES = 80
    # ... and before that, a run whose every frame the echo path predicts at most this share of
    # (recorded per frame, first replies with earcons on: 0.5 adds no pause on the echo alone, 0.8
    # adds 3 in 120 espeak runs; a word 0.4-0.6 s into the first reply makes such runs, the echo
    # gate's own verdict alone may not pause before PAUSE_LEARNT_FRAMES). Harness, cold, earcons off:
    # no false pause more; 4 espeak words caught sooner (talk_102: 723 -> 103 ms), human_talk_098
    # caught, human_talk_058 missed (its young pause did not confirm).
    YOUNG_PAUSE_SHARE = 0.5
    # A share under 1 shows the user for the gate's pause only where the converged linear canceller's
    # residual has this share of its power or more over its predicted residual (ResidualGate.excess).
    SHOWN_LINEAR_EXCESS = 0.1
    # ... or after this many frames in a row the residual gate calls near-end, with the linear canceller
    # converged, once the gate has learnt the echo path on RESIDUAL_WARM_LEARNT frames (10 s of reply):
    # the residual's predicted level is learnt by then. Harness, second turns (against 8 frames then):
    # caught 70 -> 72 (espeak) and 65 -> 66 (human) of 72, onset -> silent p50 85 -> 66 and 150 -> 137
    # ms, false pauses unchanged (0 and 3). Before warm, see RESIDUAL_COLD_FRAMES.
    RESIDUAL_WARM_FRAMES = 6
    RESIDUAL_WARM_LEARNT = 1000
    # ... or this many, once warm, where the run's residual stands over its prediction by this share of
    # its power on average (a frame is near-end from ResidualGate's share, 0.3): the reply's echo
    # leaves runs just over that share, a voice fills the residual. Recorded per frame (harness, warm,
    # 240 runs): the 8 runs of 5 on the reply's echo alone averaged 0.47-0.65; 109 of the 140 on
    # users' words 0.7 or more. Harness, warm: 83 words sooner (52 espeak, 31 human; 10-190 ms, talk_061
    # 246 -> 56 ms), none later, onset -> silent p50/p95 63.4/158.0 -> 53.7/141.4 ms (espeak) and
    # 131.0/268.4 -> 124.8/268.4 ms (human); caught and false pauses unchanged. Runs of 5 whatever
    # their excess: 3 false pauses more on human replies (0 -> 2.8 per 10 min).
    RESIDUAL_STRONG_FRAMES = 5
    RESIDUAL_STRONG_EXCESS = 0.7
    # ... and the reference explaining less of it than this on average (RefCoherence.score): the
    # linear canceller leaking a changed echo path fills its residual too (harness, the path changed
    # x1.4, +8 ms 3 s into a second turn: 2 false pauses at 5 frames, 50 ms after the change, excess
    # 0.97, coherence 0.31), and the residual gate's own coherence test, which reads that as its leak,
    # needs a run of 6. 108 of those 109 users' runs read under 0.2 (human_talk_070, RT60 500 ms: 0.31).
    RESIDUAL_STRONG_COHERENCE = 0.2
    # Before warm, a run of this many pauses the reply (or RESIDUAL_STRONG_FRAMES over RESIDUAL_STRONG_EXCESS;
    # the coherence is not measured before warm) whether or not the linear canceller has converged or
    # the gate learnt the echo path for its own pause. On 347d907 a run needed 8 frames, the linear
    # canceller converged and PAUSE_LEARNT_FRAMES; but a first reply's residual gate hears most of the
    # words the other detectors miss there, in runs of 5-8, with the canceller taking 2-18 dB off 1-4 s
    # in. Recorded per frame over the bench set (cold, 240 runs, earcons on, on 347d907): runs of 5 or
    # more not in a pause on the echo alone, 1 (human_silent_038, RT60 500 ms, 5 frames, 0.55 over the
    # prediction on average); on users' words 89, in 13 of the runs missed. Harness, cold, 240 runs:
    # caught 64 -> 67 (espeak) and 47 -> 50 (human) of 72 (talk_094, _101, _113; human_talk_069, _093,
    # _102), none lost, false pauses unchanged; runs of 5 at any excess, a false pause more
    # (human_silent_038). A run in the pause still confirms only with the linear canceller converged:
    # unconverged, the reply's tail in the pause stood over its prediction (human_talk_105's first reply).
    RESIDUAL_COLD_FRAMES = 6
    # ... where its frames' correlation with the echo's spectral shape (ResidualGate.shape) averages
    # under this: the residual gate takes a frame at 0.9 for the leak, and a run just under it is the
    # leak too. Harness, the path changed 3 s into a first reply (96 runs): such runs, 70 ms after the
    # change, the linear canceller taking 0-5 dB off, averaged 0.84 (silent_018, _019; _019's paused
    # the reply); the 84 such runs on users' words (cold, 240 runs) 0.46 median, 0.74 at the 95th
    # percentile, 0.80 at most (talk_054). A thin margin, measured on this set alone.
    COLD_RUN_SHAPE = 0.82
    # ... and a run of this many in the pause confirms the barge-in (harness, warm: with 8, a short
    # word was often over first, caught 66 and 59 of 72 espeak and human; with 5, 70 and 61, false
    # barge-ins 0 cold and warm either way).
    RESIDUAL_CONFIRM_FRAMES = 5
    # ... each of them with the linear canceller's output at this level or more (dB re 1 LSB RMS):
    # once warm the residual gate calls frames near-end from 45 dB (ResidualGate's warm_level_db),
    # where a word's soft start is (device/audio/residualgate.py), and on echo alone in a long room a
    # pause came at 45 dB and confirmed there (harness, warm, talk_106: RT60 500 ms, gain 1.0, 0.5 s
    # before the user's onset, a false barge-in); with this, a false pause that resumed, and the rest
    # of the warm runs the same.
    RESIDUAL_CONFIRM_DB = 50.0
    # ... or after this many frames in a row both gates call near-end: the echo gate (against its bound
    # at the room's decay) and the residual gate, neither alone enough before the echo gate has learnt
    # the echo path (PAUSE_LEARNT_FRAMES) or the linear canceller converged (its own run needs that).
    # A word 0.5-0.9 s into a first reply makes such runs where the echo path explains all of the mic
    # (bench, cold, human_talk_060: a word 6 dB down at gain 0.3, runs of 3 and 5, share 1.0, missed).
    # Harness, cold, 240 runs: earcons off, human caught 35 -> 40 of 72, espeak unchanged; earcons on,
    # caught unchanged, 9 words sooner (talk_096 727 -> 177 ms); false pauses unchanged either way.
    # With 4, 3 false pauses more (espeak, 1.21 s into a first reply, RT60 250 ms). Second turns and
    # server mode: unchanged.
    AGREE_NEAR_FRAMES = 5
    # ... and a run of this many in the pause confirms it, once the pause is CONFIRM_AFTER_S old,
    # though the gate's bound still holds an unmeasured room's tail (RT60 500 ms assumed: ~350 ms
    # after a pause) and the linear canceller has not converged (the residual gate's own run needs
    # that). Harness, cold, 240 runs: caught 61 -> 62 and 45 -> 46 of 72 (talk_106, human_talk_060),
    # earcons off 40 -> 42 human; false barge-ins 0 and false pauses unchanged; second turns unchanged.
    AGREE_CONFIRM_FRAMES = 3
    # The linear canceller's convergence meter moves by this share of the gap per frame where a frame
    # reads under its average (over it, by Convergence's 0.3). Harness, 240 runs each: cold, espeak
    # caught 62 -> 64 of 72 and 4 words sooner (talk_074 605 -> 155 ms); warm, human 66 -> 67
    # (human_talk_058) and 2 sooner (human_talk_119 319 -> 79 ms); earcons off 106 -> 109 of 144;
    # server mode, the user heard 60 -> 61 (espeak); false pauses, false barge-ins and the server's
    # VAD on echo unchanged. The full bench after: server mode, second turns, human heard 51 -> 50
    # (human_talk_094: the uplink opened 300 ms sooner, for both bursts of the word; the server's VAD
    # started on neither). With 0.05 both ways, cold lost talk_059 (the meter rose late); falling at
    # 0.02, one late word more (human_talk_093 cold, 672 ms) for a meter 2.5 times as slow to see a
    # canceller that stopped cancelling. The cost: after an echo path change (the bench's
    # PATH_CHANGE) the residual gate's false barge-ins came in 72 of 96 second turns, 69 before; the
    # gate itself called the changed echo near-end until its spectral-shape test (ResidualGate.echo_like:
    # 20 of 96 then).
    LINEAR_FALL_ALPHA = 0.05
    ROOM_READ_S = 1.0  # how often the room's decay is read off the converged linear canceller's filter
    # In a pause, a run of CONFIRM_NEAR_FRAMES near-end frames confirms the barge-in, once the
    # pause is CONFIRM_AFTER_S old (frames before it were judged against the reply still playing).
    CONFIRM_NEAR_FRAMES = 3
    CONFIRM_AFTER_S = 0.1
    CONFIRM_ECHO_SHARE = 0.25  # ... in frames whose predicted echo is at most this share of the mic
    # ... or, AEC3 not converged, where the linear canceller's residual stands over its prediction by
    # this share of its power (ResidualGate.excess, its own near-end share): see _pause_state.
    CONFIRM_RESIDUAL_EXCESS = 0.3
    # ... or at once, however young the pause, on this many frames in a row the echo cannot be in
    # (a short word said at the pause is over before the echo dies away: bench, espeak "talk_080").
    CONFIRM_STRONG_FRAMES = 2
    # ... or on this many in a row, loud, TAIL_OVER_DB or more over what the room's tail can hold
    # (TailCeiling: the mic's lowest level since the echo all arrived, falling at EchoGate.pause_tail_db).
    # Before the room is measured, the pause's own wait for the tail is a long room's (RT60 500 ms),
    # ~0.3 s from a loud reply, and a short word said as the reply paused was over by then. Recorded per
    # frame over the bench set (cold, warm and the path change in both; 29 pauses on the echo alone, 335
    # after users' onsets), and 217 tails of 0.3 s or more in echo-only runs (replies' ends and long
    # gaps, cold and warm): at 4 dB over the mic's last frame alone, 3 of those pauses and 4 of the
    # tails stood over the ceiling 3 frames in a row (human_silent_007 and _006, a first reply's tail
    # after the path change, RT60 500 ms: a swing of 4-6 dB after a dip); at 5 dB over the last 2
    # frames' mean, none, and 7 of the runs missed then. Harness, cold, 240 runs (with
    # RESIDUAL_COLD_FRAMES): caught 67 -> 69 (espeak) and 50 -> 53 (human) of 72 (talk_054, _097;
    # human_talk_103, _115, _119: confirmed 0.14-0.27 s into the pause), none lost, no caught word
    # later, false pauses and barge-ins unchanged; the path change in first replies the same run by run.
    # Later, on another machine, the same code: a one-frame dip of a first start's tail confirmed a false
    # barge-in (human_talk_113); the ceiling now starts at the last 4 frames' mean (TailCeiling), which
    # costs human_talk_115 cold (harness, 240 runs each: first start 66 -> 67 human and 1 -> 0 false
    # barge-ins, cold 54 -> 53, the other 239 the same in each; warm 240 of 240 the same).
    TAIL_OVER_FRAMES = 3
    TAIL_OVER_DB = 5.0
    # ... or after this many frames in a row, once the reply's echo has all arrived (TailMeter.settled)
    # and PASSED_AFTER_S into the pause, on which AEC3's output is over PASSED_LEVEL_DB and within
    # PASSED_WITHIN_DB of the mic (EchoDoubleTalk, the levels' double-talk test, armed at the pause):
    # its suppressor, which takes a tail down with the reply's echo, lets the frame through whole. A
    # word's falling vowel in the pause passes it where the ceiling above reads a tail (bench, cold,
    # human_talk_098: paused 220 ms into a 0.46 s word at +4 dB over the echo, AEC3's output 55-64 dB
    # within 2 dB of the mic for 160 ms, missed). Recorded per frame over
    # the bench set (cold, warm and the path change in both: 77 pauses on the echo alone, 335 after
    # users' onsets): at 53 dB or at 5 frames 2 of those pauses confirmed (the path changed in a first
    # reply, RT60 500 ms: human_silent_006, _007), at 4 frames 1 (talk_094, cold, RT60 500 ms, before
    # its user's onset), at 55 dB and 6 frames none: a margin of one step each way, measured on this
    # set alone, and an absolute level (a mic's gain moves it). Harness, cold: caught 53 -> 54 human
    # (human_talk_098, confirmed 170 ms into the pause), the other 239 runs the same; warm 240 of 240
    # and the path change in first replies and second turns (96 each) the same; earcons off, cold,
    # 240 of 240 the same.
    PASSED_FRAMES = 6
    PASSED_LEVEL_DB = 55.0
    PASSED_WITHIN_DB = 3.0
    PASSED_AFTER_S = 0.05
    # The VAD hears the raw mic in frames whose predicted echo is at most this share of it.
    PAUSE_ECHO_SHARE = 0.1
    # ... and in every frame of the pause once the gate's bound on the echo is at most this far over
    # the mic's noise floor, or the pause is old enough for the room's tail to have fallen from that
    # bound as it was at the pause (or at its peak after) to there, at the room's decay (_echo_gone).
    PAUSE_ECHO_LEFT_DB = 5.0
    # In a pause the mic is loud enough to confirm at this much over its noise floor (see frames).
    # Harness, 240 runs each: caught cold 58 -> 59 and 36 -> 37, warm 70 -> 70 and 64 -> 65 (espeak,
    # human); false pauses and barge-ins unchanged.
    SOFT_OVER_FLOOR_DB = 15.0

    def _end_runs(self) -> None:
        """The runs that pause the reply start afresh (a pause made or ended, a reply over), and the
        pause's tail ceiling with them; the uplink's run goes on through a pause."""
        self._near_run = self._res_run = self._onset_run = self._young_run = self._agree_run = self._cold_run = 0
        self._res_excess = self._res_coherent = self._cold_excess = self._cold_shape = 0.0
        self._cold_shaped = self._over_tail = 0
        self.tail_ceiling.reset()
        self.pause_dtd.disarm()
        self._passed = False

    def _echo_gone(self, left: float, paused: bool, since: float, from_db: float) -> bool:
        """The reply's echo is down in the noise: the gate's bound on it this frame (`left`,
        EchoGate.echo_left_db) at most PAUSE_ECHO_LEFT_DB over the noise floor, or, in a pause, time
        enough since `since` (mic time) for it to fall from `from_db` (the bound at the pause, or at
        its peak after; inf: not known yet, never) to there, at the room's decay (EchoGate.pause_tail_db,
        dB per 10 ms frame: measured, a long room's until then). The frame's own bound can stay high
        longer: without a delay estimate the gate holds the loudest reference of 160 ms before it
        lets it decay."""
        gate = self.frontend.echo_gate
        if left <= self.PAUSE_ECHO_LEFT_DB:
            return True
        if not paused or gate is None:
            return False
        return self.now >= since + max(0.0, from_db - self.PAUSE_ECHO_LEFT_DB) / gate.pause_tail_db / 100

    def _suspect(self, detector: str) -> None:
        """Pause the reply on a suspicion; what confirms it must be heard after the pause (see _pause_first)."""
        m = self.machine
        was = m.paused_until
        self._pause_detector = detector
        self._host.apply(m.handle(cv.SuspectSpeech(self.now)))
        if was is not None:
            return
        if m.paused_until is None:
            self._open_for_user()  # server mode: the server decides, on what the uplink carries
        else:
            self._paused_at = self._peak_at = self.now
            self._left_at_pause = self._left_peak = self._left_now
            self._end_runs()

    def _open_for_user(self) -> None:
        """A barge-in detector heard the user while the reply plays and the uplink is open (server
        barge-in mode, GPT-Live), where it does not pause the reply: the uplink passes for
        UPLINK_HOLD_S, so the server hears them. Its own opening (near-end runs the echo path does
        not explain) missed most words under the reply that the local detectors catch (bench, server
        mode, cold: the server's VAD heard 54 and 41 of 72 users; its own runs had not opened it for
        13 and 28 of the others)."""
        if self._host.uplink_open and self.machine.phase == "speaking":
            self._uplink_until = max(self._uplink_until, self.now + self.UPLINK_HOLD_S)

    LINEAR_DROP_DB = 6.0
    # ... on a frame whose mic did not fall by this much since the last one (_linear_drop)
    LINEAR_DROP_FALL_DB = 1.0
    # ... nor by LINEAR_DROP_SPAN_FALL_DB since the loudest of the last LINEAR_DROP_SPAN frames
    LINEAR_DROP_SPAN = 3
    LINEAR_DROP_SPAN_FALL_DB = 3.0

    def _linear_drop(self, fr: _Frame) -> bool:
        """On a loud frame fr.i (ErleDrop.loud_db, where its average is learnt), the linear canceller
        takes LINEAR_DROP_DB less off the mic than it takes off the reply's echo (ErleDrop.linear_erle;
        its output, ResidualGate.level_db). With the residual gate's verdict, the cancellers' sign
        that frame i holds more than the reply's echo (`cancellers` in frames). Recorded per frame
        over the bench set (earcons on, first replies and second turns): neither that sign nor a
        share under 1 was in the runs of the echo gate's 12 false pauses (the bound missing the
        reply's echo where the echo's lag settles, 2.5 s into a first reply, and a long room's
        reverberation building up over it). On quiet frames the linear canceller's ERLE is no
        measure: a long room's tail it cannot model stood 10 dB over the mic less its average
        (bench, warm, RT60 500 ms: a false pause). Nor where the mic fell LINEAR_DROP_FALL_DB or
        more since the last frame (call it on every frame: it keeps the mic's last level): at a
        phrase's end a long room's tail past the linear canceller's filter holds its output while
        the mic falls, and its ERLE falls with the mic, not with a voice (bench, warm, silent_031:
        RT60 500 ms, the mic 66 -> 53 dB in 10 frames, the output 41-43 dB; Silero's fast stage
        paused the reply on the tail). Harness, 240 runs each: that false pause gone; warm, cold,
        earcons off and the path change otherwise the same run by run. Nor where it fell
        LINEAR_DROP_SPAN_FALL_DB under the loudest of the last LINEAR_DROP_SPAN frames: a phrase's end
        falls in steps, some under 1 dB (bench, cold, talk_094: RT60 500 ms, 69.5 -> 68.6 -> 65.8 ->
        65.2 dB; the sign on the 0.6 dB step let Silero's fast stage pause the reply on AEC3 passing
        the tail, 2.9 s after a missed word). Harness, 240 runs each: that false pause gone; warm,
        cold, earcons off, no echo, server mode and the path change otherwise the same run by run.
        Nor on a frame whose residual reads as the canceller's own leak (_leak): after the echo path
        changed (x1.4, +8 ms) the linear canceller passed the echo at the mic's level, its ERLE 22-45 dB
        under its average, and as the user's sign it let the echo gate's run open the server-mode uplink
        to the leak (bench, second turn, human_silent_032: -27.2 dB re the reply at the mic; the
        reference explained 53-77 % of the residual)."""
        i, levels = fr.i, fr.levels
        mic = float(levels[i, 0]) if levels is not None else -np.inf
        recent = self._mic_recent
        falling = bool(recent) and (mic < recent[-1] - self.LINEAR_DROP_FALL_DB
                                    or mic < max(recent) - self.LINEAR_DROP_SPAN_FALL_DB)
        recent.append(mic)
        avg, lin = self.erle_drop.linear_erle, fr.linear_db
        if falling or avg is None or levels is None:
            return False
        return bool(mic >= self.erle_drop.loud_db and np.isfinite(lin) and lin >= mic - avg + self.LINEAR_DROP_DB
                    and not self._frame_leak(fr))

    def _residual_warm(self) -> bool:
        """The echo gate has learnt the echo path on RESIDUAL_WARM_LEARNT frames (10 s of reply)."""
        gate = self.frontend.echo_gate
        return gate is not None and gate.learnt >= self.RESIDUAL_WARM_LEARNT

    def _residual_run_pauses(self) -> bool:
        """The residual gate's run so far pauses the reply. Before warm (_residual_warm: a first reply's
        first 10 s), whether or not the cancellers have converged: RESIDUAL_COLD_FRAMES long, or
        RESIDUAL_STRONG_FRAMES long with the residual over its prediction by RESIDUAL_STRONG_EXCESS of its
        power on average (ResidualGate.excess; a frame counts from its `share`, 0.3), its frames' correlation
        with the echo's spectral shape under COLD_RUN_SHAPE on average (ResidualGate.shape). Once warm, with the
        linear canceller converged: RESIDUAL_WARM_FRAMES long, or RESIDUAL_STRONG_FRAMES long with that
        excess and the reference explaining under RESIDUAL_STRONG_COHERENCE of it on average
        (RefCoherence.score, measured from warm on)."""
        if not self._residual_warm():
            n = self._cold_run
            if self._cold_shaped and self._cold_shape >= self.COLD_RUN_SHAPE * self._cold_shaped:
                return False  # the echo's shape: the linear canceller leaking a changed echo path
            return n >= self.RESIDUAL_COLD_FRAMES or (
                n >= self.RESIDUAL_STRONG_FRAMES and self._cold_excess >= self.RESIDUAL_STRONG_EXCESS * n)
        n = self._res_run
        return n >= self.RESIDUAL_WARM_FRAMES or (
            n >= self.RESIDUAL_STRONG_FRAMES and self._res_excess >= self.RESIDUAL_STRONG_EXCESS * n
            and self._res_coherent < self.RESIDUAL_STRONG_COHERENCE * n)

    def _near_recent(self, after: float) -> bool:
        """The echo gate found near-end speech in at least 3 frames within the last NEAR_HOLD_S,
        all later than `after` (mic time): in a pause, the frames that made it do not confirm it."""
        start = self.now - self.NEAR_HOLD_S
        return sum(1 for t in self._near_times if t >= start and t > after) >= 3

    def _pause_first(self, detector: str) -> bool:
        """A barge-in detector fired while the reply still plays: pause instead (True) when the
        two-stage barge-in is on, so only speech heard in the pause confirms it. Measured (bench
        barge_in, human voices): every false barge-in was a strict-VAD start on a leak of the
        canceller, or a double-talk run on one, with the reply playing."""
        m = self.machine
        if m.phase != "speaking" or m.paused_until is not None:
            return False
        self._suspect(detector)
        return m.paused_until is not None

    def _gate_open(self) -> bool:
        """Barge-in decisions may go through: no echo gate, no echo expected, the gate still
        learning the echo path (the first ~0.3 s of reply after start, while AEC3 suppresses
        everything anyway), the canceller converged (its output is the user's), or the gate
        found near-end speech just now (EchoGate.near_onset: not a room's tail it missed)."""
        gate = self.frontend.echo_gate
        return (gate is None or not gate.active or not gate.ready or self.convergence.converged
                or self.now <= self._near_until)

    YOUNG_NEAR_FRAMES = 3

    def _heard_enough(self) -> bool:
        """A Silero decision (a fast-stage chunk, a VAD start) may pause the reply: as _gate_open,
        except while the canceller has not converged, or the gate has learnt the echo path for less
        than its own pause needs (PAUSE_LEARNT_FRAMES): then a near-end frame or two of the gate do
        not open it, YOUNG_NEAR_FRAMES within NEAR_HOLD_S do. Early in a first reply AEC3 leaks the
        reply at up to the mic's level (its ERLE meter reads converged in one frame, leaking in the
        next), Silero hears a voice in it, and a room's tail beats the gate's young bound in a
        frame here and there; a user's voice makes more (bench, cold, rooms, 0.6-1.1 s into the
        first reply: 22 of 41 false pauses, 20 of them a Silero decision, 21 after at most two
        near-end frames in NEAR_HOLD_S). Either way a frame within NEAR_HOLD_S must show the user by
        a second measure: the cancellers' (the residual gate's verdict, _linear_drop), or the echo
        path's share under SILERO_SIGN_SHARE."""
        gate = self.frontend.echo_gate
        if gate is None or not gate.active or not gate.ready:
            return True
        if self.now > self._sign_until:
            return False
        if self.convergence.converged and gate.learnt >= self.PAUSE_LEARNT_FRAMES:
            return True
        start = self.now - self.NEAR_HOLD_S
        return sum(1 for t in self._near_all if t >= start) >= self.YOUNG_NEAR_FRAMES

    # Recorded per frame over the bench set (earcons on, first replies and second turns): of the 9
    # Silero decisions that made a reply's first false pause, 8 had none of the residual gate's
    # verdict, the linear canceller's drop or a share under 0.4 in NEAR_HOLD_S before them; of the 53
    # that paused on a user within DETECT_WINDOW_S, 1 had none (talk_063, cold: share 0.49 at least).
    SILERO_SIGN_SHARE = 0.4

    # AEC3's output this far over the linear canceller's output on a frame whose mic is this loud is
    # AEC3 leaking the reply (dB; ErleDrop.aec3_leak_db's reasoning), and Silero's decisions hold off
    # this long after it (s). Measured per frame over the 36 Silero pauses of 960 harness runs of
    # 8da995a (after a move, second turns, cold, first starts): 2 of the 3 false ones had such a
    # frame in the 100 ms before them (11.3 and 16.2 dB over), and 2 of the 33 on a user (13.4 and
    # 17.6 dB; with this hold both words were caught 10-20 ms later). At 6 dB, 6 of the 33 had one.
    AEC3_LEAK_DB = 10.0
    AEC3_LEAK_MIC_DB = 50.0
    AEC3_LEAK_HOLD_S = 0.1

    def _aec3_leak(self, fr: _Frame) -> None:
        """Frame fr.i's AEC3 output (fr.levels[i, 1], dB) against the linear canceller's output
        (fr.linear_db, dB; -inf: none): AEC3_LEAK_DB or more over it with the mic at
        AEC3_LEAK_MIC_DB or more holds Silero's decisions off for AEC3_LEAK_HOLD_S (_aec3_leaking)."""
        lv = fr.levels
        if lv is None or not np.isfinite(fr.linear_db):
            return
        mic_db, out_db = float(lv[fr.i, 0]), float(lv[fr.i, 1])
        if mic_db >= self.AEC3_LEAK_MIC_DB and out_db >= fr.linear_db + self.AEC3_LEAK_DB:
            self._aec3_leak_until = self.now + self.AEC3_LEAK_HOLD_S

    def _aec3_leaking(self) -> bool:
        """Not in a pause, AEC3 leaked the reply within AEC3_LEAK_HOLD_S: its output stood AEC3_LEAK_DB
        or more over the linear canceller's, which holds a user's voice whole, so what Silero hears
        there is the reply (harness: human_silent_022's false pause after a move, RT60 500 ms;
        human_talk_093's at a first start, 0.6 s before its word). In a pause the reply has stopped
        and what Silero hears is the user or the room's tail, which the pause's own tests judge."""
        return self.machine.paused_until is None and self.now <= self._aec3_leak_until

    def _explained(self) -> bool:
        """While the reply plays, the echo path has predicted all of the mic (EchoGate.echo_share
        1.0: within path_margin_db) for NEAR_HOLD_S: a VAD start or a fast-stage chunk then heard
        the canceller leaking the reply, not the user, and pauses nothing. Measured (bench, cold,
        240 runs): 57 of the 113 false pauses came so (50 of the fast stage's 69, all 7 of the VAD
        start's), and 23 of the 76 pauses those two made after a user's onset, most of them users
        12 dB down under a loud reply, caught later by the gate or missed (caught: 95 -> 94 of 144).
        Not where both gates called a frame near-end within NEAR_HOLD_S (the residual gate, and the
        echo gate against its fast bound): the linear canceller's residual holds more than the
        reply's. Harness, cold, 240 runs: caught 60 -> 61 and 44 -> 45 of 72 (talk_108, human_talk_113,
        a voice 12 dB under a reply at gain 1.0), with earcons off 60 -> 61; false pauses unchanged,
        second turns unchanged. The residual gate's verdict alone added a false pause (human_silent_015,
        RT60 500 ms, a single frame of it 2.19 s into a first reply, the linear canceller unconverged).
        Also while AEC3 leaks the reply far over the linear canceller's output (_aec3_leaking)."""
        if self._aec3_leaking():
            return True
        gate = self.frontend.echo_gate
        return (gate is not None and gate.active and gate.ready and self.machine.paused_until is None
                and self.now > self._unexplained_until and self.now > self._agree_until)

    def reply_played_out(self) -> None:
        """The reply played to its end: its room tail is gated on the uplink (tail, TailGate) until the
        echo gate's bound on it reaches the noise floor."""
        if self.frontend.echo_gate is not None:
            self.tail_gate.start(self.now, self._uplink_until, self._uplink_gain)

    # After a reply played out, the user is heard where the echo path's prediction, held at the room's
    # decay (EchoGate.tail_share), explains at most this share of the mic (see tail).
    TAIL_USER_SHARE = 0.5

    def tail(self, frames: np.ndarray) -> np.ndarray:
        """The uplink's frames [k, 160] int16 while the device does not speak → [k, 160] int16: after a
        reply played out, the room's tail held back (device/conversation/tailgate.py); else as they are.
        The user there is what the echo path's held prediction explains at most TAIL_USER_SHARE of. Not
        the echo gate's verdict: once the reference stops, its bound's gain learns the room's slower
        tail as echo, and a user answering 50 ms after the reply (RT60 500 ms) drove it 70 dB up in 10
        frames, every frame of theirs then "echo" (dev harness, answers after the reply); on a tail
        5 dB over the noise it called frames near-end (quick set, human_silent_002). The held prediction
        explained 0.04-0.2 of the answer's first frames, and over 0.72 of every frame of the tail that
        reached the server's VAD (human_silent_022)."""
        if not self.tail_gate.active:  # no reply's tail to hold back: nothing to compute per block
            return frames
        fe = self.frontend
        return self.tail_gate.process(frames, fe.tail_share <= self.TAIL_USER_SHARE, fe.echo_left, self.now)

    def suppress(self, frames: np.ndarray) -> np.ndarray:
        """Residual echo suppression on the uplink: [k, 160] int16 → [k, 160] int16, times a gain
        ramped over each frame from the last frame's: 1 while the echo gate hears near-end speech
        (or expects no echo), CLOSED_GAIN otherwise."""
        gate = self.frontend.echo_gate
        if gate is None:
            return frames
        # Only the gate's own verdict counts here: a converged canceller still leaves 25-45 dB of
        # echo, and its leaks are what the server's VAD takes for the user.
        passes = not gate.active or self.now <= self._uplink_until
        target = 1.0 if passes else self.CLOSED_GAIN
        n = frames.size
        ramp = np.linspace(self._uplink_gain, target, n, dtype=np.float32)
        self._uplink_gain = target
        return np.rint(frames.reshape(-1) * ramp).astype(np.int16).reshape(frames.shape)
