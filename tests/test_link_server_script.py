"""The scripted model of `voxbox serve --script` over a raw WebSocket: a tool call the GA way,
the client's function_call_output + response.create, then the scripted speech; later turns
fall back to the parrot. Every server event is validated against RealtimeServerEvent."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
from test_link_support import Peer, run, turn

from device.audio.wavio import read_mono
from device.config import RealtimeSettings
from device.link import protocol


def _since(peer: Peer, start: int, skip_audio: bool = True) -> list[str]:
    return [e["type"] for e in peer.events[start:] if not (skip_audio and e["type"] == "response.output_audio.delta")]


def _audio_since(peer: Peer, start: int) -> bytes:
    tail = Peer(peer.ws)
    tail.events = peer.events[start:]
    return tail.reply_audio()


def _transcript_since(peer: Peer, start: int) -> str:
    return "".join(e["delta"] for e in peer.events[start:] if e["type"] == "response.output_audio_transcript.delta")


def test_scripted_tool_call_then_speech_then_parrot(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    spoken = (rng.normal(0, 3000, (8000, 2))).astype(np.int16)  # 0.5 s stereo at 16 kHz
    with wave.open(str(tmp_path / "timer_set.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(spoken.tobytes())
    (tmp_path / "timer.toml").write_text(
        '[[turns]]\ncall = {name = "set_timer", arguments = {seconds = 3, label = "tea"}}\n'
        'say = "Timer set for three seconds."\naudio = "timer_set.wav"\n\n'
        '[[turns]]\nsay = "Second turn."\n')
    want_wav = read_mono(tmp_path / "timer_set.wav", 24000).tobytes()
    x = turn(lead_s=0.3, tail_s=1.0)

    async def body(peer: Peer) -> None:
        await peer.send(protocol.session_update(RealtimeSettings()))
        await peer.recv_until("session.updated")
        # turn 1: the user speaks; the model calls the tool
        await peer.send_audio(x)
        done = await peer.recv_until("response.done")
        call = done["response"]["output"][0]
        assert done["response"]["status"] == "completed"
        assert call["type"] == "function_call" and call["name"] == "set_timer"
        assert json.loads(call["arguments"]) == {"seconds": 3, "label": "tea"}
        assert not peer.reply_audio()
        t = _since(peer, 0)
        k = t.index("response.created")
        assert t[k:] == ["response.created", "response.output_item.added", "conversation.item.added"] + \
            ["response.function_call_arguments.delta"] * t.count("response.function_call_arguments.delta") + \
            ["response.function_call_arguments.done", "response.output_item.done", "conversation.item.done",
             "response.done"], t[k:]
        deltas = [e["delta"] for e in peer.events if e["type"] == "response.function_call_arguments.delta"]
        args_done = next(e for e in peer.events if e["type"] == "response.function_call_arguments.done")
        assert "".join(deltas) == args_done["arguments"] == call["arguments"]
        assert args_done["call_id"] == call["call_id"] and args_done["item_id"] == call["id"]
        await peer.recv_until("rate_limits.updated")
        # the device runs the tool and answers
        mark = len(peer.events)
        await peer.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call["call_id"], "output": '{"ok": true}'}})
        added = await peer.recv_until("conversation.item.added")
        assert added["previous_item_id"] == call["id"]
        await peer.send(protocol.response_create())
        done = await peer.recv_until("response.done")
        assert done["response"]["output"][0]["type"] == "message"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Timer set for three seconds."
        assert _transcript_since(peer, mark) == "Timer set for three seconds."
        assert _audio_since(peer, mark) == want_wav  # the script's WAV, resampled to 24 kHz mono
        # turn 2: scripted words over the parrot's audio
        mark = len(peer.events)
        await peer.send_audio(x)
        await peer.recv_until("response.done")
        assert _transcript_since(peer, mark) == "Second turn."
        reply2 = _audio_since(peer, mark)
        assert x[300 * 24: 300 * 24 + 2400].tobytes() in reply2  # the user's own speech
        # turn 3: beyond the script, the plain parrot
        mark = len(peer.events)
        await peer.send_audio(x)
        done3 = await peer.recv_until("response.done")
        assert _transcript_since(peer, mark) == ""
        assert done3["response"]["output"][0]["type"] == "message"
        assert x[300 * 24: 300 * 24 + 2400].tobytes() in _audio_since(peer, mark)

    server = run(body, script=tmp_path / "timer.toml", speed=20.0)
    sent: list[dict[str, Any]] = server.received("conversation.item.create")
    assert len(sent) == 1
