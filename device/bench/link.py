"""Bench `link` section: the realtime link on loopback.

- uplink bytes per second of conversation (wire bytes of `input_audio_buffer.append`;
  base64 PCM16 at 24 kHz is ~64 KB/s before JSON),
- bytes uplinked while idle (no wake word) and while muted (button held), counted at
  the server from everything it received after the session.update — the goal is 0,
- reconnect time after a server restart (median of 20): from the server accepting
  again to the client's `session.updated`, over crashes and clean shutdowns,
- the client's CPU seconds per audio second, up (send_audio → base64 JSON on the
  socket) and down (audio deltas parsed and decoded), with the server in another
  process so that `time.process_time` sees the client alone,
- the tool round trip on both APIs (`tool_trip`): a function call's arguments done → its
  output written to the socket, as the agent stamps it, p50/p95 against ≤ 50 ms.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.bench import tool_trip
from device.config import RealtimeSettings
from device.dev.server import RealtimeServer, free_loopback_port
from device.link import protocol
from device.link.client import RealtimeClient
from device.link.protocol import ServerEvent

GOALS = {"idle_bytes": 0, "muted_bytes": 0, "reconnect_median_s": 1.0}
FRAME = 240  # 10 ms at 24 kHz
DEMO_WAV = Path(__file__).resolve().parents[1] / "dev" / "data" / "demo_scenario.wav"


def _voice_like(seconds: float, seed: int = 3) -> np.ndarray:
    """Deterministic noisy audio (incompressible, as speech is for base64)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 3000, int(seconds * protocol.SAMPLE_RATE)), -32768, 32767).astype(np.int16)


class _Probe:
    """A RealtimeClient with its events kept."""

    def __init__(self, url: str, rt: RealtimeSettings) -> None:
        self.events: list[str] = []
        self.reply_ms = 0.0
        self.client = RealtimeClient(url, protocol.session_update(rt), on_event=self._on_event, settings=rt)
        self.task: asyncio.Task[None] | None = None

    def _on_event(self, ev: ServerEvent) -> None:
        if ev.type == "response.output_audio.delta":
            self.reply_ms += len(protocol.audio_delta(ev)[1]) / protocol.BYTES_PER_MS
        else:
            self.events.append(ev.type)

    def start(self) -> None:
        self.task = asyncio.create_task(self.client.run())

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)

    async def until(self, pred: Any, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            await asyncio.sleep(0.001)
        return bool(pred())


# ------------------------------------------------------------------ uplink rate and CPU


def _start_server(port: int) -> subprocess.Popen[str]:
    """The local server in a process of its own (its CPU is not ours); it says on stderr when it listens."""
    code = ("import asyncio; from device.dev.server import serve; "
            f"asyncio.run(serve('127.0.0.1', {port}, speed=200.0))")
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))


async def _uplink_and_cpu(audio_s: float) -> dict[str, Any]:
    port = free_loopback_port()
    proc = _start_server(port)
    try:
        assert proc.stderr is not None
        line = await asyncio.to_thread(proc.stderr.readline)  # "voxbox: realtime server ... on ws://..."
        if "realtime server" not in line:
            raise RuntimeError(f"the server did not start: {line.strip()}")
        rt = RealtimeSettings(turn_detection="none")
        probe = _Probe(f"ws://127.0.0.1:{port}/v1/realtime", rt)
        probe.start()
        if (not await probe.client.wait_connected(10)
                or not await probe.until(lambda: "session.updated" in probe.events)):
            raise RuntimeError("no session with the local server")
        x = _voice_like(audio_s).tobytes()
        step = FRAME * 2
        c0, w0 = time.process_time(), time.monotonic()
        for i in range(0, len(x), step):
            probe.client.send_audio(x[i:i + step])  # 10 ms frames, as the agent gives them
            if (i // step) % 50 == 49:
                await asyncio.sleep(0)  # let the sender drain (faster than real time)
        await probe.until(lambda: probe.client.stats.uplink_audio_ms >= audio_s * 1000 - 1)
        up_cpu, up_wall = time.process_time() - c0, time.monotonic() - w0
        st = probe.client.stats
        uplink_bytes, uplink_ms = st.uplink_bytes, st.uplink_audio_ms
        probe.client.send(protocol.input_audio_commit())
        c0 = time.process_time()
        probe.client.send(protocol.response_create())
        await probe.until(lambda: "response.done" in probe.events, timeout=60 + audio_s)
        down_cpu = time.process_time() - c0
        reply_s = probe.reply_ms / 1000
        await probe.stop()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "audio_s": audio_s,
        "uplink_bytes_per_s": uplink_bytes / (uplink_ms / 1000),
        "uplink_stream_x_realtime": audio_s / up_wall if up_wall > 0 else 0.0,
        "cpu_s_per_audio_s_up": up_cpu / audio_s,
        "reply_s": reply_s,
        "cpu_s_per_audio_s_down": down_cpu / reply_s if reply_s else 0.0,
    }


