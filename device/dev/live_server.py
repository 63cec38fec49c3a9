"""The local GPT-Live server: `/v1/live/sessions` of the local server, a full-duplex parrot.

Protocol as in device/link/live_protocol.py (source: OpenAI's GPT-Live WebSocket guide and
`openai.types.live`): the first message must be `session.start` (answered by
`session.started`), then `session.input_audio.append` flows continuously.

The parrot model listens all the time, also while it speaks (server VAD, Silero: speech after
64 ms, a turn ends after 500 ms of silence). It answers each user turn with that turn's audio;
when it hears speech during its own reply it stops at once (as the real model decides
interruptions itself), whether the speech is the user's or its own echo coming back through an
uncancelled microphone. Its output is clocked by the input, as the session clock is: each append
of N ms releases up to N ms of reply, a LEAD_MS head start ahead of the input clock. Transcript
deltas carry session-timeline `start_ms`/`end_ms` (the parrot has no speech recognition; the
text says which turn and how long). Mute makes the input silence (it still counts as received).

Responses delegation (`session.start` `delegation {type: "responses", responses: {model, tools}}`),
driven by the scripted model (`voxbox serve --script`, server_model): a script turn with a `call`
is answered, at the end of that user turn, by `session.delegation.created` and the delegated
stream's function call in `response.event`s (`response.output_item.added`,
`response.function_call_arguments.done`, `response.output_item.done` with the `function_call`
item). The parrot then waits for `response.item.create {function_call_output}` with that
`call_id` and `response.create`, and speaks the turn's `say` (its WAV, or the user's own audio).
Without delegation `response.item.create` / `response.create` are refused with
`delegation_not_configured`, and a script turn's call is not made (its words are spoken).
`session.close` → `session.closed {reason: close_requested}`; after `max_session_s` of input the
session ends with `session.closed {reason: expired}`. Each message is handled in order, on the
connection's own task: nothing here blocks another connection.

Counters (LiveServer): connections, sessions started, sessions open now, audio bytes received
(and received while muted), and interruptions of the parrot by what it heard — what the tests
and `voxbox bench` read to check "no session while idle", "0 bytes while idle or muted" and
"the model did not hear itself".
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from device.dev.server_model import ScriptedModel, ScriptTurn
from device.dev.server_vad import ServerVad
from device.link.live_protocol import BYTES_PER_MS, SAMPLE_RATE
from device.link.protocol import new_id

Trace = Callable[[str, "str | bytes"], None]

MODEL = "gpt-live-1"
CHUNK_MS = 100  # largest output audio delta
LEAD_MS = 200  # how far the reply may run ahead of the input clock
REPLY_TAIL_MS = 150  # silence kept after the last speech in a reply
SILENCE_MS = 500  # end of a user turn
PREFIX_MS = 300
MAX_SESSION_S = 3600.0
CLIENT_TYPES = ("session.start", "session.update", "session.input_audio.append", "session.input_audio.mute",
                "session.input_audio.unmute", "session.close", "response.item.create", "response.create")


class LiveClientError(Exception):
    """An invalid client event: becomes an `error` event (the session stays)."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


class Socket(Protocol):
    """What a session needs of its connection (a websockets ServerConnection, or an in-memory twin)."""

    async def send(self, message: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass
class Interruption:
    """The parrot stopped its reply because it heard speech: at `session_ms` on the session
    timeline, after `reply_ms` of the reply had been sent."""

    session_id: str
    session_ms: int
    reply_ms: int


@dataclass
class LiveStats:
    connections: int = 0
    sessions_started: int = 0
    sessions_open: int = 0  # started and not yet closed, right now
    audio_bytes: int = 0  # PCM bytes received by session.input_audio.append
    muted_audio_bytes: int = 0  # of those, while the session input was muted
    appends: int = 0
    interruptions: list[Interruption] = field(default_factory=list)
    close_reasons: list[str] = field(default_factory=list)


@dataclass
class _Reply:
    audio: bytes
    start_ms: int  # session ms the reply began
    turn: int  # the user turn it answers
    sent: int = 0  # bytes sent
    text: str = ""  # its transcript (a script's `say`); "" = the parrot's description


@dataclass
class _Delegated:
    """A delegated response waiting for its function call's output (then response.create)."""

    delegation_id: str
    call_id: str
    say: str
    audio: bytes  # what it will speak
    turn: int
    output: str | None = None  # the function_call_output received
    sequence: int = 0  # of its Responses stream events


def _check_delegation(d: Any) -> dict[str, Any] | None:
    """session.delegation: None (the application's), or a checked `{type, ...}` object."""
    if d is None:
        return None
    if not isinstance(d, dict) or d.get("type") not in ("client", "responses", "decisions"):
        raise LiveClientError("session.delegation.type must be client, responses or decisions", "invalid_value",
                              "session.delegation.type")
    if d["type"] == "responses":
        r = d.get("responses")
        if not isinstance(r, dict) or not isinstance(r.get("model"), str) or not r["model"]:
            raise LiveClientError("Missing required parameter: 'session.delegation.responses.model'.",
                                  "missing_required_parameter", "session.delegation.responses.model")
        tools = r.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("type"), str)
                                                  for t in tools):
            raise LiveClientError("session.delegation.responses.tools must be a list of tools", "invalid_value",
                                  "session.delegation.responses.tools")
    return d


