"""Shared helpers for the link tests: speech audio, schema validation, a traced local server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import ssl
import subprocess
import wave
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import TypeAdapter
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from device.dev.server import RealtimeServer
from device.link import protocol

CLIENT_EVENT = TypeAdapter(RealtimeClientEvent)
SERVER_EVENT = TypeAdapter(RealtimeServerEvent)


def check_client_event(ev: dict[str, Any]) -> None:
    model = CLIENT_EVENT.validate_python(ev, strict=True)
    assert model.type == ev["type"]


def check_server_event(ev: dict[str, Any]) -> None:
    model = SERVER_EVENT.validate_python(ev, strict=True)
    assert model.type == ev["type"]


@lru_cache(maxsize=8)
def speech(text: str = "hello there, what is the weather like today") -> np.ndarray:
    """Speech from espeak-ng as int16 mono 24 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    raw = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    y = soxr.resample(x, rate, 24000).astype(np.int16)
    nz = np.flatnonzero(np.abs(y) > 300)  # trim espeak's own leading/trailing silence
    return y[nz[0]: nz[-1] + 1]


def turn(text: str = "hello there, what is the weather like today", lead_s: float = 0.5,
         tail_s: float = 1.2) -> np.ndarray:
    """Silence, speech, silence (24 kHz int16), with a little noise so it is not digital zero."""
    rng = np.random.default_rng(1)
    s = speech(text)
    x = np.concatenate([np.zeros(int(lead_s * 24000)), s.astype(np.float64), np.zeros(int(tail_s * 24000))])
    x += rng.normal(0, 20, len(x))
    return np.clip(x, -32768, 32767).astype(np.int16)


class TracedServer(RealtimeServer):
    """The local server, recording every message in both directions (parsed)."""

    def __init__(self, speed: float = 4.0, **kw: Any) -> None:
        self.inbound: list[Any] = []
        self.outbound: list[dict[str, Any]] = []
        super().__init__(speed=speed, trace=self._record, **kw)

    def _record(self, direction: str, text: str | bytes) -> None:
        if direction == "out":
            self.outbound.append(json.loads(text))
        else:
            try:
                self.inbound.append(json.loads(text))
            except ValueError:
                self.inbound.append(text)

    def received(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.inbound if isinstance(e, dict) and e.get("type") == type_]


AUDIO_TYPES = {"response.output_audio.delta"}


class Peer:
    """A raw client: sends validated client events, collects server events."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, ev: dict[str, Any], validate: bool = True) -> None:
        if validate:
            check_client_event(ev)
        await self.ws.send(json.dumps(ev))

    async def send_audio(self, pcm: np.ndarray, frame: int = 2400) -> None:
        for i in range(0, len(pcm), frame):
            await self.send(protocol.input_audio_append(pcm[i:i + frame].tobytes()))

    async def recv_until(self, type_: str, timeout: float = 15.0) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            while True:
                ev = json.loads(await self.ws.recv())
                self.events.append(ev)
                if ev["type"] == type_:
                    return ev
        return await asyncio.wait_for(go(), timeout)

    def types(self, skip_audio: bool = True) -> list[str]:
        return [e["type"] for e in self.events if not (skip_audio and e["type"] in AUDIO_TYPES)]

    def reply_audio(self) -> bytes:
        return b"".join(base64.b64decode(e["delta"]) for e in self.events if e["type"] in AUDIO_TYPES)


async def _session(body: Callable[[Peer], Awaitable[None]], client_ssl: ssl.SSLContext | None = None,
                   subprotocols: Sequence[str] | None = None, **server_kw: Any) -> TracedServer:
    server = TracedServer(**server_kw)
    port = await server.start()
    scheme = "wss" if client_ssl is not None else "ws"
    try:
        async with connect(f"{scheme}://127.0.0.1:{port}/v1/realtime?model=parrot", ssl=client_ssl,
                           subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None) as ws:
            peer = Peer(ws)
            first = await peer.recv_until("session.created")
            assert peer.events == [first]
            await body(peer)
    finally:
        await server.stop()
    for ev in server.outbound:
        check_server_event(ev)
    return server


def run(body: Callable[[Peer], Awaitable[None]], **kw: Any) -> TracedServer:
    """One connection to a fresh TracedServer (kw: its arguments, `client_ssl`, `subprotocols`);
    every event the server sent is then validated against RealtimeServerEvent."""
    return asyncio.run(_session(body, **kw))


def self_signed_cert(tmp: Path) -> tuple[Path, Path]:
    """(key.pem, cert.pem) for 127.0.0.1/localhost, made with the openssl CLI (skipped without it, off CI)."""
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], capture_output=True)
    if r.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl cannot make a test certificate (apt package openssl)")
        pytest.skip("openssl cannot make a test certificate")
    return key, cert


async def wait_for(pred, timeout: float = 10.0, step: float = 0.01) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


def test_speech_fixture_is_speech_length() -> None:
    s = speech()
    assert 1.5 < len(s) / 24000 < 5.0
