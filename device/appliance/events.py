"""What the appliance reads from Realtime server events: pure functions of one event's data.

- `function_calls(type, data)`: the calls to run, from `response.function_call_arguments.done`
  {call_id, name, arguments, response_id} or from the `function_call` items of `response.done`
  (`response.output[]`, RealtimeConversationItemFunctionCall). The agent runs each call_id once.
- `ResponsesCalls.feed(type, data)`: the same calls from a Responses API stream (GPT-Live's
  Responses delegation, each event nested in `response.event`): a `function_call` item in
  `response.output_item.done` (ResponseFunctionToolCall {call_id, name, arguments}), or earlier at
  `response.function_call_arguments.done` {item_id, arguments}, which carries no call_id or name:
  those come from the item announced in `response.output_item.added`.
- `transcript(type, data)`: (role, text) from `conversation.item.input_audio_transcription.completed`
  {transcript} (the user) and `response.output_audio_transcript.done` {transcript} (the assistant).
- `mcp_note(type, data, labels)`: the fields of a timeline `mcp` event for `mcp_list_tools.*`
  (Responses: `response.mcp_list_tools.*`) and `response.mcp_call.*`, plus a one-line problem for
  the failures; `labels` maps item ids to server labels, learnt from `conversation.item.added/done`
  and `response.output_item.*` items (`mcp_list_tools`, `mcp_call`), because the failure events
  carry only the item id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it
    response_id: str


def function_calls(ev_type: str, d: dict[str, Any]) -> list[FunctionCall]:
    if ev_type == "response.function_call_arguments.done":
        call_id, name = d.get("call_id"), d.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return []
        args = d.get("arguments")
        return [FunctionCall(call_id, name, args if isinstance(args, str) else "", str(d.get("response_id", "")))]
    if ev_type == "response.done":
        resp = d.get("response")
        if not isinstance(resp, dict) or resp.get("status") == "cancelled":
            return []  # a cancelled response's calls are not run (the user talked over it)
        out = resp.get("output")
        calls = []
        for item in out if isinstance(out, list) else []:
            if (isinstance(item, dict) and item.get("type") == "function_call"
                    and isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str)):
                args = item.get("arguments")
                calls.append(FunctionCall(item["call_id"], item["name"], args if isinstance(args, str) else "",
                                          str(resp.get("id", ""))))
        return calls
    return []


class ResponsesCalls:
    """Function calls read from one Responses event stream (openai.types.responses events).

    `response_id`: what the calls are filed under (ToolDone's response_id); the stream's own
    response id once `response.created` names it, else the delegation's (set by the caller)."""

    ITEMS_KEPT = 64

    def __init__(self) -> None:
        self.response_id = ""
        self._items: dict[str, tuple[str, str]] = {}  # function_call item id -> (call_id, name)

    def feed(self, ev_type: str, d: dict[str, Any]) -> list[FunctionCall]:
        if ev_type in ("response.created", "response.in_progress"):
            rid = d.get("response", {}).get("id") if isinstance(d.get("response"), dict) else None
            if isinstance(rid, str) and rid:
                self.response_id = rid
            return []
        if ev_type in ("response.output_item.added", "response.output_item.done"):
            item = d.get("item")
            if not (isinstance(item, dict) and item.get("type") == "function_call"
                    and isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str)):
                return []
            if isinstance(item.get("id"), str):
                self._items[item["id"]] = (item["call_id"], item["name"])
                while len(self._items) > self.ITEMS_KEPT:
                    self._items.pop(next(iter(self._items)))
            if ev_type == "response.output_item.added":
                return []  # its arguments are still to come
            args = item.get("arguments")
            return [FunctionCall(item["call_id"], item["name"], args if isinstance(args, str) else "",
                                 self.response_id)]
        if ev_type == "response.function_call_arguments.done":
            item_id = d.get("item_id")
            known = self._items.get(item_id) if isinstance(item_id, str) else None
            if known is None:
                return []  # not announced: its response.output_item.done will carry it whole
            args = d.get("arguments")
            return [FunctionCall(known[0], known[1], args if isinstance(args, str) else "", self.response_id)]
        return []


def transcript(ev_type: str, d: dict[str, Any]) -> tuple[str, str] | None:
    text = d.get("transcript")
    if not isinstance(text, str):
        return None
    if ev_type == "conversation.item.input_audio_transcription.completed":
        return "user", text.strip()
    if ev_type == "response.output_audio_transcript.done":
        return "assistant", text.strip()
    return None


_MCP_ITEMS = ("mcp_list_tools", "mcp_call")


def learn_labels(ev_type: str, d: dict[str, Any], labels: dict[str, str]) -> None:
    """Remember the server label of MCP items as they are announced."""
    if ev_type in ("conversation.item.added", "conversation.item.done", "response.output_item.added",
                   "response.output_item.done"):
        item = d.get("item")
        if (isinstance(item, dict) and item.get("type") in _MCP_ITEMS and isinstance(item.get("id"), str)
                and isinstance(item.get("server_label"), str)):
            labels[item["id"]] = item["server_label"]
            if len(labels) > 256:  # bounded: only recent items matter
                labels.pop(next(iter(labels)))


def mcp_note(ev_type: str, d: dict[str, Any], labels: dict[str, str]) -> tuple[dict[str, Any], str | None] | None:
    """(timeline fields of an `mcp` event, problem line or None) for an MCP event; None otherwise."""
    if ev_type.endswith(".delta"):
        return None  # argument deltas: the `done` says it all
    if ev_type.startswith(("mcp_list_tools.", "response.mcp_list_tools.")):  # Realtime / Responses names
        kind = "list_tools"
    elif ev_type.startswith("response.mcp_call"):
        kind = "call"
    else:
        return None
    status = ev_type.rsplit(".", 1)[-1]  # in_progress | completed | failed | done (arguments)
    item_id = str(d.get("item_id", ""))
    fields: dict[str, Any] = {"kind": kind, "status": status, "item_id": item_id}
    label = labels.get(item_id)
    if label:
        fields["server_label"] = label
    problem = None
    if status == "failed":
        what = "listing its tools" if kind == "list_tools" else "a tool call"
        problem = f"MCP server {label or '(unknown)'}: {what} failed (item {item_id}); the conversation goes on"
    return fields, problem
