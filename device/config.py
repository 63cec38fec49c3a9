"""Typed settings from a TOML file plus environment and command-line overrides.

Every setting has a default, so an empty file (or none) is a valid config.
A wrong key or value raises ConfigError naming the key and what is wrong.
Environment: VOXBOX_<SECTION>_<KEY>=value overrides the file (e.g.
VOXBOX_REALTIME_URL); a command line's options override both and go through the
same checks (`load(..., overrides=...)`). Settings are frozen once loaded:
a changed setting is a new Settings (`dataclasses.replace`, `apply_values`).
The API key comes only from OPENAI_API_KEY or from the
file named by realtime.api_key_file, never from the TOML itself.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from device.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/voxbox/voxbox.toml")

# The choices of the settings below: a value outside them is a ConfigError (validate() reads the
# allowed values from these types, so they are written down once).
WakeEngine = Literal["openwakeword", "microwakeword"]
VadEngine = Literal["silero", "micro"]
BargeInMode = Literal["local", "server", "both", "off"]
TurnDetection = Literal["server_vad", "semantic_vad", "none"]
Eagerness = Literal["low", "medium", "high", "auto"]
LedDriver = Literal["none", "leds", "rgb", "apa102"]
LogLevel = Literal["debug", "info", "warning", "error"]
NoiseReduction = Literal["far_field", "near_field", "off"]
ToolChoice = Literal["auto", "none", "required"]
Api = Literal["realtime", "live"]


@dataclass(frozen=True)
class AudioSettings:
    input_device: str = ""  # substring of the device name, or an index; "" = system default
    output_device: str = ""
    input_rate: int = 0  # 0 = the device's default rate
    input_channels: int = 0  # 0 = the device's channel count
    channels: list[int] = field(default_factory=list)  # channels to average; [] = all
    output_rate: int = 24000
    # Mic block size. 20 ms halves the per-block work of 10 ms (measured idle: 10.3 % → 6.3 % of
    # a core on the PulseAudio rig) for at most 10 ms more barge-in decision latency.
    frames_per_buffer_ms: int = 20
    output_buffer_ms: int = 20
    # Jitter buffer: a reply (and a reply that ran dry mid-way) starts playing once this much is
    # queued, or its response is done. Deltas arriving unevenly then play without short gaps.
    prebuffer_ms: int = 100


@dataclass(frozen=True)
class WakeSettings:
    words: list[str] = field(default_factory=lambda: ["hey_jarvis"])
    models: list[str] = field(default_factory=list)  # custom .tflite or manifest .json paths
    engine: WakeEngine = "openwakeword"
    threshold: float = 0.0  # 0 = each model's own (its manifest); else overrides all models
    trigger_level: int = 0  # consecutive frames above threshold; 0 = each model's own
    refractory_s: float = 2.0


@dataclass(frozen=True)
class VadSettings:
    engine: VadEngine = "silero"
    threshold: float = 0.5
    min_speech_ms: int = 90
    min_silence_ms: int = 500
    padding_ms: int = 150
    # Stricter while the device speaks, so its own echo does not interrupt it. Measured on
    # `voxbox bench` barge_in (AEC output, echo gain up to 1.0): 0.8 over 2 silero chunks
    # (64 ms) is the fastest rule with no false barge-in; 0.7/90 ms had 2 in 120 scenarios.
    speaking_threshold: float = 0.8
    speaking_min_speech_ms: int = 60
    # The fast stage while the device speaks: one VAD chunk at or above this pauses the reply
    # (conversation.confirm_ms). Measured offline on the bench set (Silero on AEC3 output).
    suspect_threshold: float = 0.5
    # Echo-aware double-talk test (second barge-in path, on the echo canceller's levels): the
    # cleaned mic within dtd_ratio_db of the raw mic and above dtd_level_db (dB re 1 LSB RMS)
    # for dtd_frames 10 ms frames in a row, once the reply has played 0.3 s. The canceller
    # removes 25-40 dB of echo, so only the user's own voice survives that close to the raw
    # level. Measured on the bench set: 0 false, detections 61 -> 66 of 72. 0 frames = off.
    dtd_ratio_db: float = -6.0
    dtd_level_db: float = 50.0
    dtd_frames: int = 3


@dataclass(frozen=True)
class AecSettings:
    enabled: bool = True
    noise_suppression: bool = False
    high_pass: bool = True
    auto_gain: bool = False
    stream_delay_ms: int = -1  # -1 = estimate
    # While the device speaks, barge-in decisions and the uplink need the raw mic to hold more
    # than the predicted echo of the reference (device/audio/echogate.py); false = off.
    echo_gate: bool = True
    # ... and a linear canceller's residual to hold more than its predicted residual, for barge-in
    # (device/audio/residualgate.py: SpeexDSP, the Debian package libspeexdsp1); false = off.
    residual_gate: bool = True
    # ... and the room's echo path, estimated from the replies, is kept in gpio.state_dir/room.json
    # and rehearsed at start (device/audio/room.py; needs the residual gate); false = every start cold.
    remember_room: bool = True


@dataclass(frozen=True)
class ConversationSettings:
    follow_up_s: float = 6.0  # listening window after a reply before going idle
    first_turn_s: float = 8.0  # after the wake word: time allowed to start speaking
    barge_in: BargeInMode = "local"
    preroll_ms: int = 300  # audio kept before a barge-in and sent with it
    # Two-stage barge-in: a suspicion (vad.suspect_threshold) pauses the reply at once; local VAD
    # speech within confirm_ms makes it a barge-in, else the reply resumes. 0 = no pause stage.
    confirm_ms: int = 300
    max_turn_s: float = 30.0  # a user turn talked without a pause this long is closed (committed)
    thinking_timeout_s: float = 20.0  # no answer this long after the turn closed: listen again
    mute_close_s: float = 5.0  # GPT-Live: a mute this long mid-conversation closes the session
    # GPT-Live (full duplex): at most this much reply waits in the player, so the speaker stops
    # within this (plus the device's output latency) of the model stopping; older audio is skipped.
    # The model streams about in real time; this only bounds a burst (a link that stalled, then caught up).
    live_buffer_ms: int = 2000


REALTIME_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
LIVE_URL = "wss://api.openai.com/v1/live/sessions"
LIVE_MODEL = "gpt-live-1"


@dataclass(frozen=True)
class RealtimeSettings:
    # Which OpenAI voice protocol: "realtime" (one persistent session; the model is in the URL)
    # or "live" (GPT-Live: a session per conversation, full duplex; the model is `model`).
    api: Api = "realtime"
    url: str = REALTIME_URL  # with api = "live", this default means LIVE_URL
    model: str = ""  # GPT-Live model ("" = gpt-live-1); the Realtime model is in the URL
    api_key_file: str = ""
    instructions: str = "You are a helpful voice assistant on a smart speaker. Answer briefly."
    voice: str = "marin"
    turn_detection: TurnDetection = "server_vad"
    vad_threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int = 0  # 0 = not sent
    eagerness: Eagerness = "auto"
    ca_file: str = ""
    # A half-open link (packets silently dropped) is noticed within interval + timeout (+ the 2 s
    # close timeout): ~10 s, then `offline`, and the unanswered turn is sent again on reconnect.
    ping_interval_s: float = 4.0
    ping_timeout_s: float = 4.0
    reconnect_max_s: float = 30.0
    session_max_s: float = 3300.0  # renew before the server's limit (60 min at OpenAI)
    offline_buffer_s: float = 2.0
    # audio.input.transcription of the session: the user's words as text (timeline `transcript`).
    # "" = off. Language: ISO-639-1 ("en"), "" = let the model guess.
    transcription_model: str = "gpt-4o-mini-transcribe"
    transcription_language: str = ""
    # audio.input.noise_reduction: a speaker on a shelf hears the room, so far_field.
    noise_reduction: NoiseReduction = "far_field"


TOOL_NAMES = ("set_timer", "cancel_timer", "list_timers", "set_alarm", "set_volume", "stop", "get_time")


@dataclass(frozen=True)
class McpServerSettings:
    """One `[[tools.mcp]]` entry: a remote MCP server the model may call (session.tools type "mcp")."""

    label: str = ""  # server_label
    server_url: str = ""
    allowed_tools: list[str] = field(default_factory=list)  # [] = all the server offers
    require_approval: str = "never"  # never | always (the device cannot ask the user to approve)
    # Name of the environment variable (e.g. from /etc/voxbox/voxbox.env) holding the token:
    # the token itself never appears in the config or the log.
    authorization_env: str = ""
    description: str = ""


@dataclass(frozen=True)
class ToolsSettings:
    enabled: list[str] = field(default_factory=lambda: list(TOOL_NAMES))  # the device's function tools
    tool_choice: ToolChoice = "auto"
    timer_max_s: float = 86400.0  # longer timers are refused (the model says why)
    ring_max_s: float = 900.0  # a ringing timer stops by itself after this long
    max_timers: int = 20
    mcp: list[McpServerSettings] = field(default_factory=list)
    # GPT-Live (realtime.api = "live"): the tools go to the session's Responses delegation, whose
    # backend model is this one (the Responses model that decides the calls; the voice stays GPT-Live).
    delegation_model: str = "gpt-5.5"


@dataclass(frozen=True)
class SoundsSettings:
    """Earcons, each on or off; `level` is their loudness (0-1 of full scale, before the volume)."""

    wake: bool = True  # the wake word was heard: listening
    done: bool = True  # end of listening (the turn went to the model)
    error: bool = True  # offline or a fault
    mute: bool = True
    unmute: bool = True
    timer: bool = True  # a timer or alarm rings
    # a rising sweep (2.6 s) at every start of a device that keeps state: barge-in checks the room it
    # knows by its echo, or measures it anew (moved, another card: device/audio/room.py)
    startup: bool = True
    level: float = 0.5


@dataclass(frozen=True)
class VolumeSettings:
    # 0-100 at first start; afterwards the stored level (state_dir) wins. 100 = the software gain
    # is unity: the reply plays as the model sent it (and the echo canceller's tuning holds).
    level: int = 100
    step: int = 10  # one press of volume up/down, and "louder"/"quieter" without a number
    mixer: str = ""  # ALSA mixer control (e.g. "Speaker", "PCM"); "" = software gain only
    mixer_card: int = 0  # ALSA card index of that control
    up_pin: int = -1  # volume buttons (GPIO), -1 = none
    down_pin: int = -1
    duck_db: float = -15.0  # the reply and the ring play this much quieter while the user talks


@dataclass(frozen=True)
class PrivacySettings:
    # The user's and the assistant's words in the journal (log lines) and as `text` of timeline
    # `transcript` events. Off: the events keep role and length, never the words.
    transcripts_in_journal: bool = False


@dataclass(frozen=True)
class GpioSettings:
    enabled: bool = True
    led_driver: LedDriver = "none"
    led_pins: list[int] = field(default_factory=list)
    apa102_count: int = 0
    brightness: float = 0.3
    button_pin: int = -1  # -1 = no button
    hold_s: float = 2.0
    state_dir: str = "/var/lib/voxbox"


@dataclass(frozen=True)
class Settings:
    audio: AudioSettings = field(default_factory=AudioSettings)
    wake: WakeSettings = field(default_factory=WakeSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    aec: AecSettings = field(default_factory=AecSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    tools: ToolsSettings = field(default_factory=ToolsSettings)
    sounds: SoundsSettings = field(default_factory=SoundsSettings)
    volume: VolumeSettings = field(default_factory=VolumeSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    profile: str = ""  # hardware profile name or path (hw/*.toml)
    log_level: LogLevel = "info"
    timeline: str = ""  # `voxbox run`: also write the timeline (JSON Lines) here
    source: str = "defaults"  # where these settings came from, for messages


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Check `value` against the annotated type; strings from the environment are parsed."""
    origin = typing.get_origin(typ)
    if origin is list:
        (inner,) = typing.get_args(typ)
        if dataclasses.is_dataclass(inner):  # an array of tables, e.g. [[tools.mcp]]
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"config {key}: expected [[{key}]] tables")
            return [apply_values(typing.cast(Any, inner)(), f"{key}[{i}].", v) for i, v in enumerate(value)]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"config {key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(f"config {key}: expected true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"config {key}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config {key}: expected an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"config {key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config {key}: expected a number, got {value!r}")
        return float(value)
    if origin is Literal:  # a choice: checked by validate(), once every source is applied
        return _coerce(key, value, str)
    if typ is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"config {key}: expected a string, got {value!r}")
        return value
    raise AssertionError(f"unhandled type {typ} for {key}")


