"""Bench `daemon` section: `voxbox run` idle on the PulseAudio test rig.

Measures start-to-ready (spawn → READY=1 on a real NOTIFY_SOCKET), idle CPU
(% of one core, from /proc utime+stime over a window) and resident memory
(VmRSS, and VmHWM = the peak), with the local realtime server on loopback.
Then where that CPU goes (written rows, no goals): `voxbox run` again under the probe of
device/bench/idle_parts.py, as it runs (the mic batched into 80 ms reads while idle) and with
every 20 ms block waking the loop (as before batching), and do-nothing PortAudio streams on the
same rig at 10/20/80 ms input and the daemon's output block: the sound stack's own floor.
Needs the repo's tests/pulse_rig.py and the pulseaudio binary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from device.dev.server import free_loopback_port

REPO = Path(__file__).resolve().parents[2]
GOALS = {"idle_cpu_pct": 3.0, "rss_mb": 120.0, "ready_s": 3.0}
# (input ms, output ms) of the do-nothing streams; (20, 10) is the daemon's pair (frames_per_buffer_ms = 20,
# output_buffer_ms = 20 in blocks of 10 ms), (80, 10) the same with the wake word's step as the input block.
BARE = ((10, 0), (20, 0), (80, 0), (0, 10), (20, 10), (80, 10))


def _rig_module() -> Any:
    path = REPO / "tests" / "pulse_rig.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("pulse_rig", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["pulse_rig"] = mod
    spec.loader.exec_module(mod)
    return mod


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mem_mb(pid: int) -> tuple[float, float]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def _probe(args: list[str], env: dict[str, str], window: float) -> dict[str, Any]:
    """One device.bench.idle_parts child: its JSON line, or {"error": ...}."""
    cmd = [sys.executable, "-m", "device.bench.idle_parts", *args, "--window", str(window)]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=window + 60)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": (r.stderr.strip() or "no output")[-300:]}


def _parts(cfg: Path, env: dict[str, str], window: float) -> dict[str, Any]:
    """The per-part probe of the daemon (batched and not) and the bare PortAudio floor."""
    daemon = ["daemon", "--config", str(cfg)]
    return {"batched": _probe(daemon, env, window), "unbatched": _probe([*daemon, "--unbatched"], env, window),
            "bare": [_probe(["bare", "--input-ms", str(i), "--output-ms", str(o)], env, window) for i, o in BARE]}


def run(quick: bool = False) -> dict[str, Any]:
    rig_mod = _rig_module()
    if rig_mod is None or rig_mod.pulseaudio_binary() is None:
        return {"skipped": "needs the repo's tests/pulse_rig.py and pulseaudio"}
    window = 4.0 if quick else 15.0
    with tempfile.TemporaryDirectory(prefix="voxbox-bench-") as tmp_s, rig_mod.PulseRig() as rig:
        tmp = Path(tmp_s)
        port = free_loopback_port()
        server = subprocess.Popen([sys.executable, "-m", "device", "serve", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cfg = tmp / "voxbox.toml"
        cfg.write_text(f'[realtime]\nurl = "ws://127.0.0.1:{port}/v1/realtime"\n'
                       f'[gpio]\nenabled = false\nstate_dir = "{tmp}"\n'
                       '[audio]\ninput_rate = 16000\ninput_channels = 1\n')
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(tmp / "notify"))
        sock.settimeout(0.1)
        env = rig.child_env(dict(os.environ))
        env.pop("OPENAI_API_KEY", None)
        # As under systemd/voxbox.service (WatchdogSec=10): the watchdog pings are part of idle.
        env.update(NOTIFY_SOCKET=str(tmp / "notify"), WATCHDOG_USEC="10000000")
        try:
            time.sleep(0.5)  # the server binds its port
            result = _idle(cfg, env, sock, window)
            if "error" not in result:
                result["parts"] = _parts(cfg, env, window)
        finally:
            sock.close()
            server.terminate()
            server.wait(timeout=10)
    return result


def _idle(cfg: Path, env: dict[str, str], sock: socket.socket, window: float) -> dict[str, Any]:
    """`voxbox run` from outside: start to READY=1 (on `sock`), idle CPU over `window`, RSS."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "device", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready_s = None
    try:
        while time.monotonic() - t0 < 30 and proc.poll() is None:
            try:
                if b"READY=1" in sock.recv(4096):
                    ready_s = time.monotonic() - t0
                    break
            except TimeoutError:
                continue
        if ready_s is None:
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            return {"error": f"daemon never became ready: {err.strip()[-300:]}"}
        time.sleep(2.0)  # settle: first-chunk model warm-up is not idle cost
        c0, w0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(window)
        c1, w1 = _cpu_seconds(proc.pid), time.monotonic()
        rss, peak = _mem_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    cpu = 100.0 * (c1 - c0) / (w1 - w0)
    return {"ready_s": round(ready_s, 3), "idle_cpu_pct": round(cpu, 2), "rss_mb": round(rss, 1),
            "peak_rss_mb": round(peak, 1), "window_s": window, "goals": GOALS,
            "exit_code": proc.returncode}


