"""Dialects: what the conversation machine's actions and the server's events mean on each API.

The machine (device/conversation/machine.py) decides; a dialect only translates, both ways:
`wire(action)` gives the client events for one machine action (none for actions that are not
about the wire), `machine_events(ev, t)` the machine events for one server event (as the link
delivers it: a `protocol.ServerEvent`, audio already decoded). The agent holds one dialect and
has no per-API branches.

- RealtimeDialect: OpenAI Realtime (device/link/protocol.py) — one persistent session;
  response.cancel, conversation.item.truncate, commit/clear; server VAD events and responses.
- LiveDialect: GPT-Live (device/link/live_protocol.py) — a session per conversation
  (OpenSession → session.start, seeded on renewal with the conversation's transcripts as
  `input` history; CloseSession → session.close), mute/unmute, and nothing for cancel,
  truncate, commit or clear: the model hears the user and stops by itself.

Function tools (device/appliance/): `function_calls(ev)` reads the model's calls from a server
event, `tool_output(call_id, output)` is the client event that answers one, and the machine's
`SendResponseCreate(tool_outputs=True)` lets the model go on. Realtime: `response.function_call_
arguments.done` / `response.done` → `conversation.item.create` + `response.create`. GPT-Live
(Responses delegation, configured in `session.start`): the delegated Responses stream's calls
nested in `response.event` → `response.item.create` + `response.create`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from device.appliance import events as appliance_events
from device.appliance.events import FunctionCall
from device.appliance.tools import live_delegation
from device.config import Settings
from device.conversation import machine as cv
from device.link import live_protocol as lp
from device.link import protocol
from device.link.protocol import ProtocolError, ServerEvent

PlayedMs = Callable[[str], int]  # item id → ms of it really played (the player's count)


class Dialect(Protocol):
    api: str  # "realtime" | "live" (the timeline's `session` events carry it)
    audio_event: str  # the client event type that carries uplink audio (not logged as `send`)

    def wire(self, action: cv.Action, played_ms: PlayedMs) -> list[dict[str, Any]]: ...

    def machine_events(self, ev: ServerEvent, t: float) -> list[cv.Event]:
        """ProtocolError if the event is malformed in a way the link's parser did not see."""
        ...

    def transcript(self, ev: ServerEvent) -> tuple[str, str] | None:
        """(role, text) of a transcript fragment, else None."""
        ...

    def function_calls(self, ev: ServerEvent) -> list[FunctionCall]:
        """The function calls this event completes (a call may come twice: run each call_id once)."""
        ...

    def tool_output(self, call_id: str, output: str) -> dict[str, Any]:
        """The client event carrying one call's output (JSON text)."""
        ...

    def appliance_event(self, ev: ServerEvent) -> tuple[str, dict[str, Any]] | None:
        """(type, data) of the model-side event this carries, as the appliance reads it (MCP
        notes): the event itself on Realtime, the nested Responses event on GPT-Live; else None."""
        ...


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object field, {} when absent or null (compatible servers send null for optional fields)."""
    return value if isinstance(value, dict) else {}


def json_text(value: Any) -> str:
    """A JSON string field, "" when absent or null (str(None) would make an id "None")."""
    return value if isinstance(value, str) else ""


class RealtimeDialect:
    api = "realtime"
    audio_event = "input_audio_buffer.append"

    def wire(self, action: cv.Action, played_ms: PlayedMs) -> list[dict[str, Any]]:
        if isinstance(action, cv.SendCancel):  # named: never cancels a newer response by accident
            return [protocol.response_cancel(action.response_id or None)]
        if isinstance(action, cv.SendTruncate):
            return [protocol.item_truncate(action.item_id, played_ms(action.item_id))]
        if isinstance(action, cv.SendCommit):
            return [protocol.input_audio_commit()]
        if isinstance(action, cv.SendResponseCreate):
            return [protocol.response_create()]
        if isinstance(action, cv.SendClear):
            return [protocol.input_audio_clear()]
        return []

    def machine_events(self, ev: ServerEvent, t: float) -> list[cv.Event]:
        d = ev.data
        if ev.type == "response.output_audio.delta":
            item_id, pcm = protocol.audio_delta(ev)
            return [cv.AudioDelta(t, item_id, json_text(d.get("response_id")), pcm)]
        if ev.type == "input_audio_buffer.speech_started":
            return [cv.SpeechStart(t, "server_vad")]
        if ev.type == "input_audio_buffer.speech_stopped":
            return [cv.SpeechEnd(t, "server_vad")]
        if ev.type == "input_audio_buffer.committed":
            return [cv.Committed(t)]
        if ev.type == "response.created":
            return [cv.ResponseCreated(t, json_text(json_object(d.get("response")).get("id")))]
        if ev.type == "response.done":
            resp = json_object(d.get("response"))
            return [cv.ResponseDone(t, json_text(resp.get("id")), json_text(resp.get("status")))]
        return []

    def transcript(self, ev: ServerEvent) -> tuple[str, str] | None:
        return None

    def function_calls(self, ev: ServerEvent) -> list[FunctionCall]:
        return appliance_events.function_calls(ev.type, ev.data)

    def tool_output(self, call_id: str, output: str) -> dict[str, Any]:
        return protocol.function_call_output(call_id, output)

    def appliance_event(self, ev: ServerEvent) -> tuple[str, dict[str, Any]] | None:
        return ev.type, ev.data


class LiveDialect:
    """GPT-Live. Keeps the conversation's transcripts (for a renewed session's history) and
    numbers the model's utterances (a new item id after MODEL_GAP_S of quiet, for the player)."""

    api = "live"
    audio_event = "session.input_audio.append"

    def __init__(self, model: str = lp.DEFAULT_MODEL, instructions: str = "", voice: str = "",
                 delegation: dict[str, Any] | None = None) -> None:
        self.model, self.instructions, self.voice = model, instructions, voice
        self.delegation = delegation  # session.start's (Responses delegation with the device's tools), or None
        self._responses = appliance_events.ResponsesCalls()
        self.history: list[lp.HistoryItem] = []
        self.session_open = False
        self._utterance = 0
        self._last_audio_t = -1.0

    def wire(self, action: cv.Action, played_ms: PlayedMs) -> list[dict[str, Any]]:
        if isinstance(action, cv.OpenSession):
            if not action.renew:
                self.history = []  # a new conversation starts from nothing
            self.session_open = True
            return [lp.session_start(self.model, self.instructions, self.voice, history=self.history,
                                     delegation=self.delegation)]
        if isinstance(action, cv.CloseSession):
            was, self.session_open = self.session_open, False
            return [lp.session_close()] if was else []
        if isinstance(action, cv.MuteChanged) and self.session_open:
            return [lp.input_audio_mute() if action.muted else lp.input_audio_unmute()]
        if (isinstance(action, cv.SendResponseCreate) and action.tool_outputs and self.session_open
                and self.delegation is not None):
            return [lp.response_create()]  # the delegated response goes on with the tool outputs
        return []  # cancel, truncate, commit, clear: GPT-Live has none (the model decides)

    def machine_events(self, ev: ServerEvent, t: float) -> list[cv.Event]:
        if ev.type == "session.output_audio.delta":
            pcm = ev.audio if ev.audio is not None else protocol.decode_audio(str(ev.data.get("delta", "")), ev.type)
            if t - self._last_audio_t >= cv.MODEL_GAP_S:
                self._utterance += 1
            self._last_audio_t = t
            return [cv.AudioDelta(t, f"live_{self._utterance}", "", pcm)]
        if ev.type == "session.started":
            return [cv.SessionStarted(t)]
        if ev.type == "session.closed":
            reason = ev.data.get("reason")
            if not isinstance(reason, str):
                raise ProtocolError("session.closed: field 'reason' must be string")
            return [cv.SessionEnded(t, reason)]
        said = self.transcript(ev)
        if said is not None:
            role, text = said
            if self.history and self.history[-1].role == role:
                self.history[-1] = lp.HistoryItem(role, self.history[-1].text + text)
            else:
                self.history.append(lp.HistoryItem(role, text))
        return []

    def function_calls(self, ev: ServerEvent) -> list[FunctionCall]:
        """Calls of the delegated Responses stream (`response.event` {event, delegation_id})."""
        inner = self.appliance_event(ev)
        if inner is None:
            return []
        calls = self._responses.feed(*inner)
        filed = json_text(ev.data.get("delegation_id")) or "delegation"  # ToolDone needs a name for it
        return [c if c.response_id else dataclasses.replace(c, response_id=filed) for c in calls]

    def tool_output(self, call_id: str, output: str) -> dict[str, Any]:
        return lp.function_call_output(call_id, output)

    def appliance_event(self, ev: ServerEvent) -> tuple[str, dict[str, Any]] | None:
        if ev.type != "response.event":
            return None
        inner = json_object(ev.data.get("event"))
        return (inner["type"], inner) if isinstance(inner.get("type"), str) else None

    def transcript(self, ev: ServerEvent) -> tuple[str, str] | None:
        if ev.type == "session.input_transcript.delta":
            return "user", str(ev.data.get("delta", ""))
        if ev.type == "session.output_transcript.delta":
            return "assistant", str(ev.data.get("delta", ""))
        return None


def for_settings(settings: Settings) -> Dialect:
    """The dialect of `realtime.api`."""
    rt = settings.realtime
    if rt.api == "live":
        return LiveDialect(rt.model or lp.DEFAULT_MODEL, rt.instructions, rt.voice,
                           delegation=live_delegation(settings.tools))
    return RealtimeDialect()
