"""The local realtime server: the OpenAI Realtime protocol (GA) over WebSocket, offline.

Its "parrot" model answers each user turn with that turn's own audio, streamed as
`response.output_audio.delta` events in 100 ms chunks, faster than real time (4x by
default) like the real service; a script can make it call function tools first
(`server_model`). Turn detection is `server_vad` (Silero on 16 kHz), `semantic_vad`
(treated as server_vad with a silence length from the eagerness) or none (manual
`input_audio_buffer.commit` + `response.create`). It enforces the service's semantics
(`server_conversation`): invalid client events get the service's `error` event and the
connection stays open; at the maximum session length it sends `session_expired` and
closes with 1001. Any path is accepted (ws://host:port/v1/realtime?model=... as the
openai package builds it), except `/v1/live/sessions`: GPT-Live, served by
`live_server`; browser-style clients that offer the subprotocols `realtime` +
`openai-insecure-api-key.<key>` get `realtime`; with an SSL context it serves wss:.

Modules: `server_config` (session shape, client-event checks), `server_conversation`
(items, responses, errors; pure), `server_model` (parrot and script; pure),
`server_connection` (one client: events in/out, VAD, streaming), this file (listening,
TLS, fault hooks).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_lib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from device.dev.live_server import LiveServer
from device.dev.lockstep import WallClock
from device.dev.server_config import MODEL
from device.dev.server_connection import MessageCounts, Session, Trace
from device.dev.server_model import ScriptedModel, ScriptTurn, load_script
from device.link.client import redacting_logger

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SUBPROTOCOL = Subprotocol("realtime")
INSECURE_KEY_PREFIX = "openai-insecure-api-key."
DEFAULT_MAX_SESSION_S = 3600.0  # the service's 60 minutes


def free_loopback_port() -> int:
    """A TCP port nobody listens on right now (for a server started by another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """`realtime` when offered (browser-style clients, the npm SDK); none otherwise (header-auth clients)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


class _RedactInsecureKey(logging.Filter):
    """Masks `openai-insecure-api-key.<key>` in websockets' handshake debug lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "sec-websocket-protocol"
                and INSECURE_KEY_PREFIX in str(args[1])):
            record.args = (args[0], ", ".join(INSECURE_KEY_PREFIX + "***" if p.strip().startswith(INSECURE_KEY_PREFIX)
                                              else p.strip() for p in str(args[1]).split(",")))
        return True