def _check_start(s: Any) -> dict[str, Any]:
    """The parts of a `session.start` session the parrot uses; LiveClientError on a bad one."""
    if not isinstance(s, dict):
        raise LiveClientError("session must be an object", "invalid_type", "session")
    if not isinstance(s.get("model"), str) or not s["model"]:
        raise LiveClientError("Missing required parameter: 'session.model'.", "missing_required_parameter",
                              "session.model")
    if "instructions" in s and not isinstance(s["instructions"], (str, type(None))):
        raise LiveClientError("session.instructions must be a string", "invalid_type", "session.instructions")
    audio = s.get("audio") or {}
    if not isinstance(audio, dict):
        raise LiveClientError("session.audio must be an object", "invalid_type", "session.audio")
    fmt = audio.get("format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "audio/pcm"
                            or fmt.get("rate") != SAMPLE_RATE):
        raise LiveClientError("session.audio.format: only audio/pcm at 24000 Hz is supported here",
                              "unsupported", "session.audio.format")
    items = s.get("input") or []
    if not isinstance(items, list) or len(items) > 128:
        raise LiveClientError("session.input must be a list of at most 128 messages", "invalid_value",
                              "session.input")
    for i, it in enumerate(items):
        content = it.get("content") if isinstance(it, dict) else None
        if (not isinstance(it, dict) or it.get("role") not in ("user", "assistant", "developer")
                or not isinstance(content, list) or len(content) != 1 or not isinstance(content[0], dict)
                or not isinstance(content[0].get("text"), str)):
            raise LiveClientError(f"session.input[{i}] must be a message with one text part", "invalid_value",
                                  f"session.input[{i}]")
    voice = (audio.get("output") or {}).get("voice") if isinstance(audio.get("output"), dict) else None
    delegation = _check_delegation(s.get("delegation"))
    started: dict[str, Any] = {
        "id": new_id("sess"), "expires_at": 0, "model": s["model"], "status": "active",
        "instructions": s.get("instructions") or "",
        "audio": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                  "output": {"voice": voice if isinstance(voice, str) and voice else "marin"}},
        "input": items}
    if delegation is not None:  # returned as configured, an MCP tool's authorization left out (as the service does)
        r = delegation.get("responses")
        if isinstance(r, dict) and r.get("tools"):
            r = {**r, "tools": [{k: v for k, v in t.items() if k != "authorization"} for t in r["tools"]]}
            delegation = {**delegation, "responses": r}
        started["delegation"] = delegation
    return started


