"""One client connection of the local realtime server: client events in, server events out.

The OpenAI Realtime protocol (GA event names). What is allowed is decided by the pure
`Conversation` (errors as the service gives them) and `server_config`; what a response
does by the `ScriptedModel` (the parrot, or the script). This class owns the socket
side: turn detection on appended audio (`ServerVad`), the response tasks that stream
audio deltas `speed` × faster than real time in 100 ms chunks, and the session's end at
its maximum length (`error` `session_expired`, then close 1001).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from device.dev.lockstep import WallClock
from device.dev.server_config import (
    SEMANTIC_SILENCE_MS,
    ClientError,
    check_event,
    check_session,
    default_session,
    merge_session,
)
from device.dev.server_conversation import (
    Conversation,
    Item,
    assistant_item,
    function_call_item,
    parse_client_item,
    parse_metadata,
    user_audio_item,
)
from device.dev.server_model import CallTool, ScriptedModel, Speak
from device.dev.server_vad import ServerVad
from device.link.protocol import AUDIO_FORMAT, BYTES_PER_MS, SAMPLE_RATE, new_id

log = logging.getLogger(__name__)
Trace = Callable[[str, "str | bytes"], None]

CHUNK_MS = 100
MIN_COMMIT_MS = 100
MAX_BUFFER_BYTES = 15 * 1024 * 1024  # the real service's input buffer limit
REPLY_TAIL_MS = 150  # silence kept after the last speech in a parrot reply
ARGUMENT_DELTA_CHARS = 16  # function-call arguments stream in pieces of this size


def expired_message(max_session_s: float) -> str:
    """The service's text: 'Your session hit the maximum duration of 60 minutes.'"""
    if max_session_s >= 60 and max_session_s % 60 == 0:
        return f"Your session hit the maximum duration of {int(max_session_s // 60)} minutes."
    return f"Your session hit the maximum duration of {max_session_s:g} seconds."


@dataclass
class MessageCounts:
    """Messages of all a server's connections: `sent` written, `handled` read and answered."""

    sent: int = 0
    handled: int = 0


class Response:
    def __init__(self, metadata: dict[str, str] | None) -> None:
        self.id = new_id("resp")
        self.metadata = metadata
        self.cancel = asyncio.Event()
        self.reason = "client_cancelled"
        self.task: asyncio.Task[None] | None = None


