"""The local GPT-Live parrot on /v1/live/sessions: the official client, turns, interruption, mute,
expiry, errors. Every message both ways is validated against openai.types.live."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
from live_support import check_live_client_event, check_live_server_event
from test_link_support import TracedServer, turn, wait_for
from websockets.asyncio.client import connect

from device.link import live_protocol as lp

openai = pytest.importorskip("openai")

CHUNK = 4800  # 200 ms at 24 kHz


def _validate_all(server: TracedServer) -> None:
    for ev in server.inbound:
        check_live_client_event(ev)
    for ev in server.outbound:
        check_live_server_event(ev)


def _silence(s: float) -> np.ndarray:
    rng = np.random.default_rng(2)
    return rng.normal(0, 20, int(s * 24000)).astype(np.int16)


def test_official_client_full_conversation() -> None:
    """client.live.connect() against the parrot: two turns answered with their own audio,
    transcripts on the session timeline, session.close → session.closed close_requested."""
    x = turn()
    speech_ms = (len(x) / 24 - 500 - 1200)

    async def main() -> tuple[list[Any], list[bytearray], TracedServer]:
        server = TracedServer()
        port = await server.start()
        client = openai.AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
        events: list[Any] = []
        replies: list[bytearray] = [bytearray(), bytearray()]
        try:
            async with client.live.connect() as conn:
                await conn.session.start(session={
                    "model": "gpt-live-1", "instructions": "be brief",
                    "audio": {"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "marin"}}})
                first = await asyncio.wait_for(conn.recv(), 10)
                assert first.type == "session.started"
                events.append(first)
                stream = np.concatenate([x, _silence(2.5), x, _silence(2.5)])
                for i in range(0, len(stream), CHUNK):
                    chunk = base64.b64encode(stream[i:i + CHUNK].tobytes()).decode()
                    await conn.session.input_audio.append(audio=chunk)
                await conn.session.close()

                async def receive() -> None:
                    async for ev in conn:
                        events.append(ev)
                        if ev.type == "session.output_audio.delta":
                            n = sum(e.type == "session.input_transcript.delta" for e in events)
                            replies[n - 1].extend(base64.b64decode(ev.delta))
                        if ev.type == "session.closed":
                            return

                await asyncio.wait_for(receive(), 30)
        finally:
            await server.stop()
        return events, replies, server

    events, replies, server = asyncio.run(main())
    _validate_all(server)
    types = [e.type for e in events]
    assert types[0] == "session.started" and types[-1] == "session.closed"
    assert events[-1].reason == "close_requested" and events[-1].usage.seconds >= 8
    heard = [e for e in events if e.type == "session.input_transcript.delta"]
    said = [e for e in events if e.type == "session.output_transcript.delta"]
    assert len(heard) == 2 and len(said) == 2
    # The first turn: speech from 0.5 s, on the session timeline (prefix padding 300 ms).
    assert 100 <= heard[0].start_ms <= 500 and abs(heard[0].end_ms - (500 + speech_ms)) < 250
    assert said[0].start_ms >= heard[0].end_ms
    for reply in replies:  # each turn answered with its own audio, in full
        assert abs(len(reply) / 48 - (speech_ms + 300 + 150)) < 400
    assert said[1].start_ms > said[0].end_ms
    stats = server.live_api.stats
    assert (stats.sessions_started, stats.sessions_open, stats.interruptions) == (1, 0, [])
    assert stats.audio_bytes == (2 * len(x) + 2 * len(_silence(2.5))) * 2
    assert server.connections == 1


async def _start(port: int, **kw: Any) -> Any:
    ws = await connect(f"ws://127.0.0.1:{port}/v1/live/sessions")
    await ws.send(json.dumps(lp.session_start("gpt-live-1", **kw)))
    started = lp.parse_server_event(await ws.recv())
    assert isinstance(started, lp.SessionStarted)
    return ws


async def _send(ws: Any, x: np.ndarray) -> None:
    for i in range(0, len(x), CHUNK):
        await ws.send(json.dumps(lp.input_audio_append(x[i:i + CHUNK].tobytes())))


async def _drain(ws: Any, until: str, timeout: float = 20) -> list[lp.LiveEvent]:
    out: list[lp.LiveEvent] = []

    async def go() -> None:
        while True:
            ev = lp.parse_server_event(await ws.recv())
            out.append(ev)
            if ev.type == until:
                return

    await asyncio.wait_for(go(), timeout)
    return out


def test_parrot_stops_when_it_hears_speech_over_its_reply() -> None:
    """Full duplex: the user talks during the reply; the parrot stops at once and answers the new turn."""
    x = turn(lead_s=0.3, tail_s=0.0)

    async def main() -> tuple[list[lp.LiveEvent], TracedServer]:
        server = TracedServer()
        port = await server.start()
        try:
            ws = await _start(port)
            # Turn 1, 700 ms of silence (the turn ends, the reply starts), then turn 2 over the reply.
            await _send(ws, np.concatenate([x, _silence(0.7), x, _silence(4.0)]))
            await ws.send(json.dumps(lp.session_close()))
            evs = await _drain(ws, "session.closed")
            await ws.close()
        finally:
            await server.stop()
        return evs, server

    evs, server = asyncio.run(main())
    _validate_all(server)
    stats = server.live_api.stats
    assert len(stats.interruptions) == 1
    said = [e for e in evs if isinstance(e, lp.Transcript) and e.role == "assistant"]
    full_ms = len(x) / 24
    assert said[0].end_ms - said[0].start_ms < full_ms / 2  # the first reply was cut short
    assert said[1].end_ms - said[1].start_ms > full_ms * 0.8  # the second turn got its whole answer


def test_mute_makes_silence_and_is_counted() -> None:
    x = turn()

    async def main() -> tuple[list[lp.LiveEvent], TracedServer]:
        server = TracedServer()
        port = await server.start()
        try:
            ws = await _start(port)
            await ws.send(json.dumps(lp.input_audio_mute()))
            await _send(ws, x)  # speech while muted: the model hears nothing
            await ws.send(json.dumps(lp.input_audio_unmute()))
            await _send(ws, _silence(1.0))
            await ws.send(json.dumps(lp.session_close()))
            evs = await _drain(ws, "session.closed")
        finally:
            await server.stop()
        return evs, server

    evs, server = asyncio.run(main())
    _validate_all(server)
    types = [e.type for e in evs]
    assert "session.input_audio.muted" in types and "session.input_audio.unmuted" in types
    assert not any(isinstance(e, (lp.Transcript, lp.OutputAudio)) for e in evs)
    stats = server.live_api.stats
    assert stats.muted_audio_bytes == len(x) * 2 and stats.audio_bytes == (len(x) + 24000) * 2


def test_session_expires_at_its_maximum_length() -> None:
    async def main() -> tuple[list[lp.LiveEvent], TracedServer]:
        server = TracedServer()
        server.live_api.max_session_s = 2.0
        port = await server.start()
        try:
            ws = await _start(port)
            await _send(ws, _silence(3.0))
            evs = await _drain(ws, "session.closed")
            assert await wait_for(lambda: server.live_api.stats.sessions_open == 0, 5)
        finally:
            await server.stop()
        return evs, server

    evs, server = asyncio.run(main())
    _validate_all(server)
    closed = evs[-1]
    assert isinstance(closed, lp.SessionClosed) and closed.reason == "expired" and closed.usage_s == 2.0
    assert server.live_api.stats.close_reasons == ["expired"]


def test_errors_keep_the_session() -> None:
    async def main() -> list[lp.LiveEvent]:
        server = TracedServer()
        port = await server.start()
        out: list[lp.LiveEvent] = []
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/v1/live/sessions")
            await ws.send(json.dumps(lp.input_audio_append(b"\0\0" * 480)))  # before session.start
            out.append(lp.parse_server_event(await ws.recv()))
            bad = lp.session_start("gpt-live-1", rate=16000)
            await ws.send(json.dumps(bad))
            out.append(lp.parse_server_event(await ws.recv()))
            await ws.send(json.dumps(lp.session_start("gpt-live-1")))
            out.append(lp.parse_server_event(await ws.recv()))
            await ws.send('{"type": "conversation.item.truncate"}')
            out.append(lp.parse_server_event(await ws.recv()))
            await ws.send(json.dumps(lp.response_create()))
            out.append(lp.parse_server_event(await ws.recv()))
            await ws.send(json.dumps(lp.session_close()))
            out.append(lp.parse_server_event(await ws.recv()))
            for ev in server.outbound:
                check_live_server_event(ev)
        finally:
            await server.stop()
        return out

    evs = asyncio.run(main())
    codes = [e.code if isinstance(e, lp.LiveError) else e.type for e in evs]
    assert codes == ["session_not_started", "unsupported", "session.started", "invalid_value",
                     "delegation_not_configured", "session.closed"]


def test_check_opens_and_closes_a_live_session() -> None:
    """`voxbox check` with realtime.api = live: session.start → session.started, then session.close."""
    from device.config import RealtimeSettings, Settings
    from device.service.check import _handshake

    async def main() -> tuple[str, TracedServer]:
        server = TracedServer()
        await server.start()
        s = Settings(realtime=RealtimeSettings(api="live", url=server.live_url))
        try:
            said = await _handshake(s, 10)
            assert await wait_for(lambda: server.live_api.stats.sessions_open == 0, 5)
        finally:
            await server.stop()
        return said, server

    said, server = asyncio.run(main())
    assert said.endswith("answered session.started")
    assert server.live_api.stats.sessions_started == 1 and server.live_api.stats.close_reasons == ["close_requested"]