class LiveSession:
    """One GPT-Live connection: session state, the listening VAD, the reply in progress."""

    def __init__(self, ws: Socket, stats: LiveStats, max_session_s: float,
                 trace: Trace | None = None, model: ScriptedModel | None = None,
                 answer_turns: bool = True) -> None:
        self.ws = ws
        self.model = model  # the script's turns (None: the plain parrot)
        self.delegated: _Delegated | None = None
        self.answer_turns = answer_turns  # False: it says only what say() gives it (benches)
        self.stats = stats
        self.max_ms = int(max_session_s * 1000)
        self.trace = trace
        self.session: dict[str, Any] | None = None
        self.closed = False
        self.muted = False
        self.samples = 0  # input samples since session.started: the session clock
        self.vad = ServerVad(0.5, PREFIX_MS, SILENCE_MS)
        self.audio = bytearray()  # input kept since keep_from (for the turn in progress)
        self.keep_from = 0  # sample index of audio[0]
        self.turn_start: int | None = None  # sample index of the turn in progress (with prefix)
        self.turns = 0
        self.reply: _Reply | None = None

    @property
    def session_ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE

    async def emit(self, type_: str, **fields: Any) -> None:
        # Audio deltas carry no event_id on a primary WebSocket (openai.types.live OutputAudioDeltaEvent).
        head = {"type": type_}
        if type_ != "session.output_audio.delta":
            head["event_id"] = new_id("event")
        text = json.dumps({**head, **fields}, separators=(",", ":"))
        if self.trace is not None:
            self.trace("out", text)
        await self.ws.send(text)

    async def handle(self, message: str | bytes) -> None:
        client_id: str | None = None
        try:
            try:
                ev = json.loads(message)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise LiveClientError(f"The message is not JSON ({exc.__class__.__name__})", "invalid_json") from None
            if not isinstance(ev, dict):
                raise LiveClientError("A client event must be a JSON object", "invalid_json")
            client_id = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
            t = ev.get("type")
            if t not in CLIENT_TYPES:
                raise LiveClientError(f"Invalid value: {str(t)[:60]!r}. Supported values are: "
                                      + ", ".join(CLIENT_TYPES) + ".", "invalid_value", "type")
            if self.session is None and t != "session.start":
                raise LiveClientError(f"{t} before session.start: send session.start first and wait for "
                                      "session.started", "session_not_started", "type")
            await getattr(self, "on_" + t.replace(".", "_"))(ev)
        except LiveClientError as exc:
            await self.emit("error", client_event_id=client_id,
                            error={"code": exc.code, "message": str(exc), "type": "invalid_request_error",
                                   "param": exc.param, "client_event_id": client_id})

    # ---------------------------------------------------------------- client events

    async def on_session_start(self, ev: dict[str, Any]) -> None:
        if self.session is not None:
            raise LiveClientError("The session has already started", "session_already_started", "type")
        self.session = _check_start(ev.get("session"))
        self.session["expires_at"] = int(time.time() + self.max_ms / 1000)
        self.stats.sessions_started += 1
        self.stats.sessions_open += 1
        await self.emit("session.started", session=self.session, client_event_id=ev.get("event_id"))

    async def on_session_update(self, ev: dict[str, Any]) -> None:
        raise LiveClientError("session.update (delegation) is not supported by the local parrot", "unsupported")

    @property
    def responses_delegation(self) -> bool:
        return self.session is not None and (self.session.get("delegation") or {}).get("type") == "responses"

    async def on_response_item_create(self, ev: dict[str, Any]) -> None:
        if not self.responses_delegation:
            raise LiveClientError("response.item.create requires Responses delegation", "delegation_not_configured")
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise LiveClientError("Missing required parameter: 'item.type'.", "missing_required_parameter",
                                  "item.type")
        if item["type"] != "function_call_output":
            return  # a message for the backend: the parrot's backend has nothing to do with it
        if not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), str):
            raise LiveClientError("function_call_output needs a string call_id and output", "invalid_value", "item")
        waiting = self.delegated
        if waiting is None or waiting.call_id != item["call_id"] or waiting.output is not None:
            raise LiveClientError(f"No function call {item['call_id'][:60]!r} is waiting for its output",
                                  "invalid_value", "item.call_id")
        waiting.output = item["output"]

    async def on_response_create(self, ev: dict[str, Any]) -> None:
        if not self.responses_delegation:
            raise LiveClientError("response.create requires Responses delegation", "delegation_not_configured")
        waiting = self.delegated
        if waiting is None or waiting.output is None:
            raise LiveClientError("response.create: no delegated response is waiting for tool results "
                                  "(the local parrot's backend only continues its function calls)", "unsupported")
        self.delegated = None
        if self.reply is None:
            self.reply = _Reply(waiting.audio, self.session_ms, waiting.turn, text=waiting.say)

    async def on_session_input_audio_mute(self, ev: dict[str, Any]) -> None:
        self.muted = True
        await self.emit("session.input_audio.muted", client_event_id=ev.get("event_id"))

    async def on_session_input_audio_unmute(self, ev: dict[str, Any]) -> None:
        self.muted = False
        await self.emit("session.input_audio.unmuted", client_event_id=ev.get("event_id"))

    async def on_session_close(self, ev: dict[str, Any]) -> None:
        await self.close("close_requested", ev.get("event_id"))

    async def on_session_input_audio_append(self, ev: dict[str, Any]) -> None:
        audio = ev.get("audio")
        if not isinstance(audio, str):
            raise LiveClientError("Missing required parameter: 'audio'.", "missing_required_parameter", "audio")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise LiveClientError("Invalid 'audio': expected base64 PCM16.", "invalid_value", "audio") from None
        if len(pcm) % 2:
            raise LiveClientError("Invalid 'audio': an odd number of bytes is not PCM16.", "invalid_value", "audio")
        self.stats.appends += 1
        self.stats.audio_bytes += len(pcm)
        if self.muted:
            self.stats.muted_audio_bytes += len(pcm)
            pcm = bytes(len(pcm))  # the model hears silence
        x = np.frombuffer(pcm, dtype="<i2")
        self.audio += pcm
        self.samples += len(x)
        for turn in self.vad.process(x):
            if turn.kind == "start":
                await self._speech_started(turn.audio_ms)
            else:
                await self._speech_stopped(turn.onset_ms)
        if self.turn_start is None:  # keep just enough for the next turn's prefix
            self._drop_before(self.samples - (PREFIX_MS + 500) * SAMPLE_RATE // 1000)
        await self._play()
        if self.session_ms >= self.max_ms and not self.closed:
            await self.close("expired")

    # ---------------------------------------------------------------- turns and replies

    def _drop_before(self, sample: int) -> None:
        cut = max(0, sample - self.keep_from)
        if cut:
            del self.audio[: cut * 2]
            self.keep_from += cut

    async def _speech_started(self, audio_start_ms: int) -> None:
        self.turn_start = max(self.keep_from, audio_start_ms * SAMPLE_RATE // 1000)
        reply = self.reply
        if reply is not None:  # it hears speech over its own reply: it stops talking
            self.reply = None
            assert self.session is not None
            self.stats.interruptions.append(Interruption(self.session["id"], self.session_ms,
                                                         reply.sent // BYTES_PER_MS))
            await self._reply_transcript(reply)

    async def _speech_stopped(self, speech_end_ms: int) -> None:
        start = self.turn_start if self.turn_start is not None else self.keep_from
        self.turn_start = None
        end = min(self.samples, (speech_end_ms + REPLY_TAIL_MS) * SAMPLE_RATE // 1000)
        a, b = max(0, start - self.keep_from), max(0, end - self.keep_from)
        audio = bytes(self.audio[a * 2: b * 2])
        self.turns += 1
        start_ms = start * 1000 // SAMPLE_RATE
        await self.emit("session.input_transcript.delta", delta=f"(user turn {self.turns}, "
                        f"{(speech_end_ms - start_ms) / 1000:.1f} s) ", start_ms=start_ms, end_ms=speech_end_ms)
        if not audio or self.reply is not None or not self.answer_turns:
            return
        turn = self.model.take_turn() if self.model is not None else None
        if turn is None:
            self.reply = _Reply(audio, self.session_ms, self.turns)
        elif turn.call_name is not None and self.responses_delegation:
            await self._delegate(turn, audio)
        else:  # a scripted answer (with no delegation, its call cannot be made: only said)
            self.reply = _Reply(turn.audio if turn.audio is not None else audio, self.session_ms, self.turns,
                                text=turn.say)

    async def _delegate(self, turn: ScriptTurn, audio: bytes) -> None:
        """Hand the turn to the Responses backend, whose function call the client must answer."""
        assert turn.call_name is not None
        d = _Delegated(new_id("dlg"), new_id("call"), turn.say, turn.audio if turn.audio is not None else audio,
                       self.turns)
        self.delegated = d
        await self.emit("session.delegation.created", offset_ms=self.session_ms,
                        delegation={"id": d.delegation_id, "type": "delegation", "target": "responses",
                                    "response_id": new_id("resp")})
        item = {"type": "function_call", "id": new_id("fc"), "call_id": d.call_id, "name": turn.call_name,
                "arguments": "", "status": "in_progress"}
        await self._response_event(d, type="response.output_item.added", output_index=0, item=item)
        await self._response_event(d, type="response.function_call_arguments.done", output_index=0,
                                   item_id=item["id"], arguments=turn.call_arguments)
        await self._response_event(d, type="response.output_item.done", output_index=0,
                                   item={**item, "arguments": turn.call_arguments, "status": "completed"})

    async def _response_event(self, d: _Delegated, **event: Any) -> None:
        """`response.event`: one event of the delegated Responses stream (openai.types.responses)."""
        await self.emit("response.event", delegation_id=d.delegation_id,
                        event={**event, "sequence_number": d.sequence})
        d.sequence += 1

    def say(self, audio: bytes) -> None:
        """The model starts a reply now with `audio` (PCM16, 24 kHz) instead of a user's turn, as if
        it had chosen to speak (benches: a scripted reply); sent, and interrupted, like any reply."""
        self.reply = _Reply(audio, self.session_ms, self.turns)

    async def _play(self) -> None:
        """Send the reply up to LEAD_MS ahead of the input clock."""
        reply = self.reply
        if reply is None:
            return
        budget = (self.session_ms - reply.start_ms + LEAD_MS) * BYTES_PER_MS - reply.sent
        while budget > 0 and reply.sent < len(reply.audio):
            n = min(budget, CHUNK_MS * BYTES_PER_MS, len(reply.audio) - reply.sent)
            n -= n % 2
            if n <= 0:
                break
            await self.emit("session.output_audio.delta",
                            delta=base64.b64encode(reply.audio[reply.sent: reply.sent + n]).decode("ascii"))
            reply.sent += n
            budget -= n
        if reply.sent >= len(reply.audio):
            self.reply = None
            await self._reply_transcript(reply)

    async def _reply_transcript(self, reply: _Reply) -> None:
        ms = reply.sent // BYTES_PER_MS
        text = reply.text + " " if reply.text else f"(parrot reply {reply.turn}, {ms / 1000:.1f} s) "
        await self.emit("session.output_transcript.delta", delta=text, start_ms=reply.start_ms,
                        end_ms=reply.start_ms + ms)

    async def close(self, reason: str, client_event_id: Any = None) -> None:
        """`session.closed {reason}` and the end of the connection (once)."""
        if self.closed:
            return
        self.closed = True
        self.reply = None
        self.stats.close_reasons.append(reason)
        if self.session is not None:
            self.stats.sessions_open -= 1
            await self.emit("session.closed", reason=reason, session=self.session,
                            usage={"seconds": float(self.session_ms // 1000)},
                            client_event_id=client_event_id if isinstance(client_event_id, str) else None)
        await self.ws.close(1000, "session closed")

    def lost(self) -> None:
        """The connection ended without a session.closed (counted as connection_lost)."""
        if not self.closed:
            self.closed = True
            if self.session is not None:
                self.stats.sessions_open -= 1
                self.stats.close_reasons.append("connection_lost")


class LiveServer:
    """The GPT-Live side of the local server: `await handle(ws)` runs one connection.

    max_session_s: input seconds after which a session ends with `expired`.
    `trace(direction, text)`, if given, sees every message ("in" / "out"); `model`: the scripted
    model whose turns the sessions take in order (its `call`s need Responses delegation);
    answer_turns=False: the model answers no user turn, it only says what LiveSession.say gives
    it (benches)."""

    def __init__(self, max_session_s: float = MAX_SESSION_S, trace: Trace | None = None,
                 model: ScriptedModel | None = None, answer_turns: bool = True) -> None:
        self.max_session_s = max_session_s
        self.trace = trace
        self.model = model  # the scripted model's turns (shared with the Realtime side), or None
        self.answer_turns = answer_turns
        self.stats = LiveStats()
        self.sessions: deque[LiveSession] = deque(maxlen=64)  # the latest, for tests

    def new_session(self, ws: Socket) -> LiveSession:
        """A connection's session (counted; kept among the latest)."""
        self.stats.connections += 1
        sess = LiveSession(ws, self.stats, self.max_session_s, self.trace, self.model, self.answer_turns)
        self.sessions.append(sess)
        return sess

    async def handle(self, ws: ServerConnection) -> None:
        sess = self.new_session(ws)
        try:
            async for message in ws:
                if self.trace is not None:
                    self.trace("in", message)
                await sess.handle(message)
        except ConnectionClosed:
            pass
        finally:
            sess.lost()
