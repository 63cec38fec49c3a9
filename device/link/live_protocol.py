"""The GPT-Live protocol as pure data: client event builders and a server event parser.

No I/O here (the Realtime twin is device/link/protocol.py). Source: OpenAI's "WebSockets"
voice guide (GPT-Live tab) and the `openai` package's `openai.types.live` (`ClientEvent`,
`ServerEvent`), which the tests validate every built and parsed event against.

The wire in short: connect to `wss://api.openai.com/v1/live/sessions` (no query string,
`Authorization: Bearer`), send `session.start` first, wait for `session.started`, then send
`session.input_audio.append` continuously (the session clock runs on input, silence included).
The model speaks with `session.output_audio.delta` (no done and no interrupted event: it
decides barge-in itself, hearing whatever the mic sends), transcribes both sides with
`session.input_transcript.delta` / `session.output_transcript.delta` (`start_ms`/`end_ms` on
the session timeline) and ends with `session.closed {reason}`.

Builders return JSON-ready dicts with a unique `event_id`; `parse_server_event` turns one
WebSocket text message into a typed record (a LiveEvent subclass) and raises ProtocolError on
anything malformed. Unknown event types are kept (`known` is False), not refused: the API grows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from device.link.protocol import ProtocolError, ServerEvent, decode_audio, new_id

URL = "wss://api.openai.com/v1/live/sessions"
MODELS = ("gpt-live-1", "gpt-live-1.1")
DEFAULT_MODEL = "gpt-live-1"
SAMPLE_RATE = 24000  # Hz, PCM16 mono, both directions (fixed for the session)
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000
AUDIO_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}
MAX_HISTORY = 128  # session.input: at most 128 messages
CLOSE_REASONS = ("close_requested", "expired", "content", "remote_hangup", "connection_lost")

# Every server event type of openai.types.live.ServerEvent (3.60).
SERVER_EVENT_TYPES = frozenset("""
session.started session.updated session.input_audio.muted session.input_audio.unmuted
session.output_audio.fixture.playing session.output_audio.fixture.played session.instructions.appended
session.thinking.appended session.commentary.appended session.input_audio.append session.output_audio.delta
session.input_transcript.delta session.output_transcript.delta session.delegation.created decision.event
decision.item.created decision.item.deleted response.event session.usage.updated session.closed error info
transport.dtmf.received transport.dtmf.send transport.dtmf.sent transport.ringing transport.answered
transport.failed
""".split())


def _event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": new_id(), **fields}


# --------------------------------------------------------------------------- client events


@dataclass(frozen=True)
class HistoryItem:
    """One line of the conversation so far, given as `session.start` `input` when a session is
    replaced mid-conversation. role: "user" | "assistant" | "developer"."""

    role: str
    text: str


def history_message(item: HistoryItem) -> dict[str, Any]:
    """An `InitialItem` message: one text part (`input_text`, or `output_text` for the assistant)."""
    if item.role not in ("user", "assistant", "developer"):
        raise ValueError(f"history role {item.role!r} is not user, assistant or developer")
    part = "output_text" if item.role == "assistant" else "input_text"
    return {"type": "message", "role": item.role, "content": [{"type": part, "text": item.text}]}


def session_start(model: str, instructions: str = "", voice: str = "", *,
                  history: Iterable[HistoryItem] = (), rate: int = SAMPLE_RATE,
                  delegation: dict[str, Any] | None = None) -> dict[str, Any]:
    """`session.start` (the first message on a primary WebSocket).

    model: "gpt-live-1" | "gpt-live-1.1" (any string is passed on); instructions and voice are
    omitted when empty (server defaults; voice `marin`); history: the newest MAX_HISTORY
    non-empty lines become `session.input`; rate: 24000 or 16000 (PCM16, both directions);
    delegation: omitted (None) means the application handles delegated tasks.
    """
    if rate not in (16000, 24000):
        raise ValueError(f"GPT-Live PCM rate {rate} is not 16000 or 24000")
    audio: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": rate}}
    if voice:
        audio["output"] = {"voice": voice}
    session: dict[str, Any] = {"model": model, "audio": audio}
    if instructions:
        session["instructions"] = instructions
    items = [h for h in history if h.text.strip()][-MAX_HISTORY:]
    if items:
        session["input"] = [history_message(h) for h in items]
    if delegation is not None:
        session["delegation"] = delegation
    return _event("session.start", session=session)


def input_audio_append(pcm16: bytes) -> dict[str, Any]:
    """`session.input_audio.append` with raw PCM16 (no container), base64."""
    return _event("session.input_audio.append", audio=base64.b64encode(pcm16).decode("ascii"))


def input_audio_mute() -> dict[str, Any]:
    """`session.input_audio.mute`: the model hears silence (acknowledged by `.muted`)."""
    return _event("session.input_audio.mute")


def input_audio_unmute() -> dict[str, Any]:
    return _event("session.input_audio.unmute")


def session_close() -> dict[str, Any]:
    """`session.close`; the server ends with `session.closed {reason: close_requested}`."""
    return _event("session.close")


def response_item_create(item: dict[str, Any]) -> dict[str, Any]:
    """`response.item.create`: an input item (a user message, a `function_call_output`) for the
    session's Responses backend (needs Responses delegation)."""
    return _event("response.item.create", item=item)


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    """`response.item.create` carrying a tool result for a delegated function call."""
    return response_item_create({"type": "function_call_output", "call_id": call_id, "output": output})


