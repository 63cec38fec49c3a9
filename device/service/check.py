"""`voxbox check`: is this machine ready to run the daemon? Says what is wrong, one line each.

Checks: config (already loaded by then), wake-word and VAD models, audio devices,
the sound stack (ALSA direct or a sound server, and the profile's card: soundstack.py),
the card's mixer controls against the profile's (mixer.py),
GPIO, the API key, and the realtime server (a real WebSocket handshake up to
`session.created`). Exit 0 when everything needed passes, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

from device import config as cfg
from device.errors import VoxboxError


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _try(name: str, fn: Callable[[], str], required: bool = True) -> Result:
    try:
        return Result(name, True, fn(), required)
    except VoxboxError as exc:
        return Result(name, False, str(exc), required)
    except Exception as exc:  # a check must report, never crash
        return Result(name, False, f"{type(exc).__name__}: {exc}", required)


def check_models(settings: cfg.Settings) -> str:
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector

    det = build_wake_detector(settings.wake)
    build_vad(settings.vad)
    return f"wake words {', '.join(det.names)}; VAD {settings.vad.engine}"


def check_audio(settings: cfg.Settings) -> str:
    from device.audio.pyaudio_port import find_device, list_devices

    devs = list_devices()
    d_in = next((d.index for d in devs if d.is_default_input), None)
    d_out = next((d.index for d in devs if d.is_default_output), None)
    inp = find_device(devs, settings.audio.input_device, "input", d_in)
    out = find_device(devs, settings.audio.output_device, "output", d_out)
    return (f"mic: {inp.name!r} ({inp.max_input_channels} ch, {inp.default_rate} Hz); "
            f"speaker: {out.name!r}")


def check_sound(settings: cfg.Settings) -> str:
    from device.service import hw, soundstack

    cards: list[str] = []
    overlays: tuple[str, ...] = ()
    if settings.profile:
        prof = hw.load_profile(settings.profile)
        cards, overlays = [prof.alsa_capture, prof.alsa_playback], prof.overlays
    return soundstack.advice(soundstack.probe(), settings.audio.input_device, settings.audio.output_device,
                             cards, overlays)


def check_mixer(settings: cfg.Settings) -> str:
    if not settings.profile:
        return "no hardware profile: nothing to compare"
    from device.service import hw, mixer

    prof = hw.load_profile(settings.profile)
    if not prof.mixer:
        return "the profile sets no mixer controls"
    return mixer.describe(prof.alsa_capture, prof.mixer, mixer.alsa_reader(prof.alsa_capture))


def check_gpio(settings: cfg.Settings) -> str:
    if not settings.gpio.enabled or (settings.gpio.led_driver == "none" and settings.gpio.button_pin < 0):
        return "no GPIO configured"
    from device.gpio import build_gpio

    indicator, buttons = build_gpio(settings.gpio)
    close = getattr(indicator, "close", None)
    if close:
        close()
    if buttons is not None and hasattr(buttons, "close"):
        buttons.close()
    if settings.gpio.button_pin < 0:
        return f"LEDs: {settings.gpio.led_driver}; no button"
    return f"LEDs: {settings.gpio.led_driver}; button: GPIO{settings.gpio.button_pin}"


def check_appliance(settings: cfg.Settings) -> str:
    """Tools, sounds, volume mixer and MCP tokens (names only: a token is never shown)."""
    from device.appliance.earcons import NAMES, Earcons
    from device.appliance.tools import missing_tokens
    from device.appliance.volume import AlsaMixer

    problems = missing_tokens(settings.tools)
    sounds = Earcons(settings.sounds, settings.audio.output_rate)
    wanted = [n for n in NAMES if getattr(settings.sounds, n)]
    problems += [f"sound {n}: cannot be loaded" for n in wanted if sounds.get(n) is None]
    if settings.volume.mixer:
        AlsaMixer(settings.volume.mixer, settings.volume.mixer_card)  # VolumeError: one line
    if problems:
        raise VoxboxError("; ".join(problems))
    mcp = f", MCP: {', '.join(m.label for m in settings.tools.mcp)}" if settings.tools.mcp else ""
    return f"tools {', '.join(settings.tools.enabled) or 'none'}; sounds {', '.join(sounds.enabled) or 'none'}{mcp}"


def check_key(settings: cfg.Settings) -> str:
    key = cfg.api_key(settings)
    if cfg.endpoint(settings.realtime)[0].startswith("wss://") and not key:
        raise VoxboxError("no API key: set OPENAI_API_KEY or realtime.api_key_file")
    return "present" if key else "none (not needed for a ws:// server)"


async def _handshake(settings: cfg.Settings, timeout: float) -> str:
    import websockets
    from websockets.asyncio.client import connect

    from device.link import live_protocol
    from device.link.client import ssl_context

    key = cfg.api_key(settings)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url, model = cfg.endpoint(settings.realtime)
    live = settings.realtime.api == "live"
    expected = "session.started" if live else "session.created"
    ssl = ssl_context(url, settings.realtime.ca_file)
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, additional_headers=headers, ssl=ssl, max_size=16 * 2**20) as ws:
                if live:  # GPT-Live speaks only after session.start; the session is closed at once
                    await ws.send(json.dumps(live_protocol.session_start(model)))
                first = json.loads(await ws.recv())
                if live and first.get("type") == expected:
                    await ws.send(json.dumps(live_protocol.session_close()))
    except (OSError, TimeoutError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise VoxboxError(f"cannot reach {url.split('?')[0]}: {why}") from None
    except websockets.exceptions.InvalidStatus as exc:
        raise VoxboxError(f"{url.split('?')[0]} refused the connection: HTTP {exc.response.status_code}") from None
    except (websockets.exceptions.WebSocketException, ValueError) as exc:
        raise VoxboxError(f"{url.split('?')[0]}: {exc}") from None
    if first.get("type") != expected:
        raise VoxboxError(f"server answered {first.get('type')!r} instead of {expected}")
    return f"{url.split('?')[0]} answered {expected}"


def check_server(settings: cfg.Settings, timeout: float = 10.0) -> str:
    return asyncio.run(_handshake(settings, timeout))


def run_checks(settings: cfg.Settings, print_fn: Callable[[str], None] = print) -> int:
    results = [
        Result("config", True, settings.source),
        _try("models", lambda: check_models(settings)),
        _try("audio", lambda: check_audio(settings)),
        _try("sound", lambda: check_sound(settings), required=False),
        _try("mixer", lambda: check_mixer(settings), required=False),
        _try("gpio", lambda: check_gpio(settings), required=False),
        _try("appliance", lambda: check_appliance(settings), required=False),
        _try("api key", lambda: check_key(settings)),
        _try("server", lambda: check_server(settings)),
    ]
    for r in results:
        mark = "ok  " if r.ok else ("FAIL" if r.required else "warn")
        print_fn(f"{mark} {r.name:8s} {r.detail}")
    return 0 if all(r.ok or not r.required for r in results) else 1
