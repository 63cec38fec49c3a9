"""Issue 11, 3: the session's life as the real service runs it, over loopback sockets.

A session ends at the server's `expires_at` (renewed before, at a quiet moment, and the
conversation carried over as text items); an `error` `session_expired` on a socket left open
ends the session at once; a half-open link (packets silently dropped) is noticed, shown as
`offline`, and the question asked into it is sent again after reconnecting.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from test_faults_support import FaultProxy, make_agent
from test_link_client import Recorder
from test_link_support import TracedServer, check_client_event, wait_for
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from device import config as cfg
from device.audio import wavio
from device.config import RealtimeSettings
from device.conversation.agent import ScheduledPress
from device.dev.server_config import default_session


class ScriptedServer:
    """A hand-made server: every connection runs `script(ws, conn_no)`; what it receives and
    when the peer closed are recorded per connection."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.inbound: list[list[dict[str, Any]]] = []
        self.marks: list[list[tuple[str, float]]] = []  # (what, monotonic) per connection
        self.port = 0

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        n = len(self.inbound)
        self.inbound.append([])
        self.marks.append([])

        async def reader() -> None:
            try:
                async for msg in ws:
                    self.inbound[n].append(json.loads(msg))
            except ConnectionClosed:
                pass
            self.marks[n].append(("peer_closed", time.monotonic()))

        task = asyncio.create_task(reader())
        try:
            await self.script(ws, n, self)
        except ConnectionClosed:
            pass
        await task

    def mark(self, n: int, what: str) -> None:
        self.marks[n].append((what, time.monotonic()))

    def first(self, n: int, what: str) -> float:
        return next(t for w, t in self.marks[n] if w == what)


async def send(ws: ServerConnection, type_: str, **fields: Any) -> None:
    await ws.send(json.dumps({"type": type_, "event_id": f"ev_{time.monotonic_ns()}", **fields}))


def test_session_is_renewed_before_expires_at_after_the_reply_and_the_conversation_carried_over() -> None:
    """session.created says the session ends in ~6 s (and the server would close then). A reply
    streams across the quiet-renewal window: the client renews after its response.done, before
    expires_at, and the new session gets the turns as conversation.item.create text items."""
    expiry: list[float] = []

    async def script(ws: ServerConnection, n: int, srv: ScriptedServer) -> None:
        session = default_session(time.time(), 3600)
        if n == 0:
            wall = time.time()
            session["expires_at"] = int(wall) + 7  # 6-7 s from now (whole seconds on the wire)
            expiry.append(time.monotonic() + (session["expires_at"] - wall))
            expiry.append(expiry[0] - 1.0)  # the client takes whole seconds as up to 1 s early
        await send(ws, "session.created", session=session)
        if n > 0:
            await ws.wait_closed()
            return
        await send(ws, "conversation.item.input_audio_transcription.completed", item_id="item_u", content_index=0,
                   transcript="What's the weather like?")
        await asyncio.sleep(max(0.0, expiry[1] - 2.0 - time.monotonic()))  # before the quiet window
        await send(ws, "response.created", response={"id": "resp_1", "object": "realtime.response",
                                                     "status": "in_progress", "output": []})
        await send(ws, "response.output_audio_transcript.done", item_id="item_a", response_id="resp_1",
                   output_index=0, content_index=0, transcript="Sunny and warm all day.")
        await asyncio.sleep(max(0.0, expiry[1] - 0.7 - time.monotonic()))  # in the window, before hard
        srv.mark(n, "done_sent")
        await send(ws, "response.done", response={"id": "resp_1", "object": "realtime.response",
                                                  "status": "completed", "output": []})
        try:
            await asyncio.wait_for(ws.wait_closed(), max(0.0, expiry[0] - time.monotonic()))
        except asyncio.TimeoutError:
            srv.mark(n, "expired")
            await ws.close(1001, "session expired")  # what the service does at expires_at

    async def main() -> tuple[ScriptedServer, Recorder]:
        srv = ScriptedServer(script)
        await srv.start()
        rec = Recorder(f"ws://127.0.0.1:{srv.port}", RealtimeSettings(session_max_s=0))
        rec.start()
        assert await wait_for(lambda: len(srv.inbound) >= 2 and len(srv.inbound[1]) >= 3, 10), srv.inbound
        await rec.stop()
        await srv.stop()
        return srv, rec

    srv, rec = asyncio.run(main())
    first = dict(srv.marks[0])
    assert "expired" not in first, "the server had to end the session itself"
    assert first["done_sent"] <= first["peer_closed"] < expiry[0], "renewed mid-reply or too late"
    assert rec.log[:2] == ["connect", "disconnect:renew"] and rec.client.stats.renewals == 1
    new = srv.inbound[1]
    assert [e["type"] for e in new[:3]] == ["session.update", "conversation.item.create", "conversation.item.create"]
    for ev in new[:3]:
        check_client_event(ev)
    assert [(e["item"]["role"], e["item"]["content"][0]) for e in new[1:3]] == [
        ("user", {"type": "input_text", "text": "What's the weather like?"}),
        ("assistant", {"type": "output_text", "text": "Sunny and warm all day."})]


