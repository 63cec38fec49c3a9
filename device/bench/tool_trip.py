"""Tool round trip on this machine: a function call's arguments done → its output on the socket.

Measured where the daemon does it: the whole agent (SimAudio, file audio) against the local
server on loopback, with the scripted model calling the device's own tools once per user turn.
The agent stamps each call when the event that completes it reaches it (Realtime
`response.function_call_arguments.done`; GPT-Live: the nested Responses event in `response.event`)
and again when the link reports the output event written to the WebSocket (`on_sent`:
`conversation.item.create` / `response.item.create`); `Agent.tool_round_trips_ms` keeps them and
the timeline's `send` events carry each as `round_trip_ms`. Tool work, the timeline, the state
writer's hand-off and the link's queue and sender are all inside it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "dev" / "data"
GOAL_MS = 50.0
# The calls, in turn: every local tool but `stop` (which ends the conversation).
CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("get_time", {}), ("set_timer", {"duration_s": 600, "label": "bench"}), ("list_timers", {}),
    ("cancel_timer", {"label": "bench"}), ("set_volume", {"level": 100}), ("set_alarm", {"time": "07:30"}))


def _mic(turns: int, rate: int) -> np.ndarray:
    """Quiet, then `turns` times the demo's question followed by 2.5 s of quiet."""
    from device.audio import wavio

    demo, r = wavio.read_wav(DATA / "demo_scenario.wav")
    q0, q1 = json.loads((DATA / "demo_scenario.json").read_text())["question"]
    question = demo[int(q0 * r):int(q1 * r), 0]
    quiet = np.zeros(int(2.5 * r), np.int16)
    assert r == rate
    return np.concatenate([np.zeros(int(0.8 * r), np.int16)] + [np.concatenate([question, quiet])] * turns)


async def round_trips(api: str, turns: int, speed: float = 4.0) -> dict[str, Any]:
    """One conversation of `turns` user turns, each answered with a call of CALLS; the agent's own
    round trips (ms), with p50/p95, and how many calls ran."""
    from device import config as cfg
    from device.audio.player import Player
    from device.audio.sim import SimAudio
    from device.conversation.agent import Agent, ScheduledPress
    from device.dev.server import RealtimeServer
    from device.dev.server_model import ScriptTurn, tone
    from device.link.factory import link_for
    from device.listen.vad import build_vad
    from device.listen.wakeword import NoWake
    from device.timeline import Timeline

    script = [ScriptTurn(say="done", call_name=name, call_arguments=json.dumps(args), audio=tone("done"))
              for name, args in (CALLS * (turns // len(CALLS) + 1))[:turns]]
    server = RealtimeServer(script=script)
    await server.start()
    settings = cfg.Settings(realtime=cfg.RealtimeSettings(api="live" if api == "live" else "realtime"),
                            conversation=cfg.ConversationSettings(follow_up_s=8.0))
    rate = 16000
    player = Player(settings.audio.output_rate)
    sim = SimAudio(_mic(turns, rate).reshape(-1, 1), rate, player, speed=speed)
    timeline = Timeline(None, keep=True)
    url = server.live_url if api == "live" else server.url
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=build_vad(settings.vad), link=link_for(settings, url),
                  presses=[ScheduledPress(0.3)])
    sim.keep_going = agent.keep_going
    agent_log = logging.getLogger("voxbox.agent")
    level = agent_log.level
    agent_log.setLevel(logging.ERROR)  # short tone replies at 4x: the underrun notes are expected here
    try:
        await agent.run(wait_connected_s=10)
    finally:
        agent_log.setLevel(level)
        await server.stop()
    ms = list(agent.tool_round_trips_ms)
    results = [r for r in timeline.records if r["event"] == "tool_result"]
    return {"api": api, "turns": turns, "calls": len(results), "ok": sum(r["ok"] for r in results),
            "measured": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 3) if ms else None,
            "p95_ms": round(float(np.percentile(ms, 95)), 3) if ms else None,
            "max_ms": round(max(ms), 3) if ms else None, "speed": speed}


def row(r: dict[str, Any]) -> tuple[str, str, str, str]:
    """(metric, measured, goal, verdict) for a bench table."""
    name = f"tool round trip, {'GPT-Live' if r['api'] == 'live' else 'Realtime'}"
    if not r["measured"]:
        return name, f"0/{r['turns']} calls", f"≤ {GOAL_MS:.0f} ms", "MISSED"
    ok = r["p95_ms"] <= GOAL_MS and r["measured"] == r["turns"]
    return (name, f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms", f"p95 ≤ {GOAL_MS:.0f} ms",
            f"{'ok' if ok else 'MISSED'} (p50 / p95 of {r['measured']}/{r['turns']} calls)")