# ------------------------------------------------------------------ idle and muted


async def _wire_bytes_agent(mic: np.ndarray, rate: int, presses: list[Any], speed: float) -> dict[str, Any]:
    """The whole agent (SimAudio) against the local server; what the server received besides the session."""
    from device.audio.player import Player
    from device.audio.sim import SimAudio
    from device.config import Settings
    from device.conversation.agent import Agent
    from device.link.client import realtime_link
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector
    from device.timeline import Timeline

    got = {"messages": 0, "bytes": 0, "append_bytes": 0}

    def trace(direction: str, text: str | bytes) -> None:
        if direction != "in" or (isinstance(text, str) and '"type":"session.update"' in text):
            return
        got["messages"] += 1
        got["bytes"] += len(text)
        if isinstance(text, str) and "input_audio_buffer.append" in text:
            got["append_bytes"] += len(text)

    server = RealtimeServer(trace=trace)
    port = await server.start()
    settings = Settings()
    player = Player(settings.audio.output_rate)
    sim = SimAudio(mic.reshape(len(mic), -1), rate, player, speed=speed)
    timeline = Timeline(None, keep=True)
    agent = Agent(settings, sim, timeline, wake=build_wake_detector(settings.wake), vad=build_vad(settings.vad),
                  link=realtime_link(settings, f"ws://127.0.0.1:{port}/v1/realtime", None), presses=presses)
    sim.keep_going = agent.keep_going
    try:
        await agent.run(wait_connected_s=10)
    finally:
        await server.stop()
    evs = [r["event"] for r in timeline.records]
    states = [r["state"] for r in timeline.records if r["event"] == "state"]
    return {**got, "audio_s": len(mic) / rate, "connected": "connect" in evs, "wake": evs.count("wake"),
            "muted": "muted" in states, "client_uplink_bytes": agent.link.stats.uplink_bytes}


async def _idle_and_muted(quick: bool) -> dict[str, Any]:
    from device.audio import wavio
    from device.conversation.agent import ScheduledPress

    demo, rate = wavio.read_wav(DEMO_WAV)
    demo = demo[:, 0]
    # idle: talk without the wake word (the demo's question onwards) and noise
    talk = demo[int(2.2 * rate):]
    rng = np.random.default_rng(5)
    noise = np.clip(rng.normal(0, 300, rate * (3 if quick else 10)), -32768, 32767).astype(np.int16)
    idle_mic = np.concatenate([noise, talk if not quick else talk[: rate * 5]])
    idle = await _wire_bytes_agent(idle_mic, rate, [], speed=20.0)
    # muted: the button held 2.5 s at 0.1 s (mute), then the whole scenario, wake word included
    muted_mic = np.concatenate([np.zeros(int(2.7 * rate), np.int16), demo if not quick else demo[: rate * 6]])
    muted = await _wire_bytes_agent(muted_mic, rate, [ScheduledPress(0.1, 2.5)], speed=20.0)
    return {"idle": idle, "muted_run": muted}


# ------------------------------------------------------------------ reconnect after restarts


async def _reconnects(n: int, down_s: float = 0.2, healthy_s: float = 0.6) -> dict[str, Any]:
    port = free_loopback_port()
    server = RealtimeServer()
    await server.start(port=port)
    probe = _Probe(f"ws://127.0.0.1:{port}/v1/realtime", RealtimeSettings(turn_detection="none"))
    probe.start()
    times: list[float] = []
    survived = 0
    try:
        if not await probe.client.wait_connected(10):
            raise RuntimeError("no first connection")
        for i in range(n):
            await probe.until(lambda i=i: probe.events.count("session.updated") >= i + 1, 10)
            await asyncio.sleep(healthy_s)  # a conversation's worth of healthy connection
            await (server.kill() if i % 2 == 0 else server.stop())
            await probe.until(lambda: not probe.client.connected, 5)
            await asyncio.sleep(down_s)
            server = RealtimeServer()
            await server.start(port=port)
            back = time.monotonic()
            if await probe.until(lambda i=i: probe.events.count("session.updated") >= i + 2, 15):
                times.append(time.monotonic() - back)
                survived += 1
    finally:
        await probe.stop()
        await server.stop()
    return {"restarts": n, "survived": survived, "down_s": down_s,
            "reconnect_median_s": statistics.median(times) if times else float("nan"),
            "reconnect_p90_s": float(np.percentile(times, 90)) if times else float("nan"),
            "reconnect_max_s": max(times) if times else float("nan"),
            "connect_failures": probe.client.stats.connect_failures}


# ------------------------------------------------------------------ the section


