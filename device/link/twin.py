"""The link's in-memory twin: records what the agent sends, delivers the server events a test writes.

    link = RecordingLink()
    agent = Agent(settings, audio, timeline, wake=..., vad=..., link=link.attach)
    link.connect()                                   # the agent sees on_connect
    link.deliver("response.created", response={"id": "r1"})
    link.deliver("response.output_audio.delta", audio=pcm, response_id="r1", item_id="i1")
    link.sent_types()                                # ["response.cancel", "conversation.item.truncate", ...]

Nothing goes over a socket; `send` reports every event as sent at once (on_sent), as the
real client does once the event is on the wire.
"""

from __future__ import annotations

import asyncio
from typing import Any

from device.link.base import LinkListener, LinkStats
from device.link.protocol import BYTES_PER_MS, ServerEvent


class RecordingLink:
    """A `Link` (device/link/base.py) that keeps everything in memory."""

    def __init__(self, *, connected: bool = False) -> None:
        self.stats = LinkStats()
        self.last_error = ""
        self.connected = connected
        self.sent: list[dict[str, Any]] = []
        self.audio_bytes = 0
        self.listener: LinkListener | None = None
        self._closed: asyncio.Event | None = None

    # ---------------------------------------------------------------- the factory
    def attach(self, listener: LinkListener) -> RecordingLink:
        """The `LinkFactory`: the agent calls it with its callbacks."""
        self.listener = listener
        return self

    def _listener(self) -> LinkListener:
        if self.listener is None:
            raise RuntimeError("RecordingLink: no agent attached (pass link=twin.attach to the Agent)")
        return self.listener

    # ---------------------------------------------------------------- driving it (the test's side)
    def connect(self) -> None:
        """The connection comes up: the agent's on_connect."""
        self.connected = True
        self._listener().on_connect()

    def drop(self, reason: str = "test") -> None:
        """The connection goes away: the agent's on_disconnect."""
        self.connected = False
        self._listener().on_disconnect(reason)

    def deliver(self, ev_type: str, audio: bytes | None = None, **data: Any) -> None:
        """A server event as the protocol parser would hand it over (audio already decoded)."""
        self._listener().on_server_event(ServerEvent(ev_type, {"type": ev_type, **data}, audio=audio))

    def sent_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.sent]

    # ---------------------------------------------------------------- the Link protocol
    async def run(self) -> None:
        await self._closed_event().wait()

    def send(self, event: dict[str, Any]) -> None:
        if not self.connected:
            self.stats.dropped_events += 1
            return
        self.sent.append(event)
        self._listener().on_sent(event)

    def send_audio(self, pcm16: bytes) -> None:
        self.audio_bytes += len(pcm16)
        self.stats.uplink_bytes += len(pcm16)
        self.stats.uplink_audio_ms += len(pcm16) / BYTES_PER_MS

    async def wait_connected(self, timeout: float) -> bool:
        return self.connected

    async def wait_attempted(self, timeout: float) -> bool:
        return True

    async def close(self) -> None:
        self._closed_event().set()

    def _closed_event(self) -> asyncio.Event:
        if self._closed is None:
            self._closed = asyncio.Event()
        return self._closed
