"""Timers and alarms that ring locally, on a clock passed in.

Every call takes `t`, seconds on the caller's clock (the mic sample clock in the agent, so a
timer in `simulate` rings at the right sample of OUT.wav). `origin_wall` is the wall-clock time
(epoch seconds) at t = 0; due times are stored as wall-clock epochs, so after a restart (a new
origin) a pending timer is still due at the same moment of the day, and one that fell due while
the device was down rings at once.

Ringing: `due(t_until)` moves the timers due by then to `ringing` (the caller starts the sound
at each one's `due_t`); `stop(t, reason)` ends all ringing (a button, the `stop` tool, speech);
`expired(t)` ends the ringing older than `ring_max_s`. Persistence is `to_json`/`from_json`
(the caller writes the state file off the audio path; `dirty` says when).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("timer", "alarm")


class TimerRefused(Exception):
    """A timer the device will not set; the text is a reason the model can say to the user."""


@dataclass
class Timer:
    id: str  # "t1", "t2", ... unique within the state
    kind: str  # "timer" | "alarm"
    label: str
    due_wall: float  # epoch seconds
    duration_s: float  # as asked (timers); 0 for alarms


@dataclass(frozen=True)
class TimerEvent:
    """What to log (timeline `timer`): action set | ring | stop | cancel."""

    action: str
    timer: Timer
    t: float  # the moment on the caller's clock (for `ring`: the due moment)
    reason: str = ""  # on stop: button | tool | speech | ring_max


class Timers:
    def __init__(self, origin_wall: float, *, max_s: float = 86400.0, ring_max_s: float = 900.0,
                 max_timers: int = 20) -> None:
        self.origin_wall = origin_wall
        self.max_s = max_s
        self.ring_max_s = ring_max_s
        self.max_timers = max_timers
        self.pending: dict[str, Timer] = {}
        self.ringing: dict[str, tuple[Timer, float]] = {}  # id -> (timer, ring start t)
        self.dirty = False  # changed since the last save
        self._ids = itertools.count(1)

    # ---------------------------------------------------------------- clock
    def t_of(self, wall: float) -> float:
        """The caller's clock reading at wall-clock time `wall`."""
        return wall - self.origin_wall

    def wall_of(self, t: float) -> float:
        return self.origin_wall + t

    def local_time(self, t: float) -> dt.datetime:
        """The local date and time at `t` (system time zone)."""
        return dt.datetime.fromtimestamp(self.wall_of(t)).astimezone()

    # ---------------------------------------------------------------- set / cancel
    def _new_id(self) -> str:
        while True:
            tid = f"t{next(self._ids)}"
            if tid not in self.pending and tid not in self.ringing:
                return tid

    def _add(self, kind: str, label: str, due_wall: float, duration_s: float, t: float) -> TimerEvent:
        if len(self.pending) >= self.max_timers:
            raise TimerRefused(f"there are already {len(self.pending)} timers; cancel one first")
        timer = Timer(self._new_id(), kind, label.strip(), due_wall, duration_s)
        self.pending[timer.id] = timer
        self.dirty = True
        return TimerEvent("set", timer, t)

    def set_timer(self, t: float, duration_s: float, label: str = "") -> TimerEvent:
        """A timer ringing `duration_s` seconds after `t`. Raises TimerRefused."""
        if not duration_s > 0:
            raise TimerRefused("a timer needs a duration of more than zero seconds")
        if duration_s > self.max_s:
            raise TimerRefused(f"the longest timer I can set is {_spoken_duration(self.max_s)}")
        return self._add("timer", label, self.wall_of(t) + duration_s, float(duration_s), t)

    def set_alarm(self, t: float, hour: int, minute: int, label: str = "") -> TimerEvent:
        """An alarm at the next local hour:minute after `t` (today, else tomorrow)."""
        now = self.local_time(t)
        due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if due <= now:
            # Tomorrow at the same wall time (a DST change in between shifts it by the hour, as a clock would).
            due = (due.replace(tzinfo=None) + dt.timedelta(days=1)).astimezone()
        return self._add("alarm", label, due.timestamp(), 0.0, t)

    def find(self, id: str = "", label: str = "") -> list[Timer]:
        """Pending timers by id, else by label (case-insensitive); [] if none match."""
        if id:
            return [self.pending[id]] if id in self.pending else []
        want = label.strip().lower()
        return [x for x in self.pending.values() if want and x.label.lower() == want]

    def cancel(self, t: float, id: str = "", label: str = "") -> list[TimerEvent]:
        events = [TimerEvent("cancel", self.pending.pop(x.id), t) for x in self.find(id, label)]
        self.dirty = self.dirty or bool(events)
        return events

    def due_t(self, timer: Timer) -> float:
        return self.t_of(timer.due_wall)

    def remaining_s(self, timer: Timer, t: float) -> float:
        return max(0.0, self.due_t(timer) - t)

    # ---------------------------------------------------------------- ringing
    def due(self, t_until: float) -> list[TimerEvent]:
        """Timers due at or before `t_until` start ringing (each event's t is its due moment)."""
        events = []
        for timer in sorted(self.pending.values(), key=lambda x: x.due_wall):
            if self.due_t(timer) <= t_until:
                del self.pending[timer.id]
                self.ringing[timer.id] = (timer, self.due_t(timer))
                events.append(TimerEvent("ring", timer, self.due_t(timer)))
        self.dirty = self.dirty or bool(events)
        return events

    def stop(self, t: float, reason: str) -> list[TimerEvent]:
        """End every ringing timer."""
        events = [TimerEvent("stop", timer, t, reason) for timer, _ in self.ringing.values()]
        self.ringing.clear()
        return events

    def expired(self, t: float) -> list[TimerEvent]:
        """Stop the ringing that has lasted ring_max_s."""
        gone = [tid for tid, (_, start) in self.ringing.items() if t - start >= self.ring_max_s]
        return [TimerEvent("stop", self.ringing.pop(tid)[0], t, "ring_max") for tid in gone]

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "timers": [asdict(x) for x in self.pending.values()]}

    def load_json(self, data: Any) -> str | None:
        """Take the pending timers of a state file; a problem (one line) if it is not one of ours."""
        try:
            items = data["timers"]
            timers = [Timer(str(d["id"]), str(d["kind"]), str(d["label"]), float(d["due_wall"]),
                            float(d["duration_s"])) for d in items]
        except (TypeError, KeyError, ValueError) as exc:
            return f"not a timer state ({exc.__class__.__name__}: {str(exc)[:60]})"
        bad = [x.id for x in timers if x.kind not in KINDS]
        if bad:
            return f"timer {bad[0]}: unknown kind"
        self.pending = {x.id: x for x in timers}
        return None


def _spoken_duration(seconds: float) -> str:
    s = int(seconds)
    if s % 3600 == 0:
        return f"{s // 3600} hours" if s != 3600 else "one hour"
    if s % 60 == 0:
        return f"{s // 60} minutes"
    return f"{s} seconds"
