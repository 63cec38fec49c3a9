"""Bench `live` section: GPT-Live (realtime.api = "live") against the local parrot.

- wake word → `session.started` (ms on the mic clock, real-time pace, over loopback), and the
  first sentence: did the uplink start before the user spoke, and did every ms the device sent
  reach the server (the audio held until session.started included)? Goal: ≤ 300 ms, 0 ms lost.
- idle and muted: talk without the wake word, and the whole scenario with the button held first
  (mute): sessions opened and audio bytes received, counted at the server. Goal: 0 and 0.
- the barge-in set (the scenarios of `--section barge_in`, device/bench/barge_in.py: espeak and
  recorded human replies, echo gain 0.3-1.0, delays, room response; echo-only and interrupted)
  through the same simulator (barge_in.run_scenario), answered by the parrot in memory
  (device/dev/live_twin.py: the real protocol and the parrot's own VAD, no network delay), which
  stops its reply when it hears speech in the uplink, as the real model does. Per voice family:
  self-interruptions (the parrot "heard itself": its reply stopped with no user speaking) by
  echo gain, goal 0; interruptions detected locally and heard by the parrot; onset → speaker
  silent with the local flush (goal p95 ≤ 150 ms) and with the model's own stop alone (barge_in
  off: the parrot stops, the player's shallow buffer drains); the uplink's residual echo
  relative to the reply at the mic. Cold (first reply) and, in the full set, warm (second turn).
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


async def _agent_run(mic: np.ndarray, rate: int, presses: list[Any],
                     speed: float) -> tuple[list[dict[str, Any]], Any]:
    """The whole agent over GPT-Live (SimAudio) against the local server; (timeline, server stats)."""
    from device.audio.aec import build_aec
    from device.audio.player import Player
    from device.audio.sim import SimAudio
    from device.config import RealtimeSettings, Settings
    from device.conversation.agent import Agent
    from device.dev.server import RealtimeServer
    from device.link.factory import link_for
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector
    from device.timeline import Timeline

    server = RealtimeServer()
    await server.start()
    settings = Settings(realtime=RealtimeSettings(api="live"))
    player = Player(settings.audio.output_rate)
    sim = SimAudio(mic.reshape(len(mic), -1), rate, player, speed=speed)
    timeline = Timeline(None, keep=True)
    agent = Agent(settings, sim, timeline, wake=build_wake_detector(settings.wake), vad=build_vad(settings.vad),
                  link=link_for(settings, server.live_url), aec=build_aec(settings.aec), presses=presses)
    sim.keep_going = agent.keep_going
    try:
        await agent.run(wait_connected_s=10)
    finally:
        await server.stop()
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


class LiveParrot:
    """The barge-in bench's backend (barge_in.Backend) for GPT-Live: the local parrot in memory
    (device/dev/live_twin.py), saying each scenario reply at its time; it stops a reply when its
    own VAD hears speech in the uplink, the user's or the device's own voice."""

    def __init__(self, replies: list[Any], settings: Any) -> None:
        from device.dev.live_server import LiveServer
        from device.dev.live_twin import LiveTwin

        self.twin = LiveTwin(LiveServer(answer_turns=False))
        self.plan = [(int(round(t * 100)), pcm.astype("<i2").tobytes()) for t, pcm, _, _ in replies]

    def link(self, listener: Any) -> Any:
        return self.twin.attach(listener)

    async def start(self, agent: Any) -> None:
        await self.twin.start()

    async def step(self, agent: Any, block: int) -> None:
        await self.twin.pump(agent.now)
        for start_block, pcm in self.plan:
            if block == start_block:
                self.twin.say(pcm)

    def keep_going(self, agent: Any) -> bool:
        return bool(agent.player.busy) or self.twin.speaking

    def uplink(self) -> np.ndarray:
        return self.twin.uplink()

    def report(self, sc: dict[str, Any], pre_s: float) -> dict[str, Any]:
        """The parrot's interruptions: before the measured reply's turn (warm-up), of the measured
        reply with no user speaking (self-interruptions), and within DETECT_WINDOW_S of the
        user's onset (it heard the user)."""
        from device.bench.barge_in import DETECT_WINDOW_S

        ts = self.twin.interruptions_t
        onset = sc.get("onset_s")
        st = self.twin.server.stats
        out: dict[str, Any] = {"interruptions": [round(t, 3) for t in ts],
                               "warm_up_interruptions": sum(1 for t in ts if t < pre_s - 1e-9),
                               "self_interruptions": sum(1 for t in ts if t >= pre_s - 1e-9
                                                         and (onset is None or t < onset)),
                               "sessions": st.sessions_started, "audio_bytes": st.audio_bytes}
        if onset is not None:
            heard = [t for t in ts if onset <= t <= onset + DETECT_WINDOW_S]
            out["heard_user"] = bool(heard)
            if heard:
                out["heard_ms"] = round((heard[0] - onset) * 1000, 1)
        return out


