"""`voxbox serve` driven by the npm `openai` package's realtime WebSocket client through a full turn.

That client (`OpenAIRealtimeWebSocket` from 'openai/realtime/websocket', what browsers and the Agents
SDK use) offers the subprotocols `realtime` + `openai-insecure-api-key.<key>` and connects only over
wss:, so the server runs with `--tls-cert/--tls-key` and Node trusts the test certificate through
NODE_EXTRA_CA_CERTS. The package is installed from the npm registry with `npm ci` into
tests/node_realtime/ (package.json + package-lock.json committed). Without node the test is
skipped, except on CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_link_support import check_server_event, self_signed_cert, turn

from device.dev.server import free_loopback_port

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = Path(__file__).resolve().parent / "node_realtime"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing on CI (Makefile APT_PACKAGES has nodejs npm)")
        pytest.skip(f"{tool} is not installed")
    return path


def _node_cmd() -> list[str]:
    node = _need("node")
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").is_file():
        r = subprocess.run([_need("npm"), "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, f"npm ci failed: {r.stderr[-2000:]}"
    # Node's own WHATWG WebSocket (what the client uses in a browser) is behind a flag on Node 20;
    # Node 18 has none and turn.mjs falls back to the `ws` package.
    probe = ["-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"]
    for flags in ([], ["--experimental-websocket"]):
        if subprocess.run([node, *flags, *probe], capture_output=True).returncode == 0:
            return [node, *flags]
    return [node]


def _start_serve(port: int, cert: Path, key: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "device", "serve", "--port", str(port), "--tls-cert", str(cert),
                             "--tls-key", str(key)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "voxbox: realtime server (model parrot) on wss://127.0.0.1:PORT/v1/realtime"
    assert f"wss://127.0.0.1:{port}/" in line, line
    return proc


def test_npm_openai_realtime_websocket_full_turn(tmp_path: Path) -> None:
    cmd = _node_cmd()
    key, cert = self_signed_cert(tmp_path)
    x = turn(lead_s=0.1, tail_s=0.1)
    (tmp_path / "turn.pcm").write_bytes(x.tobytes())
    port = free_loopback_port()
    server = _start_serve(port, cert, key)
    try:
        t0 = time.monotonic()
        base_url = f"https://127.0.0.1:{port}/v1"
        r = subprocess.run([*cmd, str(NODE_DIR / "turn.mjs"), base_url, str(tmp_path / "turn.pcm")], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=90,
                           env={**os.environ, "NODE_EXTRA_CA_CERTS": str(cert)})
        print(f"node turn: {time.monotonic() - t0:.1f} s")
    finally:
        server.terminate()
        server.wait(timeout=10)
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    summaries = [line["summary"] for line in lines if "summary" in line]
    assert r.returncode == 0 and len(summaries) == 1, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    summary: dict[str, Any] = summaries[0]
    events = [line for line in lines if "summary" not in line]
    for ev in events:
        check_server_event(ev)
    types = [e["type"] for e in events]
    assert types[:2] == ["session.created", "session.updated"], types
    for t in ("input_audio_buffer.committed", "response.created", "response.output_item.added",
              "response.output_audio.done", "response.done"):
        assert t in types, (t, types)
    assert "error" not in types, [e for e in events if e["type"] == "error"]
    done = events[types.index("response.done")]
    assert done["response"]["status"] == "completed" and done["response"]["metadata"] == {"from": "node"}
    assert summary["subprotocol"] == "realtime" and summary["url"].startswith(f"wss://127.0.0.1:{port}/v1/realtime")
    # the parrot's reply is the committed audio, all of it, in 100 ms deltas
    assert summary["audioBytes"] == len(x.tobytes()) and summary["deltas"] == -(-len(x) // 2400)
