"""What the local server's model does in a response: the parrot, optionally scripted (pure).

The parrot answers the latest user message: an audio turn with that turn's own audio
(no transcript), a text message with its text as the transcript and a short 440 Hz
tone as the audio (no speech synthesis here: the tone's length follows the text).

A script (`voxbox serve --script FILE`, JSON or TOML) says, per user turn in order,
what the model does instead:

    [[turns]]                       # JSON: {"turns": [{...}, ...]}
    call = {name = "set_timer", arguments = {seconds = 3}}   # optional function call
    say = "Timer set for three seconds."                     # the output transcript
    audio = "timer_set.wav"         # optional: any WAV, played resampled to 24 kHz;
                                    # default: the parrot's audio of that turn

With `call`, the turn's first response is the function call; once the client adds the
`function_call_output` (matching `call_id`) and sends `response.create`, the next
response speaks. Turns beyond the script are the parrot's.

The GPT-Live parrot (live_server) takes the same turns with `take_turn()`: a `call` goes through
the session's Responses delegation when `session.start` configured one.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.audio.wavio import read_mono
from device.dev.server_conversation import Conversation, Item
from device.errors import AudioFileError, ConfigError
from device.link.protocol import SAMPLE_RATE, new_id

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TONE_HZ = 440.0
TONE_MS_PER_CHAR = 40
TONE_MS = (200, 3000)  # shortest, longest


@dataclass(frozen=True)
class ScriptTurn:
    say: str = ""
    call_name: str | None = None
    call_arguments: str = "{}"  # JSON text, as the protocol carries it
    audio: bytes | None = None  # 24 kHz PCM16 mono, from the script's WAV


@dataclass(frozen=True)
class Speak:
    """An assistant message: `audio` (24 kHz PCM16) with `transcript`."""

    audio: bytes
    transcript: str


@dataclass(frozen=True)
class CallTool:
    """A function_call item: `arguments` is JSON text."""

    name: str
    arguments: str
    call_id: str


def load_script(path: str | Path) -> list[ScriptTurn]:
    """Read a script (.json, else TOML); ConfigError (exit 2) with one clear line on a bad one."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"script {p}: {exc.strerror or exc}") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"script {p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {exc}") from None
    turns = data.get("turns") if isinstance(data, dict) else None
    if not isinstance(turns, list):
        raise ConfigError(f"script {p}: needs a list 'turns' ([[turns]] in TOML)")
    return [_turn(p, k, t) for k, t in enumerate(turns)]


def _turn(path: Path, k: int, raw: Any) -> ScriptTurn:
    where = f"script {path}: turns[{k}]"
    if not isinstance(raw, dict) or set(raw) - {"say", "call", "audio"}:
        raise ConfigError(f"{where}: a turn is a table of say, call, audio")
    say = raw.get("say", "")
    if not isinstance(say, str):
        raise ConfigError(f"{where}.say: must be a string")
    name, args = None, "{}"
    if "call" in raw:
        call = raw["call"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            raise ConfigError(f"{where}.call: needs a string 'name'")
        name = call["name"]
        a = call.get("arguments", {})
        if isinstance(a, str):
            try:
                json.loads(a)
            except ValueError:
                raise ConfigError(f"{where}.call.arguments: a string must be JSON") from None
            args = a
        elif isinstance(a, dict):
            args = json.dumps(a, separators=(",", ":"))
        else:
            raise ConfigError(f"{where}.call.arguments: an object or JSON text")
    audio = None
    if "audio" in raw:
        if not isinstance(raw["audio"], str):
            raise ConfigError(f"{where}.audio: a WAV file name")
        wav = (path.parent / raw["audio"]) if not Path(raw["audio"]).is_absolute() else Path(raw["audio"])
        try:
            audio = read_mono(wav, SAMPLE_RATE).astype("<i2").tobytes()
        except AudioFileError as exc:
            raise ConfigError(f"{where}.audio: {exc}") from None
    return ScriptTurn(say, name, args, audio)


def tone(text: str) -> bytes:
    """A soft 440 Hz tone (−20 dBFS, 10 ms fades) standing in for speech of `text`."""
    ms = min(max(len(text) * TONE_MS_PER_CHAR, TONE_MS[0]), TONE_MS[1])
    n = ms * SAMPLE_RATE // 1000
    x = 0.1 * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / SAMPLE_RATE)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (SAMPLE_RATE / 100))
    return (x * fade * 32767).astype("<i2").tobytes()


class ScriptedModel:
    """Decides each response: `next(conversation)` → Speak or CallTool. No script: the plain parrot."""

    def __init__(self, script: list[ScriptTurn] | None = None) -> None:
        self.script = list(script or [])
        self._turns = 0  # user turns the script has taken
        self._answered: set[str] = set()  # user items a response already started on
        self._awaiting: tuple[ScriptTurn, Item, str] | None = None  # turn, its user item, call_id

    def take_turn(self) -> ScriptTurn | None:
        """The script's next user turn (in order, shared by every connection); None past its end."""
        if self._turns >= len(self.script):
            return None
        self._turns += 1
        return self.script[self._turns - 1]

    def next(self, conv: Conversation) -> Speak | CallTool:
        items = conv.items()
        user = next((i for i in reversed(items) if i.type == "message" and i.role == "user"), None)
        if self._awaiting is not None:
            turn, asked, call_id = self._awaiting
            outputs = [i for i in items if i.type == "function_call_output" and i.data.get("call_id") == call_id]
            if outputs and (user is None or user is asked):
                self._awaiting = None
                return Speak(turn.audio if turn.audio is not None else _parrot(asked).audio, turn.say)
        if user is None:
            return Speak(b"", "")
        if user.id not in self._answered:
            self._answered.add(user.id)
            self._awaiting = None  # a new user turn supersedes a call left unanswered
            scripted = self.take_turn()
            if scripted is not None:
                if scripted.call_name is not None:
                    call = CallTool(scripted.call_name, scripted.call_arguments, new_id("call"))
                    self._awaiting = (scripted, user, call.call_id)
                    return call
                return Speak(scripted.audio if scripted.audio is not None else _parrot(user).audio, scripted.say)
        return _parrot(user)


def _parrot(user: Item) -> Speak:
    if user.audio:
        return Speak(user.echo if user.echo is not None else user.audio, "")
    text = user.text()
    return Speak(tone(text) if text else b"", text)
