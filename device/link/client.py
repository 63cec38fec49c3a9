"""The persistent WebSocket to the realtime model (asyncio, `websockets`).

One RealtimeClient lives for the whole daemon. `run()` connects, sends the
session.update, receives events and reconnects (capped exponential backoff with
jitter) until `close()`. It also renews the connection before the session ends
(the server's `session.created.session.expires_at`, or `session_max_s` if sooner),
at a quiet moment (no response in flight, no recent uplink audio) if one comes,
else at a hard deadline. An `error` with code `session_expired` ends the session
at once (then reconnect). A new session gets the recent turns again as text items
(history.TurnHistory) and the user's audio that the last one never committed.

`send()` and `send_audio()` never block and may be called from any thread: they
only append to a queue that a sender task drains. Audio waiting to be sent is
bounded (offline: `offline_buffer_s`; online: at least 5 s for a stalled link),
the oldest is dropped first and counted in `stats.dropped_audio_ms`. Events other
than audio given while offline are dropped and counted (`stats.dropped_events`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from device.appliance.tools import missing_tokens, session_tools
from device.config import RealtimeSettings, Settings
from device.link import protocol
from device.link.base import LinkListener, LinkStats
from device.link.history import TurnHistory
from device.link.protocol import ProtocolError, ServerEvent

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a server event larger than this closes the connection (1009)
OPEN_TIMEOUT_S = 10.0
ONLINE_AUDIO_MIN_S = 5.0  # pending-audio bound while connected but the socket is slow
BACKOFF_FIRST_S = 0.1  # the first retry; then doubling (0.1, 0.2, 0.4 … s) up to reconnect_max_s, jitter ×0.5–1
HEALTHY_S = 0.5  # a connection the server answered on and that lived this long resets the backoff
# (a server that accepts and drops at once is retried with a growing delay, not hammered)
QUIET_S = 2.0  # renewal waits for this long without uplink audio or response
MAX_PENDING_EVENTS = 1000
# Uplink audio sent but not yet committed by the server, re-sent to the next session if the
# connection ends (the old session's input buffer died with it): the question asked into a
# link that was already dead.
REPLAY_S = 15.0
EXPIRES_ROUNDING_S = 1.0
MAX_SESSION_S = 24 * 3600.0  # an expires_at further away than this is a wrong clock: ignored


def _noop(*_: Any) -> None:
    pass


class _RedactAuthorization(logging.Filter):
    """Masks the Authorization header in websockets' handshake debug lines (never log the key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "Bearer ***")
        return True


def redacting_logger(name: str) -> logging.Logger:
    """A logger for websockets connections whose debug output never shows the API key."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RedactAuthorization) for f in logger.filters):
        logger.addFilter(_RedactAuthorization())
    return logger


def ssl_context(url: str, ca_file: str = "") -> ssl.SSLContext | None:
    """Certificate-verifying TLS for wss:// (system CAs, or `ca_file`); None for ws://."""
    if not url.startswith("wss://"):
        return None
    return ssl.create_default_context(cafile=ca_file or None)


