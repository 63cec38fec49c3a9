"""The fast stage of barge-in: a suspicion from the VAD's per-chunk probability while the device speaks.

The strict VAD (vad.speaking_threshold over speaking_min_speech_ms) confirms a barge-in,
but during double talk AEC3's residual-echo suppressor hides the user's first 100-150 ms
and Silero needs a chunk or two more: too slow for the speaker to go quiet within 100 ms.
One chunk at or above vad.suspect_threshold is enough to *pause* the reply (the
conversation machine's SuspectSpeech → PausePlayback): once the speaker is quiet its echo
dies away, the suppressor lets the user through, and the strict VAD confirms or, within
conversation.confirm_ms, does not (the reply resumes where it paused).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from device.listen.vad import SAMPLE_RATE, VadSegmenter


class SuspectGate:
    """Fires at most once per VAD chunk whose probability is >= `threshold`."""

    def __init__(self, vad: VadSegmenter, threshold: float) -> None:
        self.vad = vad
        self.threshold = threshold
        self._seen = -1  # index of the last chunk looked at

    def check(self) -> bool:
        """Call after feeding the VAD: True when a new chunk reached the threshold."""
        chunk = int(round(self.vad.fed_s * SAMPLE_RATE)) // self.vad.engine.chunk_samples
        if chunk == self._seen or chunk == 0:
            return False
        self._seen = chunk
        return self.threshold > 0 and self.vad.last_probability >= self.threshold


class EchoDoubleTalk:
    """Near-end speech from the echo canceller's levels: fires when, for `frames` 10 ms frames
    in a row, the cleaned mic stays within `ratio_db` of the raw mic and above `level_db`.

    While only the reply's echo reaches the mic, a converged canceller takes 25-40 dB off;
    the user's own voice passes through it. Armed `warm_s` after the reply starts, because a
    canceller that has not converged yet passes echo too.
    """

    def __init__(self, ratio_db: float, level_db: float, frames: int, warm_s: float = 0.3) -> None:
        self.ratio_db, self.level_db, self.frames, self.warm_s = ratio_db, level_db, frames, warm_s
        self._armed_at: float | None = None
        self._run = 0

    def arm(self, now: float) -> None:
        if self._armed_at is None:
            self._armed_at = now + self.warm_s
            self._run = 0

    def disarm(self) -> None:
        self._armed_at, self._run = None, 0

    def update(self, now: float, mic_db: float, out_db: float) -> bool:
        """One frame's levels; True on the frame that completes a run (then it disarms)."""
        if self.frames <= 0 or self._armed_at is None or now < self._armed_at:
            return False
        near = out_db > self.level_db and out_db - mic_db > self.ratio_db
        self._run = self._run + 1 if near else 0
        if self._run >= self.frames:
            self.disarm()
            return True
        return False


class Convergence:
    """How well the echo canceller is doing right now: ERLE (dB) over the last loud echo frames.

    Fed per 10 ms frame with the canceller's (mic dB, cleaned dB) and whether the frame is echo
    alone (the echo gate's bound and the echo path's prediction both explain it: a user's word
    through the canceller is not a leak). Only frames whose mic is at least `loud_db` (dB re 1 LSB RMS)
    and that are echo alone count: an exponential average of mic - cleaned over them
    (`alpha` per frame, ~50 ms). AEC3 can leak 8-10 dB of a reply for half a second 1-2 s
    into it (its linear filter not converged yet), more on female and human voices; Silero
    calls that leak speech. `converged` is False until the average reaches `erle_db`, and
    falls back as soon as a leak pulls it below. `fall_alpha` (default: `alpha`) is the step for
    frames under the average: smaller, the meter rises as fast but falls slowly, for a canceller
    that does not leak in bursts (a user's word under the echo's margin reads as a leak too).
    """

    def __init__(self, erle_db: float = 25.0, loud_db: float = 60.0, alpha: float = 0.3,
                 fall_alpha: float | None = None) -> None:
        self.erle_db, self.loud_db, self.alpha = erle_db, loud_db, alpha
        self.fall_alpha = alpha if fall_alpha is None else fall_alpha
        self.erle: float | None = None

    def update(self, mic_db: float, out_db: float, echo: bool) -> None:
        # A level not measured (-inf) would make the average NaN, and `converged` False, for good.
        if not echo or mic_db < self.loud_db or not math.isfinite(out_db):
            return
        att = mic_db - out_db
        if self.erle is None:
            self.erle = att
        else:
            self.erle += (self.alpha if att >= self.erle else self.fall_alpha) * (att - self.erle)

    @property
    def converged(self) -> bool:
        return self.erle is not None and self.erle >= self.erle_db


