"""The local server at the service's edges, over real sockets: the errors the OpenAI Realtime
service gives, conversation items, response metadata and usage, the session's end, browser-style
subprotocols, wss:. Every event the server sends is validated against RealtimeServerEvent."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_link_support import Peer, TracedServer, check_server_event, run, self_signed_cert, turn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from device.config import RealtimeSettings
from device.dev.server_model import tone
from device.link import protocol

openai = pytest.importorskip("openai")

REPO = Path(__file__).resolve().parents[1]


def _err(ev: dict[str, Any]) -> tuple[str, str | None]:
    return ev["error"]["code"], ev["error"]["param"]


async def _manual(peer: Peer, x: np.ndarray) -> None:
    await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
    await peer.recv_until("session.updated")
    await peer.send_audio(x)
    await peer.send(protocol.input_audio_commit())
    await peer.recv_until("conversation.item.done")


def test_the_services_errors_in_a_manual_turn() -> None:
    x = turn(lead_s=0.1, tail_s=0.1)

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        await peer.send_audio(x[: 24 * 99])  # 99 ms: one short of the minimum
        commit = protocol.input_audio_commit()
        await peer.send(commit)
        err = await peer.recv_until("error")
        assert _err(err)[0] == "input_audio_buffer_commit_empty" and err["error"]["event_id"] == commit["event_id"]
        assert "99.00ms" in err["error"]["message"]
        await peer.send_audio(x)
        await peer.send(protocol.input_audio_commit())
        await peer.recv_until("input_audio_buffer.committed")
        await peer.send(protocol.response_create())
        created = await peer.recv_until("response.created")
        await peer.send(protocol.response_create())  # a second one while the first streams
        err = await peer.recv_until("error")
        assert _err(err) == ("conversation_already_has_active_response", None)
        assert created["response"]["id"] in err["error"]["message"]
        await peer.send({**protocol.response_cancel(), "response_id": "resp_not_this_one"})
        assert _err(await peer.recv_until("error")) == ("response_cancel_not_active", None)
        await peer.send(protocol.response_cancel())
        done = await peer.recv_until("response.done")
        assert done["response"]["status"] == "cancelled"
        await peer.send(protocol.response_cancel())
        assert _err(await peer.recv_until("error")) == ("response_cancel_not_active", None)
        item = done["response"]["output"][0]["id"]
        got_ms = len(peer.reply_audio()) // 48  # what was really sent of the cancelled reply
        await peer.send(protocol.item_truncate(item, got_ms + 100))
        err = await peer.recv_until("error")
        assert _err(err) == ("invalid_value", "audio_end_ms")
        assert f"{got_ms}ms is already shorter than {got_ms + 100}ms" in err["error"]["message"]
        await peer.send(protocol.item_truncate("item_from_an_old_session", 100))
        assert _err(await peer.recv_until("error")) == ("item_truncate_invalid_item_id", "item_id")
        await peer.send(protocol.item_truncate(item, got_ms))
        assert (await peer.recv_until("conversation.item.truncated"))["audio_end_ms"] == got_ms
        await peer.send(protocol.response_create())  # the conversation goes on after every error
        assert (await peer.recv_until("response.done"))["response"]["status"] == "completed"
    run(body, speed=1.0)


def test_text_item_gets_a_tone_and_its_text_with_metadata_and_usage() -> None:
    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "what time is it"}]}
        await peer.send({"type": "conversation.item.create", "item": item})
        added = await peer.recv_until("conversation.item.added")
        done = await peer.recv_until("conversation.item.done")
        assert added["item"] == done["item"] and added["item"]["content"][0]["text"] == "what time is it"
        assert added["previous_item_id"] is None
        await peer.send({"type": "response.create", "response": {"metadata": {"turn": "t-17"}}})
        created = await peer.recv_until("response.created")
        rdone = await peer.recv_until("response.done")
        assert created["response"]["metadata"] == rdone["response"]["metadata"] == {"turn": "t-17"}
        transcript = "".join(e["delta"] for e in peer.events if e["type"] == "response.output_audio_transcript.delta")
        assert transcript == "what time is it"
        assert rdone["response"]["output"][0]["content"][0]["transcript"] == "what time is it"
        assert peer.reply_audio() == tone("what time is it")
        usage = rdone["response"]["usage"]
        out_ms = len(peer.reply_audio()) // 48
        assert usage["output_token_details"]["audio_tokens"] == -(-out_ms // 50)
        assert usage["input_token_details"]["text_tokens"] >= len("what time is it") // 4
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
        await peer.send({"type": "response.create", "response": {"metadata": {"n": 7}}}, validate=False)
        assert _err(await peer.recv_until("error")) == ("invalid_value", "response.metadata")
    run(body)


def test_items_create_retrieve_delete() -> None:
    pcm = turn(lead_s=0, tail_s=0)[:24000].tobytes()

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        audio_item = {"type": "message", "role": "user", "id": "item_mine",
                      "content": [{"type": "input_audio", "audio": base64.b64encode(pcm).decode()}]}
        await peer.send({"type": "conversation.item.create", "item": audio_item})
        added = await peer.recv_until("conversation.item.added")
        assert added["item"]["id"] == "item_mine" and "audio" not in added["item"]["content"][0]
        await peer.send({"type": "conversation.item.retrieve", "item_id": "item_mine"})
        got = await peer.recv_until("conversation.item.retrieved")
        assert base64.b64decode(got["item"]["content"][0]["audio"]) == pcm  # the audio, byte for byte
        await peer.send({"type": "response.create"})
        await peer.recv_until("response.done")
        assert peer.reply_audio() == pcm  # the parrot answers an audio item with its audio
        out = {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'}
        await peer.send({"type": "conversation.item.create", "item": out, "previous_item_id": "root"})
        first = await peer.recv_until("conversation.item.done")
        assert first["previous_item_id"] is None and first["item"]["output"] == '{"ok": true}'
        await peer.send({"type": "conversation.item.create", "item": out, "previous_item_id": "item_gone"})
        assert _err(await peer.recv_until("error")) == ("item_create_invalid_previous_item_id", "previous_item_id")
        await peer.send({"type": "conversation.item.delete", "item_id": "item_mine"})
        assert (await peer.recv_until("conversation.item.deleted"))["item_id"] == "item_mine"
        await peer.send({"type": "conversation.item.retrieve", "item_id": "item_mine"})
        err = await peer.recv_until("error")
        assert _err(err) == ("item_retrieve_invalid_item_id", "item_id")
        assert err["error"]["message"] == "Error retrieving item: the item with id 'item_mine' does not exist."
        await peer.send({"type": "conversation.item.delete", "item_id": "item_mine"})
        assert _err(await peer.recv_until("error")) == ("item_delete_invalid_item_id", "item_id")
    run(body)


def test_the_session_ends_at_its_maximum_length() -> None:
    async def main() -> None:
        server = TracedServer(max_session_s=1.5)
        port = await server.start()
        try:
            t0 = time.time()
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
                peer = Peer(ws)
                created = await peer.recv_until("session.created")
                assert t0 + 1.5 - 1 <= created["session"]["expires_at"] <= time.time() + 1.5 + 1
                err = await peer.recv_until("error", timeout=10)
                assert _err(err) == ("session_expired", None)
                assert err["error"]["message"] == "Your session hit the maximum duration of 1.5 seconds."
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        finally:
            await server.stop()
    asyncio.run(main())


def test_browser_style_subprotocols_get_realtime(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="device.dev.server.websockets")

    async def body(peer: Peer) -> None:
        assert peer.ws.subprotocol == "realtime"
    server = run(body, subprotocols=["realtime", "openai-insecure-api-key.sk-test-123"])
    assert server.connections == 1
    assert "openai-insecure-api-key.***" in caplog.text and "sk-test-123" not in caplog.text  # the key is never logged

    async def plain(peer: Peer) -> None:
        assert peer.ws.subprotocol is None  # header-auth clients offer none and get none
    run(plain)
    run(plain, subprotocols=["something-else"])


def test_wss_with_a_certificate(tmp_path: Path) -> None:
    key, cert = self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    x = turn(lead_s=0.1, tail_s=0.1)

    async def body(peer: Peer) -> None:
        await _manual(peer, x)
        await peer.send(protocol.response_create())
        await peer.recv_until("response.done")
        assert peer.reply_audio() == x.tobytes()
    run(body, ssl=server_ctx, client_ssl=ssl.create_default_context(cafile=str(cert)))

    async def untrusted() -> None:
        server = TracedServer(ssl=server_ctx)
        port = await server.start()
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                async with connect(f"wss://127.0.0.1:{port}/v1/realtime", ssl=ssl.create_default_context()):
                    pass
            with pytest.raises((InvalidMessage, InvalidStatus, ConnectionClosed, OSError)):
                async with connect(f"ws://127.0.0.1:{port}/v1/realtime", open_timeout=5):
                    pass
        finally:
            await server.stop()
    asyncio.run(untrusted())


def test_openai_client_uses_items_metadata_and_sees_usage() -> None:
    async def main() -> None:
        server = TracedServer()
        port = await server.start()
        client = openai.AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
        try:
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
                await conn.conversation.item.create(item={
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]})
                await conn.response.create(response={"metadata": {"k": "v"}})
                done = None
                async for event in conn:
                    if event.type == "conversation.item.done" and done is None:
                        await conn.conversation.item.retrieve(item_id=event.item.id)
                    if event.type == "conversation.item.retrieved":
                        retrieved = event
                    if event.type == "response.done":
                        done = event
                        break
                assert done.response.metadata == {"k": "v"} and done.response.usage.output_tokens > 0
                assert retrieved.item.content[0].text == "hello"
        finally:
            await server.stop()
        assert not [e for e in server.outbound if e["type"] == "error"]
    asyncio.run(main())


def test_serve_command_line_refuses_bad_tls_and_script(tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "device", "serve", "--port", "0", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    for args, says in [(["--tls-cert", "x.pem"], "go together"),
                       (["--tls-cert", str(tmp_path / "no.pem"), "--tls-key", str(tmp_path / "no.pem")], "no.pem"),
                       (["--max-session-s", "0"], "max-session-s"),
                       (["--script", str(tmp_path / "none.toml")], "none.toml")]:
        r = serve(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_expiry_left_open_answers_every_event_with_session_expired() -> None:
    async def main() -> None:
        server = TracedServer(max_session_s=1.0, close_on_expiry=False)
        port = await server.start()
        try:
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
                peer = Peer(ws)
                assert _err(await peer.recv_until("error", timeout=10))[0] == "session_expired"
                ev = protocol.session_update(RealtimeSettings())
                await peer.send(ev)
                err = await peer.recv_until("error")
                assert _err(err)[0] == "session_expired" and err["error"]["event_id"] == ev["event_id"]
                assert "session.updated" not in peer.types() and ws.close_code is None  # still open
        finally:
            await server.stop()
        for e in server.outbound:
            check_server_event(e)
    asyncio.run(main())


def test_freeze_makes_a_half_open_link() -> None:
    async def main() -> None:
        server = TracedServer()
        port = await server.start()
        try:
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime", ping_interval=0.5, ping_timeout=1.0,
                               close_timeout=1.0) as ws:
                peer = Peer(ws)
                await peer.recv_until("session.created")
                assert server.freeze() == 1
                with pytest.raises(ConnectionClosed) as closed:
                    await peer.send(protocol.session_update(RealtimeSettings()))
                    await peer.recv_until("session.updated", timeout=30)
                # nothing came back, not even a pong: the client's own keepalive gave up
                assert peer.types() == ["session.created"] and closed.value.rcvd is None
        finally:
            await server.stop()
    asyncio.run(main())
