"""The recent conversation as text, to carry it into a new session (pure, no I/O).

A Realtime session's conversation dies with its socket (a renewal before `expires_at`, a
reconnect after a lost link). `TurnHistory` watches the server events of the live session and
keeps the last few turns as text: the user's input transcripts
(`conversation.item.input_audio_transcription.completed`, when input transcription is on) and
the assistant's transcripts (`response.output_audio_transcript.done`, `response.output_text.done`).
An assistant item the device truncated (`conversation.item.truncated`) keeps only the share of
its text that was played. `items()` gives them back as `conversation.item.create` client events
(text message items) for the next session, oldest first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from device.link import protocol
from device.link.protocol import ServerEvent

MAX_ITEMS = 12  # user + assistant items kept (6 exchanges)
MAX_CHARS = 4000  # and at most this much text in all


@dataclass
class _Turn:
    role: str  # "user" | "assistant"
    text: str


class TurnHistory:
    def __init__(self, max_items: int = MAX_ITEMS, max_chars: int = MAX_CHARS) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self._turns: OrderedDict[str, _Turn] = OrderedDict()
        self._audio: dict[str, int] = {}  # assistant item -> bytes of audio received (for a truncate)

    def observe(self, ev: ServerEvent) -> None:
        """Feed every server event of the live session."""
        d = ev.data
        item = d.get("item_id")
        if not isinstance(item, str):
            return
        if ev.type == "response.output_audio.delta" and ev.audio is not None:
            self._audio[item] = self._audio.get(item, 0) + len(ev.audio)
        elif ev.type == "conversation.item.input_audio_transcription.completed":
            self._add(item, "user", d.get("transcript"))
        elif ev.type == "response.output_audio_transcript.done":
            self._add(item, "assistant", d.get("transcript"))
        elif ev.type == "response.output_text.done":
            self._add(item, "assistant", d.get("text"))
        elif ev.type == "conversation.item.truncated":
            self._truncated(item, d.get("audio_end_ms"))

    def _add(self, item: str, role: str, text: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            return
        self._turns[item] = _Turn(role, text.strip())
        self._turns.move_to_end(item)
        while len(self._turns) > self.max_items or (
                len(self._turns) > 1 and sum(len(t.text) for t in self._turns.values()) > self.max_chars):
            dropped, _ = self._turns.popitem(last=False)
            self._audio.pop(dropped, None)

    def _truncated(self, item: str, end_ms: Any) -> None:
        turn, total = self._turns.get(item), self._audio.get(item, 0)
        if turn is None or not isinstance(end_ms, int) or total <= 0:
            return
        # The user heard this share of the reply; the text is cut at the same share (a word boundary).
        share = min(1.0, end_ms * protocol.BYTES_PER_MS / total)
        cut = turn.text[: int(len(turn.text) * share)].rsplit(" ", 1)[0] if share < 1.0 else turn.text
        if cut.strip():
            turn.text = cut.strip() + " …"
        else:
            del self._turns[item]

    def items(self) -> list[dict[str, Any]]:
        """`conversation.item.create` events re-creating the kept turns, oldest first."""
        out = []
        for turn in self._turns.values():
            kind = "input_text" if turn.role == "user" else "output_text"
            out.append(protocol.item_create({"type": "message", "role": turn.role,
                                             "content": [{"type": kind, "text": turn.text}]}))
        return out

    def __len__(self) -> int:
        return len(self._turns)