def format_table(result: dict[str, Any]) -> str:
    if "skipped" in result or "error" in result:
        return f"daemon: {result.get('skipped') or result.get('error')}"
    g = result["goals"]
    rows = [("start to READY=1", f"{result['ready_s']:.2f} s", f"≤ {g['ready_s']} s",
             result["ready_s"] <= g["ready_s"]),
            ("idle CPU (one core)", f"{result['idle_cpu_pct']:.2f} %", f"≤ {g['idle_cpu_pct']} %",
             result["idle_cpu_pct"] <= g["idle_cpu_pct"]),
            ("RSS idle", f"{result['rss_mb']:.1f} MB", f"≤ {g['rss_mb']} MB", result["rss_mb"] <= g["rss_mb"]),
            ("RSS peak", f"{result['peak_rss_mb']:.1f} MB", "", True)]
    lines = [f"daemon (voxbox run idle on PulseAudio pipes, {result['window_s']:.0f} s window)",
             f"  {'metric':22s} {'measured':>12s}  {'goal':10s}"]
    lines += [f"  {name:22s} {val:>12s}  {goal:10s} {'' if not goal else ('ok' if ok else 'MISSED')}"
              for name, val, goal, ok in rows]
    if "parts" in result:
        lines += _parts_table(result["parts"])
    return "\n".join(lines)


def part_rows(probe: dict[str, Any]) -> list[tuple[str, float]]:
    """(part, % of one core) rows of one idle_parts daemon probe; main-thread parts are exclusive."""
    th, pa = probe["threads_pct"], probe["parts_pct"]

    def get(d: dict[str, float], k: str) -> float:
        return float(d.get(k, 0.0))

    block = get(pa, "block")
    main_rest = get(th, "main") - block - get(pa, "watchdog")
    return [("wake word (openWakeWord inference)", get(pa, "wake")),
            ("frontend (channels, framing)", get(pa, "frontend") - get(pa, "soxr") - get(pa, "aec")),
            ("soxr resampling", get(pa, "soxr")),
            ("echo canceller (bypassed when idle)", get(pa, "aec")),
            ("agent, rest of each block", block - get(pa, "wake") - get(pa, "frontend")),
            ("watchdog / sd_notify", get(pa, "watchdog")),
            ("asyncio loop, read(), timers, link", main_rest),
            ("PortAudio input thread", get(th, "portaudio_input")),
            ("  of which our Python callback", get(pa, "in_callback")),
            ("PortAudio output thread", get(th, "portaudio_output")),
            ("  of which our Python callback", get(pa, "out_callback")),
            ("libpulse mainloop threads", get(th, "libpulse_mainloop")),
            ("timeline writer thread", get(th, "timeline_writer")),
            ("other threads (LED/gpio, executor)", get(th, "other_python") + get(th, "other_native")),
            ("total (process CPU clock)", float(probe["total_pct"]))]


def _parts_table(parts: dict[str, Any]) -> list[str]:
    batched, unbatched = parts["batched"], parts["unbatched"]
    lines = ["", "  idle CPU by part, % of one core (per-thread CPU clocks inside `voxbox run`)"]
    if "error" in batched or "error" in unbatched:
        lines.append(f"  probe failed: {batched.get('error') or unbatched.get('error')}")
    else:
        lines.append(f"  {'part':42s} {'20 ms reads':>11s} {'80 ms idle':>11s}")
        lines += [f"  {name:42s} {a:11.2f} {b:11.2f}"
                  for (name, a), (_, b) in zip(part_rows(unbatched), part_rows(batched), strict=True)]
        lines.append(f"  {'loop wake-ups (blocks) per s':42s} {unbatched['per_s'].get('block', 0):11.1f} "
                     f"{batched['per_s'].get('block', 0):11.1f}")
        if any(p["per_s"].get("reopen") for p in (batched, unbatched)):
            lines.append("  (the sound card was lost and reopened during a window: the machine was too busy "
                         "for the rig; rerun)")
    lines += ["", "  bare PortAudio on the rig, do-nothing callbacks (the sound stack's floor)"]
    for b in parts["bare"]:
        if "error" in b:
            lines.append(f"  probe failed: {b['error']}")
            continue
        what = " + ".join(f"{k} {b[f'{k}_ms']} ms" for k in ("input", "output") if b[f"{k}_ms"])
        lines.append(f"  {what:42s} {b['total_pct']:11.2f}")
    return lines