def jittered_reply(prebuffer_ms: int, rate: int = 24000) -> tuple[int, int, np.ndarray]:
    """A 3 s reply arriving in 20 ms deltas at 0.9x real time, unevenly (fixed seed), through the
    player with `prebuffer_ms` of jitter buffer; the speaker pulls 10 ms at a time.

    Returns (the player's gap count, silent 10 ms-block stretches inside the played reply, OUT).
    """
    from device.audio.player import Player

    p = Player(rate)
    p.prebuffer_ms = prebuffer_ms
    reply = (np.sin(np.arange(3 * rate) * 2 * np.pi * 300 / rate) * 8000).astype(np.int16)
    delta, block = rate // 50, rate // 100
    arrivals = np.cumsum(np.random.default_rng(3).uniform(0.2, 4.2, size=len(reply) // delta)) / 0.9
    out, k, tick = [], 0, 0
    while k < len(arrivals) or p.busy:
        while k < len(arrivals) and arrivals[k] <= tick:
            p.enqueue("item", reply[k * delta:(k + 1) * delta])
            k += 1
            if k == len(arrivals):
                p.mark_complete()  # response.done
        out.append(p.pull(block))
        tick += 1
    o = np.concatenate(out)
    sounding = np.abs(o) > 0
    first, last = int(np.argmax(sounding)), len(o) - int(np.argmax(sounding[::-1]))
    inner = sounding[first:last]
    blocks = inner[: len(inner) // block * block].reshape(-1, block).any(axis=1)
    return p.gaps, int(np.sum(np.diff(blocks.astype(int)) == -1)), o


def run(quick: bool = False) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"quick": quick}
        out["uplink"] = await _uplink_and_cpu(5.0 if quick else 60.0)
        out["quiet"] = await _idle_and_muted(quick)
        out["restart"] = await _reconnects(3 if quick else 20)
        turns = 5 if quick else 20
        out["tools"] = [await tool_trip.round_trips(api, turns) for api in ("realtime", "live")]
        return out

    t0 = time.monotonic()
    link_log = logging.getLogger("device.link.client")
    level = link_log.level
    link_log.setLevel(logging.ERROR)  # the restarts' "cannot connect" warnings are expected here
    try:
        res = asyncio.run(main())
    finally:
        link_log.setLevel(level)
    from device.config import AudioSettings

    res["jitter"] = {"prebuffer_ms": AudioSettings().prebuffer_ms, "gaps_without": jittered_reply(0)[0],
                     "gaps_with": jittered_reply(AudioSettings().prebuffer_ms)[0]}
    res["goals"] = dict(GOALS)
    res["cpu_count"] = os.cpu_count()
    res["wall_s"] = round(time.monotonic() - t0, 1)
    return res


def format_table(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"link: {result['error']}"
    up, quiet, rs, g = result["uplink"], result["quiet"], result["restart"], result["goals"]
    idle, muted = quiet["idle"], quiet["muted_run"]

    def ok(flag: bool) -> str:
        return "ok" if flag else "MISSED"

    rows = [
        ("uplink in conversation", f"{up['uplink_bytes_per_s'] / 1000:.1f} KB/s", "~64 KB/s", ""),
        ("bytes sent while idle", f"{idle['bytes']} B", "0", ok(idle["bytes"] == 0 and idle["connected"])),
        ("bytes sent while muted", f"{muted['bytes']} B", "0", ok(muted["bytes"] == 0 and muted["muted"])),
        ("restarts survived", f"{rs['survived']}/{rs['restarts']}", "all", ok(rs["survived"] == rs["restarts"])),
        ("reconnect median", f"{rs['reconnect_median_s'] * 1000:.0f} ms", f"≤ {g['reconnect_median_s'] * 1000:.0f} ms",
         ok(rs["reconnect_median_s"] <= g["reconnect_median_s"])),
        ("reconnect p90 / max", f"{rs['reconnect_p90_s'] * 1000:.0f} / {rs['reconnect_max_s'] * 1000:.0f} ms", "", ""),
        ("playback gaps, uneven reply", f"{result['jitter']['gaps_without']} -> {result['jitter']['gaps_with']}",
         f"fewer ({result['jitter']['prebuffer_ms']} ms buffer)", ""),
        ("client CPU, uplink", f"{up['cpu_s_per_audio_s_up'] * 1000:.2f} ms/s", "", ""),
        ("client CPU, downlink", f"{up['cpu_s_per_audio_s_down'] * 1000:.2f} ms/s", "", ""),
    ]
    rows += [tool_trip.row(r) for r in result.get("tools", [])]
    lines = [f"link (loopback; {up['audio_s']:.0f} s of audio streamed at {up['uplink_stream_x_realtime']:.0f}x; "
             f"idle {idle['audio_s']:.0f} s, muted {muted['audio_s']:.0f} s through the agent; "
             f"server down {rs['down_s']:.1f} s per restart)",
             f"  {'metric':26s} {'measured':>16s}  {'goal':10s}"]
    lines += [f"  {name:26s} {val:>16s}  {goal:10s} {verdict}".rstrip() for name, val, goal, verdict in rows]
    return "\n".join(lines)
