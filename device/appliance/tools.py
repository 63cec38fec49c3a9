"""The function tools the model may call, run on the device.

`session_tools(settings)` is the `session.tools` list of the Realtime `session.update`: one
`{type: "function", name, description, parameters}` per enabled tool (GA shape,
openai.types.realtime.RealtimeFunctionTool) and one `{type: "mcp", server_label, server_url, ...}`
per `[[tools.mcp]]` entry (openai.types.realtime.realtime_tools_config_union.Mcp), the MCP token
read from the environment variable the entry names.

`ToolBox.run(name, arguments, t)` runs one call: `arguments` is the JSON text of
`response.function_call_arguments.done`; it is checked against the tool's JSON schema
(jsonschema); the result's `output` is the JSON text for
`conversation.item.create {item: {type: "function_call_output", call_id, output}}`.
`live_delegation(settings)` carries the same tools to GPT-Live (Responses delegation in
`session.start`); its calls come nested in `response.event` and their outputs go back as
`response.item.create`, run by the same `ToolBox`.

An unknown or disabled tool, arguments that do not match, or a refused timer give `ok=False`
and an `{"error": ...}` output the model can read out; nothing raises.
"""

from __future__ import annotations

import json
import os
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from device.appliance.timers import Timer, TimerEvent, TimerRefused, Timers
from device.appliance.volume import Volume
from device.config import TOOL_NAMES, McpServerSettings, ToolsSettings

_LABEL = {"type": "string", "maxLength": 60, "description": "A short name the user gave it, e.g. 'pasta'."}

# name -> (description, JSON schema of the arguments)
DEFINITIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "set_timer": (
        "Start a countdown timer on the speaker. It rings on the device when it runs out.",
        {"type": "object", "properties": {
            "duration_s": {"type": "number", "description": "Length of the timer in seconds."},
            "label": _LABEL},
         "required": ["duration_s"], "additionalProperties": False}),
    "cancel_timer": (
        "Cancel a pending timer or alarm, by its id (from list_timers) or by its label.",
        {"type": "object", "properties": {"id": {"type": "string"}, "label": {"type": "string"}},
         "anyOf": [{"required": ["id"]}, {"required": ["label"]}], "additionalProperties": False}),
    "list_timers": (
        "List the pending timers and alarms with the seconds left on each.",
        {"type": "object", "properties": {}, "additionalProperties": False}),
    "set_alarm": (
        "Set an alarm at a local time of day (24-hour HH:MM); the next such time, today or tomorrow.",
        {"type": "object", "properties": {
            "time": {"type": "string", "pattern": r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
                     "description": "Local time, 24-hour HH:MM."},
            "label": _LABEL},
         "required": ["time"], "additionalProperties": False}),
    "set_volume": (
        "Set the speaker volume: an absolute level 0-100, or a change such as +10 or -10.",
        {"type": "object", "properties": {
            "level": {"type": "integer", "minimum": 0, "maximum": 100},
            "change": {"type": "integer", "minimum": -100, "maximum": 100}},
         "oneOf": [{"required": ["level"]}, {"required": ["change"]}], "additionalProperties": False}),
    "stop": (
        "Stop whatever the speaker is doing: a ringing timer or alarm, and your own reply.",
        {"type": "object", "properties": {}, "additionalProperties": False}),
    "get_time": (
        "The local date, time and time zone of the speaker.",
        {"type": "object", "properties": {}, "additionalProperties": False}),
}
assert set(DEFINITIONS) == set(TOOL_NAMES)

_VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, (_, schema) in DEFINITIONS.items()}


def function_tools(enabled: list[str]) -> list[dict[str, Any]]:
    """The `session.tools` entries of the enabled function tools."""
    return [{"type": "function", "name": n, "description": DEFINITIONS[n][0], "parameters": DEFINITIONS[n][1]}
            for n in TOOL_NAMES if n in enabled]


def mcp_tool(m: McpServerSettings, env: typing.Mapping[str, str]) -> dict[str, Any]:
    """One `{type: "mcp"}` session tool. The token is in the result: never log it."""
    tool: dict[str, Any] = {"type": "mcp", "server_label": m.label, "server_url": m.server_url,
                            "require_approval": m.require_approval}
    if m.allowed_tools:
        tool["allowed_tools"] = list(m.allowed_tools)
    if m.description:
        tool["server_description"] = m.description
    if m.authorization_env and env.get(m.authorization_env):
        tool["authorization"] = env[m.authorization_env].strip()
    return tool


