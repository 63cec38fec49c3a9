"""Faults on real loopback sockets: the RealtimeClient against a server that misbehaves.

Server closes or crashes mid-reply, is killed and restarted 20 times during
conversations, goes silent (no pongs), sends garbage (malformed JSON, unknown
types, wrong field types, invalid base64, binary junk, 10 MB and 20 MB messages),
or is not there at start. In every case: no exception escapes, the callbacks tell
the truth (connect/disconnect in pairs, `connected` right), the client reconnects
and re-sends session.update, and audio given while offline (within the bound) is
delivered in order. Hypothesis fuzzes the parser and the agent's event handler.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from test_faults_support import FaultProxy, appended_audio, marker_audio, marker_frames
from test_link_client import Recorder, feed, validate_all
from test_link_support import TracedServer, wait_for

from device.config import RealtimeSettings
from device.dev.server import free_loopback_port
from device.link import protocol
from device.link.protocol import ProtocolError

MANUAL = dict(turn_detection="none")


def pairs_ok(log: list[str]) -> bool:
    """on_connect / on_disconnect strictly alternate, starting with a connect."""
    want = "connect"
    for entry in log:
        kind = entry.split(":", 1)[0]
        if kind != want:
            return False
        want = "disconnect" if want == "connect" else "connect"
    return True


async def session_ready(server: TracedServer, timeout: float = 10.0) -> bool:
    return await wait_for(lambda: any(e["type"] == "session.updated" for e in server.outbound), timeout, 0.002)


async def manual_turn(rec: Recorder, server: TracedServer, timeout: float = 10.0) -> dict[str, Any]:
    """commit + response.create; the server's response.done for it."""
    n = len([e for e in server.outbound if e["type"] == "response.done"])
    rec.client.send(protocol.input_audio_commit())
    rec.client.send(protocol.response_create())
    assert await wait_for(lambda: len([e for e in server.outbound if e["type"] == "response.done"]) > n, timeout), \
        [e["type"] for e in server.outbound][-10:]
    return [e for e in server.outbound if e["type"] == "response.done"][-1]


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_server_goes_away_mid_reply(how: str) -> None:
    """A crash (TCP reset, no close frame) or a clean shutdown (1001) while the reply streams."""

    async def main() -> None:
        server = TracedServer(speed=1.0)  # the reply streams slowly: there is a "mid"
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(**MANUAL))
        rec.start()
        assert await rec.client.wait_connected(5) and await session_ready(server)
        feed(rec.client, marker_audio(1, 200))  # 2 s
        rec.client.send(protocol.input_audio_commit())
        rec.client.send(protocol.response_create())
        assert await wait_for(lambda: len(rec.reply_audio()) >= 4800)  # 100 ms of the 2 s reply arrived
        await (server.kill() if how == "kill" else server.stop())
        assert await wait_for(lambda: not rec.client.connected, 5)
        assert rec.log[0] == "connect" and rec.log[1].startswith("disconnect:")
        if how == "stop":
            assert rec.log[1] == "disconnect:server closed (1001)"
        got = len(rec.reply_audio())
        assert 0 < got < 2 * 96000  # cut short, no response.done for it
        assert "response.done" not in rec.types()
        server2 = TracedServer(speed=8.0)
        await server2.start(port=port)
        assert await rec.client.wait_connected(5) and await session_ready(server2)
        assert server2.inbound[0]["type"] == "session.update"
        feed(rec.client, marker_audio(500, 30))
        done = await manual_turn(rec, server2)
        assert done["response"]["status"] == "completed"
        assert rec.log == ["connect", rec.log[1], "connect"] and rec.client.stats.reconnects == 1
        await rec.stop()
        await server2.stop()
        validate_all(server2, rec)

    asyncio.run(main())


