"""The local realtime server over a real loopback socket, driven by a raw WebSocket client.

Every event the server sends is validated against openai.types.realtime.RealtimeServerEvent,
every event the tests send against RealtimeClientEvent.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
from test_link_support import AUDIO_TYPES, Peer, run, turn

from device.config import RealtimeSettings
from device.link import protocol


def _is_subsequence(needles: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(n in it for n in needles)


def test_session_update_is_stored_and_echoed() -> None:
    async def body(peer: Peer) -> None:
        rt = RealtimeSettings(vad_threshold=0.6, silence_duration_ms=700, voice="cedar")
        await peer.send(protocol.session_update(rt))
        ev = await peer.recv_until("session.updated")
        td = ev["session"]["audio"]["input"]["turn_detection"]
        assert td["threshold"] == 0.6 and td["silence_duration_ms"] == 700 and td["interrupt_response"] is False
        assert ev["session"]["audio"]["output"]["voice"] == "cedar"
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        ev = await peer.recv_until("session.updated")
        assert ev["session"]["audio"]["input"]["turn_detection"] is None
    run(body)


def test_server_vad_parrot_turn() -> None:
    x = turn()
    speech_ms = len(x) / 24 - 500 - 1200

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings()))
        await peer.recv_until("session.updated")
        await peer.send_audio(x)
        done = await peer.recv_until("response.done")
        assert done["response"]["status"] == "completed"
        t = peer.types()
        order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                 "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                 "response.created", "response.output_item.added", "response.content_part.added",
                 "response.output_audio.done", "response.content_part.done", "response.output_item.done",
                 "response.done"]
        assert _is_subsequence(order, t), t
        started = next(e for e in peer.events if e["type"] == "input_audio_buffer.speech_started")
        stopped = next(e for e in peer.events if e["type"] == "input_audio_buffer.speech_stopped")
        committed = next(e for e in peer.events if e["type"] == "input_audio_buffer.committed")
        assert started["item_id"] == stopped["item_id"] == committed["item_id"]
        # onset at 500 ms minus 300 ms prefix padding; stop after the speech plus 500 ms silence
        assert 100 <= started["audio_start_ms"] <= 400, started
        assert 500 + speech_ms + 300 <= stopped["audio_end_ms"] <= 500 + speech_ms + 900, (stopped, speech_ms)
        reply = peer.reply_audio()
        reply_ms = len(reply) / 48
        assert abs(reply_ms - (speech_ms + 300)) < 400, (reply_ms, speech_ms)
        deltas = [e for e in peer.events if e["type"] in AUDIO_TYPES]
        assert all(len(base64.b64decode(d["delta"])) <= 4800 for d in deltas) and len(deltas) >= reply_ms // 100
        # the reply is the user's own audio: the speech is in it, sample for sample
        speech = x[500 * 24: 500 * 24 + 2400].tobytes()
        assert speech in reply
    run(body)


def test_reply_is_faster_than_real_time() -> None:
    x = turn()

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings()))
        await peer.send_audio(x)
        await peer.recv_until("response.created")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await peer.recv_until("response.done")
        elapsed = loop.time() - t0
        ms = len(peer.reply_audio()) / 48
        assert elapsed < ms / 1000 / 2.5, (elapsed, ms)  # 4x real time
    run(body)


def test_manual_turn_commit_and_response_create() -> None:
    x = turn(lead_s=0.1, tail_s=0.1)

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        await peer.recv_until("session.updated")
        await peer.send(protocol.input_audio_commit())
        err = await peer.recv_until("error")
        assert err["error"]["code"] == "input_audio_buffer_commit_empty"
        await peer.send_audio(x)
        await peer.send(protocol.input_audio_commit())
        committed = await peer.recv_until("input_audio_buffer.committed")
        assert "input_audio_buffer.speech_started" not in peer.types()
        await asyncio.sleep(0.2)
        assert "response.created" not in peer.types()  # no auto response without turn detection
        await peer.send(protocol.response_create())
        done = await peer.recv_until("response.done")
        assert done["response"]["status"] == "completed"
        assert peer.reply_audio() == x.tobytes()
        assert committed["previous_item_id"] is None
    run(body)


def test_clear_drops_the_buffer() -> None:
    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        await peer.send_audio(turn(lead_s=0, tail_s=0))
        await peer.send(protocol.input_audio_clear())
        await peer.recv_until("input_audio_buffer.cleared")
        await peer.send(protocol.input_audio_commit())
        assert (await peer.recv_until("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
    run(body)


def test_cancel_mid_response() -> None:
    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        await peer.send_audio(turn(lead_s=0.1, tail_s=0.1))
        await peer.send(protocol.input_audio_commit())
        await peer.send(protocol.response_create())
        await peer.recv_until("response.output_audio.delta")
        await peer.send(protocol.response_cancel())
        done = await peer.recv_until("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        assert len(peer.reply_audio()) < len(turn(lead_s=0.1, tail_s=0.1).tobytes()) // 2
        t = peer.types()
        assert t.index("response.output_audio.done") < t.index("response.done")
        await peer.send(protocol.response_cancel())  # nothing left to cancel
        assert (await peer.recv_until("error"))["error"]["code"] == "response_cancel_not_active"
    run(body, speed=2.0)


def test_truncate() -> None:
    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(turn_detection="none")))
        await peer.send_audio(turn(lead_s=0.1, tail_s=0.1))
        await peer.send(protocol.input_audio_commit())
        await peer.send(protocol.response_create())
        item = (await peer.recv_until("response.output_item.added"))["item"]["id"]
        await peer.recv_until("response.done")
        await peer.send(protocol.item_truncate(item, 640))
        ev = await peer.recv_until("conversation.item.truncated")
        assert (ev["item_id"], ev["content_index"], ev["audio_end_ms"]) == (item, 0, 640)
        await peer.send(protocol.item_truncate("item_nope", 10))
        assert (await peer.recv_until("error"))["error"]["param"] == "item_id"
        await peer.send(protocol.item_truncate(item, 10_000_000))
        assert (await peer.recv_until("error"))["error"]["param"] == "audio_end_ms"
    run(body)


def test_garbage_gets_errors_and_the_connection_stays() -> None:
    bad: list[Any] = [
        "{not json", "[]", json.dumps({"event_id": "x"}), json.dumps({"type": "no.such.event", "event_id": "evt_7"}),
        json.dumps({"type": "input_audio_buffer.append", "audio": "***"}),
        json.dumps({"type": "input_audio_buffer.append", "audio": 12}),
        json.dumps({"type": "input_audio_buffer.append"}),
        json.dumps({"type": "conversation.item.truncate", "item_id": "i", "content_index": "0", "audio_end_ms": 1}),
        json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 16000}}}}}),
        json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "threshold": 7}}}}}),
        json.dumps({"type": "conversation.item.create", "item": {}}),
        b"\x00\x01binary",
    ]

    async def body(peer: Peer) -> None:
        for msg in bad:
            await peer.ws.send(msg)
            err = await peer.recv_until("error")
            assert err["error"]["type"] == "invalid_request_error" and err["error"]["message"]
        assert peer.events[-9]["error"]["event_id"] == "evt_7"
        await peer.send(protocol.session_update(RealtimeSettings()))
        await peer.recv_until("session.updated")
    run(body)


def test_server_interrupts_its_response_when_asked() -> None:
    x = turn()

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings(), barge_in="server"))
        await peer.send_audio(x)
        await peer.recv_until("response.output_audio.delta")
        await peer.send_audio(x[: 24000 + 12000])  # the user talks over the reply
        done = await peer.recv_until("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "turn_detected"
    run(body, speed=1.0)


def test_two_turns_chain_previous_item_ids() -> None:
    x = turn(lead_s=0.3, tail_s=1.0)

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings()))
        for _ in range(2):
            await peer.send_audio(x)
            await peer.recv_until("response.done")
        commits = [e for e in peer.events if e["type"] == "input_audio_buffer.committed"]
        assistant = [e["item"]["id"] for e in peer.events if e["type"] == "response.output_item.done"]
        assert len(commits) == 2 and commits[1]["previous_item_id"] == assistant[0]
        starts = [e["audio_start_ms"] for e in peer.events if e["type"] == "input_audio_buffer.speech_started"]
        assert starts[1] > starts[0] + len(x) / 24 - 500
    run(body)


def test_random_client_events_never_drop_the_connection() -> None:
    rng = np.random.default_rng(7)
    types = ["session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
             "response.create", "response.cancel", "conversation.item.truncate", "bogus", None, 5]
    values: list[Any] = [None, True, 0, -3, 2.5, "x", "AAAA", "%%%", [], {}, {"type": "realtime"},
                         {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "hi"}}}},
                         {"audio": {"input": {"turn_detection": None}}}, {"audio": []}]
    fields = ["session", "audio", "item_id", "content_index", "audio_end_ms", "response", "response_id", "event_id"]

    async def body(peer: Peer) -> None:
        for _ in range(300):
            ev: dict[str, Any] = {"type": types[rng.integers(len(types))]}
            for f in rng.choice(fields, size=rng.integers(0, 4), replace=False):
                ev[str(f)] = values[rng.integers(len(values))]
            await peer.ws.send(json.dumps(ev))
        marker = protocol.item_truncate("item_marker", 1)
        await peer.send(marker)
        while (await peer.recv_until("error", timeout=30))["error"].get("event_id") != marker["event_id"]:
            pass  # every random event was answered before the marker, on the same connection
        assert peer.types().count("error") > 100
    run(body)  # every server event was validated against RealtimeServerEvent