def session_tools(settings: ToolsSettings, env: typing.Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    env = os.environ if env is None else env
    return function_tools(settings.enabled) + [mcp_tool(m, env) for m in settings.mcp]


def live_delegation(settings: ToolsSettings, env: typing.Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """GPT-Live's `session.start` `delegation` for these tools: Responses delegation
    (openai.types.live SessionConfig.delegation, `{type: "responses", responses:
    ResponsesDelegationConfig}`) whose `tools` are `session_tools` (the Responses function-tool and
    MCP shapes are the Realtime ones). None when no tool is enabled: the session then has no
    delegation (the application's, by default) and the model is never asked to call one."""
    tools = session_tools(settings, env)
    if not tools:
        return None
    return {"type": "responses", "responses": {"model": settings.delegation_model, "tools": tools,
                                               "tool_choice": settings.tool_choice}}


def missing_tokens(settings: ToolsSettings, env: typing.Mapping[str, str] | None = None) -> list[str]:
    """One line per MCP entry whose token variable is named but not set (for `check` and the log)."""
    env = os.environ if env is None else env
    return [f"tools.mcp {m.label!r}: environment variable {m.authorization_env} is not set"
            for m in settings.mcp if m.authorization_env and not env.get(m.authorization_env)]


@dataclass
class ToolResult:
    ok: bool
    output: str  # JSON text for function_call_output
    timer_events: list[TimerEvent] = field(default_factory=list)
    stop: bool = False  # the `stop` tool: the agent stops the ring and the reply
    volume_changed: bool = False


def _out(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _error(message: str) -> ToolResult:
    return ToolResult(False, _out(error=message))


def _describe(timers: Timers, x: Timer, t: float) -> dict[str, Any]:
    d: dict[str, Any] = {"id": x.id, "kind": x.kind, "seconds_left": round(timers.remaining_s(x, t))}
    if x.label:
        d["label"] = x.label
    if x.kind == "alarm":
        d["at"] = timers.local_time(timers.due_t(x)).strftime("%H:%M")
    return d


class ToolBox:
    """Runs the enabled tools against the device's timers and volume."""

    def __init__(self, settings: ToolsSettings, timers: Timers, volume: Volume) -> None:
        self.enabled = set(settings.enabled)
        self.timers = timers
        self.volume = volume
        self._handlers: dict[str, Callable[[dict[str, Any], float], ToolResult]] = {
            "set_timer": self._set_timer, "cancel_timer": self._cancel_timer, "list_timers": self._list_timers,
            "set_alarm": self._set_alarm, "set_volume": self._set_volume, "stop": self._stop,
            "get_time": self._get_time,
        }

    def run(self, name: str, arguments: str, t: float) -> ToolResult:
        """Run tool `name` with `arguments` (JSON text) at clock time `t`. Never raises."""
        if name not in self.enabled or name not in self._handlers:
            return _error(f"unknown tool {name[:60]!r}; available: {', '.join(sorted(self.enabled))}")
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return _error(f"arguments are not JSON ({str(exc)[:60]})")
        problem = next(iter(_VALIDATORS[name].iter_errors(args)), None)
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path)
            return _error(f"bad arguments for {name}{' at ' + where if where else ''}: {problem.message[:120]}")
        try:
            return self._handlers[name](args, t)
        except TimerRefused as exc:
            return _error(str(exc))

    # ------------------------------------------------------------ the tools
    def _set_timer(self, args: dict[str, Any], t: float) -> ToolResult:
        ev = self.timers.set_timer(t, float(args["duration_s"]), args.get("label", ""))
        return ToolResult(True, _out(ok=True, **_describe(self.timers, ev.timer, t)), [ev])

    def _cancel_timer(self, args: dict[str, Any], t: float) -> ToolResult:
        events = self.timers.cancel(t, args.get("id", ""), args.get("label", ""))
        if not events:
            return _error("no pending timer matches; call list_timers to see them")
        return ToolResult(True, _out(ok=True, cancelled=[e.timer.id for e in events]), events)

    def _list_timers(self, args: dict[str, Any], t: float) -> ToolResult:
        items = [_describe(self.timers, x, t) for x in sorted(self.timers.pending.values(), key=lambda x: x.due_wall)]
        ringing = [x.id for x, _ in self.timers.ringing.values()]
        return ToolResult(True, _out(ok=True, timers=items, ringing=ringing))

    def _set_alarm(self, args: dict[str, Any], t: float) -> ToolResult:
        m = re.match(r"^(\d{1,2}):(\d{2})$", args["time"])
        assert m is not None  # the schema's pattern
        ev = self.timers.set_alarm(t, int(m.group(1)), int(m.group(2)), args.get("label", ""))
        return ToolResult(True, _out(ok=True, **_describe(self.timers, ev.timer, t)), [ev])

    def _set_volume(self, args: dict[str, Any], t: float) -> ToolResult:
        before = self.volume.level
        level = self.volume.set(args["level"]) if "level" in args else self.volume.change(args["change"])
        return ToolResult(True, _out(ok=True, level=level), volume_changed=level != before)

    def _stop(self, args: dict[str, Any], t: float) -> ToolResult:
        ringing = len(self.timers.ringing)
        events = self.timers.stop(t, "tool")
        return ToolResult(True, _out(ok=True, stopped_ringing=ringing), events, stop=True)

    def _get_time(self, args: dict[str, Any], t: float) -> ToolResult:
        now = self.timers.local_time(t)
        return ToolResult(True, _out(ok=True, date=now.strftime("%Y-%m-%d"), weekday=now.strftime("%A"),
                                     time=now.strftime("%H:%M"), timezone=now.tzname() or ""))