def test_twenty_restarts_during_conversations() -> None:
    """20 × (talk, server dies — crash or shutdown, alternately, sometimes mid-reply —, talk on
    while offline, server back, the turn completes). Audio given while offline arrives, in order;
    the conversation resumes on every new server; reconnect median ≤ 1 s after the server is back."""
    restarts = 20

    async def main() -> None:
        server = TracedServer(speed=20.0)
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(offline_buffer_s=2.0, **MANUAL))
        rec.start()
        assert await rec.client.wait_connected(5) and await session_ready(server)
        servers = [server]
        seq = 1
        offline_frames: list[list[int]] = []
        inflight: list[list[int]] = []
        reconnect_s: list[float] = []
        timing: list[tuple[float, float]] = []
        since = time.monotonic()
        for i in range(restarts):
            # a turn on this server
            x = marker_audio(seq, 30)
            feed(rec.client, x)
            seq += 30
            done = await manual_turn(rec, server)
            assert done["response"]["status"] == "completed", done
            # the next turn starts, and the server dies under it (every third time while replying)
            before = marker_audio(seq, 20)
            feed(rec.client, before)
            inflight.append(list(range(seq, seq + 20)))
            seq += 20
            if i % 3 == 2:
                rec.client.send(protocol.input_audio_commit())
                rec.client.send(protocol.response_create())
                await wait_for(lambda: any(e["type"] == "response.output_audio.delta" for e in server.outbound[-5:]), 2)
            # a conversation lasts a while (≥ 0.6 s here): the connection was healthy
            await asyncio.sleep(max(0.01, 0.6 - (time.monotonic() - since)))
            t_kill = time.monotonic()
            await (server.kill() if i % 2 == 0 else server.stop())
            assert await wait_for(lambda: not rec.client.connected, 5), i
            timing.append((time.monotonic() - t_kill, time.monotonic() - since))
            # the user goes on talking while the link is down: 0.5 s, within the 2 s bound
            feed(rec.client, marker_audio(seq, 50))
            offline_frames.append(list(range(seq, seq + 50)))
            seq += 50
            await asyncio.sleep(0.05 + 0.1 * (i % 4))  # the server is down for a while
            server = TracedServer(speed=20.0)
            await server.start(port=port)
            back = time.monotonic()
            servers.append(server)
            assert await session_ready(server, 10), i
            reconnect_s.append(time.monotonic() - back)
            since = time.monotonic()
            assert rec.client.connected and server.inbound[0]["type"] == "session.update"
        # a last full turn on the last server
        feed(rec.client, marker_audio(seq, 30))
        seq += 30
        done = await manual_turn(rec, server)
        assert done["response"]["status"] == "completed"
        await rec.stop()
        await server.stop()

        st = rec.client.stats
        assert st.reconnects == restarts and st.dropped_audio_ms == 0
        assert pairs_ok(rec.log) and rec.log.count("connect") == restarts + 1
        assert [s["type"] for s in rec.sent].count("session.update") == restarts + 1
        # every server got the session first, and each new server got the offline audio whole and in order
        received: list[int] = []
        for k, srv in enumerate(servers):
            assert srv.inbound[0]["type"] == "session.update"
            frames = marker_frames(appended_audio(srv.inbound))
            received += frames
            if k > 0:
                off = offline_frames[k - 1]
                start = frames.index(off[0])
                assert frames[start:start + len(off)] == off, k
        assert received == sorted(set(received))  # in order, nothing twice
        missing = sorted(set(range(1, seq)) - set(received))
        lost_in_flight = [f for f in missing if any(f in w for w in inflight)]
        assert missing == lost_in_flight, "only audio already on the wire when a server died may be lost"
        med = statistics.median(reconnect_s)
        print(f"20 restarts: reconnect median {med * 1000:.0f} ms, max {max(reconnect_s) * 1000:.0f} ms; "
              f"{len(missing)} frames lost in flight of {seq - 1}; {[round(r, 3) for r in reconnect_s]} "
              f"failures {st.connect_failures}")
        assert med <= 1.0, reconnect_s
        for srv in servers:
            validate_all(srv, rec)

    asyncio.run(main())


def test_keepalive_timeout_when_the_server_goes_silent() -> None:
    """The path goes dead (no FIN, no RST, no pong): the ping times out, the client reconnects."""

    async def main() -> None:
        server = TracedServer()
        sport = await server.start()
        proxy = FaultProxy(sport)
        port = await proxy.start()
        rt = RealtimeSettings(ping_interval_s=0.2, ping_timeout_s=0.3, **MANUAL)
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", rt)
        rec.start()
        assert await rec.client.wait_connected(5) and await session_ready(server)
        await asyncio.sleep(0.6)  # pings answered: still connected
        assert rec.log == ["connect"]
        t0 = time.monotonic()
        proxy.freeze()
        assert await wait_for(lambda: len(rec.log) >= 2, 6)
        detect_s = time.monotonic() - t0
        assert rec.log[1].startswith("disconnect:") and not rec.client.connected
        feed(rec.client, marker_audio(1, 50))  # offline audio
        assert await rec.client.wait_connected(5)  # a new path through the proxy
        assert await wait_for(lambda: len(server.received("session.update")) == 2)
        assert await wait_for(lambda: rec.client.pending_audio_ms == 0)
        await asyncio.sleep(0.1)
        assert marker_frames(appended_audio(server.inbound))[-50:] == list(range(1, 51))
        assert rec.log == ["connect", rec.log[1], "connect"] and proxy.accepted == 2
        print(f"dead path detected in {detect_s * 1000:.0f} ms ({rec.log[1]})")
        assert detect_s < 0.2 + 0.3 + 2.0 + 1.0  # interval + timeout + close timeout + slack
        await rec.stop()
        await proxy.stop()
        await server.stop()

    asyncio.run(main())


