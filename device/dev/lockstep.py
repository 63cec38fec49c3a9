"""Simulate's virtual time: the mic sample clock drives the local server, in lockstep.

Without this, `voxbox simulate` against its own server is a race between two clocks: the
server paces its reply on the wall clock while the agent reads IN.wav on the sample clock, so
on a loaded machine the reply starts later in IN.wav and an interruption can land before it
(3 of 21 demo runs once missed the barge-in). Here the server sleeps on `SimClock` (seconds of
IN.wav), and before each mic block is handed to the agent, `Lockstep.settle()` waits until
the link and the server have nothing in flight: every message written has been read and
handled on the other side, and every server task is parked on the clock. A run is then a
function of its inputs, whatever the machine is doing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

QUIET_ROUNDS = 8
STUCK_S = 20.0  # wall seconds without any progress in one settle before the run goes on regardless


class WallClock:
    """The server's clock in `voxbox serve`: real seconds."""

    def hold(self) -> None:
        """A server task starts running (no-op on the wall clock)."""

    def release(self) -> None:
        """That task ended (no-op)."""

    async def sleep(self, seconds: float, cancel: asyncio.Event) -> None:
        """Sleep `seconds`, or until `cancel` is set."""
        try:
            await asyncio.wait_for(cancel.wait(), seconds)
        except asyncio.TimeoutError:
            pass


class SimClock(WallClock):
    """Seconds of IN.wav. `advance(now)` wakes the sleepers that are due; `busy` counts server
    tasks that hold the clock and are not parked in `sleep` (0 = the server is waiting on time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = 0
        self._seq = itertools.count()
        self._due: list[tuple[float, int, asyncio.Future[None]]] = []

    def hold(self) -> None:
        self.busy += 1

    def release(self) -> None:
        self.busy -= 1

    async def sleep(self, seconds: float, cancel: asyncio.Event) -> None:
        if cancel.is_set():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._due, (self.now + seconds, next(self._seq), fut))
        waiter: asyncio.Future[Any] = asyncio.ensure_future(cancel.wait())
        both: set[asyncio.Future[Any]] = {fut, waiter}
        self.busy -= 1
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not fut.done():  # not woken by advance(), which counts the task busy at once
                self.busy += 1
            waiter.cancel()
            if not fut.done():
                fut.cancel()

    def advance(self, now: float) -> None:
        self.now = now
        while self._due and self._due[0][0] <= now + 1e-9:
            _, _, fut = heapq.heappop(self._due)
            if not fut.done():
                # Busy from this instant, not from when the task next runs: settle() must not
                # see a quiet moment between the wake-up and the task's next message.
                self.busy += 1
                fut.set_result(None)


class Lockstep:
    """Holds the mic clock until the agent's link and the local server are quiet.

    `quiet()` says whether both sides have nothing in flight (built by simulate, which knows
    the concrete client and server); `progress()` is any value that changes while messages
    move. `settle(now)` advances the clock to `now` seconds and waits for quiet; only when
    nothing has moved for STUCK_S of wall time (a message lost with a dropped connection) does
    it go on, count it and leave lockstep for the rest of the run. A busy machine only waits longer.
    """

    def __init__(self, clock: SimClock, quiet: Callable[[], bool], progress: Callable[[], object]) -> None:
        self.clock = clock
        self.quiet = quiet
        self.progress = progress
        self.timeouts = 0

    async def settle(self, now: float) -> None:
        self.clock.advance(now)
        if self.timeouts:  # it did not settle once (a message lost with a dropped connection):
            for _ in range(4):  # from then on, give the loop a few turns and go on
                await asyncio.sleep(0)
            return
        end = time.monotonic() + STUCK_S
        seen = self.progress()
        quiet_rounds = 0
        # Several quiet loop turns in a row: a message or a wake-up can take a few callback hops
        # (read, hand over, resume) before it shows in a counter; each hop is one turn.
        while quiet_rounds < QUIET_ROUNDS:
            await asyncio.sleep(0)
            quiet_rounds = quiet_rounds + 1 if self.quiet() else 0
            if quiet_rounds:
                continue
            now_seen = self.progress()
            if now_seen != seen:
                seen, end = now_seen, time.monotonic() + STUCK_S
            elif time.monotonic() > end:
                self.timeouts += 1
                log.warning("simulate: the link made no progress for %.0f s at t=%.2f s: lockstep off, "
                            "the rest of this run is paced by the wall clock", STUCK_S, now)
                return