class RealtimeClient:
    def __init__(self, url: str, session_update: dict, *, api_key: str | None = None,
                 on_event: Callable[[ServerEvent], None] = _noop,
                 on_connect: Callable[[], None] = _noop,
                 on_disconnect: Callable[[str], None] = _noop,
                 on_sent: Callable[[dict], None] = _noop,
                 on_error: Callable[[str], None] = _noop,
                 settings: RealtimeSettings | None = None) -> None:
        self.url = url
        self.session_update = session_update
        self.settings = settings or RealtimeSettings(url=url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.on_event, self.on_connect, self.on_disconnect = on_event, on_connect, on_disconnect
        self.on_sent, self.on_error = on_sent, on_error
        self.stats = LinkStats()
        self.last_error = ""  # the last connection problem, one line
        self.attempts = 0  # connection attempts finished, successful or not
        self.connected = False
        self._ws: ClientConnection | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, Any]] = deque()  # ("audio", bytes) | ("event", dict)
        self._pending_audio = 0  # bytes of audio in _queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._connected_ev: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._responses: set[str] = set()  # responses in flight (for a quiet renewal)
        self._creates = 0  # response.create sent on this connection, not yet answered (created/error)
        self._last_audio = 0.0
        self._renewing = False
        self._answered = False  # the server sent something on this connection
        self._expires: float | None = None  # monotonic time the server ends this session (expires_at)
        self._expired = False  # the server said session_expired on this connection
        self.history = TurnHistory()
        self._replay: deque[bytes] = deque()  # uplink audio sent, not yet committed by the server
        self._replay_bytes = 0
        self._sending = False  # a message is being written (popped from the queue, not yet sent)

    # ------------------------------------------------------------------ public, never blocking

    def send(self, event: dict) -> None:
        with self._lock:
            if event.get("type") == "input_audio_buffer.clear" and not self.connected:
                # The device drops the user's turn: nothing of it is sent to the next session.
                self._drop_turn_audio_locked()
            if not self.connected or len(self._queue) >= MAX_PENDING_EVENTS:
                self.stats.dropped_events += 1
                return
            self._queue.append(("event", event))
        self._kick()

    def send_audio(self, pcm16_24k: bytes) -> None:
        if not pcm16_24k:
            return
        pcm = bytes(pcm16_24k[: len(pcm16_24k) & ~1])
        with self._lock:
            self._last_audio = time.monotonic()
            self._queue.append(("audio", pcm))
            self._pending_audio += len(pcm)
            self._trim_audio_locked()
        self._kick()

    async def wait_connected(self, timeout: float) -> bool:
        ev = self._ensure_loop_objects()[1]
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def wait_attempted(self, timeout: float) -> bool:
        """Wait until the first connection attempt has finished (either way); False on timeout."""
        end = time.monotonic() + timeout
        while self.attempts == 0 and not self._closing:
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        self._closing = True
        self._ensure_loop_objects()[2].set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    @property
    def flushed(self) -> bool:
        """Nothing waits to be sent and nothing is being written (simulate's lockstep asks)."""
        return not self._queue and not self._sending

    @property
    def pending_audio_ms(self) -> float:
        return self._pending_audio / protocol.BYTES_PER_MS

    # ------------------------------------------------------------------ queue internals

    def _audio_cap(self) -> int:
        seconds = self.settings.offline_buffer_s
        if self.connected:
            seconds = max(seconds, ONLINE_AUDIO_MIN_S)
        return int(seconds * protocol.SAMPLE_RATE) * 2

    def _trim_audio_locked(self) -> None:
        """Drop the oldest pending audio beyond the cap (whole chunks, then the head of one)."""
        excess = self._pending_audio - self._audio_cap()
        i = 0
        while excess > 0 and i < len(self._queue):
            kind, pcm = self._queue[i]
            if kind != "audio":
                i += 1
                continue
            if len(pcm) <= excess:
                del self._queue[i]
                cut = len(pcm)
            else:
                cut = excess
                self._queue[i] = ("audio", pcm[cut:])
            excess -= cut
            self._pending_audio -= cut
            self.stats.dropped_audio_ms += cut / protocol.BYTES_PER_MS

    def _went_offline_locked(self) -> None:
        """The connection ended: audio given while it was up joins the uncommitted turn (re-sent
        to the next session, bounded by REPLAY_S); from now on the offline bound applies."""
        for kind, item in self._queue:
            if kind == "audio":
                self._keep_for_replay_locked(item)
            else:
                self.stats.dropped_events += 1
        self._queue = deque()
        self._pending_audio = 0

    def _drop_turn_audio_locked(self) -> None:
        self._queue = deque(e for e in self._queue if e[0] != "audio")
        self._pending_audio = 0
        self._replay.clear()
        self._replay_bytes = 0

    def _kick(self) -> None:
        wake_sender(self._loop, self._loop_thread, self._wake)

    def _ensure_loop_objects(self) -> tuple[asyncio.Event, asyncio.Event, asyncio.Event]:
        if self._wake is None or self._connected_ev is None or self._stop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._wake, self._connected_ev, self._stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        return self._wake, self._connected_ev, self._stop

    def _pop_batch(self) -> tuple[str, Any] | None:
        """Next thing to send; consecutive audio chunks already queued are merged (≤ 200 ms)."""
        with self._lock:
            if not self._queue:
                return None
            kind, item = self._queue.popleft()
            if kind == "audio":
                item = merge_audio(self._queue, item)
                self._pending_audio -= len(item)
            return kind, item

    # ------------------------------------------------------------------ the connection loop

    async def run(self) -> None:
        wake, connected_ev, stop = self._ensure_loop_objects()
        attempt = 0
        first = True
        while not self._closing:
            t0 = time.monotonic()
            try:
                ws = await open_socket(self.url, self._headers, self.settings)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, WebSocketException, ssl.SSLError, ValueError) as exc:
                self.attempts += 1
                self.stats.connect_failures += 1
                reason = _describe(exc)
                # One warning per distinct problem; retries of the same one only at debug level.
                log.log(logging.DEBUG if reason == self.last_error else logging.WARNING,
                        "realtime: cannot connect to %s: %s", _safe_url(self.url), reason)
                self.last_error = reason
                refused = isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403)
                if isinstance(exc, (InvalidURI, ValueError)) or (refused and attempt == 0):
                    hint = " (check OPENAI_API_KEY)" if refused else ""
                    self._safe_call(self.on_error, f"cannot connect to {_safe_url(self.url)}: {reason}{hint}")
                delay = _backoff(attempt, self.settings.reconnect_max_s)
                attempt += 1
                if await _wait_event(stop, delay):
                    break
                continue
            self.attempts += 1
            if self._closing:
                await ws.close()
                break
            self.stats.last_connect_s = time.monotonic() - t0
            if not first:
                self.stats.reconnects += 1
            first = False
            started = time.monotonic()
            reason = await self._serve_connection(ws)
            self._ws = None
            if reason in ("renew", "session expired"):
                attempt = 0  # a session that ended on purpose: the next one at once
                continue
            if self._answered and time.monotonic() - started >= HEALTHY_S:
                attempt = 0  # it was healthy: retry at once (a quick restart is back in ~0.1 s)
            if self._closing:
                break
            delay = _backoff(attempt, self.settings.reconnect_max_s)
            attempt += 1
            if await _wait_event(stop, delay):
                break
        with self._lock:
            self.connected = False
        connected_ev.clear()

    async def _serve_connection(self, ws: ClientConnection) -> str:
        """Run one connection until it ends; returns the disconnect reason."""
        wake, connected_ev, stop = self._ensure_loop_objects()
        self._ws = ws
        self._renewing = False
        self._answered = False
        self._expires = None
        self._expired = False
        self._responses.clear()
        self._creates = 0
        carried = self.history.items()
        replay = self._take_replay()
        replayed = sum(map(len, replay))
        try:
            await ws.send(protocol.encode(self.session_update))
            self.stats.messages_sent += 1
            for item in carried:  # the conversation so far, so the model keeps its context
                await ws.send(protocol.encode(item))
                self.stats.messages_sent += 1
            while replay:  # the user's turn the last session never committed (back in the replay as sent)
                await self._send_audio_now(ws, replay.pop(0))
        except ConnectionClosed as exc:
            with self._lock:  # not sent: kept, in order, for the next session
                for pcm in replay:
                    self._keep_for_replay_locked(pcm)
            # Lost before it was ever reported as connected: nothing to report as a disconnect.
            reason = _close_reason(exc)
            log.info("realtime: connection lost before the session was set up (%s)", reason)
            return reason
        with self._lock:
            self.connected = True
        connected_ev.set()
        self._safe_call(self.on_sent, self.session_update)
        for item in carried:
            self._safe_call(self.on_sent, item)
        if carried or replayed:
            log.info("realtime: carried %d turns and %.1f s of uncommitted audio into the new session",
                     len(carried), replayed / protocol.BYTES_PER_MS / 1000)
        self._safe_call(self.on_connect)
        log.info("realtime: connected to %s", _safe_url(self.url))
        sender = asyncio.create_task(self._sender(ws))
        renewer = asyncio.create_task(self._renewer(ws))
        reason = "closed"
        try:
            async for message in ws:
                if self._handle_message(message):
                    reason = "session expired"
                    break
            else:
                reason = _close_reason(None, ws)
        except ConnectionClosed as exc:
            reason = _close_reason(exc)
        finally:
            with self._lock:
                self.connected = False
                self._went_offline_locked()
            connected_ev.clear()
            if self._renewing:
                reason = "renew"
            if self._expired:
                reason = "session expired"
            if self._closing:
                reason = "client closed"
            log.info("realtime: disconnected (%s)", reason)
            # Told at once, in the same step as `connected` turns False (the agent shows offline).
            self._safe_call(self.on_disconnect, reason)
            for task in (sender, renewer):
                task.cancel()
            await asyncio.gather(sender, renewer, return_exceptions=True)
            await ws.close()
        return reason

    def _handle_message(self, message: str | bytes) -> bool:
        """Handle one server message; True if it ends the session (error session_expired)."""
        self._answered = True
        self.stats.messages_received += 1
        self.stats.downlink_bytes += len(message)
        try:
            ev = protocol.parse_server_event(message)
        except ProtocolError as exc:
            self.stats.errors += 1
            self._safe_call(self.on_error, str(exc))
            return False
        if not ev.known:
            self.stats.unknown_events += 1
        if ev.type == "error":
            self.stats.errors += 1
            self._creates = max(0, self._creates - 1)  # (if it was about a create, it is answered)
            err = ev.data["error"]
            if err.get("code") == "session_expired":
                # The session is over even if the socket stays open: every further event would be
                # refused. End it now; run() reconnects at once.
                log.warning("realtime: the server says the session expired; starting a new one")
                self._expired = True
        elif ev.type == "response.created":
            self._creates = max(0, self._creates - 1)
            self._responses.add(str(ev.data["response"].get("id") or ""))
        elif ev.type == "response.done":
            self._responses.discard(str(ev.data["response"].get("id") or ""))
        elif ev.type == "session.created":
            self._session_created(ev.data["session"])
        elif ev.type in ("input_audio_buffer.committed", "input_audio_buffer.cleared"):
            with self._lock:  # the server has that audio (or dropped it on purpose): no replay
                self._replay.clear()
                self._replay_bytes = 0
        elif ev.audio is not None:
            self.stats.downlink_audio_ms += len(ev.audio) / protocol.BYTES_PER_MS
        self.history.observe(ev)
        self._safe_call(self.on_event, ev)
        return self._expired

    def _session_created(self, session: dict[str, Any]) -> None:
        """Note when the server ends this session (`session.expires_at`, Unix seconds)."""
        expires_at = session.get("expires_at")
        if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool):
            # Whole seconds on the wire (a server may round up): take it as up to 1 s early.
            left = float(expires_at) - EXPIRES_ROUNDING_S - time.time()
            if 0 < left <= MAX_SESSION_S:  # else the device's clock is wrong: keep session_max_s
                self._expires = time.monotonic() + left

    def _take_replay(self) -> list[bytes]:
        with self._lock:
            chunks = list(self._replay)
            self._replay.clear()
            self._replay_bytes = 0
        return chunks

    def _keep_for_replay(self, pcm: bytes) -> None:
        with self._lock:
            self._keep_for_replay_locked(pcm)

    def _keep_for_replay_locked(self, pcm: bytes) -> None:
        self._replay.append(pcm)
        self._replay_bytes += len(pcm)
        cap = int(REPLAY_S * protocol.SAMPLE_RATE) * 2
        while self._replay_bytes > cap and len(self._replay) > 1:
            self._replay_bytes -= len(self._replay.popleft())

    async def _send_audio_now(self, ws: ClientConnection, pcm: bytes) -> None:
        text = protocol.encode(protocol.input_audio_append(pcm))
        self._keep_for_replay(pcm)  # first: a send cut by the connection's end is not lost
        await ws.send(text)
        self.stats.messages_sent += 1
        self.stats.uplink_bytes += len(text)
        self.stats.uplink_audio_ms += len(pcm) / protocol.BYTES_PER_MS

    async def _sender(self, ws: ClientConnection) -> None:
        wake = self._ensure_loop_objects()[0]
        while True:
            batch = self._pop_batch()
            if batch is None:
                wake.clear()
                if self._queue:
                    continue
                await wake.wait()
                continue
            kind, item = batch
            self._sending = True
            try:
                if kind == "audio":
                    await self._send_audio_now(ws, item)
                else:
                    await ws.send(protocol.encode(item))
            except ConnectionClosed:
                if kind != "audio":  # (audio is in the replay already: the next session gets it)
                    self.stats.dropped_events += 1
                return
            finally:
                self._sending = False
            if kind != "audio":
                self.stats.messages_sent += 1
                if item.get("type") == "response.create":
                    self._creates += 1  # a response is on its way: not a quiet moment to renew
                if item.get("type") == "input_audio_buffer.clear":
                    self._take_replay()  # the device dropped that audio itself: never re-sent
                self._safe_call(self.on_sent, item)

    def _renew_window(self, t0: float) -> tuple[float, float] | None:
        """(soft, hard) monotonic times: renew at a quiet moment after soft, at the latest at hard.

        From `session_max_s` (soft; hard 5 % later, unless the server said when the session really
        ends) and the server's expires_at (soft 20 % of the session, at most 5 min, before it; hard
        5 %, at most 10 s, before it): the sooner wins. A reply is only cut at a hard deadline."""
        windows = []
        max_s = self.settings.session_max_s
        if max_s > 0:
            windows.append((t0 + max_s, t0 + max_s * 1.05 if self._expires is None else float("inf")))
        if self._expires is not None:
            life = max(0.0, self._expires - t0)
            windows.append((self._expires - min(300.0, 0.2 * life), self._expires - min(10.0, 0.05 * life)))
        if not windows:
            return None
        return min(w[0] for w in windows), min(w[1] for w in windows)

    async def _renewer(self, ws: ClientConnection) -> None:
        """Close the connection before the session ends (see _renew_window)."""
        t0 = time.monotonic()
        while True:
            window = self._renew_window(t0)
            now = time.monotonic()
            if window is None or now < window[0]:
                # expires_at may still come (session.created): look again within a second
                await asyncio.sleep(1.0 if window is None else min(1.0, window[0] - now))
                continue
            soft, hard = window
            quiet = not self._responses and not self._creates and now - self._last_audio >= min(QUIET_S, soft - t0)
            if quiet or now >= hard:
                break
            await asyncio.sleep(0.05)
        self.stats.renewals += 1
        self._renewing = True
        log.info("realtime: renewing the session after %.0f s", time.monotonic() - t0)
        await ws.close(1000, "session renewal")

    def _safe_call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a callback bug must not kill the link
            log.exception("realtime: callback %s failed", getattr(fn, "__name__", fn))