def response_create() -> dict[str, Any]:
    """`response.create`: ask the Responses backend to go on (after tool results)."""
    return _event("response.create")


# --------------------------------------------------------------------------- server events


@dataclass(frozen=True, kw_only=True)
class LiveEvent:
    """A parsed server event: `type` as sent, `data` the whole JSON object."""

    type: str
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def known(self) -> bool:
        return self.type in SERVER_EVENT_TYPES


@dataclass(frozen=True, kw_only=True)
class SessionStarted(LiveEvent):
    """`session.started`: the session is ready for audio. expires_at: Unix seconds."""

    session_id: str
    expires_at: int
    model: str


@dataclass(frozen=True, kw_only=True)
class OutputAudio(LiveEvent):
    """`session.output_audio.delta`: PCM16 in the session format (24 kHz mono here)."""

    pcm: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Transcript(LiveEvent):
    """`session.input_transcript.delta` (role "user") or `session.output_transcript.delta`
    (role "assistant"); start_ms/end_ms on the session timeline (ms since the session began)."""

    role: str
    delta: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, kw_only=True)
class MuteAck(LiveEvent):
    """`session.input_audio.muted` (muted True) / `session.input_audio.unmuted` (False)."""

    muted: bool


@dataclass(frozen=True, kw_only=True)
class SessionClosed(LiveEvent):
    """`session.closed`: reason is one of CLOSE_REASONS (a new one is passed on as given);
    usage_s: billed seconds, None if absent."""

    reason: str
    usage_s: float | None


@dataclass(frozen=True, kw_only=True)
class LiveError(LiveEvent):
    """`error {error: {code, message, type, param, client_event_id}}` (nulls become "")."""

    code: str
    message: str
    error_type: str
    param: str
    client_event_id: str

    def line(self) -> str:
        """One line for the log."""
        head = ": ".join(p for p in (self.error_type or "error", self.code) if p)
        return f"{head}: {self.message or '(no message)'}"


@dataclass(frozen=True, kw_only=True)
class Other(LiveEvent):
    """Any other event (delegation, response.event, usage, info...): kept whole in `data`."""


_INT = (int,)
_STR = (str,)
_STR_OR_NULL = (str, type(None))


def _get(data: dict[str, Any], key: str, types: tuple[type, ...], where: str, required: bool = True) -> Any:
    if key not in data:
        if required:
            raise ProtocolError(f"{where}: missing field {key!r}")
        return None
    value = data[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        want = "/".join("null" if t is type(None) else {str: "string", int: "integer", dict: "object",
                                                         float: "number"}.get(t, t.__name__) for t in types)
        raise ProtocolError(f"{where}: field {key!r} must be {want}, got {type(value).__name__}")
    return value


def parse_server_event(text: str | bytes) -> LiveEvent:
    """One WebSocket text message → a LiveEvent subclass; ProtocolError when malformed."""
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed JSON from server ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"server event is a JSON {type(data).__name__}, not an object")
    t = data.get("type")
    if not isinstance(t, str) or not t:
        raise ProtocolError("server event without a string 'type'")
    for key in ("event_id", "client_event_id"):
        _get(data, key, _STR_OR_NULL, t, required=False)
    if t == "session.started":
        s = _get(data, "session", (dict,), t)
        return SessionStarted(type=t, data=data, session_id=_get(s, "id", _STR, t + ".session"),
                              expires_at=_get(s, "expires_at", _INT, t + ".session"),
                              model=_get(s, "model", _STR_OR_NULL, t + ".session", required=False) or "")
    if t == "session.output_audio.delta":
        return OutputAudio(type=t, data=data, pcm=decode_audio(_get(data, "delta", _STR, t), t))
    if t in ("session.input_transcript.delta", "session.output_transcript.delta"):
        start, end = _get(data, "start_ms", _INT, t), _get(data, "end_ms", _INT, t)
        if end < start:
            raise ProtocolError(f"{t}: end_ms {end} is before start_ms {start}")
        return Transcript(type=t, data=data, role="user" if t.startswith("session.input") else "assistant",
                          delta=_get(data, "delta", _STR, t), start_ms=start, end_ms=end)
    if t in ("session.input_audio.muted", "session.input_audio.unmuted"):
        return MuteAck(type=t, data=data, muted=t.endswith(".muted"))
    if t == "session.closed":
        usage = _get(data, "usage", (dict, type(None)), t, required=False) or {}
        seconds = _get(usage, "seconds", (int, float, type(None)), t + ".usage", required=False)
        return SessionClosed(type=t, data=data, reason=_get(data, "reason", _STR, t),
                             usage_s=None if seconds is None else float(seconds))
    if t == "error":
        e = _get(data, "error", (dict,), t)
        return LiveError(type=t, data=data, code=_get(e, "code", _STR_OR_NULL, "error.error", False) or "",
                         message=_get(e, "message", _STR_OR_NULL, "error.error", False) or "",
                         error_type=_get(e, "type", _STR_OR_NULL, "error.error", False) or "",
                         param=_get(e, "param", _STR_OR_NULL, "error.error", False) or "",
                         client_event_id=_get(e, "client_event_id", _STR_OR_NULL, "error.error", False) or "")
    return Other(type=t, data=data)


def server_event(ev: LiveEvent) -> ServerEvent:
    """The agent's view of a parsed event: the same shape as a Realtime one (audio decoded)."""
    return ServerEvent(ev.type, ev.data, ev.pcm if isinstance(ev, OutputAudio) else None)
