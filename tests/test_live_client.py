"""device.link.live_client.LiveClient against the local parrot: no socket while idle, audio held
until session.started, close, a dropped session reported, the key never logged."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest
from live_support import check_live_client_event
from test_link_support import TracedServer, wait_for

from device.config import RealtimeSettings
from device.link import live_protocol as lp
from device.link.live_client import LiveClient
from device.link.protocol import ServerEvent


class Listener:
    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.sent: list[dict[str, Any]] = []
        self.log: list[str] = []

    def on_server_event(self, ev: ServerEvent) -> None:
        self.events.append(ev)

    def on_connect(self) -> None:
        self.log.append("connect")

    def on_disconnect(self, reason: str) -> None:
        self.log.append("disconnect")

    def on_sent(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    def on_link_error(self, message: str) -> None:
        self.log.append("error: " + message)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def test_session_lifecycle_holds_audio_until_started_and_sends_nothing_idle(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pcm = (np.arange(24000) % 200).astype(np.int16).tobytes()  # 1 s

    async def main() -> tuple[Listener, TracedServer, LiveClient]:
        server = TracedServer()
        await server.start()
        ls = Listener()
        client = LiveClient(server.live_url, ls, api_key="sk-secret-123", settings=RealtimeSettings(api="live"))
        task = asyncio.create_task(client.run())
        try:
            assert await client.wait_connected(5) and ls.log == ["connect"]
            client.send_audio(pcm)  # idle: no session wanted, nothing goes anywhere
            client.send(lp.input_audio_mute())
            await asyncio.sleep(0.2)
            assert server.live_api.stats.connections == 0 and client.stats.dropped_audio_ms == 1000
            client.send(lp.session_start("gpt-live-1"))
            client.send_audio(pcm)  # given before session.started: held, then sent
            assert await wait_for(lambda: "session.started" in ls.types(), 10)
            client.send_audio(pcm)
            assert await wait_for(lambda: server.live_api.stats.audio_bytes == 2 * len(pcm), 10)
            client.send(lp.session_close())
            assert await wait_for(lambda: "session.closed" in ls.types(), 10)
            assert await wait_for(lambda: server.live == 0, 5)
            client.send_audio(pcm)  # after the close: idle again
            await asyncio.sleep(0.1)
        finally:
            await client.close()
            await task
            await server.stop()
        return ls, server, client

    ls, server, client = asyncio.run(main())
    inbound = [e for e in server.inbound if isinstance(e, dict)]
    assert [e["type"] for e in inbound if e["type"] != "session.input_audio.append"] == ["session.start",
                                                                                      "session.close"]
    assert inbound[0]["type"] == "session.start"  # the first message, audio only after it
    for e in inbound:
        check_live_client_event(e)
    assert server.live_api.stats.audio_bytes == 2 * len(pcm) and server.live_api.stats.close_reasons == [
        "close_requested"]
    assert [e["type"] for e in ls.sent] == ["session.start", "session.close"]
    assert client.stats.uplink_audio_ms == 2000 and ls.log == ["connect"]
    assert "sk-secret-123" not in caplog.text


def test_a_dropped_session_is_reported_and_the_next_start_connects_again() -> None:
    async def main() -> tuple[Listener, TracedServer]:
        server = TracedServer()
        port = await server.start()
        ls = Listener()
        client = LiveClient(server.live_url, ls, settings=RealtimeSettings(api="live"))
        task = asyncio.create_task(client.run())
        try:
            client.send(lp.session_start("gpt-live-1"))
            assert await wait_for(lambda: "session.started" in ls.types(), 10)
            await server.kill()  # the TCP connection dies without session.closed
            assert await wait_for(lambda: "disconnect" in ls.log, 10)
            await server.start(port=port)
            client.send_audio(b"\1\0" * 2400)  # kept for the renewal
            client.send(lp.session_start("gpt-live-1", history=[lp.HistoryItem("user", "hello")]))
            assert await wait_for(lambda: ls.types().count("session.started") == 2, 10)
            assert await wait_for(lambda: server.live_api.stats.audio_bytes == 4800, 10)
        finally:
            await client.close()
            await task
            await server.stop()
        return ls, server

    ls, server = asyncio.run(main())
    assert ls.log == ["connect", "disconnect", "connect"]  # offline after the drop, back at the new start
    starts = [e for e in server.inbound if isinstance(e, dict) and e["type"] == "session.start"]
    assert starts[-1]["session"]["input"][0]["content"][0]["text"] == "hello"


def test_an_unreachable_server_gives_one_line_and_no_crash() -> None:
    from device.dev.server import free_loopback_port

    async def main() -> Listener:
        ls = Listener()
        client = LiveClient(f"ws://127.0.0.1:{free_loopback_port()}/v1/live/sessions", ls,
                            settings=RealtimeSettings(api="live", reconnect_max_s=0.2))
        task = asyncio.create_task(client.run())
        client.send(lp.session_start("gpt-live-1"))
        await wait_for(lambda: client.stats.connect_failures >= 3, 10)
        client.send(lp.session_close())  # gives up the attempt
        await asyncio.sleep(0.3)
        failures = client.stats.connect_failures
        await asyncio.sleep(0.5)
        assert client.stats.connect_failures == failures  # no more retries once the session is not wanted
        await client.close()
        await task
        return ls

    ls = asyncio.run(main())
    errors = [m for m in ls.log if m.startswith("error")]
    assert len(errors) == 1 and "cannot open a GPT-Live session" in errors[0] and "\n" not in errors[0]