class ErleDrop:
    """Double talk from two echo cancellers at once: near-end speech where both AEC3 and the linear
    canceller (SpeexDSP MDF, device/audio/residualgate.py) suddenly take far less off the mic than
    they have been taking off the reply's echo.

    Per 10 ms frame: the mic (dB re 1 LSB RMS), AEC3's output and the linear canceller's residual
    (same unit), and whether the frame is echo alone (the echo gate's bound and the echo path's
    prediction both explain it). Each canceller's ERLE (mic - output, dB) on echo-alone frames is
    averaged slowly (`alpha` per frame, ~0.5 s). A frame is double talk when both ERLEs fall under
    their averages by `drop_db` and `linear_drop_db`; `frames` of them in a row fire, if the run
    began with AEC3 converged (the caller's Convergence). Frames under `loud_db` at the mic and
    frames the linear canceller did not see (-inf) end a run and teach nothing.

    Why: a word 6-12 dB under a loud reply stays within the echo path's margin and the echo gate's
    bound, and the canceller's ERLE meter reads it as a leak; but the canceller's output rises to
    the word's level, 20-30 dB over the residual it leaves of the reply. One canceller's output
    alone also rises where it leaks. Measured offline on the bench's second turns (240 runs, 22 min
    of reply, runs of 3 frames at 15 dB): AEC3's ERLE alone fell so 56 times on echo alone, the
    linear canceller's alone 14 times, both at once never; both fell so in 30 of the 144
    interruptions, 7 of them short human words the other detectors missed (in the agent 3 of those
    7 are now caught; the others are over before the pause confirms them). In first replies (cold)
    it never fires: the averages are still low.

    After an echo path change both cancellers take less off the mic at once too, the linear
    canceller leaking the echo it no longer matches: the caller's `leak` (the residual's spectral
    shape) tells that from a word. Harness, 96 echo-only second turns, the path changed (x1.4, +8 ms)
    3 s in: this detector's pauses and confirmations 77 -> 10; the users' words caught the same.
    Once the residual gate told more of the leak by its coherence with the reference (once warm,
    device/audio/coherence.py), this detector's decisions there rose to 18 (the residual gate no
    longer paused first); with the coherence a second sign of the leak here too: 0, and in server
    mode the uplink this detector opened on the changed echo, where the server's VAD started in 14
    of 96 runs, stays closed. The cost: a user's word under a reply whose residual the reference
    explained already reads as the leak in its first frames (harness, warm: caught the same, 4 words
    later, talk_061 66 -> 246 ms at 0.23-0.27).

    In a short room the linear canceller's ERLE need fall only `short_room_linear_drop_db` (see
    __init__; the caller gives the room's decay as measured). A word 6-12 dB under a reply at gain
    0.3-1.0 pulls AEC3's ERLE down 20-26 dB and the linear canceller's only 6-11 (bench, human voices,
    no room: human_talk_108 warm, human_talk_055 and _103 cold, all missed). Recorded per frame over
    the bench set (480 runs, cold and warm), the 17 echo-alone runs of 3 such frames (AEC3 15 dB down,
    the linear canceller 6) were in rooms, where the reverberation past the linear canceller's 256 ms
    filter swings its ERLE: 16 in the RT60 500 ms room (its decay read at 1.1-1.3 dB per frame), one
    at a phrase's end in the 250 ms room, the mic falling 6-7 dB a frame. A room is short only where
    both its readings say so (EchoGate.short_room_db). Harness, 240 runs each: caught, warm 68 -> 69
    (human_talk_108) and cold 46 -> 47 (human_talk_055, earcons on or off) of 72 human; 8 words
    sooner (talk_112 cold 222 -> 132 ms, human_talk_060 warm 207 -> 127 ms); false pauses the same.
    The cost: the echo path changed (x1.4, +8 ms) 3 s into a first reply, one run paused more of 96
    (human_silent_005, no room, 100 ms after the change: the linear canceller leaking it 11-25 dB
    for 7 frames, its residual echo-shaped on 6, then AEC3 too, the shape no longer telling).

    AEC3 also leaks on its own while the linear canceller holds, as in first replies after a restart
    (after a move, at a first start): its output rises towards the mic as a phrase of the reply falls
    away, and the linear canceller's ERLE falls with the mic (its residual holds, the mic does not).
    Both ERLEs then fall as they do under a word, but AEC3's output stands over the linear canceller's.
    A user's voice is in both outputs, whole in the linear canceller's and at most as loud in AEC3's
    (its suppressor may take some of it), so what AEC3's output holds over the linear canceller's is
    AEC3's own residual echo; AEC3's ERLE then falls with that leak, whatever else the frame holds, and
    is no sign of a voice. Recorded on every fire over 960 runs (harness, first replies after a move,
    second turns, cold, first starts): the 3 false fires had AEC3's output 1.8-15.5 dB over the linear
    canceller's in their runs (6.6 dB or more on the last two frames of each); the 34 on a user, 5.7 dB
    over it at most on any frame, and under it on average in every run. So a frame with AEC3's output
    aec3_leak_db over it is not double talk. (Silero's decisions hear AEC3's output too, but such frames
    were in the 100 ms before 6 of its 33 pauses on a user, as well as 2 of its 3 false ones; they use
    a 10 dB form of this rule: BargeIn.AEC3_LEAK_DB.)
    """

    def __init__(self, drop_db: float = 15.0, linear_drop_db: float = 15.0, frames: int = 3,
                 alpha: float = 0.02, loud_db: float = 60.0, learn_frames: int = 10,
                 short_room_linear_drop_db: float = 6.0, short_room_decay_db: float = 2.0,
                 short_room_fall_db: float = 3.0, aec3_leak_db: float = 6.0) -> None:
        self.drop_db, self.linear_drop_db, self.frames = drop_db, linear_drop_db, frames
        # A frame whose AEC3 output stands aec3_leak_db or more over the linear canceller's is AEC3
        # leaking the reply: a user's voice is in both outputs, so AEC3's ERLE falling there
        # measures its own leak (see the class doc).
        self.aec3_leak_db = aec3_leak_db
        # In a short room (decaying short_room_decay_db per 10 ms frame or faster: RT60 300 ms or
        # less) the linear canceller's 256 ms filter holds the whole echo path and its ERLE holds
        # steady on echo alone, so a smaller fall tells the user: short_room_linear_drop_db, on a
        # frame whose mic did not fall short_room_fall_db or more since the last one (at a phrase's
        # end both cancellers' outputs hold the room's tail while the mic falls).
        self.short_room_linear_drop_db, self.short_room_decay_db = short_room_linear_drop_db, short_room_decay_db
        self.short_room_fall_db = short_room_fall_db
        self._mic_prev = -math.inf  # the last frame's mic (dB)
        self.loud_db, self.learn_frames = loud_db, learn_frames
        # AEC3's ERLE and the linear canceller's on echo alone, slowly averaged (Convergence's average)
        self._aec3 = Convergence(loud_db=loud_db, alpha=alpha)
        self._linear = Convergence(loud_db=loud_db, alpha=alpha)
        self.learnt = 0  # echo-alone frames averaged
        self._run = 0
        self._converged = False  # AEC3 was converged as the run began
        # The last frame was double talk by both ERLEs: the caller's convergence meters must not read
        # it as a leak (they would close the gates on the word itself).
        self.double_talk = False

    @property
    def erle(self) -> float | None:
        """AEC3's ERLE on echo alone, slowly averaged (dB; None before any such frame)."""
        return self._aec3.erle

    @property
    def linear_erle(self) -> float | None:
        """The same for the linear canceller (dB)."""
        return self._linear.erle

    def end_run(self) -> None:
        """A pause or the end of the reply: the next run starts afresh (the averages stay)."""
        self._run = 0
        self.double_talk = False

    def update(self, mic_db: float, out_db: float, linear_db: float, echo: bool, converged: bool,
               leak: Callable[[], bool] | None = None, room_decay_db: float = 0.0) -> bool:
        """One frame (see the class doc); True on the frame that completes a run. leak: asked only
        on a frame whose ERLEs both fell, True where the linear canceller's residual has the echo's
        spectral shape (ResidualGate.echo_like), follows the reference (RefCoherence) or has been over
        the mic in its run (ResidualGate.adding): the cancellers leaking a changed echo path, not
        double talk; such a frame teaches the averages as echo alone does.
        room_decay_db: the room's decay as measured so far (dB per 10 ms frame, EchoGate.short_room_db;
        0: not known, a long room): from short_room_decay_db the linear canceller's ERLE need fall only
        short_room_linear_drop_db, on a frame whose mic did not fall short_room_fall_db since the last
        frame given (call it on every frame: it keeps the mic's last level)."""
        self.double_talk = False
        falling, self._mic_prev = mic_db < self._mic_prev - self.short_room_fall_db, mic_db
        if mic_db < self.loud_db or not math.isfinite(out_db) or not math.isfinite(linear_db):
            self._run = 0
            return False
        att, lin = mic_db - out_db, mic_db - linear_db
        short = room_decay_db >= self.short_room_decay_db and not falling
        linear_drop = self.short_room_linear_drop_db if short else self.linear_drop_db
        if (self.erle is not None and self.linear_erle is not None and self.learnt >= self.learn_frames
                and att < self.erle - self.drop_db and lin < self.linear_erle - linear_drop
                and out_db < linear_db + self.aec3_leak_db and (leak is None or not leak())):
            self.double_talk = True
            if self._run == 0:
                self._converged = converged
            self._run += 1
            return self._run == self.frames and self._converged
        self._run = 0
        if echo:
            self._aec3.update(mic_db, out_db, echo=True)
            self._linear.update(mic_db, linear_db, echo=True)
            self.learnt += 1
        return False
