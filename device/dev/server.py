"""The local realtime server: the OpenAI Realtime protocol (GA) over WebSocket, offline.

Its "parrot" model answers each user turn with that turn's own audio, streamed as
`response.output_audio.delta` events in 100 ms chunks, faster than real time (4x by
default) like the real service. Turn detection is `server_vad` (Silero on 16 kHz),
`semantic_vad` (treated as server_vad with a silence length from the eagerness) or
none (manual `input_audio_buffer.commit` + `response.create`). Invalid client events
get an `error` event; the connection stays open. Any path is accepted
(ws://host:port/v1/realtime?model=... as the openai package builds it), except
`/v1/live/sessions`: GPT-Live, served by device/dev/live_server.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from device.dev.live_server import LiveServer
from device.dev.server_vad import ServerVad
from device.link.client import redacting_logger
from device.link.protocol import AUDIO_FORMAT, BYTES_PER_MS, SAMPLE_RATE, new_id

log = logging.getLogger(__name__)
Trace = Callable[[str, "str | bytes"], None]

MODEL = "parrot"
CHUNK_MS = 100
MIN_COMMIT_MS = 100
MAX_BUFFER_BYTES = 15 * 1024 * 1024  # the real service's input buffer limit
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
REPLY_TAIL_MS = 150  # silence kept after the last speech in a parrot reply
SEMANTIC_SILENCE_MS = {"low": 1000, "medium": 600, "high": 300, "auto": 600}
CLIENT_EVENTS = {  # type → {field: (json type, required)}
    "session.update": {"session": (dict, True)},
    "input_audio_buffer.append": {"audio": (str, True)},
    "input_audio_buffer.commit": {},
    "input_audio_buffer.clear": {},
    "response.create": {"response": (dict, False)},
    "response.cancel": {"response_id": (str, False)},
    "conversation.item.truncate": {"item_id": (str, True), "content_index": (int, True), "audio_end_ms": (int, True)},
}
UNSUPPORTED = ("conversation.item.create", "conversation.item.delete", "conversation.item.retrieve",
               "output_audio_buffer.clear")



def free_loopback_port() -> int:
    """A TCP port nobody listens on right now (for a server started by another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

class ClientError(Exception):
    """An invalid client event: becomes an `error` event (the connection stays)."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


def default_session() -> dict[str, Any]:
    return {
        "type": "realtime", "object": "realtime.session", "id": new_id("sess"), "model": MODEL,
        "output_modalities": ["audio"], "instructions": "",
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {"format": dict(AUDIO_FORMAT), "noise_reduction": None, "transcription": None,
                      "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                         "silence_duration_ms": 200, "idle_timeout_ms": None,
                                         "create_response": True, "interrupt_response": True}},
            "output": {"format": dict(AUDIO_FORMAT), "voice": "marin", "speed": 1.0},
        },
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None, "truncation": "auto",
    }


def _is(value: Any, typ: type) -> bool:
    if typ in (int, float) and isinstance(value, bool):
        return False
    if typ is float:
        return isinstance(value, (int, float))
    return isinstance(value, typ)


def _check_session(s: dict[str, Any]) -> None:
    """Validate the parts of a session.update the parrot uses; ClientError on a bad one."""
    if "type" in s and s["type"] != "realtime":
        raise ClientError(f"session.type {s['type']!r} is not supported here (only 'realtime')", param="session.type")
    if "instructions" in s and not _is(s["instructions"], str):
        raise ClientError("session.instructions must be a string", "invalid_type", "session.instructions")
    mods = s.get("output_modalities", ["audio"])
    if not isinstance(mods, list) or not all(m in ("audio", "text") for m in mods):
        raise ClientError("session.output_modalities must be a list of 'audio'/'text'", param="session.output_modalities")
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
    td = audio.get("input", {}).get("turn_detection", None)
    if td is None:
        return
    param = "session.audio.input.turn_detection"
    if not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad"):
        raise ClientError(f"{param}.type must be 'server_vad' or 'semantic_vad'", param=param)
    checks = {"threshold": (float, 0.0, 1.0), "prefix_padding_ms": (int, 0, 10_000),
              "silence_duration_ms": (int, 0, 10_000), "idle_timeout_ms": (int, 0, 3_600_000),
              "create_response": (bool, None, None), "interrupt_response": (bool, None, None)}
    for key, (typ, lo, hi) in checks.items():
        v = td.get(key)
        if v is None:
            continue
        if not _is(v, typ) or (lo is not None and not lo <= v <= hi):
            raise ClientError(f"{param}.{key}: invalid value {v!r}", param=f"{param}.{key}")
    if td["type"] == "semantic_vad" and td.get("eagerness", "auto") not in SEMANTIC_SILENCE_MS:
        raise ClientError(f"{param}.eagerness: invalid value {td.get('eagerness')!r}", param=f"{param}.eagerness")


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict) and k != "turn_detection":
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


class Response:
    def __init__(self, audio: bytes) -> None:
        self.id = new_id("resp")
        self.item_id = new_id("item")
        self.audio = audio
        self.sent_bytes = 0
        self.cancel = asyncio.Event()
        self.reason = "client_cancelled"
        self.task: asyncio.Task[None] | None = None


class Session:
    """One client connection: the conversation, the input buffer, turn detection, responses."""

    def __init__(self, ws: ServerConnection, speed: float, trace: Trace | None = None) -> None:
        self.ws = ws
        self.speed = speed
        self.trace = trace
        self.session = default_session()
        self.buffer = bytearray()  # input audio not yet committed
        self.buffer_start = 0  # sample index (since connect) of buffer[0]
        self.total = 0  # samples appended since connect
        self.vad = ServerVad()
        self.turn_item: str | None = None  # item id of the speech in progress
        self.turn_start = 0  # sample index where the turn's audio starts (with prefix padding)
        self.last_item: str | None = None
        self.last_user_audio = b""
        self.assistant_audio_ms: dict[str, int] = {}  # item id → ms of audio sent
        self.response: Response | None = None
        self._configure_vad()

    # ---------------------------------------------------------------- plumbing

    async def emit(self, type_: str, **fields: Any) -> None:
        text = json.dumps({"type": type_, "event_id": new_id("event"), **fields}, separators=(",", ":"))
        if self.trace is not None:
            self.trace("out", text)
        await self.ws.send(text)

    async def error(self, message: str, code: str | None = None, param: str | None = None,
                    event_id: str | None = None) -> None:
        await self.emit("error", error={"type": "invalid_request_error", "code": code, "message": message,
                                        "param": param, "event_id": event_id})

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        return self.session["audio"]["input"]["turn_detection"]

    def _configure_vad(self) -> None:
        td = self.turn_detection
        if td is None:
            return
        if td["type"] == "semantic_vad":
            self.vad.configure(0.5, 300, SEMANTIC_SILENCE_MS[td.get("eagerness") or "auto"])
        else:
            self.vad.configure(float(td.get("threshold") or 0.5), int(td.get("prefix_padding_ms") or 0),
                               int(td.get("silence_duration_ms") or 0))

    async def handle(self, message: str | bytes) -> None:
        event_id = None
        try:
            try:
                ev = json.loads(message)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise ClientError(f"We could not parse the JSON body of your request ({exc.__class__.__name__})",
                                  "invalid_json") from None
            if not isinstance(ev, dict):
                raise ClientError("A client event must be a JSON object", "invalid_json")
            event_id = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
            ev_type = ev.get("type")
            if not isinstance(ev_type, str):
                raise ClientError("Missing required parameter: 'type'.", "missing_required_parameter", "type")
            if ev_type in UNSUPPORTED:
                raise ClientError(f"{ev_type} is not supported by the local parrot server", "unsupported", "type")
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
                if not _is(ev[key], typ):
                    raise ClientError(f"Invalid type for '{key}'.", "invalid_type", key)
            await getattr(self, "on_" + ev_type.replace(".", "_"))(ev)
        except ClientError as exc:
            await self.error(str(exc), exc.code, exc.param, event_id)

    # ---------------------------------------------------------------- client events

    async def on_session_update(self, ev: dict[str, Any]) -> None:
        _check_session(ev["session"])
        was = self.turn_detection
        _merge(self.session, ev["session"])
        if self.turn_detection is None and was is not None:
            self.vad.reset_turn()
            self.turn_item = None
        self._configure_vad()
        await self.emit("session.updated", session=self.session)

    async def on_input_audio_buffer_append(self, ev: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(ev["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ClientError("Invalid 'audio'. Expected base64-encoded audio bytes.", "invalid_value", "audio") from None
        if len(pcm) % 2:
            raise ClientError("Invalid 'audio': an odd number of bytes is not PCM16.", "invalid_value", "audio")
        if len(self.buffer) + len(pcm) > MAX_BUFFER_BYTES:
            raise ClientError("The input audio buffer is full (15 MiB); commit or clear it.", "buffer_full", "audio")
        self.buffer += pcm
        self.total += len(pcm) // 2
        if self.turn_detection is None:
            return
        for turn in self.vad.process(np.frombuffer(pcm, dtype="<i2")):
            if turn.kind == "start":
                await self._speech_started(turn.audio_ms)
            else:
                await self._speech_stopped(turn.onset_ms, turn.audio_ms)
        if self.turn_item is None:  # no turn: keep just enough audio for the next prefix padding
            keep = (int(self.vad.prefix_padding_ms) + 500) * SAMPLE_RATE // 1000
            self._drop_before(self.total - keep)

    async def on_input_audio_buffer_commit(self, ev: dict[str, Any]) -> None:
        ms = len(self.buffer) // BYTES_PER_MS
        if ms < MIN_COMMIT_MS:
            raise ClientError(f"Error committing input audio buffer: buffer too small. Expected at least "
                              f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
                              "input_audio_buffer_commit_empty")
        item_id = self.turn_item or new_id("item")
        self.vad.reset_turn()
        self.turn_item = None
        await self._commit(item_id, bytes(self.buffer))
        self._drop_before(self.total)

    async def on_input_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        self._drop_before(self.total)
        self.vad.reset_turn()
        self.turn_item = None
        await self.emit("input_audio_buffer.cleared")

    async def on_response_create(self, ev: dict[str, Any]) -> None:
        if self.response is not None:
            raise ClientError(f"Conversation already has an active response in progress: {self.response.id}. "
                              "Wait until the response is finished before creating a new one.",
                              "conversation_already_has_active_response")
        self._start_response(self.last_user_audio)

    async def on_response_cancel(self, ev: dict[str, Any]) -> None:
        resp = self.response
        if resp is None or ("response_id" in ev and ev["response_id"] != resp.id):
            raise ClientError("Cancellation failed: no active response found", "response_cancel_not_active")
        resp.reason = "client_cancelled"
        resp.cancel.set()

    async def on_conversation_item_truncate(self, ev: dict[str, Any]) -> None:
        item_id, end_ms = ev["item_id"], ev["audio_end_ms"]
        if item_id not in self.assistant_audio_ms:
            raise ClientError(f"Item with item_id not found: {item_id}", "item_truncate_invalid_item_id", "item_id")
        if ev["content_index"] != 0:
            raise ClientError("content_index must be 0 (the audio part)", "invalid_value", "content_index")
        if end_ms < 0 or end_ms > self.assistant_audio_ms[item_id]:
            raise ClientError(f"audio_end_ms {end_ms} is outside the item's audio "
                              f"({self.assistant_audio_ms[item_id]} ms)", "invalid_value", "audio_end_ms")
        self.assistant_audio_ms[item_id] = end_ms
        await self.emit("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)

    # ---------------------------------------------------------------- turns

    def _drop_before(self, sample: int) -> None:
        cut = max(0, sample - self.buffer_start)
        if cut:
            del self.buffer[: cut * 2]
            self.buffer_start += cut

    def _slice(self, start: int, end: int) -> bytes:
        a, b = max(0, start - self.buffer_start), max(0, end - self.buffer_start)
        return bytes(self.buffer[a * 2: b * 2])

    async def _speech_started(self, audio_start_ms: int) -> None:
        self.turn_item = new_id("item")
        self.turn_start = max(self.buffer_start, audio_start_ms * SAMPLE_RATE // 1000)
        await self.emit("input_audio_buffer.speech_started",
                        audio_start_ms=self.turn_start * 1000 // SAMPLE_RATE, item_id=self.turn_item)
        td = self.turn_detection or {}
        if self.response is not None and td.get("interrupt_response", True):
            self.response.reason = "turn_detected"
            self.response.cancel.set()

    async def _speech_stopped(self, speech_end_ms: int, audio_end_ms: int) -> None:
        item_id, self.turn_item = self.turn_item or new_id("item"), None
        end = min(self.total, audio_end_ms * SAMPLE_RATE // 1000)
        await self.emit("input_audio_buffer.speech_stopped", audio_end_ms=end * 1000 // SAMPLE_RATE, item_id=item_id)
        audio = self._slice(self.turn_start, end)
        self._drop_before(end)
        reply_end = (speech_end_ms + REPLY_TAIL_MS) * SAMPLE_RATE // 1000 - self.turn_start
        await self._commit(item_id, audio, reply=audio[: max(0, reply_end) * 2])
        td = self.turn_detection or {}
        if td.get("create_response", True) and self.response is None:
            self._start_response(self.last_user_audio)

    async def _commit(self, item_id: str, audio: bytes, reply: bytes | None = None) -> None:
        previous, self.last_item = self.last_item, item_id
        self.last_user_audio = audio if reply is None else reply
        await self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        await self.emit("conversation.item.added", previous_item_id=previous, item=item)
        await self.emit("conversation.item.done", previous_item_id=previous, item=item)

    # ---------------------------------------------------------------- responses

    def _start_response(self, audio: bytes) -> None:
        resp = Response(audio)
        self.response = resp
        resp.task = asyncio.create_task(self._respond(resp))

    def _response_obj(self, resp: Response, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": resp.id, "object": "realtime.response", "status": status, "status_details": None,
            "output": output, "conversation_id": "conv_parrot", "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": dict(AUDIO_FORMAT), "voice": self.session["audio"]["output"].get("voice")}},
            "usage": None, "metadata": None,
        }
        if status == "cancelled":
            obj["status_details"] = {"type": "cancelled", "reason": resp.reason}
        return obj

    async def _respond(self, resp: Response) -> None:
        try:
            await self._stream_response(resp)
        except ConnectionClosed:
            pass
        finally:
            if self.response is resp:
                self.response = None

    async def _stream_response(self, resp: Response) -> None:
        ids = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0}
        item = {"id": resp.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        await self.emit("response.created", response=self._response_obj(resp, "in_progress", []))
        await self.emit("response.output_item.added", response_id=resp.id, output_index=0, item=item)
        previous, self.last_item = self.last_item, resp.item_id
        await self.emit("conversation.item.added", previous_item_id=previous, item=item)
        await self.emit("response.content_part.added", **ids, content_index=0, part={"type": "audio", "transcript": ""})
        self.assistant_audio_ms[resp.item_id] = 0
        step = CHUNK_MS * BYTES_PER_MS
        interval = CHUNK_MS / 1000 / self.speed
        for pos in range(0, len(resp.audio), step):
            if resp.cancel.is_set():
                break
            chunk = resp.audio[pos: pos + step]
            await self.emit("response.output_audio.delta", **ids, content_index=0,
                            delta=base64.b64encode(chunk).decode("ascii"))
            resp.sent_bytes += len(chunk)
            self.assistant_audio_ms[resp.item_id] = resp.sent_bytes // BYTES_PER_MS
            try:
                await asyncio.wait_for(resp.cancel.wait(), interval)
            except asyncio.TimeoutError:
                pass
        cancelled = resp.cancel.is_set() and resp.sent_bytes < len(resp.audio)
        status = "cancelled" if cancelled else "completed"
        await self.emit("response.output_audio.done", **ids, content_index=0)
        await self.emit("response.output_audio_transcript.done", **ids, content_index=0, transcript="")
        await self.emit("response.content_part.done", **ids, content_index=0, part={"type": "audio", "transcript": ""})
        item = {**item, "status": "incomplete" if cancelled else "completed",
                "content": [{"type": "output_audio", "transcript": ""}]}
        await self.emit("response.output_item.done", response_id=resp.id, output_index=0, item=item)
        await self.emit("conversation.item.done", previous_item_id=previous, item=item)
        self.response = None
        await self.emit("response.done", response=self._response_obj(resp, status, [item]))
        await self.emit("rate_limits.updated", rate_limits=[
            {"name": "requests", "limit": 10000, "remaining": 9999, "reset_seconds": 0.006},
            {"name": "tokens", "limit": 1000000, "remaining": 999000, "reset_seconds": 0.06}])

    async def close(self) -> None:
        if self.response is not None and self.response.task is not None:
            self.response.task.cancel()


class RealtimeServer:
    """`await start()` → bound port; clients connect to ws://host:port/ (any path).

    `trace(direction, text)`, if given, sees every message: "in" from clients, "out" to them.
    """

    def __init__(self, speed: float = 4.0, trace: Trace | None = None, ssl: Any = None) -> None:
        self.speed = speed
        self.trace = trace
        self.ssl = ssl
        self._server: Server | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0  # accepted since start (for tests and `check`)
        self._live: set[ServerConnection] = set()
        self.live_api = LiveServer(trace=trace)  # GPT-Live on /v1/live/sessions of the same port
        self.only: str | None = None  # "realtime" | "live": refuse the other API's path (serve --api)

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/v1/realtime?model={MODEL}"

    @property
    def live_url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/v1/live/sessions"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await ws_serve(self._handler, host, port, max_size=MAX_MESSAGE_BYTES, compression=None,
                                      ssl=self.ssl, logger=redacting_logger("device.dev.server.websockets"),
                                      ping_interval=20, ping_timeout=20, close_timeout=2)
        self.host = host
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("realtime server listening on %s", self.url)
        return self.port

    async def stop(self) -> None:
        """A clean shutdown: stop listening, close every connection with 1001 (going away)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def kill(self) -> None:
        """A crash (fault hook): stop listening and drop every TCP connection without a close frame."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for ws in list(self._live):
            ws.transport.abort()
        await self._server.wait_closed()
        self._server = None

    @property
    def live(self) -> int:
        """Connections open right now."""
        return len(self._live)

    async def broadcast(self, message: str | bytes) -> int:
        """Send a raw message to every live connection (fault hook: garbage, huge or odd events).

        Returns how many connections it reached."""
        sent = 0
        for ws in list(self._live):
            try:
                await ws.send(message)
                sent += 1
            except ConnectionClosed:
                pass
        return sent

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._live.add(ws)
        live = ws.request is not None and ws.request.path.split("?", 1)[0].rstrip("/").endswith("/live/sessions")
        if self.only is not None and self.only != ("live" if live else "realtime"):
            self._live.discard(ws)
            await ws.close(1008, f"this server speaks only the {self.only} API")
            return
        if live:
            try:
                await self.live_api.handle(ws)
            finally:
                self._live.discard(ws)
            return
        sess = Session(ws, self.speed, self.trace)
        try:
            await sess.emit("session.created", session=sess.session)
            async for message in ws:
                if self.trace is not None:
                    self.trace("in", message)
                await sess.handle(message)
        except ConnectionClosed:
            pass
        finally:
            self._live.discard(ws)
            await sess.close()


async def serve(host: str = "127.0.0.1", port: int = 8765, speed: float = 4.0, api: str | None = None,
                live_max_s: float = 3600.0) -> None:
    """Run the local server until cancelled (`voxbox serve`): both APIs, or only `api`."""
    server = RealtimeServer(speed=speed)
    server.only = api
    server.live_api.max_session_s = live_max_s
    bound = await server.start(host, port)
    where = {"realtime": f"realtime server (model {MODEL}) on ws://{host}:{bound}/v1/realtime",
             "live": f"GPT-Live (parrot) on ws://{host}:{bound}/v1/live/sessions"}
    print("voxbox: " + ", ".join(v for k, v in where.items() if api in (None, k)), file=sys.stderr, flush=True)
    try:
        await asyncio.Future()
    finally:
        await server.stop()
