"""The link seam: what the agent needs from a connection to a realtime model.

The agent is written against `Link` and hands a `LinkFactory` its own callbacks (a
`LinkListener`); `client.RealtimeClient` (OpenAI Realtime over a WebSocket) and
`twin.RecordingLink` (in memory, for tests and benches) implement it, and a second protocol
plugs in by providing another factory. Callbacks run in the agent's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from device.link.protocol import ServerEvent


@dataclass
class LinkStats:
    """Counters of one link over the daemon's life (the timeline's `summary` carries them)."""

    uplink_bytes: int = 0  # wire bytes of audio-append messages
    uplink_audio_ms: float = 0.0
    reconnects: int = 0  # successful connections after the first (renewals included)
    errors: int = 0  # malformed server events + server `error` events
    dropped_audio_ms: float = 0.0
    unknown_events: int = 0
    renewals: int = 0
    connect_failures: int = 0
    dropped_events: int = 0  # non-audio events given while offline
    downlink_bytes: int = 0
    downlink_audio_ms: float = 0.0
    last_connect_s: float = 0.0  # how long the last successful connect took (TCP+TLS+upgrade)
    messages_sent: int = 0  # WebSocket messages written (audio appends included)
    messages_received: int = 0  # WebSocket messages read and handed on

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LinkListener(Protocol):
    """The agent's side of the seam: what a link reports."""

    def on_server_event(self, ev: ServerEvent) -> None:
        """A parsed server event (audio deltas included)."""

    def on_connect(self) -> None:
        """A connection is up and its session configured."""

    def on_disconnect(self, reason: str) -> None:
        """The connection went away (`reason`: one line); the link reconnects by itself."""

    def on_sent(self, event: dict[str, Any]) -> None:
        """A client event really went out (audio appends excepted)."""

    def on_link_error(self, message: str) -> None:
        """A protocol problem (malformed event, server error), one line."""


class Link(Protocol):
    """A connection to a realtime model that never blocks its caller.

    `send`/`send_audio` may be called from any thread; `run()` owns the connection until
    `close()`. Audio is PCM16 mono at the protocol's rate (24 kHz for OpenAI Realtime).
    """

    stats: LinkStats
    last_error: str  # the last connection problem, one line ("" if none)

    @property
    def connected(self) -> bool: ...

    async def run(self) -> None: ...

    def send(self, event: dict[str, Any]) -> None: ...

    def send_audio(self, pcm16: bytes) -> None: ...

    async def wait_connected(self, timeout: float) -> bool: ...

    async def wait_attempted(self, timeout: float) -> bool: ...

    async def close(self) -> None: ...


LinkFactory = Callable[[LinkListener], Link]