def tls_context(cert: str | Path, key: str | Path) -> ssl_lib.SSLContext:
    """A server TLS context from PEM files (for wss:); OSError / ssl.SSLError if unreadable."""
    ctx = ssl_lib.SSLContext(ssl_lib.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class RealtimeServer:
    """`await start()` → bound port; clients connect to ws://host:port/ (any path), wss: with `ssl`.

    `trace(direction, text)`, if given, sees every message: "in" from clients, "out" to them.
    `max_session_s`: each connection's maximum length (session.created's `expires_at`), then
    `session_expired` and a close with 1001 (`close_on_expiry=False`: the error, then the socket
    stays open answering every event with session_expired, a fault clients have met).
    `script`: the scripted model's turns (a list from `server_model.load_script`, or a file
    name), shared by all connections in order. Fault hooks: `kill`, `freeze`, `broadcast`.
    `clock`: what reply pacing sleeps on (wall seconds; simulate gives its mic clock).
    """

    def __init__(self, speed: float = 4.0, trace: Trace | None = None, ssl: Any = None,
                 max_session_s: float = DEFAULT_MAX_SESSION_S,
                 script: list[ScriptTurn] | str | Path | None = None, close_on_expiry: bool = True,
                 clock: WallClock | None = None) -> None:
        if max_session_s <= 0:
            raise ValueError("max_session_s must be > 0")
        self.speed = speed
        self.trace = trace
        self.ssl = ssl
        self.max_session_s = max_session_s
        self.close_on_expiry = close_on_expiry
        self.clock = clock or WallClock()  # reply pacing; simulate passes its mic clock (lockstep)
        self.counts = MessageCounts()  # over all connections: simulate's lockstep compares them with the client's
        turns = load_script(script) if isinstance(script, (str, Path)) else script
        self.model = ScriptedModel(turns)
        self._server: Server | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0  # accepted since start (for tests and `check`)
        self._live: dict[ServerConnection, Session] = {}
        # GPT-Live on /v1/live/sessions of the same port (its sessions expire on input time).
        self.live_api = LiveServer(max_session_s=max_session_s, trace=trace, model=self.model)
        self._live_api_ws: set[ServerConnection] = set()
        self.only: str | None = None  # "realtime" | "live": refuse the other API's path (serve --api)

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/v1/realtime?model={MODEL}"

    @property
    def live_url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/v1/live/sessions"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await ws_serve(self._handler, host, port, max_size=MAX_MESSAGE_BYTES, compression=None,
                                      ssl=self.ssl, logger=self._logger(), select_subprotocol=select_subprotocol,
                                      ping_interval=20, ping_timeout=20, close_timeout=2)
        self.host = host
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("realtime server listening on %s", self.url)
        return self.port

    @staticmethod
    def _logger() -> logging.Logger:
        logger = redacting_logger("device.dev.server.websockets")
        if not any(isinstance(f, _RedactInsecureKey) for f in logger.filters):
            logger.addFilter(_RedactInsecureKey())
        return logger

    async def stop(self) -> None:
        """A clean shutdown: stop listening, close every connection with 1001 (going away)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def kill(self) -> None:
        """A crash (fault hook): stop listening and drop every TCP connection without a close frame."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for ws in [*self._live, *self._live_api_ws]:
            ws.transport.abort()
        await self._server.wait_closed()
        self._server = None

    @property
    def live(self) -> int:
        """Connections open right now."""
        return len(self._live)

    def freeze(self) -> int:
        """A half-open link (fault hook): every live connection stops reading (client events and
        pings stay unread: no pong) and sends nothing more, without closing. Returns how many."""
        for ws, sess in self._live.items():
            sess.frozen = True
            if ws.keepalive_task is not None:
                ws.keepalive_task.cancel()
            ws.transport.pause_reading()
        return len(self._live)

    async def broadcast(self, message: str | bytes) -> int:
        """Send a raw message to every live connection (fault hook: garbage, huge or odd events).

        Returns how many connections it reached."""
        sent = 0
        for ws in list(self._live):
            try:
                await ws.send(message)
                sent += 1
            except ConnectionClosed:
                pass
        return sent

    async def _expire_after(self, sess: Session) -> None:
        await asyncio.sleep(self.max_session_s)
        await sess.expire(close=self.close_on_expiry)

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        live = ws.request is not None and ws.request.path.split("?", 1)[0].rstrip("/").endswith("/live/sessions")
        if self.only is not None and self.only != ("live" if live else "realtime"):
            await ws.close(1008, f"this server speaks only the {self.only} API")
            return
        if live:
            self._live_api_ws.add(ws)
            try:
                await self.live_api.handle(ws)
            finally:
                self._live_api_ws.discard(ws)
            return
        sess = Session(ws, self.speed, self.trace, self.max_session_s, self.model, self.clock, self.counts)
        self._live[ws] = sess
        expiry = asyncio.create_task(self._expire_after(sess))
        try:
            await sess.emit("session.created", session=sess.session)
            async for message in ws:
                if self.trace is not None:
                    self.trace("in", message)
                await sess.handle(message)
                self.counts.handled += 1
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            self._live.pop(ws, None)
            await sess.close()


async def serve(host: str = "127.0.0.1", port: int = 8765, speed: float = 4.0,
                max_session_s: float = DEFAULT_MAX_SESSION_S, ssl: ssl_lib.SSLContext | None = None,
                script: list[ScriptTurn] | str | None = None, api: str | None = None) -> None:
    """Run the local server until cancelled (`voxbox serve`); wss: with an SSL context (`tls_context`).
    Both APIs (Realtime on /v1/realtime, GPT-Live on /v1/live/sessions), or only `api`."""
    server = RealtimeServer(speed=speed, ssl=ssl, max_session_s=max_session_s, script=script)
    server.only = api
    await server.start(host, port)
    where = {"realtime": f"realtime server (model {MODEL}{', scripted' if script else ''}) on "
                         f"{server.url.split('?')[0]}",
             "live": f"GPT-Live (parrot{', scripted' if script else ''}) on {server.live_url}"}
    print("voxbox: " + ", ".join(v for k, v in where.items() if api in (None, k)), file=sys.stderr, flush=True)
    try:
        await asyncio.Future()
    finally:
        await server.stop()