def _check_choice(key: str, value: Any, typ: Any) -> None:
    choices = typing.get_args(typ)
    if value not in choices:
        raise ConfigError(f"config {key}: {value!r} is not one of {', '.join(choices)}")


def _choice_fields(obj: Any, prefix: str = "") -> typing.Iterator[tuple[str, Any, Any]]:
    """(key, value, Literal type) of every setting whose type is a Literal, sections included."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        typ, value = hints[f.name], getattr(obj, f.name)
        if dataclasses.is_dataclass(typ):
            yield from _choice_fields(value, f"{prefix}{f.name}.")
        elif typing.get_origin(typ) is Literal:
            yield f"{prefix}{f.name}", value, typ


def apply_values(obj: Any, prefix: str, values: typing.Mapping[str, Any]) -> Any:
    """A copy of the settings object `obj` with TOML-shaped `values` ({section: {key: value}} or
    top-level keys) set on it. ConfigError on an unknown key or a value of the wrong type."""
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if k not in names or k == "source":
            raise ConfigError(f"config {key}: unknown setting (known: {', '.join(sorted(names - {'source'}))})")
        typ = hints[k]
        if dataclasses.is_dataclass(typ):
            if not isinstance(v, dict):
                raise ConfigError(f"config {key}: expected a [{key}] table")
            changes[k] = apply_values(changes.get(k, getattr(obj, k)), f"{key}.", v)
        else:
            changes[k] = _coerce(key, v, typ)
    return dataclasses.replace(obj, **changes) if changes else obj


def _env_overrides(env: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    defaults = Settings()
    names = [f.name for f in dataclasses.fields(Settings) if f.name != "source"]
    sections = {n for n in names if dataclasses.is_dataclass(getattr(defaults, n))}
    top_level = set(names) - sections  # profile, log_level, timeline
    for name, value in env.items():
        if not name.startswith("VOXBOX_") or name in ("VOXBOX_CONFIG",):
            continue
        rest = name[len("VOXBOX_"):].lower()
        section = next((s for s in sorted(sections, key=len, reverse=True) if rest.startswith(s + "_")), None)
        if section:
            out.setdefault(section, {})[rest[len(section) + 1:]] = value
        elif rest in top_level:
            out[rest] = value
        # Other VOXBOX_* variables (e.g. VOXBOX_TFLITE_RUNTIME) belong to other parts: not settings.
    return out


def validate(s: Settings) -> None:
    """ConfigError naming the first setting out of range."""
    for key, value, typ in _choice_fields(s):
        _check_choice(key, value, typ)
    checks = [
        ("wake.threshold", 0 <= s.wake.threshold < 1, "must be between 0 and 1 (0 = each model's own)"),
        ("vad.threshold", 0 < s.vad.threshold < 1, "must be between 0 and 1"),
        ("vad.speaking_threshold", 0 < s.vad.speaking_threshold < 1, "must be between 0 and 1"),
        ("wake.trigger_level", s.wake.trigger_level >= 0, "must not be negative (0 = each model's own)"),
        ("audio.output_rate", 8000 <= s.audio.output_rate <= 192000, "must be a sample rate in Hz"),
        ("audio.input_rate", s.audio.input_rate == 0 or 8000 <= s.audio.input_rate <= 192000,
         "must be 0 or a rate in Hz"),
        ("conversation.follow_up_s", s.conversation.follow_up_s > 0, "must be positive"),
        ("conversation.max_turn_s", s.conversation.max_turn_s > 0, "must be positive"),
        ("conversation.thinking_timeout_s", s.conversation.thinking_timeout_s > 0, "must be positive"),
        ("realtime.offline_buffer_s", s.realtime.offline_buffer_s >= 0, "must not be negative"),
        ("realtime.url", s.realtime.url.startswith(("ws://", "wss://")), "must start with ws:// or wss://"),
        ("gpio.brightness", 0 <= s.gpio.brightness <= 1, "must be between 0 and 1"),
        ("tools.timer_max_s", s.tools.timer_max_s > 0, "must be positive"),
        ("tools.ring_max_s", s.tools.ring_max_s > 0, "must be positive"),
        ("tools.max_timers", s.tools.max_timers > 0, "must be positive"),
        ("sounds.level", 0 <= s.sounds.level <= 1, "must be between 0 and 1"),
        ("volume.level", 0 <= s.volume.level <= 100, "must be between 0 and 100"),
        ("volume.step", 1 <= s.volume.step <= 100, "must be between 1 and 100"),
        ("volume.duck_db", s.volume.duck_db <= 0, "must not be positive (dB of attenuation)"),
        ("tools.delegation_model", bool(s.tools.delegation_model.strip()),
         "must name the Responses model GPT-Live delegates the tools to"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"config {key}: {what}")
    unknown = [n for n in s.tools.enabled if n not in TOOL_NAMES]
    if unknown:
        raise ConfigError(f"config tools.enabled: unknown tool {unknown[0]!r} (known: {', '.join(TOOL_NAMES)})")
    for i, m in enumerate(s.tools.mcp):
        key = f"tools.mcp[{i}]"
        if not m.label or not m.server_url.startswith(("https://", "http://")):
            raise ConfigError(f"config {key}: needs a label and a server_url starting with https://")
        if m.require_approval not in ("never", "always"):
            raise ConfigError(f"config {key}.require_approval: {m.require_approval!r} is not one of never, always")
    if not s.wake.words and not s.wake.models:
        raise ConfigError("config wake.words: at least one wake word or wake.models entry is needed")
    _check_api(s.realtime)


def _check_api(rt: RealtimeSettings) -> None:
    """The settings that only make sense with one of the two APIs (ConfigError, one line)."""
    path = rt.url.split("?", 1)[0].rstrip("/")
    if rt.api == "live":
        if rt.url != REALTIME_URL and path.endswith("/realtime"):
            raise ConfigError(f"config realtime.url: {path} is a Realtime endpoint but realtime.api is live "
                              "(GPT-Live is on /v1/live/sessions)")
        if rt.url != REALTIME_URL and "?" in rt.url:
            raise ConfigError("config realtime.url: GPT-Live takes no query string (set realtime.model instead)")
        if rt.turn_detection == "none":
            raise ConfigError("config realtime.turn_detection: none (turns committed by the device) is "
                              "Realtime only; GPT-Live decides turns itself")
    else:
        if path.endswith("/live/sessions"):
            raise ConfigError(f"config realtime.url: {path} is a GPT-Live endpoint but realtime.api is realtime "
                              "(set realtime.api = \"live\")")
        if rt.model:
            raise ConfigError("config realtime.model: only for realtime.api = live; the Realtime model is "
                              "in realtime.url (?model=...)")


def endpoint(rt: RealtimeSettings) -> tuple[str, str]:
    """(URL, model) for the configured API; model is "" for Realtime (it is in the URL)."""
    if rt.api == "live":
        return (LIVE_URL if rt.url == REALTIME_URL else rt.url), (rt.model or LIVE_MODEL)
    return rt.url, ""


def load(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None,
         base: Settings | None = None, overrides: typing.Mapping[str, Any] | None = None) -> Settings:
    """Load settings: `base` (defaults, or defaults with a hardware profile) ← TOML file ← environment
    ← `overrides` (the command line's options, TOML-shaped: {"wake": {"threshold": 0.7}}).
    Raises ConfigError."""
    env = os.environ if env is None else env
    settings = base if base is not None else Settings()
    if path is None and env.get("VOXBOX_CONFIG"):
        path = env["VOXBOX_CONFIG"]
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p}: not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p}: cannot read ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p}: invalid TOML ({exc})") from None
        if "api_key" in data.get("realtime", {}):
            raise ConfigError("config realtime.api_key: do not put the key in the config; "
                              "use OPENAI_API_KEY or realtime.api_key_file")
        settings = dataclasses.replace(apply_values(settings, "", data), source=str(p))
    settings = apply_values(settings, "", _env_overrides(env))
    settings = apply_values(settings, "", overrides or {})
    validate(settings)
    return settings


def api_key(settings: Settings, env: typing.Mapping[str, str] | None = None) -> str | None:
    """The API key from OPENAI_API_KEY, else from realtime.api_key_file; None if neither."""
    env = os.environ if env is None else env
    if env.get("OPENAI_API_KEY"):
        return env["OPENAI_API_KEY"].strip()
    if settings.realtime.api_key_file:
        p = Path(settings.realtime.api_key_file)
        try:
            key = p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"config realtime.api_key_file: cannot read {p} ({exc.strerror})") from None
        if not key:
            raise ConfigError(f"config realtime.api_key_file: {p} is empty")
        return key
    return None
