"""Bench `daemon` section: `voxbox run` idle on the PulseAudio test rig.

Measures start-to-ready (spawn → READY=1 on a real NOTIFY_SOCKET), idle CPU
(% of one core, from /proc utime+stime over a window) and resident memory
(VmRSS, and VmHWM = the peak), with the local realtime server on loopback.
Needs the repo's tests/pulse_rig.py and the pulseaudio binary.
"""

from __future__ import annotations

import importlib.util
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
        env["NOTIFY_SOCKET"] = str(tmp / "notify")
        env.pop("OPENAI_API_KEY", None)
        time.sleep(0.5)  # the server binds its port
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
            server.terminate()
            server.wait(timeout=10)
            sock.close()
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
    return "\n".join(lines)
