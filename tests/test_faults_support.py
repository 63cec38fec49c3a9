"""Tools for the fault tests: a TCP proxy that can black-hole a connection, marker audio,
and the whole Agent (SimAudio) driven in-process against a server the test controls."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device import config as cfg
from device.audio import wavio
from device.audio.player import Player
from device.audio.sim import SimAudio
from device.conversation.agent import Agent, ScheduledPress
from device.link.client import realtime_link
from device.timeline import Timeline

FRAME = 240  # 10 ms at 24 kHz


class FaultProxy:
    """A loopback TCP proxy in front of a server. `freeze()` black-holes the connections open
    now (bytes are read and thrown away in both directions, like Wi-Fi gone silent: no FIN,
    no RST, no pong); connections made afterwards are forwarded normally."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: list[dict[str, Any]] = []
        self.accepted = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def freeze(self) -> None:
        for c in self._conns:
            c["frozen"] = True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for c in self._conns:
                for w in c["writers"]:
                    w.transport.abort()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        conn: dict[str, Any] = {"frozen": False, "writers": [writer, up_w]}
        self._conns.append(conn)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    if not conn["frozen"]:
                        w.write(data)
                        await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if not conn["frozen"]:
                    w.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


def marker_audio(first: int, frames: int) -> np.ndarray:
    """`frames` 10 ms frames; frame k is filled with the value `first + k` (its sequence number)."""
    seq = np.arange(first, first + frames, dtype=np.int16)
    return np.repeat(seq, FRAME).astype(np.int16)


def marker_frames(pcm: bytes) -> list[int]:
    """The sequence numbers of whole marker frames in received audio."""
    x = np.frombuffer(pcm, dtype="<i2")
    assert len(x) % FRAME == 0, len(x)
    f = x.reshape(-1, FRAME)
    assert (f == f[:, :1]).all(), "a marker frame arrived cut or mixed"
    return [int(v) for v in f[:, 0]]


def appended_audio(events: list[Any]) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in events
                    if isinstance(e, dict) and e.get("type") == "input_audio_buffer.append")


@dataclass
class AgentRun:
    agent: Agent
    sim: SimAudio
    timeline: Timeline
    records: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.timeline.records if r["event"] == name and all(r.get(k) == v for k, v in match.items())]

    def states(self) -> list[str]:
        return [r["state"] for r in self.events("state")]


def make_agent(mic: np.ndarray, rate: int, url: str, *, settings: cfg.Settings | None = None,
               speed: float = 8.0, presses: list[ScheduledPress] | None = None,
               timeline_path: Path | None = None) -> AgentRun:
    """The agent exactly as `simulate` builds it (real detectors, SimAudio, the real client)."""
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector

    settings = settings or cfg.Settings()
    player = Player(settings.audio.output_rate)
    sim = SimAudio(mic if mic.ndim == 2 else mic.reshape(-1, 1), rate, player, speed=speed)
    timeline = Timeline(timeline_path, keep=True)
    agent = Agent(settings, sim, timeline, wake=build_wake_detector(settings.wake), vad=build_vad(settings.vad),
                  link=realtime_link(settings, url, None), presses=presses)
    sim.keep_going = agent.keep_going
    return AgentRun(agent, sim, timeline)


def load_mic(path: Path) -> tuple[np.ndarray, int]:
    return wavio.read_wav(path)