def live_settings(barge_in: BargeInMode = "local") -> Any:
    """The bench's settings on GPT-Live: no earcons (barge_in.without_earcons), `barge_in` mode."""
    import dataclasses

    from device.bench.barge_in import without_earcons
    from device.config import RealtimeSettings, Settings

    s = without_earcons(Settings(realtime=RealtimeSettings(api="live")))
    return dataclasses.replace(s, conversation=dataclasses.replace(s.conversation, barge_in=barge_in))


KEPT = ("name", "family", "voices", "reply_sex", "echo_gain", "echo_delay_ms", "room", "room_rt60_ms",
        "reply_played_s",
        "false_barge_ins", "false_pauses", "reply_before_onset_s", "reply_after_window_s", "detected",
        "latency_ms", "decision_ms",
        "warm_up_barge_ins", "uplink", "backend")


def run_live_scenario(sc: dict[str, Any], set_dir: Path, *, warm: bool = False,
                      model_stop: bool = False) -> dict[str, Any]:
    assert not (warm and model_stop), "the model's stop is measured on cold runs"
    """One scenario of the barge-in set against the parrot (barge_in.run_scenario, LiveParrot).

    model_stop=True: the device's own barge-in off, so only the parrot's stop silences the reply;
    an echo-only scenario's reply then plays to its end whatever the local detectors think;
    `model_stop_ms` is then onset → speaker silent (the parrot stopped, the player drained), when
    the parrot heard the user. Otherwise `latency_ms` is the local flush's (barge_in.measure)."""
    from device.bench import barge_in as bb

    settings = live_settings("off" if model_stop else "local")
    r = bb.run_scenario(sc, set_dir, settings, warm=warm, backend=LiveParrot, keep_audio=model_stop)
    out = {k: r[k] for k in KEPT if k in r}
    if model_stop:
        onset = sc.get("onset_s")
        nz = np.flatnonzero(r["out"])
        if onset is not None and out["backend"].get("heard_user") and len(nz):
            out["model_stop_ms"] = round(((nz[-1] + 1) / settings.audio.output_rate - onset) * 1000, 1)
    return out


def _job(args: tuple[dict[str, Any], str, bool]) -> dict[str, Any]:
    sc, d, quick = args
    row = run_live_scenario(sc, Path(d))
    # The device's barge-in off: the whole reply plays unless the parrot stops it (an echo-only
    # scenario's reply is not cut short by a false local barge-in, which would hide the echo).
    stop = run_live_scenario(sc, Path(d), model_stop=True)
    row["model_stop"] = {k: stop[k] for k in ("model_stop_ms", "reply_played_s", "uplink", "backend") if k in stop}
    if not quick:
        row["warm"] = run_live_scenario(sc, Path(d), warm=True)
    return row


def _runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run of the rows (cold, the model-stop run, warm), each with its scenario's fields."""
    out = []
    for r in rows:
        out.append(r)
        for key in ("model_stop", "warm"):
            if key in r:
                out.append({**{k: r[k] for k in ("family", "voices", "echo_gain")}, **r[key]})
    return out