GARBAGE: list[str | bytes] = [
    "{oops",  # malformed JSON
    "",  # empty
    "null", "[1, 2]", '"just a string"',  # not an object
    '{"type": 42}', '{"no_type": true}',
    '{"type": "brand.new.event", "x": 1}',  # unknown type
    '{"type": "response.created", "response": "not an object"}',  # wrong field types
    '{"type": "input_audio_buffer.speech_started", "item_id": 7, "audio_start_ms": 1}',
    '{"type": "conversation.item.truncated", "item_id": "i", "content_index": 0, "audio_end_ms": true}',
    '{"type": "response.output_audio.delta", "item_id": "i", "response_id": "r", "delta": "***not base64***"}',
    '{"type": "response.output_audio.delta", "item_id": "i", "response_id": "r", "delta": "AA=="}',  # odd bytes
    '{"type": "response.output_audio.delta", "item_id": "i"}',  # missing delta
    b"\xff\xfe\x00binary junk",  # a binary frame, not UTF-8
    '{"type": "error", "error": {"type": "server_error", "message": "something broke"}}',
    '{"type": "response.done", "response": {"id": 5}}',  # odd but parseable
    "[" * 100_000 + "]" * 100_000,  # deep nesting
]
MB = 1024 * 1024


def test_garbage_from_the_server_is_counted_and_the_link_kept() -> None:
    async def main() -> None:
        server = TracedServer(speed=20.0)
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(**MANUAL))
        rec.start()
        assert await rec.client.wait_connected(5) and await session_ready(server)
        feed(rec.client, marker_audio(1, 40))
        rec.client.send(protocol.input_audio_commit())
        rec.client.send(protocol.response_create())
        for g in GARBAGE:  # interleaved with the reply streaming
            assert await server.broadcast(g) == 1
        big_ok = json.dumps({"type": "response.output_audio_transcript.delta", "item_id": "i", "response_id": "r",
                             "delta": "a" * (10 * MB)})
        big_bad = '{"type": "response.output_audio.delta", "delta": "' + "x" * (10 * MB)
        t0 = time.perf_counter()
        await server.broadcast(big_ok)
        await server.broadcast(big_bad)
        await server.broadcast('{"type": "response.output_audio.delta", "item_id": "i", "response_id": "r", "delta": "'
                               + "A" * (10 * MB) + '"}')  # 10 MB of valid base64: 164 s of silence
        assert await wait_for(lambda: rec.client.stats.downlink_bytes > 30 * MB, 10)
        big_s = time.perf_counter() - t0
        assert await wait_for(lambda: "response.done" in rec.types(), 10)
        st = rec.client.stats
        assert rec.log == ["connect"] and rec.client.connected
        assert st.unknown_events == 1
        bad = len(rec.errors)
        # all but 3 (unknown type, error event, odd response.done) + big_bad
        assert bad == len(GARBAGE) - 3 + 1, rec.errors
        assert st.errors == bad + 1  # + the server's `error` event
        assert all("\n" not in e and len(e) < 300 for e in rec.errors)
        # the link still works: another turn
        feed(rec.client, marker_audio(100, 30))
        done = await manual_turn(rec, server)
        assert done["response"]["status"] == "completed"
        print(f"3 × 10 MB messages handled in {big_s * 1000:.0f} ms")
        # 20 MB is over the client's 16 MiB limit: it closes (1009) and reconnects
        await server.broadcast('{"type": "x", "pad": "' + "y" * (20 * MB) + '"}')
        assert await wait_for(lambda: len(rec.log) >= 3, 10), rec.log
        assert rec.log[1].startswith("disconnect:") and rec.log[2] == "connect"
        assert await wait_for(lambda: len(server.received("session.update")) == 2)
        await rec.stop()
        await server.stop()

    asyncio.run(main())


def test_connect_refused_at_start_then_the_server_comes() -> None:
    async def main() -> None:
        port = free_loopback_port()
        rec = Recorder(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(**MANUAL))
        rec.start()
        assert not await rec.client.wait_connected(1.0)
        st = rec.client.stats
        assert st.connect_failures >= 3 and rec.log == [] and rec.errors == []
        assert "refused" in rec.client.last_error.lower() or "connect" in rec.client.last_error.lower()
        feed(rec.client, marker_audio(1, 50))
        rec.client.send(protocol.response_create())  # not audio: dropped while offline, counted
        assert st.dropped_events == 1
        server = TracedServer()
        await server.start(port=port)
        back = time.monotonic()
        assert await rec.client.wait_connected(5) and await session_ready(server)
        print(f"first connect {(time.monotonic() - back) * 1000:.0f} ms after the server came up")
        assert time.monotonic() - back < 2.0
        assert await wait_for(lambda: rec.client.pending_audio_ms == 0)
        await asyncio.sleep(0.05)
        assert marker_frames(appended_audio(server.inbound)) == list(range(1, 51))
        assert rec.log == ["connect"] and st.reconnects == 0
        await rec.stop()
        await server.stop()

    asyncio.run(main())