def test_session_expired_error_on_an_open_socket_ends_the_session_at_once() -> None:
    """The server says session_expired and keeps the socket open, refusing everything after:
    the client starts a new session at once instead of collecting errors."""

    async def script(ws: ServerConnection, n: int, srv: ScriptedServer) -> None:
        await send(ws, "session.created", session=default_session(time.time(), 3600))
        if n == 0:
            for _ in range(3):  # one per event the client sends, as long as the socket stays open
                await send(ws, "error", error={"type": "invalid_request_error", "code": "session_expired",
                                               "message": "Your session hit the maximum duration of 60 minutes.",
                                               "param": None, "event_id": None})
        await ws.wait_closed()

    async def main() -> Recorder:
        srv = ScriptedServer(script)
        await srv.start()
        rec = Recorder(f"ws://127.0.0.1:{srv.port}", RealtimeSettings(session_max_s=0))
        rec.start()
        assert await wait_for(lambda: len(srv.inbound) >= 2 and srv.inbound[1], 5), srv.inbound
        await rec.stop()
        await srv.stop()
        return rec

    rec = asyncio.run(main())
    assert rec.log[:3] == ["connect", "disconnect:session expired", "connect"], rec.log
    assert rec.client.stats.errors == 1  # the first one ended it; the rest were never read
    assert rec.client.stats.connect_failures == 0


def test_question_asked_into_a_half_open_link_is_sent_after_reconnecting(fixtures_dir: Path) -> None:
    """Packets are silently dropped (no FIN, no RST) from just before the user asks: the
    keepalive notices, `offline` is shown, and after the reconnect the new session gets the
    question (the old one never heard it) and the reply plays."""
    speech, rate = wavio.read_wav(fixtures_dir / "negative_0.wav")  # speech 1.00-2.52 s in the file
    lead = np.zeros((int(1.5 * rate), speech.shape[1]), np.int16)
    mic = np.concatenate([lead, speech, np.zeros((6 * rate, speech.shape[1]), np.int16)])  # speech at 2.5 s
    # (ping timeout 3 s: a loaded CI machine must not miss pongs by chance)
    settings = cfg.apply_values(cfg.Settings(), "", {"realtime": {"ping_interval_s": 0.5, "ping_timeout_s": 3.0},
                                                     "conversation": {"follow_up_s": 10.0}})

    async def main() -> Any:
        server = TracedServer(speed=8.0)
        sport = await server.start()
        proxy = FaultProxy(sport)
        port = await proxy.start()
        run = make_agent(mic, rate, f"ws://127.0.0.1:{port}/v1/realtime", settings=settings, speed=1.0,
                         presses=[ScheduledPress(0.5)])
        task = asyncio.create_task(run.agent.run(wait_connected_s=5))
        while run.agent.now < 1.0:  # noqa: ASYNC110 (the mic clock is not an event)
            await asyncio.sleep(0.005)
        proxy.freeze()  # the link goes dead before the question
        run.frozen_at = run.agent.now
        await asyncio.wait_for(task, 60)
        await proxy.stop()
        await server.stop()
        return run

    run = asyncio.run(main())
    # (a starved test loop may also miss a pong before the freeze: only what follows it counts)
    disc = [d for d in run.events("disconnect") if d["reason"] != "client closed" and d["t"] > run.frozen_at]
    assert disc, run.events("disconnect")
    offline = [s for s in run.events("state") if s["state"] == "offline" and s["t"] > run.frozen_at]
    assert offline and offline[0]["t"] == disc[0]["t"]
    # the old session never heard the question; the new one did, and answered it
    back = next(c["t"] for c in run.events("connect") if c["t"] >= disc[0]["t"])
    assert not [r for r in run.events("recv", type="input_audio_buffer.speech_started") if r["t"] < back]
    assert [r for r in run.events("recv", type="input_audio_buffer.speech_started") if r["t"] >= back]
    assert [p for p in run.events("playback_start") if p["t"] >= back]
    assert [s["reason"] for s in run.events("playback_stop")] == ["done"]


