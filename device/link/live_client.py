"""The GPT-Live link: a WebSocket per session, opened when the conversation asks for one.

A `Link` (device/link/base.py) for GPT-Live (protocol in device/link/live_protocol.py). Nothing
is connected while idle (sessions are billed per minute). The agent's dialect sends
`session.start` through `send()`: that opens a connection (with retries while the session is
wanted), sends it first, and holds the uplink audio given meanwhile (bounded) until
`session.started` arrives — then it goes out in order, so nothing said since the wake word is
lost. `session.close` is sent once the session has started (or, before that, simply ends the
attempt); the socket is closed when `session.closed` arrives, or after CLOSE_WAIT_S.

Like RealtimeClient: `send()`/`send_audio()` never block and may be called from any thread
(a deque and a wake-up of the sender); pending audio is bounded (oldest dropped, counted);
problems are one line; the API key is never logged. The link reports `on_connect` once it is
ready (at `run()`, and again when a session starts after a drop) and `on_disconnect` only for a
session lost without `session.closed`. Server events reach the listener as `protocol.ServerEvent`
(audio decoded), the same shape as the Realtime link's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from device.config import RealtimeSettings, Settings, endpoint
from device.link import live_protocol as lp
from device.link.base import LinkFactory, LinkListener, LinkStats
from device.link.client import (
    _backoff,
    _close_reason,
    _describe,
    _safe_url,
    merge_audio,
    open_socket,
    wake_sender,
)
from device.link.protocol import ProtocolError, ServerEvent, encode

log = logging.getLogger(__name__)

PENDING_AUDIO_MIN_S = 10.0  # audio held while a session starts (or restarts): at least this much
CLOSE_WAIT_S = 2.0  # after session.close, how long to wait for session.closed
MAX_PENDING_EVENTS = 1000
RENEW_KEEP_S = 1.0  # audio not sent when a session ends waits this long for a renewal


class LiveClient:
    def __init__(self, url: str, listener: LinkListener, *, api_key: str | None = None,
                 settings: RealtimeSettings | None = None) -> None:
        self.url = url
        self.listener = listener
        self.settings = settings or RealtimeSettings(api="live", url=url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.stats = LinkStats()
        self.last_error = ""
        self.attempts = 0  # connection attempts finished, successful or not
        self.sessions_started = 0
        self.session_id = ""
        self._ready = False  # run() is going (the link can open sessions)
        self._started = False  # the current session is started: audio and events flow
        self._start_event: dict[str, Any] | None = None  # the session.start of the session wanted
        self._closing_session = False
        self._lost = False  # the last session was lost without session.closed (next start: on_connect)
        self._gen = 0  # session generation: a task of an older session must not touch the state
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, Any]] = deque()  # ("audio", bytes) | ("event", dict)
        self._pending_audio = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._ready_ev: asyncio.Event | None = None
        self._closed = False
        self._renew_until = 0.0  # until then, audio kept from an ended session goes to the next one

    # ------------------------------------------------------------------ the Link protocol
    @property
    def connected(self) -> bool:
        """Ready: the link can open a session (no socket is kept while idle)."""
        return self._ready and not self._closed

    def send(self, event: dict[str, Any]) -> None:
        """Queue a client event. `session.start` opens a session; `session.close` ends it."""
        etype = event.get("type")
        if etype == "session.start":
            self._call_soon(self._open, event)
            return
        if etype == "session.close":
            self._call_soon(self._close_session, event)
            return
        with self._lock:
            if self._start_event is None or len(self._queue) >= MAX_PENDING_EVENTS:
                self.stats.dropped_events += 1
                return
            self._queue.append(("event", event))
        self._kick()

    def send_audio(self, pcm16: bytes) -> None:
        """Queue uplink audio (PCM16 24 kHz); dropped when no session is wanted (idle)."""
        if not pcm16:
            return
        pcm = bytes(pcm16[: len(pcm16) & ~1])
        with self._lock:
            # No session wanted (idle): dropped. Just after a session ended, kept for its renewal.
            wanted = self._start_event is not None or time.monotonic() < self._renew_until
            if not wanted or self._closing_session:
                self.stats.dropped_audio_ms += len(pcm) / lp.BYTES_PER_MS
                return
            self._queue.append(("audio", pcm))
            self._pending_audio += len(pcm)
            self._trim_audio_locked()
        self._kick()

    async def run(self) -> None:
        wake, stop, ready = self._loop_objects()
        self._ready = True
        ready.set()
        self._safe(self.listener.on_connect)
        await stop.wait()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._loop_objects()[2].wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def wait_attempted(self, timeout: float) -> bool:
        return await self.wait_connected(timeout)

    async def close(self) -> None:
        """End the link: a started session gets session.close (and a short wait), then all stops."""
        if self._closed:
            return
        if self._started and not self._closing_session:
            self._close_session(lp.session_close())
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=CLOSE_WAIT_S)  # session.closed, or give up
            task.cancel()
        self._closed = True
        self._loop_objects()[1].set()

    @property
    def pending_audio_ms(self) -> float:
        return self._pending_audio / lp.BYTES_PER_MS

    # ------------------------------------------------------------------ internals
    def _loop_objects(self) -> tuple[asyncio.Event, asyncio.Event, asyncio.Event]:
        if self._wake is None or self._stop is None or self._ready_ev is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._wake, self._stop, self._ready_ev = asyncio.Event(), asyncio.Event(), asyncio.Event()
        return self._wake, self._stop, self._ready_ev

    def _call_soon(self, fn: Any, *args: Any) -> None:
        """Run fn on the link's loop: now if we are on it, else thread-safely."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass

    def _kick(self) -> None:
        wake_sender(self._loop, self._loop_thread, self._wake)

    def _trim_audio_locked(self) -> None:
        cap = int(max(self.settings.offline_buffer_s, PENDING_AUDIO_MIN_S) * lp.SAMPLE_RATE) * 2
        while self._pending_audio > cap:
            i = next((k for k, (kind, _) in enumerate(self._queue) if kind == "audio"), None)
            if i is None:
                break
            pcm = self._queue[i][1]
            del self._queue[i]
            self._pending_audio -= len(pcm)
            self.stats.dropped_audio_ms += len(pcm) / lp.BYTES_PER_MS

    def _open(self, start: dict[str, Any]) -> None:
        """A session is wanted: (re)start the session task with this session.start."""
        old = self._task
        self._gen += 1
        with self._lock:
            self._start_event = start
            self._started = False
            self._closing_session = False
            if time.monotonic() > self._renew_until:  # audio kept from a lost session is for its renewal only
                self._queue.clear()
                self._pending_audio = 0
        # A renewal is asked from inside the old session's task (its callbacks): that one ends by itself.
        if old is not None and not old.done() and old is not asyncio.current_task():
            old.cancel()
        if self._closed:
            return
        self._loop_objects()
        self._task = asyncio.get_running_loop().create_task(self._session(self._gen, start), name="live-session")

    def _close_session(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._start_event is None:
                return
            self._closing_session = True
            started = self._started
            # Audio not yet sent belongs to the conversation that is ending: dropped, not sent.
            self._queue = deque(x for x in self._queue if x[0] != "audio")
            self._pending_audio = 0
            if started:
                self._queue.append(("close", event))
        if not started:  # not started yet: give up the attempt, nothing to close on the server
            self._end_session()
        self._kick()

    def _end_session(self) -> None:
        self._gen += 1
        with self._lock:
            self._start_event = None
            self._started = False
            self._closing_session = False
            self._queue.clear()
            self._pending_audio = 0
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    def _current(self, gen: int) -> bool:
        return gen == self._gen

    async def _session(self, gen: int, start: dict[str, Any]) -> None:
        attempt = 0
        while self._current(gen) and not self._closed:
            t0 = time.monotonic()
            try:
                ws = await open_socket(self.url, self._headers, self.settings)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, WebSocketException, ssl.SSLError, ValueError) as exc:
                self.attempts += 1
                self.stats.connect_failures += 1
                reason = _describe(exc)
                if reason != self.last_error:  # one line per distinct problem
                    refused = isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403)
                    hint = " (check OPENAI_API_KEY)" if refused else ""
                    self._safe(self.listener.on_link_error, f"cannot open a GPT-Live session at "
                               f"{_safe_url(self.url)}: {reason}{hint}")
                self.last_error = reason
                if isinstance(exc, (InvalidURI, ValueError)):
                    return
                await asyncio.sleep(_backoff(attempt, self.settings.reconnect_max_s))
                attempt += 1
                continue
            self.attempts += 1
            self.stats.last_connect_s = time.monotonic() - t0
            try:
                await self._serve(gen, ws, start)
            finally:
                await ws.close()
            return

    async def _serve(self, gen: int, ws: ClientConnection, start: dict[str, Any]) -> None:
        try:
            await ws.send(encode(start))
        except ConnectionClosed:
            return self._lose(gen, "connection lost before session.start")
        self._safe(self.listener.on_sent, start)
        sender = asyncio.create_task(self._sender(gen, ws))
        closed = False
        reason = "closed"
        try:
            async for message in ws:
                if not self._current(gen):
                    return
                ev = self._receive(message)
                if ev is None:
                    continue
                if ev.type == "session.started":
                    self.sessions_started += 1
                    self.session_id = str(ev.data.get("session", {}).get("id", ""))
                    if self.sessions_started > 1:
                        self.stats.reconnects += 1
                    with self._lock:
                        self._started = True
                    if self._lost:
                        self._lost = False
                        self._safe(self.listener.on_connect)
                    self._kick()
                if ev.type == "session.closed":
                    closed = True
                    if self._current(gen):
                        self._end_session_state(renewable=ev.data.get("reason") != "close_requested")
                self._safe(self.listener.on_server_event, ev)
                if closed:
                    return
            reason = _close_reason(None, ws)
        except ConnectionClosed as exc:
            reason = _close_reason(exc)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        if not closed:
            self._lose(gen, reason)

    def _end_session_state(self, renewable: bool = True) -> None:
        self._gen += 1  # the session is over: its sender stops, the next session.start starts anew
        self._renew_until = time.monotonic() + RENEW_KEEP_S if renewable else 0.0
        with self._lock:
            self._start_event = None
            self._started = False
            self._closing_session = False
            self._queue = deque(x for x in self._queue if x[0] == "audio")  # kept for a renewal

    def _lose(self, gen: int, reason: str) -> None:
        """The socket went away without session.closed."""
        if not self._current(gen) or self._closed:
            return
        closing = self._closing_session
        self._end_session_state(renewable=not closing)
        if closing:
            return  # we were closing it anyway
        self._lost = True
        log.info("GPT-Live: session lost (%s)", reason)
        self._safe(self.listener.on_disconnect, reason)

    def _receive(self, message: str | bytes) -> ServerEvent | None:
        self.stats.downlink_bytes += len(message)
        try:
            ev = lp.parse_server_event(message)
        except ProtocolError as exc:
            self.stats.errors += 1
            self._safe(self.listener.on_link_error, str(exc))
            return None
        if not ev.known:
            self.stats.unknown_events += 1
        out = lp.server_event(ev)
        if out.audio is not None:
            self.stats.downlink_audio_ms += len(out.audio) / lp.BYTES_PER_MS
        if isinstance(ev, lp.LiveError):
            self.stats.errors += 1
        return out

    def _pop(self) -> tuple[str, Any] | None:
        with self._lock:
            if not self._started or not self._queue:
                return None
            kind, item = self._queue.popleft()
            if kind == "audio":
                item = merge_audio(self._queue, item)
                self._pending_audio -= len(item)
            return kind, item

    async def _sender(self, gen: int, ws: ClientConnection) -> None:
        wake = self._loop_objects()[0]
        while self._current(gen):
            batch = self._pop()
            if batch is None:
                wake.clear()
                if self._started and self._queue:
                    continue
                await wake.wait()
                continue
            kind, item = batch
            event = lp.input_audio_append(item) if kind == "audio" else item
            text = encode(event)
            try:
                await ws.send(text)
            except ConnectionClosed:
                return
            if kind == "audio":
                self.stats.uplink_bytes += len(text)
                self.stats.uplink_audio_ms += len(item) / lp.BYTES_PER_MS
            else:
                self._safe(self.listener.on_sent, event)
            if kind == "close":
                asyncio.get_running_loop().call_later(CLOSE_WAIT_S, self._close_late, gen, ws)

    def _close_late(self, gen: int, ws: ClientConnection) -> None:
        """No session.closed in time after session.close: close the socket ourselves."""
        if self._current(gen):
            self._end_session_state(renewable=False)
            asyncio.get_running_loop().create_task(ws.close())

    def _safe(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a callback bug must not kill the link
            log.exception("GPT-Live: callback %s failed", getattr(fn, "__name__", fn))


def live_link(settings: Settings, url: str | None = None, api_key: str | None = None) -> LinkFactory:
    """The GPT-Live link for an agent (a factory the agent calls with its callbacks).

    url: ws:// or wss:// of `/v1/live/sessions` (default: from the settings); api_key: sent as a
    Bearer token, never logged."""
    target = url or endpoint(settings.realtime)[0]

    def make(listener: LinkListener) -> LiveClient:
        return LiveClient(target, listener, api_key=api_key, settings=settings.realtime)

    return make