def _family(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One voice family: the parrot hearing itself, hearing the user, onset → silent both ways,
    the uplink's residual echo."""
    from device.bench.barge_in import _pct

    runs = _runs(rows)
    by_gain: dict[str, int] = {}
    for x in runs:
        b = x.get("backend", {})
        n = b.get("self_interruptions", 0) + b.get("warm_up_interruptions", 0)
        by_gain[f"{x['echo_gain']:.1f}"] = by_gain.get(f"{x['echo_gain']:.1f}", 0) + n
    talk = [r for r in rows if r["family"] == "talk"]
    flush = [r["latency_ms"] for r in talk if "latency_ms" in r]
    stops = [r["model_stop"] for r in talk if "model_stop" in r]
    model = [x["model_stop_ms"] for x in stops if "model_stop_ms" in x]
    # From the runs without the device's barge-in: the reply plays until the user speaks (a false
    # local barge-in would end the measured span early, with the echo's tail unsuppressed in it).
    residual = [r["model_stop"]["uplink"]["residual_db"] for r in rows
                if "residual_db" in r.get("model_stop", {}).get("uplink", {})]
    return {"runs": len(runs), "self_interruptions": sum(by_gain.values()), "self_by_gain": by_gain,
            "false_local_barge_ins": sum(r.get("false_barge_ins", 0) for r in rows),
            "talk": len(talk), "detected_local": sum(1 for r in talk if r.get("detected")),
            "heard_by_model": sum(1 for r in talk if r.get("backend", {}).get("heard_user")),
            "heard_by_model_alone": sum(1 for x in stops if x.get("backend", {}).get("heard_user")),
            "flush_p50_ms": _pct(flush, 50), "flush_p95_ms": _pct(flush, 95),
            "decision_p50_ms": _pct([r["decision_ms"] for r in talk if "decision_ms" in r], 50),
            "decision_p95_ms": _pct([r["decision_ms"] for r in talk if "decision_ms" in r], 95),
            # silent - decision: what the flush path and the player add (negative: the pause stage
            # silenced the speaker before the barge-in was confirmed)
            "flush_path_max_ms": max((r["latency_ms"] - r["decision_ms"] for r in talk if "decision_ms" in r),
                                     default=None),
            "model_stop_p50_ms": _pct(model, 50), "model_stop_p95_ms": _pct(model, 95),
            "model_heard_p50_ms": _pct([x["backend"]["heard_ms"] for x in stops if "heard_ms" in x["backend"]], 50),
            "residual_p50_db": _pct(residual, 50), "residual_max_db": max(residual) if residual else None}


def _barge_in_set(quick: bool, set_dir: Path | None = None, jobs: int | None = None) -> dict[str, Any]:
    """The barge-in bench's scenarios (device/bench/barge_in.py) against the parrot: each cold with
    the local flush and again with the model's stop alone (interruptions), and as a second turn
    (full set only)."""
    import multiprocessing
    import os
    import time
    from concurrent.futures import ProcessPoolExecutor

    from device.bench.barge_in import ensure_set, load_scenarios

    d = ensure_set(quick, set_dir)
    scenarios = load_scenarios(d)
    t0 = time.monotonic()
    workers = jobs or min(4, os.cpu_count() or 1)
    if quick or workers <= 1:
        rows = [_job((sc, str(d), quick)) for sc in scenarios]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            rows = list(ex.map(_job, [(sc, str(d), quick) for sc in scenarios], chunksize=2))
    fams = {v: _family([r for r in rows if r.get("voices", "espeak") == v])
            for v in sorted({r.get("voices", "espeak") for r in rows})}
    return {"set": str(d), "wall_s": round(time.monotonic() - t0, 1), "scenarios": len(rows),
            "self_interruptions": sum(f["self_interruptions"] for f in fams.values()), "families": fams,
            "rows": rows}


def run(quick: bool = False, *, set_dir: Path | None = None) -> dict[str, Any]:
    from device.audio import wavio

    demo, rate = wavio.read_wav(DATA / "demo_scenario.wav")
    info = json.loads((DATA / "demo_scenario.json").read_text())
    mono = demo[:, 0]

    async def main() -> dict[str, Any]:
        return {"session_start": await _session_start(mono, rate, info),
                "idle_muted": await _idle_and_muted(mono, rate, quick)}

    return {**asyncio.run(main()), "barge_in": _barge_in_set(quick, set_dir), "goals": GOALS}


def format_table(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"live: {result['error']}"
    s, im, b, g = result["session_start"], result["idle_muted"], result["barge_in"], result["goals"]
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
             row("self-interruptions, barge-in set", str(b["self_interruptions"]), "0", b["self_interruptions"] == 0),
             f"  barge-in set against the parrot in memory ({b['scenarios']} scenarios, {b['wall_s']} s; "
             "no network delay in the model's stop):"]
    for v, f in b["families"].items():
        gains = ", ".join(f"{k}: {n}" for k, n in sorted(f["self_by_gain"].items()))
        lines += [f"    {v}: {f['runs']} runs; the parrot heard itself {f['self_interruptions']}× (by echo gain "
                  f"{gains}); local false barge-ins {f['false_local_barge_ins']}",
                  f"      interruptions {f['talk']}: detected locally {f['detected_local']}, heard by the parrot "
                  f"{f['heard_by_model']} (with the local flush) / {f['heard_by_model_alone']} (its own stop alone)",
                  row("      onset → silent, local flush p50/p95", f"{f['flush_p50_ms']}/{f['flush_p95_ms']} ms",
                      f"p95 ≤ {g['interruption_p95_ms']}",
                      f["flush_p95_ms"] is not None and f["flush_p95_ms"] <= g["interruption_p95_ms"]),
                  f"      local decision p50/p95 {f['decision_p50_ms']}/{f['decision_p95_ms']} ms; silent - decision "
                  f"at most {f['flush_path_max_ms']} ms (flush path + player)",
                  f"      onset → silent, the model's own stop p50/p95 {f['model_stop_p50_ms']}/"
                  f"{f['model_stop_p95_ms']} ms (the parrot heard the user after {f['model_heard_p50_ms']} ms p50)",
                  f"      uplink echo vs the reply at the mic p50 {f['residual_p50_db']} dB, worst "
                  f"{f['residual_max_db']} dB"]
    return "\n".join(lines)
