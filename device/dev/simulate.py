"""`voxbox simulate` and `voxbox demo`: the whole agent on file audio.

The same Agent that runs on the Pi, with the simulated twin as its sound card.
Without a URL the local realtime server is started on a free loopback port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device import config as cfg
from device.audio import wavio
from device.audio.aec import build_aec
from device.audio.player import Player
from device.audio.sim import SimAudio, room_response
from device.conversation.agent import Agent, ScheduledPress
from device.dev.lockstep import Lockstep, SimClock
from device.errors import ConfigError, VoxboxError
from device.link.base import Link, LinkListener
from device.link.client import RealtimeClient
from device.link.factory import link_for
from device.timeline import Timeline

if TYPE_CHECKING:
    from device.dev.server import RealtimeServer

log = logging.getLogger("voxbox.simulate")


@dataclass
class SimOptions:
    mic: Path
    url: str | None = None
    speaker_out: Path | None = None
    timeline: Path | None = None
    plot: Path | None = None
    mic_out: Path | None = None  # the mic as heard (IN.wav + echo)
    echo_gain: float = 0.0
    echo_delay_ms: float = 0.0
    room: bool = False
    presses: list[ScheduledPress] = field(default_factory=list)
    speed: float = 1.0
    connect_timeout_s: float = 10.0
    script: Path | None = None  # the local server's scripted model (voxbox serve --script)
    api: cfg.Api | None = None  # --api: "realtime" | "live" (None: realtime.api of the settings)


def parse_press(text: str) -> ScheduledPress:
    try:
        if ":" in text:
            t, hold = text.split(":", 1)
            p = ScheduledPress(float(t), float(hold))
        else:
            p = ScheduledPress(float(text))
    except ValueError:
        raise ConfigError(f"--press {text!r}: expected T or T:HOLD_S in seconds") from None
    if p.t < 0 or p.hold_s <= 0:
        raise ConfigError(f"--press {text!r}: times must be positive")
    return p


async def _simulate(settings: cfg.Settings, opts: SimOptions, timeline: Timeline) -> tuple[Agent, SimAudio]:
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector

    mic, rate = wavio.read_wav(opts.mic)
    if len(mic) == 0:
        raise ConfigError(f"{opts.mic}: WAV file has no audio")
    if settings.audio.channels:
        bad = [c for c in settings.audio.channels if c >= mic.shape[1]]
        if bad:
            raise ConfigError(f"config audio.channels: channel {bad[0]} does not exist in {opts.mic} "
                              f"({mic.shape[1]} ch)")
    wake = build_wake_detector(settings.wake)
    vad = build_vad(settings.vad)
    aec = build_aec(settings.aec)  # before the server starts: a config error stops here, in one line
    player = Player(settings.audio.output_rate)
    sim = SimAudio(mic, rate, player, speed=opts.speed, echo_gain=opts.echo_gain,
                   echo_delay_ms=opts.echo_delay_ms, room_ir=room_response(rate) if opts.room else None)

    server = None
    url = opts.url
    api_key = None
    clients: list[RealtimeClient] = []
    if url is None:
        from device.dev.server import RealtimeServer

        # Like the real service, replies stream faster than they play (4x), on the mic clock:
        # the server and the agent run in lockstep, so the run is a function of its inputs.
        clock = SimClock()
        server = RealtimeServer(speed=4.0, clock=clock, script=opts.script)
        await server.start("127.0.0.1", 0)
        if settings.realtime.api == "live":
            url = server.live_url  # the GPT-Live parrot is clocked by its input (no lockstep yet)
        else:
            url = server.url
            sim.before_block = _lockstep(clock, server, clients).settle
    else:
        api_key = cfg.api_key(settings)
    link = link_for(settings, url, api_key)

    def make_link(listener: LinkListener) -> Link:
        client = link(listener)
        if isinstance(client, RealtimeClient):
            clients.append(client)
        return client

    agent = Agent(settings, sim, timeline, wake=wake, vad=vad, link=make_link, aec=aec, presses=opts.presses)
    sim.keep_going = agent.keep_going
    try:
        connect = asyncio.create_task(agent.link.wait_connected(opts.connect_timeout_s))
        # In lockstep the mic clock starts once connected: where the session begins in IN.wav
        # must not depend on how long the connection took.
        run = asyncio.create_task(agent.run(wait_connected_s=opts.connect_timeout_s if server else 0.0))
        if not await connect:
            run.cancel()
            try:
                await run
            except (asyncio.CancelledError, Exception):
                pass
            why = agent.link.last_error
            raise VoxboxError(f"cannot connect to the realtime server at {_redact(url)}" + (f": {why}" if why else ""))
        await run
    finally:
        if server is not None:
            await server.stop()
    return agent, sim


def _lockstep(clock: SimClock, server: RealtimeServer, clients: list[RealtimeClient]) -> Lockstep:
    """The agent's link and the local server are quiet: nothing written is unread or unanswered."""

    def quiet() -> bool:
        client = clients[-1]
        if not client.connected:
            return True  # nothing to wait for (the agent shows offline; reconnecting is its business)
        return (client.flushed and clock.busy == 0
                and client.stats.messages_sent == server.counts.handled
                and server.counts.sent == client.stats.messages_received)

    def progress() -> object:
        s = clients[-1].stats
        return s.messages_sent, s.messages_received, server.counts.handled, server.counts.sent, clock.busy

    return Lockstep(clock, quiet, progress)


