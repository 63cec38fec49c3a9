"""The local server's session configuration and client-event shapes (pure, no I/O).

`default_session()` is what `session.created` carries (GA `realtime.session`, with
`expires_at`); `check_session()` validates the parts of a `session.update` that the
parrot uses and `merge_session()` applies one; `check_event()` checks a client event's
type and top-level fields. Problems raise `ClientError`, which the server sends as an
`error` event (type `invalid_request_error`) and keeps the connection open, as the
service does.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from device.link.protocol import AUDIO_FORMAT, SAMPLE_RATE, new_id

MODEL = "parrot"
SEMANTIC_SILENCE_MS = {"low": 1000, "medium": 600, "high": 300, "auto": 600}
CLIENT_EVENTS: dict[str, dict[str, tuple[type, bool]]] = {  # type → {field: (json type, required)}
    "session.update": {"session": (dict, True)},
    "input_audio_buffer.append": {"audio": (str, True)},
    "input_audio_buffer.commit": {},
    "input_audio_buffer.clear": {},
    "response.create": {"response": (dict, False)},
    "response.cancel": {"response_id": (str, False)},
    "conversation.item.create": {"item": (dict, True), "previous_item_id": (str, False)},
    "conversation.item.retrieve": {"item_id": (str, True)},
    "conversation.item.delete": {"item_id": (str, True)},
    "conversation.item.truncate": {"item_id": (str, True), "content_index": (int, True), "audio_end_ms": (int, True)},
}
UNSUPPORTED = ("output_audio_buffer.clear",)  # WebRTC/SIP only at the service


class ClientError(Exception):
    """An invalid client event: becomes an `error` event (the connection stays).

    `code` and `param` are the service's (e.g. `response_cancel_not_active`, param None)."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


def default_session(now_s: float, max_session_s: float) -> dict[str, Any]:
    """The session as `session.created` shows it; `expires_at` = now + the maximum length (unix s)."""
    return {
        "type": "realtime", "object": "realtime.session", "id": new_id("sess"), "model": MODEL,
        "output_modalities": ["audio"], "instructions": "",
        "expires_at": int(math.ceil(now_s + max_session_s)),
        "audio": {
            "input": {"format": dict(AUDIO_FORMAT), "noise_reduction": None, "transcription": None,
                      "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                         "silence_duration_ms": 200, "idle_timeout_ms": None,
                                         "create_response": True, "interrupt_response": True}},
            "output": {"format": dict(AUDIO_FORMAT), "voice": "marin", "speed": 1.0},
        },
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None, "truncation": "auto",
    }


def is_json_type(value: Any, typ: type) -> bool:
    """`isinstance` as JSON means it: a bool is no number, an int is a float."""
    if typ in (int, float) and isinstance(value, bool):
        return False
    if typ is float:
        return isinstance(value, (int, float))
    return isinstance(value, typ)


def check_event(ev: Any) -> tuple[str, str | None]:
    """(type, event_id) of a decoded client event whose top-level fields have the right types."""
    if not isinstance(ev, dict):
        raise ClientError("A client event must be a JSON object", "invalid_json")
    ev_type = ev.get("type")
    if not isinstance(ev_type, str):
        raise ClientError("Missing required parameter: 'type'.", "missing_required_parameter", "type")
    if ev_type in UNSUPPORTED:
        raise ClientError(f"{ev_type} is only supported for WebRTC and SIP connections", "unsupported", "type")
    spec = CLIENT_EVENTS.get(ev_type)
    if spec is None:
        raise ClientError(f"Invalid value: '{ev_type[:60]}'. Supported values are: "
                          + ", ".join(sorted(CLIENT_EVENTS)) + ".", "invalid_value", "type")
    if "event_id" in ev and not isinstance(ev["event_id"], str):
        raise ClientError("event_id must be a string", "invalid_type", "event_id")
    for key, (typ, required) in spec.items():
        if key not in ev:
            if required:
                raise ClientError(f"Missing required parameter: '{key}'.", "missing_required_parameter", key)
            continue
        if not is_json_type(ev[key], typ):
            raise ClientError(f"Invalid type for '{key}'.", "invalid_type", key)
    return ev_type, ev.get("event_id")


def check_session(s: dict[str, Any]) -> None:
    """Validate the parts of a session.update the parrot uses; ClientError on a bad one."""
    if "type" in s and s["type"] != "realtime":
        raise ClientError(f"session.type {s['type']!r} is not supported here (only 'realtime')", param="session.type")
    if "instructions" in s and not is_json_type(s["instructions"], str):
        raise ClientError("session.instructions must be a string", "invalid_type", "session.instructions")
    mods = s.get("output_modalities", ["audio"])
    if not isinstance(mods, list) or not all(m in ("audio", "text") for m in mods):
        raise ClientError("session.output_modalities must be a list of 'audio'/'text'",
                          param="session.output_modalities")
    tools = s.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ClientError("session.tools must be a list of tool objects", "invalid_type", "session.tools")
    audio = s.get("audio", {})
    if not isinstance(audio, dict):
        raise ClientError("session.audio must be an object", "invalid_type", "session.audio")
    for side in ("input", "output"):
        part = audio.get(side, {})
        if not isinstance(part, dict):
            raise ClientError(f"session.audio.{side} must be an object", "invalid_type", f"session.audio.{side}")
        fmt = part.get("format")
        if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "audio/pcm"
                                or fmt.get("rate", SAMPLE_RATE) != SAMPLE_RATE):
            raise ClientError(f"session.audio.{side}.format: only audio/pcm at 24000 Hz is supported",
                              param=f"session.audio.{side}.format")
    _check_turn_detection(audio.get("input", {}).get("turn_detection", None))


def _check_turn_detection(td: Any) -> None:
    if td is None:
        return
    param = "session.audio.input.turn_detection"
    if not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad"):
        raise ClientError(f"{param}.type must be 'server_vad' or 'semantic_vad'", param=param)
    checks: dict[str, tuple[type, float | None, float | None]] = {
        "threshold": (float, 0.0, 1.0), "prefix_padding_ms": (int, 0, 10_000),
        "silence_duration_ms": (int, 0, 10_000), "idle_timeout_ms": (int, 0, 3_600_000),
        "create_response": (bool, None, None), "interrupt_response": (bool, None, None)}
    for key, (typ, lo, hi) in checks.items():
        v = td.get(key)
        if v is None:
            continue
        if not is_json_type(v, typ) or (lo is not None and hi is not None and not lo <= v <= hi):
            raise ClientError(f"{param}.{key}: invalid value {v!r}", param=f"{param}.{key}")
    if td["type"] == "semantic_vad" and td.get("eagerness", "auto") not in SEMANTIC_SILENCE_MS:
        raise ClientError(f"{param}.eagerness: invalid value {td.get('eagerness')!r}", param=f"{param}.eagerness")


def merge_session(dst: dict[str, Any], src: dict[str, Any]) -> None:
    """Apply a session.update: objects merge key by key; `turn_detection` is replaced whole."""
    for k, v in src.items():
        if k in ("id", "object", "expires_at"):
            continue  # the service's own fields
        if isinstance(v, dict) and isinstance(dst.get(k), dict) and k != "turn_detection":
            merge_session(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
