"""The local server's conversation: items, the active response, and the errors the service gives.

Pure (no I/O, no clock): the server asks this object whether a client event is
allowed and what it changes; a refusal raises `ClientError` with the code and
message the OpenAI Realtime service uses (checked against its API reference and
peers' reports):

- `response.create` while a response is active → `conversation_already_has_active_response`
- `response.cancel` with nothing active (or another id) → `response_cancel_not_active`
- `conversation.item.truncate`: unknown item → `item_truncate_invalid_item_id`; more
  audio than the item has → `invalid_value` (param `audio_end_ms`, "Audio content of
  X ms is already shorter than Y ms")
- `conversation.item.retrieve` / `.delete` of an unknown item →
  `item_retrieve_invalid_item_id` / `item_delete_invalid_item_id`
- `conversation.item.create` after an unknown `previous_item_id` → `item_create_invalid_previous_item_id`

Audio is 24 kHz PCM16 mono bytes throughout (BYTES_PER_MS = 48).
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass, field
from typing import Any

from device.dev.server_config import ClientError
from device.link.protocol import BYTES_PER_MS, new_id

ROOT = "root"  # previous_item_id that inserts at the start of the conversation
USER_AUDIO_MS_PER_TOKEN = 100  # the service bills user audio at ~1 token / 100 ms,
ASSISTANT_AUDIO_MS_PER_TOKEN = 50  # assistant audio at ~1 token / 50 ms,
CHARS_PER_TOKEN = 4  # text at ~4 characters a token


@dataclass
class Item:
    """One conversation item: `data` as the service shows it (no audio bytes), its audio aside.

    `echo` is what a parrot reply to this (user) item plays: the speech without the
    trailing silence for a server-VAD turn, else the whole audio."""

    data: dict[str, Any]
    audio: bytes = b""
    echo: bytes | None = None

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def type(self) -> str:
        return str(self.data["type"])

    @property
    def role(self) -> str | None:
        return self.data.get("role")

    @property
    def audio_ms(self) -> int:
        return len(self.audio) // BYTES_PER_MS

    def text(self) -> str:
        """The item's text: input/output text, else the transcripts, joined."""
        parts = self.data.get("content") or []
        return " ".join(p.get("text") or p.get("transcript") or "" for p in parts).strip()

    def rendered(self, with_audio: bool = False) -> dict[str, Any]:
        """The item as an event carries it; `with_audio` (conversation.item.retrieved) adds the audio, base64."""
        out = copy.deepcopy(self.data)
        if with_audio and self.audio:
            for part in out.get("content") or []:
                if part.get("type") in ("input_audio", "output_audio"):
                    part["audio"] = base64.b64encode(self.audio).decode("ascii")
                    break
        return out