# ---------------------------------------------------------------------- helpers


async def open_socket(url: str, headers: dict[str, str], rt: RealtimeSettings) -> ClientConnection:
    """One WebSocket to the model: TLS verified for wss://, keepalive pings, bounded messages, no
    compression, a handshake timeout, and a logger that never shows the Authorization header."""
    return await connect(
        url, additional_headers=headers, ssl=ssl_context(url, rt.ca_file),
        ping_interval=rt.ping_interval_s or None, ping_timeout=rt.ping_timeout_s or None,
        max_size=MAX_MESSAGE_BYTES, max_queue=64, compression=None,
        open_timeout=OPEN_TIMEOUT_S, close_timeout=2.0, user_agent_header="voxbox",
        logger=redacting_logger("device.link.websockets"),
    )


def wake_sender(loop: asyncio.AbstractEventLoop | None, loop_thread: int, wake: asyncio.Event | None) -> None:
    """Set a sender's wake-up event from any thread (nothing if the loop is not there or closed)."""
    if loop is None or wake is None:
        return
    if threading.get_ident() == loop_thread:
        wake.set()
    else:
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # loop closed
            pass


def merge_audio(queue: deque[tuple[str, Any]], first: bytes, limit_ms: int = 200) -> bytes:
    """`first` plus the audio chunks right behind it in `queue` (popped), up to `limit_ms` in all:
    fewer, larger append messages (PCM16 at 24 kHz)."""
    parts, size = [first], len(first)
    limit = limit_ms * protocol.BYTES_PER_MS
    while queue and queue[0][0] == "audio" and size + len(queue[0][1]) <= limit:
        nxt = queue.popleft()[1]
        parts.append(nxt)
        size += len(nxt)
    return b"".join(parts)