class Session:
    """One client connection: the conversation, the input buffer, turn detection, responses."""

    def __init__(self, ws: ServerConnection, speed: float, trace: Trace | None = None,
                 max_session_s: float = 3600.0, model: ScriptedModel | None = None,
                 clock: WallClock | None = None, counts: MessageCounts | None = None) -> None:
        self.ws = ws
        self.speed = speed
        self.clock = clock or WallClock()  # what reply pacing sleeps on (simulate: the mic clock)
        self.counts = counts or MessageCounts()
        self.trace = trace
        self.max_session_s = max_session_s
        self.session = default_session(time.time(), max_session_s)
        self.conv = Conversation()
        self.model = model or ScriptedModel()
        self.buffer = bytearray()  # input audio not yet committed
        self.buffer_start = 0  # sample index (since connect) of buffer[0]
        self.total = 0  # samples appended since connect
        self.vad = ServerVad()
        self.turn_item: str | None = None  # item id of the speech in progress
        self.turn_start = 0  # sample index where the turn's audio starts (with prefix padding)
        self.response: Response | None = None
        self.expired = False  # past the maximum length but left open: every event gets session_expired
        self.frozen = False  # half-open (fault hook): nothing more is sent
        self._configure_vad()

    # ---------------------------------------------------------------- plumbing

    async def emit(self, type_: str, **fields: Any) -> None:
        if self.frozen:
            return
        text = json.dumps({"type": type_, "event_id": new_id("event"), **fields}, separators=(",", ":"))
        if self.trace is not None:
            self.trace("out", text)
        await self.ws.send(text)
        self.counts.sent += 1

    async def error(self, message: str, code: str | None = None, param: str | None = None,
                    event_id: str | None = None) -> None:
        await self.emit("error", error={"type": "invalid_request_error", "code": code, "message": message,
                                        "param": param, "event_id": event_id})

    async def expire(self, close: bool = True) -> None:
        """The maximum session length is over: `error` session_expired, then close 1001 (going away).

        `close=False` is the fault some clients have met: the socket stays open and every later
        client event is answered with session_expired again."""
        try:
            await self.error(expired_message(self.max_session_s), "session_expired")
            if close:
                await self.ws.close(1001, "session expired")
            else:
                self.expired = True
        except ConnectionClosed:
            pass

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
            if isinstance(ev, dict) and isinstance(ev.get("event_id"), str):
                event_id = ev["event_id"]
            if self.expired:
                raise ClientError(expired_message(self.max_session_s), "session_expired")
            ev_type, _ = check_event(ev)
            await getattr(self, "on_" + ev_type.replace(".", "_"))(ev)
        except ClientError as exc:
            await self.error(str(exc), exc.code, exc.param, event_id)

    # ---------------------------------------------------------------- client events: session, input audio

    async def on_session_update(self, ev: dict[str, Any]) -> None:
        check_session(ev["session"])
        was = self.turn_detection
        merge_session(self.session, ev["session"])
        if self.turn_detection is None and was is not None:
            self.vad.reset_turn()
            self.turn_item = None
        self._configure_vad()
        await self.emit("session.updated", session=self.session)

    async def on_input_audio_buffer_append(self, ev: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(ev["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ClientError("Invalid 'audio'. Expected base64-encoded audio bytes.", "invalid_value",
                              "audio") from None
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
        ms = len(self.buffer) / BYTES_PER_MS
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

    # ---------------------------------------------------------------- client events: conversation items

    async def on_conversation_item_create(self, ev: dict[str, Any]) -> None:
        item = parse_client_item(ev["item"])
        previous = self.conv.add(item, ev.get("previous_item_id"))
        await self.emit("conversation.item.added", previous_item_id=previous, item=item.rendered())
        await self.emit("conversation.item.done", previous_item_id=previous, item=item.rendered())

    async def on_conversation_item_retrieve(self, ev: dict[str, Any]) -> None:
        item = self.conv.get(ev["item_id"], "retrieve")
        await self.emit("conversation.item.retrieved", item=item.rendered(with_audio=True))

    async def on_conversation_item_delete(self, ev: dict[str, Any]) -> None:
        self.conv.delete(ev["item_id"])
        await self.emit("conversation.item.deleted", item_id=ev["item_id"])

    async def on_conversation_item_truncate(self, ev: dict[str, Any]) -> None:
        self.conv.truncate(ev["item_id"], ev["content_index"], ev["audio_end_ms"])
        await self.emit("conversation.item.truncated", item_id=ev["item_id"], content_index=ev["content_index"],
                        audio_end_ms=ev["audio_end_ms"])

    # ---------------------------------------------------------------- client events: responses

    async def on_response_create(self, ev: dict[str, Any]) -> None:
        params = ev.get("response") or {}
        self._start_response(parse_metadata(params.get("metadata")))

    async def on_response_cancel(self, ev: dict[str, Any]) -> None:
        self.conv.check_cancel(ev.get("response_id"))
        if self.response is not None:
            self.response.reason = "client_cancelled"
            self.response.cancel.set()

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
        await self._commit(item_id, audio, echo=audio[: max(0, reply_end) * 2])
        td = self.turn_detection or {}
        if td.get("create_response", True) and self.conv.active_response is None:
            self._start_response(None)

    async def _commit(self, item_id: str, audio: bytes, echo: bytes | None = None) -> None:
        item = user_audio_item(item_id, audio, echo)
        previous = self.conv.add(item)
        await self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        await self.emit("conversation.item.added", previous_item_id=previous, item=item.rendered())
        await self.emit("conversation.item.done", previous_item_id=previous, item=item.rendered())

    # ---------------------------------------------------------------- responses

    def _start_response(self, metadata: dict[str, str] | None) -> None:
        resp = Response(metadata)
        self.conv.begin_response(resp.id)  # conversation_already_has_active_response
        self.response = resp
        self.clock.hold()  # released when _respond ends; parked while it sleeps on the clock
        resp.task = asyncio.create_task(self._respond(resp, self.model.next(self.conv)))

    def _response_obj(self, resp: Response, status: str, output: list[Item],
                      usage: dict[str, Any] | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": resp.id, "object": "realtime.response", "status": status, "status_details": None,
            "output": [i.rendered() for i in output], "conversation_id": "conv_parrot",
            "output_modalities": ["audio"], "max_output_tokens": "inf",
            "audio": {"output": {"format": dict(AUDIO_FORMAT), "voice": self.session["audio"]["output"].get("voice")}},
            "usage": usage, "metadata": resp.metadata,
        }
        if status == "cancelled":
            obj["status_details"] = {"type": "cancelled", "reason": resp.reason}
        return obj

    async def _respond(self, resp: Response, plan: Speak | CallTool) -> None:
        try:
            await self.emit("response.created", response=self._response_obj(resp, "in_progress", []))
            if isinstance(plan, CallTool):
                item, status = await self._stream_call(resp, plan), "completed"
            else:
                item, status = await self._stream_speech(resp, plan)
            first = item.id
            self.conv.end_response(resp.id)
            self.response = None
            usage = self.conv.usage(str(self.session.get("instructions") or ""), [item], before=first)
            await self.emit("response.done", response=self._response_obj(resp, status, [item], usage))
            await self.emit("rate_limits.updated", rate_limits=[
                {"name": "requests", "limit": 10000, "remaining": 9999, "reset_seconds": 0.006},
                {"name": "tokens", "limit": 1000000, "remaining": 999000, "reset_seconds": 0.06}])
        except ConnectionClosed:
            pass
        finally:
            self.clock.release()
            self.conv.end_response(resp.id)
            if self.response is resp:
                self.response = None

    async def _add_output(self, resp: Response, item: Item) -> str | None:
        await self.emit("response.output_item.added", response_id=resp.id, output_index=0, item=item.rendered())
        previous = self.conv.add(item)
        await self.emit("conversation.item.added", previous_item_id=previous, item=item.rendered())
        return previous

    async def _finish_output(self, resp: Response, item: Item, previous: str | None) -> None:
        await self.emit("response.output_item.done", response_id=resp.id, output_index=0, item=item.rendered())
        await self.emit("conversation.item.done", previous_item_id=previous, item=item.rendered())

    async def _stream_call(self, resp: Response, plan: CallTool) -> Item:
        """A function_call item, its arguments streamed (GA: response.function_call_arguments.delta/.done)."""
        item = function_call_item(new_id("item"), plan.call_id, plan.name, "")
        item.data["status"] = "in_progress"
        previous = await self._add_output(resp, item)
        ids = {"response_id": resp.id, "item_id": item.id, "output_index": 0, "call_id": plan.call_id}
        for pos in range(0, len(plan.arguments), ARGUMENT_DELTA_CHARS):
            await self.emit("response.function_call_arguments.delta", **ids,
                            delta=plan.arguments[pos: pos + ARGUMENT_DELTA_CHARS])
        await self.emit("response.function_call_arguments.done", **ids, name=plan.name, arguments=plan.arguments)
        item.data.update(arguments=plan.arguments, status="completed")
        await self._finish_output(resp, item, previous)
        return item

    async def _stream_speech(self, resp: Response, plan: Speak) -> tuple[Item, str]:
        item = assistant_item(new_id("item"))
        previous = await self._add_output(resp, item)
        ids = {"response_id": resp.id, "item_id": item.id, "output_index": 0, "content_index": 0}
        part = {"type": "audio", "transcript": ""}
        item.data["content"] = [{"type": "output_audio", "transcript": ""}]
        await self.emit("response.content_part.added", **ids, part=part)
        if plan.transcript:
            await self.emit("response.output_audio_transcript.delta", **ids, delta=plan.transcript)
        step = CHUNK_MS * BYTES_PER_MS
        interval = CHUNK_MS / 1000 / self.speed
        for pos in range(0, len(plan.audio), step):
            if resp.cancel.is_set():
                break
            chunk = plan.audio[pos: pos + step]
            await self.emit("response.output_audio.delta", **ids, delta=base64.b64encode(chunk).decode("ascii"))
            item.audio += chunk
            await self.clock.sleep(interval, resp.cancel)
        cancelled = resp.cancel.is_set() and len(item.audio) < len(plan.audio)
        await self.emit("response.output_audio.done", **ids)
        await self.emit("response.output_audio_transcript.done", **ids, transcript=plan.transcript)
        await self.emit("response.content_part.done", **ids, part={**part, "transcript": plan.transcript})
        item.data.update(status="incomplete" if cancelled else "completed",
                         content=[{"type": "output_audio", "transcript": plan.transcript}])
        await self._finish_output(resp, item, previous)
        return item, "cancelled" if cancelled else "completed"

    async def close(self) -> None:
        if self.response is not None and self.response.task is not None:
            self.response.task.cancel()