def _redact(url: str) -> str:
    return url.split("?", 1)[0]


def simulate(settings: cfg.Settings, opts: SimOptions,
             echo: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the agent on opts.mic; write the outputs asked for; return the timeline records."""
    if opts.speed <= 0:
        raise ConfigError("--speed must be positive")
    if opts.echo_gain < 0 or opts.echo_delay_ms < 0:
        raise ConfigError("--echo-gain and --echo-delay-ms must not be negative")
    if opts.api is not None and opts.api != settings.realtime.api:
        settings = dataclasses.replace(settings, realtime=dataclasses.replace(settings.realtime, api=opts.api))
        cfg.validate(settings)  # a URL or turn mode of the other API: one clear line
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        # The timeline records link trouble; a refused URL ends in one clear line, not a retry log.
        logging.getLogger("device.link.client").setLevel(logging.ERROR)
    timeline = Timeline(opts.timeline, echo=echo, keep=True)
    try:
        agent, sim = asyncio.run(_simulate(settings, opts, timeline))
    finally:
        timeline.close()
    if opts.speaker_out is not None:
        wavio.write_wav(opts.speaker_out, sim.speaker_audio(), sim.out_rate)
    heard = None
    if opts.mic_out is not None:
        wavio.write_wav(opts.mic_out, sim.mic_audio(), sim.in_rate)
        heard = opts.mic_out
    if opts.plot is not None:
        from device.dev.timeline_view import plot

        speaker = opts.speaker_out
        if speaker is None:
            speaker = Path(str(opts.plot) + ".speaker.wav")
            wavio.write_wav(speaker, sim.speaker_audio(), sim.out_rate)
        mic: Path = opts.mic
        if opts.echo_gain > 0:  # plot what the mic heard, the echo included
            if heard is None:
                heard = Path(str(opts.plot) + ".mic.wav")
                wavio.write_wav(heard, sim.mic_audio(), sim.in_rate)
            mic = heard
        plot(timeline.records, mic, speaker, opts.plot)
    return timeline.records


DEMO_WAV = Path(__file__).parent / "data" / "demo_scenario.wav"
DEMO_INFO = Path(__file__).parent / "data" / "demo_scenario.json"
TIMER_WAV = Path(__file__).parent / "data" / "timer_scenario.wav"
TIMER_SCRIPT = Path(__file__).parent / "data" / "timer_scenario.toml"
TIMER_PRESS_S = 11.0  # the user presses the button 3 s into the ring (the timer is due at ~8 s)
SCENARIOS = ("conversation", "timer")


def demo(settings: cfg.Settings, out_dir: Path, speed: float = 1.0,
         echo: Callable[[dict[str, Any]], None] | None = None, scenario: str = "conversation",
         api: cfg.Api | None = None) -> list[dict[str, Any]]:
    """A bundled scenario through `simulate`: `conversation` (wake, question, answer, barge-in) or
    `timer` ("set a timer for three seconds": the scripted model calls set_timer, it rings, a press stops it)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"--scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    wav, script, presses = DEMO_WAV, None, []
    if scenario == "timer":
        wav, script, presses = TIMER_WAV, TIMER_SCRIPT, [ScheduledPress(TIMER_PRESS_S)]
    if not wav.is_file() or (script is not None and not script.is_file()):
        maker = "make_timer_scenario.sh" if scenario == "timer" else "make_demo_scenario.sh"
        raise VoxboxError(f"the demo scenario is missing ({wav}); run scripts/{maker}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # A speaker beside the mic array: the reply leaks back (30 ms, half level, a small room),
    # so the demo shows barge-in through the echo canceller, not in an anechoic dream.
    opts = SimOptions(mic=wav, speaker_out=out_dir / "speaker.wav", timeline=out_dir / "timeline.jsonl",
                      plot=out_dir / "timeline.png", mic_out=out_dir / "mic.wav", speed=speed,
                      echo_gain=0.5, echo_delay_ms=30.0, room=True, script=script, presses=presses, api=api)
    records = simulate(settings, opts, echo=echo)
    if scenario == "conversation" and DEMO_INFO.is_file():
        info = json.loads(DEMO_INFO.read_text())
        (out_dir / "scenario.json").write_text(json.dumps(info, indent=2))
    return records