def _backoff(attempt: int, cap: float) -> float:
    """Capped exponential backoff with jitter: 0.1 s, 0.2 s, 0.4 s … up to `cap`, times 0.5–1.

    The retries stay close together at first, so a server back after a restart of
    D seconds is reached again within about D (≤ 1 s for a quick restart)."""
    base = min(max(cap, 0.05), BACKOFF_FIRST_S * (2 ** min(attempt, 30)))
    return base * random.uniform(0.5, 1.0)


async def _wait_event(ev: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout`; True if the event was set."""
    try:
        await asyncio.wait_for(ev.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


def _safe_url(url: str) -> str:
    return url.split("?", 1)[0]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    text = str(exc) or exc.__class__.__name__
    return text.splitlines()[0][:160]


def _close_reason(exc: ConnectionClosed | None, ws: ClientConnection | None = None) -> str:
    if exc is None and ws is not None:
        rcvd = ws.close_code
        return _closed_by_server(rcvd, ws.close_reason) if rcvd is not None else "closed"
    assert exc is not None
    if exc.rcvd is not None:
        return _closed_by_server(exc.rcvd.code, exc.rcvd.reason)
    return "connection lost"


def _closed_by_server(code: int, reason: str | None) -> str:
    detail = f"{code} {reason or ''}".strip()
    return f"server closed ({detail})"


def realtime_link(settings: Settings, url: str, api_key: str | None) -> Callable[[LinkListener], RealtimeClient]:
    """The OpenAI Realtime link for an agent: a factory the agent calls with its callbacks.

    `url`: ws:// or wss:// of the realtime endpoint; `api_key`: sent as a Bearer token (never logged).
    """
    for problem in missing_tokens(settings.tools):
        log.warning("%s; that server is offered without a token", problem)
    update = protocol.session_update(settings.realtime, barge_in=settings.conversation.barge_in,
                                     tools=session_tools(settings.tools), tool_choice=settings.tools.tool_choice)

    def make(listener: LinkListener) -> RealtimeClient:
        return RealtimeClient(url, update, api_key=api_key, on_event=listener.on_server_event,
                              on_connect=listener.on_connect, on_disconnect=listener.on_disconnect,
                              on_sent=listener.on_sent, on_error=listener.on_link_error,
                              settings=settings.realtime)

    return make
