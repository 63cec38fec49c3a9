"""`voxbox run`: the daemon on real hardware (PyAudio, gpiozero) under systemd.

Start-up order: models (fail fast on a bad config: exit 2, which the unit's
RestartPreventExitStatus=2 does not restart), GPIO (optional: a machine without
it still talks), the sound card (retried with backoff while missing, the start
timeout extended with EXTEND_TIMEOUT_USEC meanwhile), then the agent. READY=1
goes to systemd once the audio is open and the first connection attempt has
been made; the watchdog is fed from the audio loop, so a stuck audio path gets
the service restarted.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from device import config as cfg
from device.audio.player import Player
from device.conversation.agent import Agent
from device.errors import ConfigError, VoxboxError
from device.gpio.buttons import VolumeButtons
from device.link.factory import link_for
from device.service import systemd as service
from device.timeline import Timeline

log = logging.getLogger("voxbox.run")


def _gpio(settings: cfg.Settings) -> tuple[Any, Any]:
    if not settings.gpio.enabled:
        return None, None
    from device.gpio import build_gpio

    try:
        return build_gpio(settings.gpio)
    except ConfigError:
        raise
    except Exception as exc:  # no GPIO on this machine: run without LEDs and buttons
        log.warning("GPIO unavailable, running without LEDs and buttons: %s", exc)
        return None, None


# While the sound card is missing (a USB card not enumerated yet, a HAT whose overlay is not loaded,
# a device name that matches nothing), the start is stretched by this much on every retry: systemd
# shows "activating" with the reason in STATUS= instead of killing the daemon at TimeoutStartSec=
# and restarting it every ~90 s. More than the longest retry sleep, so it never runs out between two.
EXTEND_WAIT_S = 30.0
MAX_RETRY_S = 10.0


async def _open_audio(settings: cfg.Settings, player: Player, indicator: Any, delay: float = 0.5) -> Any:
    """The PyAudio port, retried with backoff (delay doubling up to MAX_RETRY_S) while the card is missing."""
    from device.audio.pyaudio_port import PyAudioPort

    warned = ""
    while True:
        try:
            return PyAudioPort(settings.audio, player)
        except VoxboxError as exc:
            if str(exc) != warned:  # one line per distinct problem, not one per retry
                log.error("%s (retrying)", exc)
                warned = str(exc)
            service.extend_timeout(EXTEND_WAIT_S, f"waiting for audio: {exc}")
            if indicator is not None:
                indicator.show("error")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)


def _volume_buttons(settings: cfg.Settings, agent: Agent, loop: asyncio.AbstractEventLoop) -> VolumeButtons | None:
    """Volume up/down buttons where the profile has them; None without (or when GPIO is unusable: logged)."""
    v = settings.volume
    if not settings.gpio.enabled or (v.up_pin < 0 and v.down_pin < 0):
        return None
    try:
        return VolumeButtons(v.up_pin, v.down_pin, lambda step: loop.call_soon_threadsafe(agent.volume_button, step))
    except Exception as exc:  # no GPIO here, pin busy: the daemon runs without them
        log.warning("volume buttons: %s: %s", type(exc).__name__, exc)
        return None


async def _run(settings: cfg.Settings) -> int:
    from device.audio.aec import build_aec
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector

    key = cfg.api_key(settings)
    if cfg.endpoint(settings.realtime)[0].startswith("wss://") and not key:
        raise ConfigError("no API key: set OPENAI_API_KEY or realtime.api_key_file")
    wake = build_wake_detector(settings.wake)
    vad = build_vad(settings.vad)
    aec = build_aec(settings.aec)
    indicator, buttons = _gpio(settings)
    from device.gpio.mute import MuteStore

    mute = MuteStore(settings.gpio.state_dir)
    player = Player(settings.audio.output_rate)
    port = await _open_audio(settings, player, indicator)
    timeline = Timeline(Path(settings.timeline) if settings.timeline else None)
    heartbeat = service.Heartbeat(max_age=5.0)
    watchdog = service.Watchdog(healthy=heartbeat)

    def mute_changed(muted: bool) -> None:  # the agent's callbacks return nothing; these report whether they acted
        mute.set(muted)

    def block_done() -> None:
        watchdog.frame()

    link = link_for(settings, api_key=key)
    agent = Agent(settings, port, timeline, wake=wake, vad=vad, link=link, aec=aec, indicator=indicator,
                  muted=mute.muted, on_mute_changed=mute_changed, on_block=block_done,
                  state_dir=Path(settings.gpio.state_dir))
    if buttons is not None:
        buttons.on_press = lambda: agent.press("press")
        buttons.on_release = lambda: agent.press("release")
        buttons.on_hold = lambda: agent.press("hold")
    volume_buttons = _volume_buttons(settings, agent, asyncio.get_running_loop())
    beat = asyncio.create_task(heartbeat.run(1.0))
    try:
        async with service.ShutdownSignals(on_stop=port.close) as stop:
            run = asyncio.create_task(agent.run())
            # READY once the audio is open and the first connection attempt is over, either way:
            # an unreachable server must not hold up the boot (the daemon works offline too).
            await agent.link.wait_attempted(5.0)
            connected = await agent.link.wait_connected(0.5)
            service.ready("listening" if connected else "offline, reconnecting")
            log.info("voxbox running: mic %s @ %d Hz x%d, speaker %s", port.input_name, port.in_rate,
                     port.in_channels, port.output_name)
            done, _ = await asyncio.wait({run, asyncio.create_task(stop.wait())},
                                         return_when=asyncio.FIRST_COMPLETED)
            if run not in done:
                port.close()
                await run
            else:
                run.result()
    finally:
        beat.cancel()
        timeline.close()
        if volume_buttons is not None:
            volume_buttons.close()
        if indicator is not None:
            indicator.close()
        if buttons is not None:
            buttons.close()
        port.close()
    return 0


def run_daemon(settings: cfg.Settings) -> int:
    logging.getLogger().setLevel(settings.log_level.upper())
    return asyncio.run(_run(settings))
