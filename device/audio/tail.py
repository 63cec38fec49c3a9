"""How fast the room's echo dies away, measured in the reply's own gaps (dB per 10 ms frame).

When the reference falls silent (a gap between words, the end of a reply), the microphone
still holds the room's reverberant tail of what was played. `TailMeter` fits a line to the
mic's power above its noise floor in dB over each such gap: from its peak within the echo's
lag to where it falls to 10 dB above the floor, the reference resumes, or a new sound rises
(3 dB over the tail's lowest frame so far: the user, not the room; the fit ends at that
frame). A gap whose tail spans at least `min_frames` frames and `min_drop_db` counts; so does
one that falls that far to the floor sooner, or whose echo never rises 10 dB over the floor
after a loud frame (a dry room, or a speaker the mic barely hears: `fastest`). Where the echo
is already under 10 dB over the floor when it would arrive, the slope is how fast the mic fell
there from its peak in the reply's last frames, if that peak was 30 dB over the floor and the
fall at least `dry_db` (`_fell`): speech fades into its gaps, and in a dry room its echo fades
with it. The room's decay is the slow end (`quantile`) of the last `keep` gaps' slopes,
clipped to [slowest, fastest] dB per frame. A pause of the reply that nothing confirmed
(`echo_only`) is a gap the mic held only the room's tail in: it is measured whole, and counts
on its own.

The echo gate (device/audio/echogate.py) lets its bound decay at this rate where it is slower
than its own: a room whose tail outlasts 2.5 dB per frame (RT60 240 ms) would otherwise have
that tail called the user's speech once the speaker stops (bench: RT60 500 ms, the reply
paused), and the barge-in's pause waits for it (device/conversation/speaking.py).

RT60 (ms) = 60 dB / rate (dB per frame) x 10 ms. Inputs are band-summed powers, any unit.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class TailMeter:
    # A pause measured whole (echo_only): the tail's peak is looked for this many frames past the
    # echo's lag (the last of the reply still on its way: the player's buffer), and a rise this far
    # over its lowest frame is a new sound that ends it (a voice's tail swings 4-5 dB; bench).
    IN_FLIGHT = 6
    NEW_SOUND_DB = 6.0
    TRACE = 100  # frames of a gap kept for it (a pause is 30)
    # Frames of the mic kept for _fell: the last ones the reference played, and the gap's first.
    RECENT = 16
    # A room's reverberation sits up to ~20 dB under its direct sound (see _fell).
    REVERB_DB = 20.0

    def __init__(self, *, keep: int = 32, need: int = 2, quantile: float = 0.25, min_frames: int = 5,
                 min_drop_db: float = 10.0, slowest: float = 0.6, fastest: float = 6.0,
                 dry_db: float = 2.5) -> None:
        self.slopes: deque[float] = deque(maxlen=keep)  # dB per frame, one per measured gap
        self.need = need
        self.quantile = quantile
        self.min_frames = min_frames
        self.min_drop = min_drop_db
        self.slowest, self.fastest = slowest, fastest
        self.dry_db = dry_db  # _fell's readings count from this fast on (RT60 240 ms, the echo gate's own)
        self._quiet = -1  # frames since the reference fell silent (-1: it is playing)
        self._peak = 0.0
        self._db: list[float] = []  # the mic above its floor (dB), from the peak on
        self._low = 0  # the index of its lowest frame
        self._was_loud = self._abrupt = False  # the reference before this gap was loud
        self._recent: deque[float] = deque(maxlen=self.RECENT)  # the mic over its floor (power ratio), last frames
        self._lag = 3  # the echo's lag behind the reference, frames (the last push's)
        self._echo_only = False  # the gap open now was a pause that nothing confirmed, measured whole
        self._gap_slopes = 0  # slopes recorded since the reference last fell silent
        # the mic over its floor (power, in dB only when echo_only fits it), each frame of the gap (None: < 10 dB)
        self._trace: list[float | None] = []
        # The room's decay in dB per frame (the slow end of the gaps measured); None before `need` gaps.
        self.rate_db: float | None = None
        # ... and as the linear canceller's filter last read it (filter_reading; None: not read).
        self.filter_db: float | None = None

    def filter_reading(self, slope: float | None) -> None:
        """The room's decay read off the linear canceller's converged filter (decay_from_response;
        dB per frame, None: nothing read), clipped to [slowest, fastest]. Recorded voices fade into
        their gaps about as fast as a room's tail falls, so their gaps rarely measure it (bench,
        human voices: 0-1 of `need` in 12 first replies of 11 s), while the filter's decay read the
        bench's rooms after one reply (RT60 250 ms: 260; 500 ms: 471-485)."""
        if slope is not None:
            self.filter_db = float(np.clip(slope, self.slowest, self.fastest))

    def push(self, ref_quiet: bool, mic: float, floor: float, lag: int, ref_loud: bool = False) -> bool:
        """One frame: is the reference silent, the mic's and its noise floor's power (band sums), the
        echo's lag behind the reference in frames (the tail's peak is looked for in lag + 2), and is
        the reference loud (a gap right after a loud frame whose echo never rises 10 dB over the
        floor is a room with no tail to speak of, or a speaker the mic does not hear: fast).
        True when this frame changed `rate_db`."""
        self._recent.append(max(mic - floor, 1e-12) / max(floor, 1e-12))  # in dB only when _fell reads it
        self._lag = lag
        if not ref_quiet:
            changed = self._end()
            self._quiet = -1
            self._was_loud = ref_loud
            return changed
        if self._quiet < 0:
            self._quiet, self._peak, self._db, self._low = 0, 0.0, [], 0
            self._abrupt, self._was_loud = self._was_loud, False
            self._echo_only, self._gap_slopes, self._trace = False, 0, []
        self._quiet += 1
        excess = mic - floor
        if self._echo_only:
            return False  # measured whole already (echo_only)
        if len(self._trace) < self.TRACE:
            self._trace.append(excess if excess >= 10 * floor else None)
        if self._quiet <= lag + 2:
            if excess > self._peak:
                self._peak, self._low = excess, 0
                self._db = [10 * np.log10(excess)] if excess >= 10 * floor else []  # the echo is still arriving
            elif self._db and excess >= 10 * floor:
                self._append(10 * np.log10(excess))
            if self._quiet == lag + 2 and not self._db:
                if self._abrupt:
                    return self._record(self.fastest)
                fell = self._fell()
                if fell is not None:
                    return self._record(fell)
            return False
        if not self._db:
            return False
        if excess < 10 * floor:
            return self._end(10 * np.log10(10 * floor))  # down to 10 dB above the floor: measured
        db = 10 * np.log10(excess)
        if db > self._db[self._low] + 3.0:
            del self._db[self._low + 1 :]  # a new sound: the tail ended at its lowest frame
            return self._end()
        self._append(db)
        return False

    @property
    def settled(self) -> bool:
        """The reference has been silent longer than the echo's lag and the player's buffer (IN_FLIGHT):
        all the mic holds of the reply now is the room's tail."""
        return self._quiet > self._lag + self.IN_FLIGHT

    def _fell(self) -> float | None:
        """A gap whose echo is under 10 dB over the floor by the time it would arrive: the rate at
        which the mic fell there from its peak in the last RECENT frames, if that peak was
        REVERB_DB over those 10 dB and the fall at least dry_db (dB per frame; None: nothing to
        tell by). The reference was still fading as it fell, so the room's tail dies at least this
        fast: the usual gap of a reply in a dry room, where the echo is gone before the reference
        is quiet."""
        if not self._recent:
            return None
        db = 10 * np.log10(np.asarray(self._recent))
        top = len(db) - 1 - int(np.argmax(db[::-1]))  # its last frame at the peak
        # A room's reverberation sits up to ~20 dB under its direct sound: from a quieter peak, a
        # long room's tail can be under the 10 dB already and only the direct sound seen falling.
        if db[top] < 10.0 + self.REVERB_DB:
            return None
        after = np.flatnonzero(db[top + 1 :] < 10.0)
        if not len(after):
            return None
        slope = float(db[top] - 10.0) / (int(after[0]) + 1)
        # Slower than a dry room's says nothing: the voice fading, not the room (bench, recorded
        # voices with no room: 1.6 dB per frame, which held the gate's bound up through the reply).
        return min(self.fastest, slope) if slope >= self.dry_db else None

    def _append(self, db: float) -> None:
        if db < self._db[self._low]:
            self._low = len(self._db)
        self._db.append(db)

    def echo_only(self) -> bool:
        """The reference's silence now is the reply's pause, and nothing in it confirmed a barge-in:
        the mic held the room's tail alone, so the whole pause is one measurement (a reply in a voice
        with few clean gaps gives them late or never: bench, RT60 500 ms, recorded voices, 14 of 30
        first replies had not measured two gaps by their end). Its slope is the room's decay at
        once, without waiting for `need` gaps, in place of what the gap's first fall gave: a line
        fitted from the tail's peak (within the echo still arriving, lag + IN_FLIGHT frames) to
        where it reaches 10 dB over the floor, or a sound rises NEW_SOUND_DB over its lowest.
        Fitted whole: the tail of a voice swings a few dB frame to frame, and the fall from one
        swing's top to the next one's bottom is steeper than the room's (bench, RT60 500 ms:
        falls between swings read 2.0-3.3 dB per frame where the room's is 1.2). Call it before
        the reference resumes. True when this changed `rate_db`."""
        if self._quiet < 0 or self._echo_only:
            return False
        slope = self._whole()
        if slope is None:
            return False
        for _ in range(self._gap_slopes):  # the gap's first fall, measured on its own: replaced
            self.slopes.pop()
        self._db, self._low, self._peak = [], 0, 0.0
        self._echo_only = True
        self.slopes.append(slope)
        self._gap_slopes = 1
        return self._set_rate()

    def _whole(self) -> float | None:
        """The slope (dB per frame) of a line fitted to the gap's whole tail (see echo_only); None
        when it spans fewer than min_frames frames or falls less than min_drop_db."""
        trace = [None if p is None else 10 * float(np.log10(p)) for p in self._trace]
        head = [v for v in trace[: self._lag + self.IN_FLIGHT] if v is not None]
        if not head:
            return None
        k = trace.index(max(head))
        tail: list[float] = []
        for v in trace[k:]:
            if v is None or (tail and v > min(tail) + self.NEW_SOUND_DB):
                break
            tail.append(v)
        if len(tail) < self.min_frames or tail[0] - min(tail) < self.min_drop:
            return None
        slope = -float(np.polyfit(np.arange(len(tail)), tail, 1)[0])
        return slope if slope > 0 else None

    def abort(self) -> None:
        """Drop the gap being measured, if any (the mic holds a sound of ours that is not the reply's)."""
        self._db, self._low, self._peak, self._quiet, self._was_loud = [], 0, 0.0, -1, False
        self._echo_only, self._trace = False, []
        self._recent.clear()  # frames around our sound are not in step with the reply's

    def _end(self, reached: float | None = None) -> bool:
        """Close the gap being measured: keep its slope if the tail was long and loud enough, or
        fell from `min_drop_db` over the floor to it (`reached`, dB) sooner: a fast room (or none)."""
        db, self._db = self._db, []
        self._peak, self._low = 0.0, 0
        if not db:
            return False
        if len(db) < self.min_frames:
            if reached is None or db[0] - reached < self.min_drop:
                return False
            slope = (db[0] - reached) / len(db)  # it fell at least this fast
        elif db[0] - min(db) < self.min_drop:
            return False
        else:
            slope = -float(np.polyfit(np.arange(len(db)), db, 1)[0])
        if slope <= 0:
            return False
        return self._record(slope)

    def _record(self, slope: float) -> bool:
        """Keep one gap's slope (dB per frame); True when `rate_db` changed."""
        self.slopes.append(slope)
        self._gap_slopes += 1
        if len(self.slopes) < self.need:
            return False
        return self._set_rate()

    def _set_rate(self) -> bool:
        self.rate_db = float(np.clip(np.quantile(np.asarray(self.slopes), self.quantile), self.slowest, self.fastest))
        return True


