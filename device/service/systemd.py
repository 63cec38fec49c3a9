"""systemd integration without extra dependencies: sd_notify, the watchdog, signals.

    service.ready()                 # READY=1 once audio runs and the link is up (Type=notify)
    service.status("listening")     # STATUS=... shown by `systemctl status`
    service.extend_timeout(30, "waiting for audio")   # EXTEND_TIMEOUT_USEC: not yet ready, still alive
    wd = service.Watchdog()         # WATCHDOG_USEC/WATCHDOG_PID from systemd (WatchdogSec=)
    wd.frame()                      # the audio loop, each frame: pings at most every interval/2
    service.stopping()              # STOPPING=1

Notifications are AF_UNIX datagrams to $NOTIFY_SOCKET (a path, or '@name' for
the abstract namespace). Outside systemd (no NOTIFY_SOCKET) every call is a
no-op returning False; a failed send is logged once and never raises.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("voxbox.service")

_warned = False


def _address(env: Mapping[str, str]) -> str | bytes | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path or not (path.startswith("/") or path.startswith("@")):
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `fields` ("READY=1", "STATUS=...") to systemd; True if sent."""
    global _warned
    addr = _address(os.environ if env is None else env)
    if addr is None:
        return False
    msg = "\n".join(fields).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # never stall the audio thread on a full queue
            sock.sendto(msg, addr)
        return True
    except OSError as exc:
        if not _warned:
            log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET") if env is None else
                        env.get("NOTIFY_SOCKET"), exc)
            _warned = True
        return False


def ready(status: str | None = None, *, env: Mapping[str, str] | None = None) -> bool:
    fields = ["READY=1", f"MAINPID={os.getpid()}"]
    if status:
        fields.append(f"STATUS={_one_line(status)}")
    return notify(*fields, env=env)


def status(text: str, *, env: Mapping[str, str] | None = None) -> bool:
    return notify(f"STATUS={_one_line(text)}", env=env)


def extend_timeout(seconds: float, status: str | None = None, *, env: Mapping[str, str] | None = None) -> bool:
    """EXTEND_TIMEOUT_USEC: "give me `seconds` more from now" before READY=1 (sd_notify(3), systemd 236+).

    Sent again before it runs out, it keeps a start that waits for something (a sound card) from
    hitting TimeoutStartSec= and being killed and restarted in a loop.
    """
    fields = [f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}"] + ([f"STATUS={_one_line(status)}"] if status else [])
    return notify(*fields, env=env)


def watchdog_ping(*, env: Mapping[str, str] | None = None) -> bool:
    return notify("WATCHDOG=1", env=env)


def stopping(status: str | None = None, *, env: Mapping[str, str] | None = None) -> bool:
    fields = ["STOPPING=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
    return notify(*fields, env=env)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """systemd's watchdog timeout in seconds for this process, None if not enabled.

    WATCHDOG_USEC is the timeout; WATCHDOG_PID, when set, must be our pid
    (otherwise the variables were inherited from a parent and are not for us).
    """
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000


class Watchdog:
    """Pings the systemd watchdog from the audio loop, only while it is alive.

    Call `frame()` once per audio frame (from any thread; it takes a few
    hundred nanoseconds when no ping is due). A ping is sent at most every
    interval/2, and only if `healthy()` (optional: e.g. "the event loop ran
    recently") agrees. If the audio loop stalls, frame() is no longer called,
    pings stop, and systemd restarts the service after WatchdogSec.
    """

    def __init__(self, interval: float | None = ..., *,  # type: ignore[assignment]
                 healthy: Callable[[], bool] | None = None,
                 send: Callable[[], object] = watchdog_ping,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = watchdog_interval() if interval is ... else interval
        self.enabled = bool(self.interval)
        self.period = self.interval / 2 if self.interval else float("inf")
        self.healthy = healthy
        self.pings = 0
        self._send = send
        self._clock = clock
        self._last = float("-inf")
        self._lock = threading.Lock()

    def frame(self) -> bool:
        """Note one audio frame; True if a ping was sent now."""
        if not self.enabled:
            return False
        now = self._clock()
        if now - self._last < self.period:
            return False
        with self._lock:
            if now - self._last < self.period:
                return False
            if self.healthy is not None and not self.healthy():
                return False
            self._last = now
            self.pings += 1
        self._send()
        return True


class Heartbeat:
    """`healthy()` for a Watchdog: true while `beat()` was called within `max_age` seconds.

    Beat it from the asyncio loop (e.g. every second from a small task) so a
    wedged event loop stops the pings even though audio frames still flow.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def __call__(self) -> bool:
        return self._clock() - self._last <= self.max_age

    async def run(self, every: float = 1.0) -> None:
        """Beat every `every` seconds until cancelled."""
        while True:
            self.beat()
            await asyncio.sleep(every)


class ShutdownSignals:
    """SIGTERM/SIGINT for an asyncio program: the first asks for a clean stop, the second forces it.

        async with ShutdownSignals() as stop:
            task = asyncio.create_task(agent.run())
            await stop.wait()          # a signal came: sends STOPPING=1
            await agent.close()

    `on_stop` (optional) is called in the loop on the first signal. A second
    signal raises KeyboardInterrupt out of the event loop. Must be created in
    the main thread's running loop; elsewhere the handlers are not installed
    (logged), and wait() only returns after `request()`.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
                 on_stop: Callable[[], None] | None = None, *, notify_systemd: bool = True) -> None:
        self.signals = signals
        self.on_stop = on_stop
        self.notify_systemd = notify_systemd
        self.received: int | None = None
        self.count = 0
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: list[int] = []

    def install(self) -> ShutdownSignals:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        for sig in self.signals:
            try:
                self._loop.add_signal_handler(sig, self._handle, sig)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.warning("cannot handle %s here: %s", signal.Signals(sig).name, exc)
        return self

    def remove(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for sig in self._installed:
                self._loop.remove_signal_handler(sig)
        self._installed = []

    def request(self, sig: int = signal.SIGTERM) -> None:
        """Ask for a stop as if `sig` had arrived (first time only)."""
        self._handle(sig)

    def _handle(self, sig: int) -> None:
        self.count += 1
        if self.count > 1:
            log.warning("second %s: stopping now", signal.Signals(sig).name)
            raise KeyboardInterrupt
        self.received = sig
        log.info("%s: stopping", signal.Signals(sig).name)
        if self.notify_systemd:
            stopping(f"stopping on {signal.Signals(sig).name}")
        if self._event is not None:
            self._event.set()
        if self.on_stop is not None:
            self.on_stop()

    @property
    def stop_requested(self) -> bool:
        return self.received is not None

    async def wait(self) -> int:
        """Wait for the first signal; returns its number."""
        assert self._event is not None, "install() first"
        await self._event.wait()
        assert self.received is not None
        return self.received

    async def __aenter__(self) -> ShutdownSignals:
        return self.install()

    async def __aexit__(self, *exc: object) -> None:
        self.remove()