def test_history_keeps_the_played_share_of_a_truncated_reply_and_is_bounded() -> None:
    from device.link.history import TurnHistory
    from device.link.protocol import ServerEvent

    def ev(type_: str, audio: bytes | None = None, **d: Any) -> ServerEvent:
        return ServerEvent(type_, {"type": type_, **d}, audio=audio)

    h = TurnHistory(max_items=4)
    h.observe(ev("conversation.item.input_audio_transcription.completed", item_id="u1", transcript="Tell me a story"))
    h.observe(ev("response.output_audio.delta", audio=b"\0\0" * 24000 * 4, item_id="a1", delta=""))  # 4 s
    h.observe(ev("response.output_audio_transcript.done", item_id="a1",
                 transcript="one two three four five six seven eight"))
    h.observe(ev("conversation.item.truncated", item_id="a1", content_index=0, audio_end_ms=2000))  # half heard
    texts = [(i["item"]["role"], i["item"]["content"][0]["text"]) for i in h.items()]
    assert texts == [("user", "Tell me a story"), ("assistant", "one two three four …")]
    for k in range(5):
        h.observe(ev("response.output_text.done", item_id=f"t{k}", text=f"reply {k}"))
    assert len(h) == 4 and h.items()[-1]["item"]["content"][0]["text"] == "reply 4"
    h.observe(ev("response.output_audio_transcript.done", item_id="n", transcript=None))  # null: ignored
    assert len(h) == 4


def test_against_the_strict_server_the_session_is_renewed_before_it_expires_with_the_turns() -> None:
    """`voxbox serve` with a 3 s session (expires_at, then session_expired and 1001): the client
    renews first, at a quiet moment after the scripted reply, and the new session accepts the
    turns carried over (no error anywhere)."""
    from test_link_support import check_server_event

    from device.dev.server_model import ScriptTurn
    from device.link import protocol

    async def main() -> tuple[TracedServer, Recorder]:
        server = TracedServer(speed=8.0, max_session_s=3.0, script=[ScriptTurn(say="It is sunny today.")])
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(turn_detection="none", session_max_s=0))
        rec.start()
        assert await rec.client.wait_connected(5)
        rec.client.send_audio(np.zeros(24000 // 2, np.int16).tobytes())  # 500 ms, then a turn of it
        rec.client.send(protocol.input_audio_commit())
        rec.client.send(protocol.response_create())
        assert await wait_for(lambda: "response.done" in rec.types(), 10), rec.types()
        assert await wait_for(lambda: rec.log.count("connect") >= 2
                              and len(server.received("conversation.item.create")) >= 1
                              and "conversation.item.added" in rec.types()[rec.types().index("response.done"):], 15)
        await rec.stop()
        await server.stop()
        return server, rec

    server, rec = asyncio.run(main())
    assert rec.log[:3] == ["connect", "disconnect:renew", "connect"], rec.log
    types = rec.types()
    assert "error" not in types, [e.data for e in rec.events if e.type == "error"]
    created = server.received("conversation.item.create")
    assert [c["item"]["content"] for c in created] == [[{"type": "output_text", "text": "It is sunny today."}]]
    for ev in rec.events:
        check_server_event(ev.data)