def test_a_closed_client_stays_closed_when_the_server_restarts() -> None:
    async def main() -> None:
        server = TracedServer()
        port = await server.start()
        rec = Recorder(f"ws://127.0.0.1:{port}", RealtimeSettings(**MANUAL))
        rec.start()
        assert await rec.client.wait_connected(5)
        await server.kill()
        assert await wait_for(lambda: not rec.client.connected)
        await rec.stop()
        server2 = TracedServer()
        await server2.start(port=port)
        await asyncio.sleep(0.5)
        assert server2.connections == 0 and rec.log[-1].startswith("disconnect")
        await server2.stop()

    asyncio.run(main())


def test_backoff_is_quick_first_then_capped() -> None:
    from device.link.client import _backoff

    firsts = [_backoff(0, 30.0) for _ in range(200)]
    assert 0.05 <= min(firsts) and max(firsts) <= 0.1
    assert all(_backoff(50, 30.0) <= 30.0 for _ in range(100))
    assert all(15.0 <= _backoff(50, 30.0) for _ in range(100))  # jitter ×0.5–1 of the cap
    assert _backoff(3, 30.0) <= 0.8


# --------------------------------------------------------------------------- fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12)
TYPES = st.sampled_from(sorted(protocol.SERVER_EVENT_TYPES | set(protocol.BETA_NAMES))) | st.text(max_size=30)
FIELDS = ["item_id", "response_id", "delta", "audio_start_ms", "audio_end_ms", "content_index", "output_index",
          "response", "item", "session", "error", "event_id", "previous_item_id", "transcript"]
B64 = st.binary(max_size=64).map(lambda b: __import__("base64").b64encode(b).decode())
VALUES = JSON | B64 | st.just({"id": "resp_1", "status": "completed"}) | st.just({"message": "x"})
EVENTS = st.builds(lambda t, fields: {"type": t, **fields}, TYPES,
                   st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6))


@hsettings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), JSON.map(json.dumps), EVENTS.map(json.dumps)))
def test_fuzz_parser_raises_only_protocol_error(message: str | bytes) -> None:
    try:
        ev = protocol.parse_server_event(message)
    except ProtocolError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(ev.data, dict) and ev.type == ev.data["type"]
    if ev.type == "response.output_audio.delta":
        item_id, pcm = protocol.audio_delta(ev)
        assert isinstance(item_id, str) and len(pcm) % 2 == 0


@hsettings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, min_size=1, max_size=6))
def test_fuzz_client_handles_any_server_message(events: list[dict[str, Any]]) -> None:
    """Through the client's receive path (counting, response tracking, callbacks)."""
    from device.link.client import RealtimeClient

    seen: list[str] = []
    errors: list[str] = []
    client = RealtimeClient("ws://127.0.0.1:9", {}, on_event=lambda e: seen.append(e.type), on_error=errors.append)
    client._safe_call = lambda fn, *a: fn(*a)  # type: ignore[method-assign]  # let a bug escape here
    for ev in events:
        client._handle_message(json.dumps(ev))
    assert len(seen) + len(errors) == len(events)
    assert client.stats.errors >= len(errors)


def _fuzz_agent() -> Any:
    from test_faults_support import make_agent

    from device import config as cfg

    run = make_agent(np.zeros((24000, 1), np.int16), 24000, "ws://127.0.0.1:9", settings=cfg.Settings())
    run.agent.start()
    return run


_AGENT: list[Any] = []


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["event", "block", "connect", "disconnect", "press"]), EVENTS),
                min_size=1, max_size=12))
def test_fuzz_agent_handles_any_server_event(steps: list[tuple[str, dict[str, Any]]]) -> None:
    """Whatever parses reaches the agent's handler; no exception escapes, and the state shown stays valid."""
    from device.conversation import machine as cv

    if not _AGENT:
        _AGENT.append(_fuzz_agent())
    run = _AGENT[0]
    agent = run.agent
    block = np.zeros(240, np.int16)
    for kind, ev in steps:
        if kind == "event":
            try:
                parsed = protocol.parse_server_event(json.dumps(ev))
            except ProtocolError:
                continue
            agent.on_server_event(parsed)
        elif kind == "block":
            agent.process_block(block.reshape(-1, 1))
        elif kind == "connect":
            agent.on_connect()
        elif kind == "disconnect":
            agent.on_disconnect("fuzz")
        else:
            agent.press("press")
            agent.press("release")
            agent.process_block(block.reshape(-1, 1))
        assert agent.machine.shown in cv.STATES
