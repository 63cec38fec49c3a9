"""The GPT-Live parrot in memory: the agent's link wired to a LiveSession, no socket, one clock.

    twin = LiveTwin(LiveServer(answer_turns=False))
    agent = Agent(settings, audio, timeline, ..., link=twin.attach)
    await twin.start()               # the link is ready: the agent's on_connect
    await twin.pump(agent.now)       # before each mic block: what the agent sent is handled
                                     # by the session, and what the session said is delivered
    twin.say(pcm)                    # the model starts a reply (PCM16 24 kHz) now

The wire is the real one in both directions (`live_protocol` builds and parses every message,
`live_server.LiveSession` is the parrot the local server runs, with its own VAD that stops its
reply when it hears speech), but nothing waits on the network: the server handles the appends
of one mic block before the next block is read, and its output audio arrives at once. A run is
then a function of its inputs and goes as fast as the machine can, which is what the benches
need (device/bench/live.py); the network's own delay is not in what they measure.
Counted as at the server (LiveServer.stats): sessions, audio bytes, the parrot's interruptions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from device.dev.live_server import LiveServer, LiveSession
from device.link import live_protocol as lp
from device.link.base import LinkListener, LinkStats
from device.link.protocol import encode


class _Socket:
    """A session's side of the twin's connection: what it sends is kept for `pump` to deliver."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.closed = False

    async def send(self, message: str) -> None:
        self.out.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True


class LiveTwin:
    """A `Link` (device/link/base.py) to a LiveSession of `server`, in memory.

    Like the LiveClient: ready at once (`on_connect`), a session per `session.start`, uplink
    audio dropped while no session is wanted (idle), `session.close` ends the session."""

    def __init__(self, server: LiveServer | None = None) -> None:
        self.server = server or LiveServer()
        self.stats = LinkStats()
        self.last_error = ""
        self.listener: LinkListener | None = None
        self.session: LiveSession | None = None
        self._socket = _Socket()
        self._inbox: list[str] = []  # client messages the session has not handled yet
        self._uplink: list[bytes] = []  # the audio of every append sent, in order
        self.interruptions_t: list[float] = []  # mic time (pump's `now`) of each interruption of the parrot
        self._ready = False
        self._closed = asyncio.Event()

    def attach(self, listener: LinkListener) -> LiveTwin:
        """The `LinkFactory`: the agent calls it with its callbacks."""
        self.listener = listener
        return self

    def _listener(self) -> LinkListener:
        if self.listener is None:
            raise RuntimeError("LiveTwin: no agent attached (pass link=twin.attach to the Agent)")
        return self.listener

    # ---------------------------------------------------------------- driving it
    async def start(self) -> None:
        """The link is ready (the agent's on_connect)."""
        self._ready = True
        self._listener().on_connect()

    def say(self, pcm16: bytes) -> None:
        """The model of the open session starts a reply with this audio (no session: ValueError)."""
        if self.session is None or self.session.session is None:
            raise ValueError("LiveTwin.say: no session started")
        self.session.say(pcm16)

    @property
    def speaking(self) -> bool:
        """The parrot has more of a reply to send."""
        return self.session is not None and self.session.reply is not None

    async def pump(self, now: float) -> None:
        """The session handles every message sent so far; its events reach the agent in order.
        `now`: the agent's mic time, recorded for the parrot's interruptions."""
        before = len(self.server.stats.interruptions)
        while self._inbox and self.session is not None:
            await self.session.handle(self._inbox.pop(0))
            self._deliver()
        self._deliver()
        self.interruptions_t += [now] * (len(self.server.stats.interruptions) - before)

    def _deliver(self) -> None:
        out, self._socket.out = self._socket.out, []
        for text in out:
            self.stats.downlink_bytes += len(text)
            ev = lp.parse_server_event(text)
            if isinstance(ev, lp.SessionClosed):
                self.session = None
                self._inbox.clear()
            self._listener().on_server_event(lp.server_event(ev))

    def uplink(self) -> np.ndarray:
        """Every append's audio (24 kHz PCM16), as the server received it."""
        return np.frombuffer(b"".join(self._uplink), dtype="<i2")

    # ---------------------------------------------------------------- the Link protocol
    @property
    def connected(self) -> bool:
        return self._ready

    def send(self, event: dict[str, Any]) -> None:
        if event.get("type") == "session.start":
            self._socket = _Socket()
            self.session = self.server.new_session(self._socket)
            self._inbox = []
        elif self.session is None:
            self.stats.dropped_events += 1
            return
        self._inbox.append(encode(event))
        self.stats.messages_sent += 1
        self._listener().on_sent(event)

    def send_audio(self, pcm16: bytes) -> None:
        if self.session is None or not pcm16:
            self.stats.dropped_audio_ms += len(pcm16) / lp.BYTES_PER_MS
            return
        self._inbox.append(encode(lp.input_audio_append(pcm16)))
        self._uplink.append(bytes(pcm16))
        self.stats.uplink_bytes += len(pcm16)
        self.stats.uplink_audio_ms += len(pcm16) / lp.BYTES_PER_MS

    async def run(self) -> None:
        await self._closed.wait()

    async def wait_connected(self, timeout: float) -> bool:
        return self._ready

    async def wait_attempted(self, timeout: float) -> bool:
        return True

    async def close(self) -> None:
        self._closed.set()
