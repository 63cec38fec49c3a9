"""Bench `live` section: GPT-Live (realtime.api = "live") against the local parrot, on loopback.

- wake word → `session.started` (ms on the mic clock, real-time pace), and the first sentence:
  did the uplink start before the user spoke, and did every ms the device sent reach the server
  (the audio held until session.started included)? Goal: ≤ 300 ms, 0 ms lost.
- idle and muted: talk without the wake word, and the whole scenario with the button held first
  (mute): sessions opened and audio bytes received, counted at the server. Goal: 0 and 0.
- the demo's interruption: user onset → speaker silent with the local flush, and by the model's
  own stop alone (barge_in off). Goal for the flush: ≤ 150 ms (one scenario here, not a p95).
- self-interruptions: the demo's question and the parrot's reply with the reply leaking back into
  the mic (room response, 30 ms, AEC3 on) at several echo gains; how often the parrot "heard
  itself" (its own detector stopped its reply with no user speaking). Goal: 0 up to gain 1.0.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from device.config import BargeInMode

GOALS = {"interruption_p95_ms": 150, "wake_to_started_ms": 300, "first_sentence_lost_ms": 0, "idle_sessions": 0,
         "idle_bytes": 0, "muted_bytes": 0, "self_interruptions": 0}
DATA = Path(__file__).resolve().parents[1] / "dev" / "data"


async def _agent_run(mic: np.ndarray, rate: int, presses: list[Any], speed: float, echo_gain: float = 0.0,
                     room: bool = False, barge_in: BargeInMode = "local",
                     speaker: list[np.ndarray] | None = None) -> tuple[list[dict[str, Any]], Any]:
    """The whole agent over GPT-Live (SimAudio) against the local server; (timeline, server stats).
    `speaker`, if given, gets what the speaker played (at the player's rate)."""
    from device.audio.aec import build_aec
    from device.audio.player import Player
    from device.audio.sim import SimAudio, room_response
    from device.config import ConversationSettings, RealtimeSettings, Settings
    from device.conversation.agent import Agent
    from device.dev.server import RealtimeServer
    from device.link.factory import link_for
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector
    from device.timeline import Timeline

    server = RealtimeServer()
    await server.start()
    settings = Settings(realtime=RealtimeSettings(api="live"), conversation=ConversationSettings(barge_in=barge_in))
    player = Player(settings.audio.output_rate)
    sim = SimAudio(mic.reshape(len(mic), -1), rate, player, speed=speed, echo_gain=echo_gain,
                   echo_delay_ms=30.0 if echo_gain else 0.0, room_ir=room_response(rate) if room else None)
    timeline = Timeline(None)
    agent = Agent(settings, sim, timeline, wake=build_wake_detector(settings.wake), vad=build_vad(settings.vad),
                  link=link_for(settings, server.live_url), aec=build_aec(settings.aec), presses=presses)
    sim.keep_going = agent.keep_going
    try:
        await agent.run(wait_connected_s=10)
    finally:
        await server.stop()
    if speaker is not None:
        speaker.append(sim.speaker_audio())
    return timeline.records, server.live_api.stats


def _first(recs: list[dict[str, Any]], event: str, **match: Any) -> dict[str, Any] | None:
    return next((r for r in recs if r["event"] == event and all(r.get(k) == v for k, v in match.items())), None)


async def _session_start(demo: np.ndarray, rate: int, info: dict[str, Any]) -> dict[str, Any]:
    cut = demo[: int(info["interrupt"][0] * rate)]  # the wake word, the question, the start of the reply
    recs, stats = await _agent_run(cut, rate, [], speed=1.0)
    wake, started = _first(recs, "wake"), _first(recs, "session", action="started")
    up = _first(recs, "uplink_start")
    sent_ms = recs[-1]["uplink_audio_ms"]
    received_ms = stats.audio_bytes / 48
    if wake is None or started is None or up is None:
        return {"error": "no wake word or no session in the scenario"}
    onset = info["question"][0]
    return {"wake_t": wake["t"], "wake_end_t": info["wake_end"], "started_t": started["t"],
            "wake_to_started_ms": round((started["t"] - wake["t"]) * 1000),
            "wake_end_to_started_ms": round((started["t"] - info["wake_end"]) * 1000),
            "uplink_start_t": up["t"], "question_onset_t": onset, "sent_ms": sent_ms,
            "received_ms": round(received_ms),
            "first_sentence_lost_ms": round(max(0.0, up["t"] - onset) * 1000 + max(0.0, sent_ms - received_ms))}


async def _idle_and_muted(demo: np.ndarray, rate: int, quick: bool) -> dict[str, Any]:
    from device.conversation.agent import ScheduledPress

    rng = np.random.default_rng(5)
    talk = demo[int(2.2 * rate):]
    noise = np.clip(rng.normal(0, 300, rate * (3 if quick else 10)), -32768, 32767).astype(np.int16)
    idle_mic = np.concatenate([noise, talk[: rate * 5] if quick else talk])
    _, idle = await _agent_run(idle_mic, rate, [], speed=20.0)
    muted_mic = np.concatenate([np.zeros(int(2.7 * rate), np.int16), demo[: rate * 6] if quick else demo])
    _, muted = await _agent_run(muted_mic, rate, [ScheduledPress(0.1, 2.5)], speed=20.0)
    return {"idle_sessions": idle.sessions_started, "idle_connections": idle.connections,
            "idle_bytes": idle.audio_bytes, "muted_sessions": muted.sessions_started,
            "muted_bytes": muted.audio_bytes}


async def _self_interruptions(demo: np.ndarray, rate: int, info: dict[str, Any], quick: bool) -> dict[str, Any]:
    # The scenario up to the user's interruption, then quiet: nobody talks over this reply.
    cut = np.concatenate([demo[: int(info["interrupt"][0] * rate)], np.zeros(4 * rate, np.int16)])
    gains = [0.5, 1.0] if quick else [0.25, 0.5, 0.75, 1.0]
    rows = []
    for g in gains:
        recs, stats = await _agent_run(cut, rate, [], speed=2.0, echo_gain=g, room=True)
        played = sum(r.get("played_ms", 0) for r in recs if r["event"] == "playback_stop")
        rows.append({"echo_gain": g, "self_interruptions": len(stats.interruptions), "reply_played_ms": played,
                     "local_barge_ins": sum(r["event"] == "barge_in" for r in recs)})
    return {"runs": rows, "self_interruptions": sum(r["self_interruptions"] for r in rows)}


async def _interruptions(demo: np.ndarray, rate: int, info: dict[str, Any]) -> dict[str, Any]:
    """The demo's interruption (echo 0.5, room): user onset → speaker silent, with the local flush
    (barge_in local) and with the model's own stop alone (barge_in off)."""
    cut = np.concatenate([demo[: int((info["interrupt"][1] + 0.5) * rate)], np.zeros(4 * rate, np.int16)])
    onset = info["interrupt"][0]
    out: dict[str, Any] = {"onset_t": onset}
    modes: tuple[BargeInMode, ...] = ("local", "off")
    for mode in modes:
        spk: list[np.ndarray] = []
        recs, _ = await _agent_run(cut, rate, [], speed=1.0, echo_gain=0.5, room=True, barge_in=mode, speaker=spk)
        out_rate = 24000
        nxt = next((r for r in recs if r["event"] == "playback_start" and r["t"] > onset), None)
        end = len(spk[0]) if nxt is None else int(nxt.get("speaker_s", nxt["t"]) * out_rate)
        nz = np.flatnonzero(spk[0][int(onset * out_rate):end] != 0)
        silent = onset + ((nz[-1] + 1) / out_rate if len(nz) else 0.0)
        out["local_flush_ms" if mode == "local" else "model_stop_ms"] = round((silent - onset) * 1000)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from device.audio import wavio

    demo, rate = wavio.read_wav(DATA / "demo_scenario.wav")
    info = json.loads((DATA / "demo_scenario.json").read_text())
    mono = demo[:, 0]

    async def main() -> dict[str, Any]:
        return {"session_start": await _session_start(mono, rate, info),
                "idle_muted": await _idle_and_muted(mono, rate, quick),
                "echo": await _self_interruptions(mono, rate, info, quick),
                "interruption": await _interruptions(mono, rate, info), "goals": GOALS}

    return asyncio.run(main())


def format_table(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"live: {result['error']}"
    s, im, e, g = result["session_start"], result["idle_muted"], result["echo"], result["goals"]
    if "error" in s:
        return f"live: {s['error']}"

    def row(name: str, value: str, goal: str, ok: bool) -> str:
        return f"  {name:<42} {value:>12}  goal {goal:<8} {'ok' if ok else 'MISSED'}"

    lines = ["live (GPT-Live, local parrot, loopback)",
             row("wake word → session.started", f"{s['wake_to_started_ms']} ms", f"≤ {g['wake_to_started_ms']} ms",
                 s["wake_to_started_ms"] <= g["wake_to_started_ms"]),
             row("  (from the scenario's wake word end)", f"{s['wake_end_to_started_ms']} ms", "", True),
             row("first sentence lost", f"{s['first_sentence_lost_ms']} ms", "0 ms", s["first_sentence_lost_ms"] == 0),
             row("sessions opened while idle", str(im["idle_sessions"]), "0", im["idle_sessions"] == 0),
             row("audio bytes received while idle", str(im["idle_bytes"]), "0", im["idle_bytes"] == 0),
             row("audio bytes received while muted", str(im["muted_bytes"]), "0", im["muted_bytes"] == 0),
             row("self-interruptions (AEC3, room, 30 ms)", str(e["self_interruptions"]), "0",
                 e["self_interruptions"] == 0)]
    it = result.get("interruption")
    if it:
        lines.append(row("demo interruption: onset → speaker silent", f"{it['local_flush_ms']} ms", "≤ 150 ms",
                         it["local_flush_ms"] <= 150))
        lines.append(row("  by the model's own stop (no local barge-in)", f"{it['model_stop_ms']} ms", "", True))
    for r in e["runs"]:
        lines.append(f"    echo gain {r['echo_gain']:.2f}: parrot stopped itself {r['self_interruptions']}×, "
                     f"reply played {r['reply_played_ms']} ms, local barge-ins {r['local_barge_ins']}")
    return "\n".join(lines)