class TailCeiling:
    """The most the room's tail can hold in the mic now, once the reference is silent and its echo
    has arrived (TailMeter.settled), per 10 ms frame, and whether the mic stands over it.

    From then on the tail falls, at the room's decay or faster, so it can hold no more than its lowest
    level since, decayed at that rate to this frame. A mic `over_db` over that ceiling holds something
    new: a voice. Unlike the echo gate's bound, the ceiling starts at what the mic really held, not at
    the reply's loudest echo, so a voice holding its level tells from a tail falling at a long room's
    rate within a few frames (bench, cold, human_talk_103: "stick" 12 dB under the reply held 49-56 dB
    in the pause while the gate's bound still waited out the reply's tail; confirmed 0.14 s into it).
    A tail swings about its fall frame to frame, though (bench, RT60 500 ms: 4-5 dB, the rise after a
    dip lasting 3-4 frames), so the level tested is the mean power of the last `span` frames, and
    over_db is above such a swing.

    The lowest level is the mean of the last `anchor_span` frames (those before the echo all arrived
    included): the tail of a voiced syllable can dip 13 dB for one frame, its few harmonics cancelling,
    and a ceiling started at that dip had the tail's return stand over it (bench, first start,
    human_talk_113: allison's reply at gain 1.0, RT60 250 ms; in a pause 0.65 s into it the mic fell
    68.8 -> 55.8 dB and rose to 63.1 dB three frames later: 5 frames over, a false barge-in). The
    cost: a word that holds its level only a few frames past the pause's echo stands over the ceiling
    later or not at all (human_talk_115, cold: "shoe" 12 dB under the reply, 48-50 dB, caught with
    anchor_span 2, missed with 4)."""

    def __init__(self, over_db: float = 5.0, span: int = 2, anchor_span: int = 4) -> None:
        self.over_db = over_db
        self._span = span
        self._recent: deque[float] = deque(maxlen=max(span, anchor_span))  # the last frames' powers (any unit)
        self.ceiling = np.inf  # dB, as the levels pushed; inf: not settled yet

    def reset(self) -> None:
        """A new pause (or none): nothing known of its tail."""
        self.ceiling = np.inf
        self._recent.clear()

    def push(self, level_db: float, decay_db: float, settled: bool) -> bool:
        """One frame: the mic's level (dB), the room's decay (dB per frame; the slowest it may be, for
        a ceiling that never falls under the tail) and whether the echo has all arrived. True: the mic,
        over the last `span` frames, stands over_db or more over the ceiling (False until settled)."""
        self._recent.append(10.0 ** (level_db / 10.0))
        if not settled:
            return False
        recent = list(self._recent)[-self._span:]
        level = 10.0 * float(np.log10(sum(recent) / len(recent) + 1e-30))
        anchor = 10.0 * float(np.log10(sum(self._recent) / len(self._recent) + 1e-30))
        cap = self.ceiling - decay_db
        self.ceiling = min(cap, anchor)
        return bool(level >= cap + self.over_db)


def decay_from_response(h: np.ndarray, frame: int = 160) -> float | None:
    """The room's decay in dB per `frame` samples, from an echo path's impulse response `h` (float
    [n], any scale; device/audio/speex.py LinearCanceller.impulse_response): Schroeder's backward-
    integrated energy from its strongest sample on, the time it takes to fall from -5 to -15 dB
    (T10), as a rate. None if it never falls 15 dB: a filter that has learnt no echo path, or a
    room whose tail outlasts the filter. Not T20: the filter ends at 256 ms, and the energy it
    cannot hold steepens the curve's end (bench, RT60 500 ms rooms: T20 read 415-467 ms, T10
    471-485; a voice with no room at all, codec2: T20 238 ms, T10 2 ms)."""
    e = np.square(np.asarray(h, dtype=np.float64))
    if not len(e) or not np.isfinite(e).all() or e.max() <= 0.0:
        return None
    edc = np.cumsum(e[int(np.argmax(e)) :][::-1])[::-1]
    db = 10.0 * np.log10(edc / edc[0] + 1e-30)
    if db[-1] > -15.0:
        return None
    span = int(np.argmax(db <= -15.0)) - int(np.argmax(db <= -5.0))
    return 10.0 * frame / max(span, 1)
