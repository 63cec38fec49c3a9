"""RealtimeClient against the local server (and small hand-made servers) over loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_link_support import TracedServer, check_client_event, check_server_event, self_signed_cert, turn, wait_for
from websockets.asyncio.server import ServerConnection, serve

from device.config import RealtimeSettings
from device.dev.server import free_loopback_port
from device.link import protocol
from device.link.client import RealtimeClient
from device.link.protocol import ServerEvent


class Recorder:
    """A RealtimeClient with every callback recorded."""

    def __init__(self, url: str, rt: RealtimeSettings | None = None, api_key: str | None = None,
                 barge_in: str = "local") -> None:
        self.rt = rt or RealtimeSettings(url=url)
        self.events: list[ServerEvent] = []
        self.sent: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.log: list[str] = []
        self.client = RealtimeClient(
            url, protocol.session_update(self.rt, barge_in=barge_in), api_key=api_key,
            on_event=self.events.append, on_connect=lambda: self.log.append("connect"),
            on_disconnect=lambda r: self.log.append(f"disconnect:{r}"), on_sent=self.sent.append,
            on_error=self.errors.append, settings=self.rt)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.client.run())

    async def stop(self) -> None:
        await self.client.close()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    def types(self) -> list[str]:
        return [e.type for e in self.events if e.type != "response.output_audio.delta"]

    def reply_audio(self) -> bytes:
        return b"".join(protocol.audio_delta(e)[1] for e in self.events if e.type == "response.output_audio.delta")

    async def until(self, type_: str, count: int = 1, timeout: float = 15.0) -> ServerEvent:
        assert await wait_for(lambda: self.types().count(type_) >= count, timeout), (type_, self.types())
        return [e for e in self.events if e.type == type_][count - 1]


def feed(client: RealtimeClient, x: np.ndarray, frame: int = 240) -> None:
    for i in range(0, len(x), frame):
        client.send_audio(x[i:i + frame].tobytes())


async def stream(client: RealtimeClient, x: np.ndarray, frame: int = 240) -> None:
    """10 ms frames, letting the loop run every 100 ms of audio (faster than real time)."""
    for i in range(0, len(x), frame):
        client.send_audio(x[i:i + frame].tobytes())
        if (i // frame) % 10 == 9:
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def linked(rt: RealtimeSettings | None = None, **server_kw: Any) -> AsyncIterator[tuple[TracedServer, Recorder]]:
    """A traced local server and a connected client; both stopped at the end."""
    server = TracedServer(**server_kw)
    port = await server.start()
    rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", rt)
    rec.start()
    assert await rec.client.wait_connected(5)
    try:
        yield server, rec
    finally:
        await rec.stop()
        await server.stop()


def validate_all(server: TracedServer, rec: Recorder) -> None:
    for ev in server.inbound:
        check_client_event(ev)
    for ev in server.outbound:
        check_server_event(ev)
    for ev in rec.events:
        check_server_event(ev.data)


def test_full_parrot_turn_through_the_client() -> None:
    x = turn()
    speech_ms = len(x) / 24 - 500 - 1200

    async def main() -> None:
        server = TracedServer()
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime")
        rec.start()
        assert await rec.client.wait_connected(5)
        await rec.until("session.updated")
        await stream(rec.client, x)
        done = await rec.until("response.done")
        assert done.data["response"]["status"] == "completed"
        for t in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                  "input_audio_buffer.committed", "response.created", "response.output_item.added"):
            assert t in rec.types()
        reply_ms = len(rec.reply_audio()) / 48
        assert abs(reply_ms - (speech_ms + 300)) < 400, (reply_ms, speech_ms)
        st = rec.client.stats
        assert st.uplink_audio_ms == pytest.approx(len(x) / 24)
        appends = server.received("input_audio_buffer.append")
        assert st.uplink_bytes == sum(len(json.dumps(a, separators=(",", ":"))) for a in appends)
        assert st.reconnects == 0 and st.errors == 0 and st.dropped_audio_ms == 0 and st.unknown_events == 0
        assert [s["type"] for s in rec.sent] == ["session.update"]  # appends are not reported
        await rec.stop()
        await server.stop()
        validate_all(server, rec)
        assert rec.log == ["connect", "disconnect:client closed"]

    asyncio.run(main())


def test_cancel_and_truncate_through_the_client() -> None:
    async def main() -> None:
        server = TracedServer(speed=2.0)
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}", RealtimeSettings(turn_detection="none"))
        rec.start()
        assert await rec.client.wait_connected(5)
        feed(rec.client, turn(lead_s=0.1, tail_s=0.1))
        rec.client.send(protocol.input_audio_commit())
        rec.client.send(protocol.response_create())
        assert await wait_for(lambda: len(rec.reply_audio()) > 0)
        item_id, _ = protocol.audio_delta(next(e for e in rec.events if e.type == "response.output_audio.delta"))
        rec.client.send(protocol.response_cancel())
        done = await rec.until("response.done")
        assert done.data["response"]["status"] == "cancelled"
        rec.client.send(protocol.item_truncate(item_id, 100))
        tr = await rec.until("conversation.item.truncated")
        assert tr.data["item_id"] == item_id and tr.data["audio_end_ms"] == 100
        assert [s["type"] for s in rec.sent] == ["session.update", "input_audio_buffer.commit", "response.create",
                                                 "response.cancel", "conversation.item.truncate"]
        await rec.stop()
        await server.stop()
        validate_all(server, rec)

    asyncio.run(main())


def test_reconnects_after_server_restart_and_resends_session_update() -> None:
    async def main() -> None:
        server = TracedServer()
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(reconnect_max_s=2.0))
        rec.start()
        assert await rec.client.wait_connected(5)
        await rec.until("session.updated")
        await server.stop()
        assert await wait_for(lambda: not rec.client.connected, 5)
        await asyncio.sleep(1.0)  # the server is down for a while
        server2 = TracedServer()
        await server2.start(port=port)
        t0 = time.monotonic()
        assert await rec.client.wait_connected(10)
        reconnect_s = time.monotonic() - t0
        await rec.until("session.updated", count=2)
        assert len(server2.received("session.update")) == 1
        assert rec.client.stats.reconnects == 1
        assert rec.log[:2] == ["connect", "disconnect:server closed (1001)"] or rec.log[1].startswith("disconnect:")
        assert rec.log[-1] == "connect"
        assert [s["type"] for s in rec.sent] == ["session.update", "session.update"]
        print(f"reconnect after restart: {reconnect_s * 1000:.0f} ms")
        assert reconnect_s < 3.0
        # and the link works again
        await stream(rec.client, turn())
        await rec.until("response.done")
        await rec.stop()
        await server2.stop()
        validate_all(server2, rec)

    asyncio.run(main())


def test_offline_audio_buffer_is_bounded_and_flushed_on_connect() -> None:
    async def main() -> None:
        port = free_loopback_port()
        rt = RealtimeSettings(offline_buffer_s=0.5, reconnect_max_s=0.3)
        rec = Recorder(f"ws://127.0.0.1:{port}", rt)
        rec.start()
        await asyncio.sleep(0.2)
        assert not rec.client.connected
        x = (np.arange(48000) % 1000).astype(np.int16)  # 2 s, a ramp so the kept tail is recognisable
        feed(rec.client, x)
        rec.client.send(protocol.response_create())  # events are not kept while offline
        st = rec.client.stats
        assert rec.client.pending_audio_ms == pytest.approx(500)
        assert st.dropped_audio_ms == pytest.approx(1500)
        assert st.dropped_events == 1 and st.connect_failures >= 1
        server = TracedServer()
        await server.start(port=port)
        assert await rec.client.wait_connected(5)
        assert await wait_for(lambda: rec.client.pending_audio_ms == 0)
        await asyncio.sleep(0.1)
        got = b"".join(protocol.decode_audio(a["audio"]) for a in server.received("input_audio_buffer.append"))
        assert got == x[-12000:].tobytes()  # exactly the newest 500 ms, in order
        assert server.inbound[0]["type"] == "session.update"  # session first, then the buffered audio
        assert st.uplink_audio_ms == pytest.approx(500)
        await rec.stop()
        await server.stop()

    asyncio.run(main())


def test_zero_offline_buffer_drops_everything() -> None:
    async def main() -> None:
        rec = Recorder(f"ws://127.0.0.1:{free_loopback_port()}", RealtimeSettings(offline_buffer_s=0))
        rec.start()
        feed(rec.client, np.zeros(2400, np.int16))
        assert rec.client.pending_audio_ms == 0 and rec.client.stats.dropped_audio_ms == pytest.approx(100)
        await rec.stop()

    asyncio.run(main())


async def _hand_made_server(handler) -> tuple[Any, int]:
    server = await serve(handler, "127.0.0.1", 0)
    return server, next(iter(server.sockets)).getsockname()[1]


def test_malformed_server_events_are_counted_and_the_connection_kept(caplog) -> None:
    garbage = ["{oops", "[1]", '{"no_type": 1}',
               '{"type": "response.output_audio.delta", "item_id": "i", "delta": "!!"}',
               '{"type": "input_audio_buffer.speech_started", "item_id": "i", "audio_start_ms": "x"}',
               '{"type": "something.new"}',
               '{"type": "error", "error": {"type": "server_error", "message": "bad day"}}']
    headers: dict[str, str | None] = {}

    async def handler(ws: ServerConnection) -> None:
        headers["auth"] = ws.request.headers.get("Authorization")
        await ws.recv()  # session.update
        for g in garbage:
            await ws.send(g)
        await ws.send('{"type": "response.audio.delta", "item_id": "it", "delta": "AAABAA=="}')
        await ws.wait_closed()

    async def main() -> None:
        server, port = await _hand_made_server(handler)
        logging.getLogger("websockets.server").setLevel(logging.INFO)  # the hand-made server's own log
        rec = Recorder(f"ws://127.0.0.1:{port}/?model=x", api_key="sk-secret-123")
        caplog.set_level(logging.DEBUG)
        logging.getLogger("websockets.server").setLevel(logging.INFO)
        rec.start()
        assert await wait_for(lambda: any(e.type == "response.output_audio.delta" for e in rec.events))
        st = rec.client.stats
        assert len(rec.errors) == 5 and all("\n" not in e for e in rec.errors)
        assert st.errors == 6 and st.unknown_events == 1  # 5 malformed + 1 server error event
        assert rec.client.connected and rec.log == ["connect"]
        assert protocol.audio_delta(rec.events[-1]) == ("it", b"\x00\x00\x01\x00")
        assert headers["auth"] == "Bearer sk-secret-123"
        await rec.stop()
        server.close()
        await server.wait_closed()
        assert "sk-secret-123" not in caplog.text
        assert "Authorization: Bearer ***" in caplog.text  # the handshake was logged, redacted

    asyncio.run(main())


def test_no_authorization_header_without_key() -> None:
    headers: dict[str, str | None] = {}

    async def handler(ws: ServerConnection) -> None:
        headers["auth"] = ws.request.headers.get("Authorization")
        await ws.wait_closed()

    async def main() -> None:
        server, port = await _hand_made_server(handler)
        rec = Recorder(f"ws://127.0.0.1:{port}")
        rec.start()
        assert await rec.client.wait_connected(5)
        await rec.stop()
        server.close()
        assert headers == {"auth": None}

    asyncio.run(main())


def test_session_is_renewed_before_the_limit() -> None:
    async def main() -> None:
        server = TracedServer()
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}", RealtimeSettings(session_max_s=0.5))
        rec.start()
        # The third connection's session.update may land a moment after its accept.
        assert await wait_for(lambda: server.connections >= 3 and len(server.received("session.update")) >= 3, 10)
        assert "disconnect:renew" in rec.log
        st = rec.client.stats
        assert st.renewals >= 2 and st.reconnects >= 2 and st.connect_failures == 0
        await rec.stop()
        await server.stop()

    asyncio.run(main())


def test_renewal_waits_for_a_response_in_flight() -> None:
    async def main() -> None:
        async with linked(RealtimeSettings(turn_detection="none", session_max_s=3.0), speed=1.0) as (server, rec):
            feed(rec.client, turn(lead_s=0, tail_s=0))
            rec.client.send(protocol.input_audio_commit())
            await asyncio.sleep(0.5)  # let the audio age past QUIET_S before the limit
            rec.client.send(protocol.response_create())
            await rec.until("response.created")
            await rec.until("response.done", timeout=10)
            assert rec.log == ["connect"]  # not renewed while the reply streamed (limit 3 s, reply ~2.5 s from 0.5 s)
            assert await wait_for(lambda: "disconnect:renew" in rec.log, 5)

    asyncio.run(main())


def test_send_audio_from_another_thread() -> None:
    async def main() -> None:
        async with linked(RealtimeSettings(turn_detection="none")) as (server, rec):
            th = threading.Thread(target=feed, args=(rec.client, np.ones(24000, np.int16)))
            th.start()
            await asyncio.to_thread(th.join)
            assert await wait_for(lambda: rec.client.stats.uplink_audio_ms >= 1000, 5)
            assert rec.client.stats.uplink_audio_ms == pytest.approx(1000)

    asyncio.run(main())


def test_send_never_blocks() -> None:
    async def main() -> None:
        async with linked(RealtimeSettings(turn_detection="none")) as (server, rec):
            frame = np.zeros(240, np.int16).tobytes()
            t0 = time.perf_counter()
            for _ in range(150):  # 1.5 s: well under the pending-audio bound
                rec.client.send_audio(frame)
            per_call_us = (time.perf_counter() - t0) / 150 * 1e6
            print(f"send_audio: {per_call_us:.1f} us per 10 ms frame")
            assert per_call_us < 200
            assert await wait_for(lambda: rec.client.stats.uplink_audio_ms >= 1500, 10)

    asyncio.run(main())


def test_tls_verifies_certificates(tmp_path: Path) -> None:
    key, cert = self_signed_cert(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def main() -> None:
        server = TracedServer(ssl=ctx)
        port = await server.start()
        url = f"wss://127.0.0.1:{port}/v1/realtime"
        untrusted = Recorder(url, RealtimeSettings(url=url, reconnect_max_s=0.2))
        untrusted.start()
        assert not await untrusted.client.wait_connected(1.0)  # self-signed: refused by default
        assert untrusted.client.stats.connect_failures >= 1
        await untrusted.stop()
        trusted = Recorder(url, RealtimeSettings(url=url, ca_file=str(cert)))
        trusted.start()
        assert await trusted.client.wait_connected(5)
        await trusted.until("session.updated")
        await trusted.stop()
        await server.stop()

    asyncio.run(main())


def test_refused_key_is_reported_once_and_retried() -> None:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def refuse(conn: ServerConnection, request: Any) -> Response:
        return Response(401, "Unauthorized", Headers(), b"bad key")

    async def main() -> None:
        server = await serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse)
        port = next(iter(server.sockets)).getsockname()[1]
        rec = Recorder(f"ws://127.0.0.1:{port}", RealtimeSettings(reconnect_max_s=0.1), api_key="sk-bad")
        rec.start()
        assert await wait_for(lambda: rec.client.stats.connect_failures >= 3, 5)
        assert len(rec.errors) == 1 and "HTTP 401" in rec.errors[0] and "sk-bad" not in rec.errors[0]
        assert not rec.client.connected
        await rec.stop()
        server.close()

    asyncio.run(main())
