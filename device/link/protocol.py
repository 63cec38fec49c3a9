"""The OpenAI Realtime protocol as pure data: client event builders and a server event parser.

No I/O here. Builders return JSON-ready dicts in the GA shape (each with a unique
`event_id`); the parser turns one WebSocket text message into a ServerEvent whose
`type` is normalised to the GA name (beta names such as `response.audio.delta`
are accepted), and raises ProtocolError on anything malformed.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from device.config import RealtimeSettings

SAMPLE_RATE = 24000  # Hz, PCM16 mono, both directions
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 48
AUDIO_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}

_ID_PREFIX = os.urandom(4).hex()
_ids = itertools.count(1)


def new_id(prefix: str = "evt") -> str:
    """A process-unique id such as `evt_1a2b3c4d_17` (cheap: no uuid per audio frame)."""
    return f"{prefix}_{_ID_PREFIX}{next(_ids):x}"


def _event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": new_id(), **fields}


# --------------------------------------------------------------------------- client events


def turn_detection(rt: RealtimeSettings, *, barge_in: str = "local") -> dict[str, Any] | None:
    """`audio.input.turn_detection` for the settings.

    The server interrupts its own response on user speech only when the server is
    meant to handle barge-in (`server`, `both`); with `local` the device decides
    (and with `off` nobody does).
    """
    interrupt = barge_in in ("server", "both")
    if rt.turn_detection == "none":
        return None
    if rt.turn_detection == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": rt.eagerness, "create_response": True,
                "interrupt_response": interrupt}
    td: dict[str, Any] = {
        "type": "server_vad",
        "threshold": rt.vad_threshold,
        "prefix_padding_ms": rt.prefix_padding_ms,
        "silence_duration_ms": rt.silence_duration_ms,
        "create_response": True,
        "interrupt_response": interrupt,
    }
    if rt.idle_timeout_ms > 0:
        td["idle_timeout_ms"] = rt.idle_timeout_ms
    return td


def audio_input(rt: RealtimeSettings, *, barge_in: str = "local") -> dict[str, Any]:
    """`session.audio.input`: format, turn detection, transcription (off when no model), noise reduction."""
    inp: dict[str, Any] = {"format": dict(AUDIO_FORMAT), "turn_detection": turn_detection(rt, barge_in=barge_in)}
    if rt.transcription_model:
        tr = {"model": rt.transcription_model}
        if rt.transcription_language:
            tr["language"] = rt.transcription_language
        inp["transcription"] = tr
    inp["noise_reduction"] = None if rt.noise_reduction == "off" else {"type": rt.noise_reduction}
    return inp


def session_update(rt: RealtimeSettings, *, barge_in: str = "local", tools: list[dict[str, Any]] | None = None,
                   tool_choice: str = "auto") -> dict[str, Any]:
    """`session.update` (GA): `tools` are session.tools entries (device/appliance/tools.py)."""
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": rt.instructions,
        "audio": {
            "input": audio_input(rt, barge_in=barge_in),
            "output": {"format": dict(AUDIO_FORMAT), "voice": rt.voice},
        },
    }
    if tools:
        session["tools"] = tools
        session["tool_choice"] = tool_choice
    return _event("session.update", session=session)


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    """The result of a function call (`conversation.item.create`, item type `function_call_output`)."""
    return _event("conversation.item.create", item={"type": "function_call_output", "call_id": call_id,
                                                    "output": output})


def input_audio_append(pcm16: bytes) -> dict[str, Any]:
    return _event("input_audio_buffer.append", audio=base64.b64encode(pcm16).decode("ascii"))


def input_audio_commit() -> dict[str, Any]:
    return _event("input_audio_buffer.commit")


def input_audio_clear() -> dict[str, Any]:
    return _event("input_audio_buffer.clear")


def response_create() -> dict[str, Any]:
    return _event("response.create")


def response_cancel(response_id: str | None = None) -> dict[str, Any]:
    """`response.cancel`; naming `response_id` cancels that response only (never a newer one)."""
    if response_id:
        return _event("response.cancel", response_id=response_id)
    return _event("response.cancel")


def item_truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
    return _event("conversation.item.truncate", item_id=item_id, content_index=int(content_index),
                  audio_end_ms=max(0, int(audio_end_ms)))


def item_create(item: dict[str, Any]) -> dict[str, Any]:
    """`conversation.item.create` appending `item` (a RealtimeConversationItem) to the conversation."""
    return _event("conversation.item.create", item=item)


def encode(event: dict[str, Any]) -> str:
    """The wire text of a client event (compact JSON)."""
    return json.dumps(event, separators=(",", ":"))


# --------------------------------------------------------------------------- server events

# Beta (preview) names → GA names.
BETA_NAMES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}

# Every GA server event type of openai.types.realtime.RealtimeServerEvent.
SERVER_EVENT_TYPES = frozenset("""
conversation.created conversation.item.added conversation.item.created conversation.item.deleted
conversation.item.done conversation.item.input_audio_transcription.completed
conversation.item.input_audio_transcription.delta conversation.item.input_audio_transcription.failed
conversation.item.input_audio_transcription.segment conversation.item.retrieved conversation.item.truncated
error input_audio_buffer.cleared input_audio_buffer.committed input_audio_buffer.dtmf_event_received
input_audio_buffer.speech_started input_audio_buffer.speech_stopped input_audio_buffer.timeout_triggered
mcp_list_tools.completed mcp_list_tools.failed mcp_list_tools.in_progress output_audio_buffer.cleared
output_audio_buffer.started output_audio_buffer.stopped rate_limits.updated response.content_part.added
response.content_part.done response.created response.done response.function_call_arguments.delta
response.function_call_arguments.done response.mcp_call.completed response.mcp_call.failed
response.mcp_call.in_progress response.mcp_call_arguments.delta response.mcp_call_arguments.done
response.output_audio.delta response.output_audio.done response.output_audio_transcript.delta
response.output_audio_transcript.done response.output_item.added response.output_item.done
response.output_text.delta response.output_text.done session.created session.updated
""".split())

# Fields the daemon relies on, with their JSON types (required: missing or null is malformed;
# none of them is Optional in openai.types.realtime, tests/test_link_protocol.py checks that).
_STR, _INT, _OBJ = (str,), (int,), (dict,)
REQUIRED_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "session.created": {"session": _OBJ},
    "session.updated": {"session": _OBJ},
    "input_audio_buffer.speech_started": {"audio_start_ms": _INT, "item_id": _STR},
    "input_audio_buffer.speech_stopped": {"audio_end_ms": _INT, "item_id": _STR},
    "input_audio_buffer.committed": {"item_id": _STR},
    "conversation.item.truncated": {"item_id": _STR, "content_index": _INT, "audio_end_ms": _INT},
    "conversation.item.added": {"item": _OBJ},
    "conversation.item.done": {"item": _OBJ},
    "response.created": {"response": _OBJ},
    "response.done": {"response": _OBJ},
    "response.output_item.added": {"item": _OBJ},
    "response.output_item.done": {"item": _OBJ},
    "response.output_audio.delta": {"item_id": _STR, "delta": _STR},
    "response.output_audio.done": {"item_id": _STR},
    "response.output_audio_transcript.delta": {"item_id": _STR, "delta": _STR},
    "response.output_text.delta": {"item_id": _STR, "delta": _STR},
    "response.function_call_arguments.done": {"call_id": _STR, "name": _STR, "arguments": _STR},
    "error": {"error": _OBJ},
}
# Fields checked only when they carry a value: absent and null mean the same (some compatible
# servers send null for fields the device does not need, even on an `error` event).
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "event_id": _STR, "response_id": _STR, "output_index": _INT, "content_index": _INT,
    "previous_item_id": _STR,
}


class ProtocolError(Exception):
    """A server message that does not follow the protocol (one line).

    The text may quote what the server sent (an event type, say), so control characters are
    escaped and the length capped: a hostile server cannot break or flood the log line.
    """

    def __init__(self, message: str) -> None:
        safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        super().__init__(safe if len(safe) <= 300 else safe[:297] + "...")


@dataclass
class ServerEvent:
    type: str  # GA name
    data: dict[str, Any]  # the whole event, with data["type"] == type
    audio: bytes | None = field(default=None, repr=False)  # decoded PCM16 of an audio delta

    @property
    def known(self) -> bool:
        return self.type in SERVER_EVENT_TYPES


def _check_type(ev_type: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = {str: "string", int: "integer", dict: "object"}
        want = "/".join("null" if t is type(None) else names.get(t, t.__name__) for t in types)
        raise ProtocolError(f"{ev_type}: field {key!r} must be {want}, got {type(value).__name__}")


def decode_audio(b64: str, where: str = "audio") -> bytes:
    """Strict base64 → PCM16 bytes; ProtocolError on bad base64 or an odd byte count."""
    try:
        pcm = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"{where}: invalid base64 ({exc})") from None
    if len(pcm) % 2:
        raise ProtocolError(f"{where}: {len(pcm)} bytes is not whole 16-bit samples")
    return pcm


def parse_server_event(text: str | bytes) -> ServerEvent:
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed JSON from server ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"server event is a JSON {type(data).__name__}, not an object")
    ev_type = data.get("type")
    if not isinstance(ev_type, str) or not ev_type:
        raise ProtocolError("server event without a string 'type'")
    ev_type = BETA_NAMES.get(ev_type, ev_type)
    data["type"] = ev_type
    for key, types in REQUIRED_FIELDS.get(ev_type, {}).items():
        if key not in data:
            raise ProtocolError(f"{ev_type}: missing field {key!r}")
        _check_type(ev_type, key, data[key], types)
    for key, types in OPTIONAL_FIELDS.items():
        if data.get(key) is not None:
            _check_type(ev_type, key, data[key], types)
    audio = decode_audio(data["delta"], ev_type) if ev_type == "response.output_audio.delta" else None
    return ServerEvent(ev_type, data, audio)


def audio_delta(ev: ServerEvent) -> tuple[str, bytes]:
    """(item_id, PCM16 bytes) of a `response.output_audio.delta`."""
    if ev.type != "response.output_audio.delta":
        raise ProtocolError(f"{ev.type} is not an audio delta")
    pcm = ev.audio if ev.audio is not None else decode_audio(ev.data.get("delta", ""), ev.type)
    return ev.data["item_id"], pcm


def error_message(ev: ServerEvent) -> str:
    """One line for an `error` event."""
    err = ev.data.get("error") or {}
    parts = [str(err.get("type") or "error")]
    if err.get("code"):
        parts.append(str(err["code"]))
    return f"{': '.join(parts)}: {err.get('message') or '(no message)'}"