def user_audio_item(item_id: str, audio: bytes, echo: bytes | None = None) -> Item:
    """The user message a commit of the input audio buffer makes."""
    return Item({"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                 "content": [{"type": "input_audio", "transcript": None}]}, audio, echo)


def assistant_item(item_id: str) -> Item:
    """An assistant message as a response starts it (in progress, no content yet)."""
    return Item({"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                 "status": "in_progress", "content": []})


def function_call_item(item_id: str, call_id: str, name: str, arguments: str) -> Item:
    return Item({"id": item_id, "object": "realtime.item", "type": "function_call", "status": "completed",
                 "call_id": call_id, "name": name, "arguments": arguments})


def _str(obj: dict[str, Any], key: str, param: str, required: bool = True) -> str | None:
    v = obj.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise ClientError(f"Missing or invalid '{param}': expected a string.",
                          "missing_required_parameter" if v is None else "invalid_type", param)
    return v


def _content(raw: Any, role: str) -> tuple[list[dict[str, Any]], bytes]:
    allowed = {"user": ("input_text", "input_audio"), "system": ("input_text",), "assistant": ("output_text",)}[role]
    if not isinstance(raw, list) or not raw:
        raise ClientError("Missing required parameter: 'item.content'.", "missing_required_parameter", "item.content")
    parts: list[dict[str, Any]] = []
    audio = b""
    for i, part in enumerate(raw):
        param = f"item.content[{i}]"
        if not isinstance(part, dict) or part.get("type") not in allowed:
            got = part.get("type") if isinstance(part, dict) else part
            raise ClientError(f"Invalid value: {got!r}. Supported values for a {role} message are: "
                              + ", ".join(allowed) + ".", "invalid_value", f"{param}.type")
        if part["type"] == "input_audio":
            b64 = _str(part, "audio", f"{param}.audio")
            try:
                pcm = base64.b64decode(b64 or "", validate=True)
            except (binascii.Error, ValueError):
                raise ClientError("Invalid 'audio'. Expected base64-encoded audio bytes.", "invalid_value",
                                  f"{param}.audio") from None
            audio += pcm[: len(pcm) // 2 * 2]
            parts.append({"type": "input_audio", "transcript": _str(part, "transcript", f"{param}.transcript", False)})
        else:
            parts.append({"type": part["type"], "text": _str(part, "text", f"{param}.text")})
    return parts, audio


def parse_client_item(raw: dict[str, Any]) -> Item:
    """The item of a `conversation.item.create`: user/system/assistant text, user audio,
    `function_call`, `function_call_output` (what the service accepts; assistant audio is refused)."""
    item_id = _str(raw, "id", "item.id", required=False) or new_id("item")
    base: dict[str, Any] = {"id": item_id, "object": "realtime.item", "status": "completed"}
    kind = raw.get("type")
    if kind == "message":
        role = raw.get("role")
        if role not in ("user", "system", "assistant"):
            raise ClientError(f"Invalid value: {role!r}. Supported values are: 'user', 'system', 'assistant'.",
                              "invalid_value", "item.role")
        content, audio = _content(raw.get("content"), role)
        return Item({**base, "type": "message", "role": role, "content": content}, audio)
    if kind == "function_call":
        return Item({**base, "type": "function_call", "call_id": _str(raw, "call_id", "item.call_id"),
                     "name": _str(raw, "name", "item.name"), "arguments": _str(raw, "arguments", "item.arguments")})
    if kind == "function_call_output":
        return Item({**base, "type": "function_call_output", "call_id": _str(raw, "call_id", "item.call_id"),
                     "output": _str(raw, "output", "item.output")})
    raise ClientError(f"Invalid value: {kind!r}. Supported values are: 'message', 'function_call', "
                      "'function_call_output'.", "invalid_value", "item.type")


def parse_metadata(raw: Any) -> dict[str, str] | None:
    """`response.metadata`: up to 16 string pairs (keys ≤ 64, values ≤ 512 characters), or None."""
    if raw is None:
        return None
    if (not isinstance(raw, dict) or len(raw) > 16
            or not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                       for k, v in raw.items())):
        raise ClientError("Invalid 'response.metadata': up to 16 string keys (≤ 64 chars) with string values "
                          "(≤ 512 chars).", "invalid_value", "response.metadata")
    return dict(raw)


@dataclass
class Conversation:
    """The items of one session, in order, and the response being generated (if any)."""

    _items: dict[str, Item] = field(default_factory=dict)
    _order: list[str] = field(default_factory=list)
    active_response: str | None = None

    # ---------------------------------------------------------------- items

    @property
    def last_id(self) -> str | None:
        return self._order[-1] if self._order else None

    def items(self) -> list[Item]:
        return [self._items[i] for i in self._order]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def previous_of(self, item_id: str) -> str | None:
        k = self._order.index(item_id)
        return self._order[k - 1] if k else None

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Append (or insert after `previous_item_id`, or first for 'root'); returns the previous item's id."""
        if item.id in self._items:
            raise ClientError(f"Error adding item: an item with id '{item.id}' already exists.",
                              "invalid_value", "item.id")
        if previous_item_id is None:
            self._order.append(item.id)
        elif previous_item_id == ROOT:
            self._order.insert(0, item.id)
        elif previous_item_id in self._items:
            self._order.insert(self._order.index(previous_item_id) + 1, item.id)
        else:
            raise ClientError(f"Error adding item: the previous item with id '{previous_item_id}' does not exist.",
                              "item_create_invalid_previous_item_id", "previous_item_id")
        self._items[item.id] = item
        return self.previous_of(item.id)

    def get(self, item_id: str, action: str = "retrieve") -> Item:
        """The item; else the service's `item_<action>_invalid_item_id` error (retrieve, delete, truncate)."""
        item = self._items.get(item_id)
        if item is None:
            verb = {"retrieve": "retrieving", "delete": "deleting", "truncate": "truncating"}[action]
            raise ClientError(f"Error {verb} item: the item with id '{item_id}' does not exist.",
                              f"item_{action}_invalid_item_id", "item_id")
        return item

    def delete(self, item_id: str) -> None:
        self.get(item_id, "delete")
        del self._items[item_id]
        self._order.remove(item_id)

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Cut an assistant item's audio at `audio_end_ms` (its transcript goes, as at the service)."""
        item = self.get(item_id, "truncate")
        if item.type != "message" or item.role != "assistant":
            raise ClientError("Only assistant messages with audio can be truncated.", "invalid_value", "item_id")
        if content_index != 0:
            raise ClientError("content_index must be 0 (the audio part)", "invalid_value", "content_index")
        if audio_end_ms < 0 or audio_end_ms > item.audio_ms:
            raise ClientError(f"Audio content of {item.audio_ms}ms is already shorter than {audio_end_ms}ms",
                              "invalid_value", "audio_end_ms")
        item.audio = item.audio[: audio_end_ms * BYTES_PER_MS]
        for part in item.data.get("content") or []:
            if part.get("type") == "output_audio":
                part["transcript"] = ""

    # ---------------------------------------------------------------- responses

    def begin_response(self, response_id: str) -> None:
        if self.active_response is not None:
            raise ClientError(f"Conversation already has an active response in progress: {self.active_response}. "
                              "Wait until the response is finished before creating a new one.",
                              "conversation_already_has_active_response")
        self.active_response = response_id

    def end_response(self, response_id: str) -> None:
        if self.active_response == response_id:
            self.active_response = None

    def check_cancel(self, response_id: str | None) -> str:
        """The id of the response a `response.cancel` stops; `response_cancel_not_active` if none."""
        if self.active_response is None or (response_id is not None and response_id != self.active_response):
            raise ClientError("Cancellation failed: no active response found", "response_cancel_not_active")
        return self.active_response

    # ---------------------------------------------------------------- usage

    def usage(self, instructions: str, output: list[Item], before: str | None) -> dict[str, Any]:
        """`response.done.usage`: the context up to `before` (excluded: the response's own items) in,
        the response's items out, in the service's token rates (see the constants)."""
        in_audio = in_text = 0
        for item in self.items():
            if item.id == before:
                break
            ms_per = ASSISTANT_AUDIO_MS_PER_TOKEN if item.role == "assistant" else USER_AUDIO_MS_PER_TOKEN
            in_audio += -(-item.audio_ms // ms_per)
            in_text += _text_tokens(item)
        in_text += -(-len(instructions) // CHARS_PER_TOKEN)
        out_audio = sum(-(-i.audio_ms // ASSISTANT_AUDIO_MS_PER_TOKEN) for i in output)
        out_text = sum(_text_tokens(i) for i in output)
        inp, out = in_audio + in_text, out_audio + out_text
        return {"total_tokens": inp + out, "input_tokens": inp, "output_tokens": out,
                "input_token_details": {"text_tokens": in_text, "audio_tokens": in_audio, "image_tokens": 0,
                                        "cached_tokens": 0,
                                        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                                                  "image_tokens": 0}},
                "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio}}


def _text_tokens(item: Item) -> int:
    text = item.text()
    for key in ("arguments", "output", "name"):
        text += str(item.data.get(key) or "")
    return -(-len(text) // CHARS_PER_TOKEN)
