"""Audio trouble counters for the user: a journal line at most once a minute while they grow.

The sound card's xruns, dropped mic blocks (overflows) and callback errors (PortAudio's
thread, `PortStats`) and the reply's underruns (the agent) only matter to a user if they
are seen; logged on every occurrence they would flood the journal. `CounterWatch.check`
is pure apart from its clock (injected; tests use a fake one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

WARN_EVERY_S = 60.0


class CounterWatch:
    """Says when counters grew, at most once every `every_s` seconds of `clock`."""

    def __init__(self, every_s: float = WARN_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._reported: dict[str, int] = {}  # the counts the last line said
        self._last: float | None = None  # clock at the last line

    def check(self, counts: Mapping[str, int]) -> str | None:
        """A line to log ("xruns 3 (+2), underruns 1 (+1)") if any count grew since the last line
        and that line is `every_s` old (or there was none); else None. Counts never shrink."""
        grown = {k: v - self._reported.get(k, 0) for k, v in counts.items() if v > self._reported.get(k, 0)}
        if not grown:
            return None
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return None
        self._last = now
        self._reported = dict(counts)
        return ", ".join(f"{k} {counts[k]} (+{d})" for k, d in grown.items())
