"""Same input, same outcome: `voxbox simulate` on the demo scenario is a function of its inputs.

The local server's replies are paced on the mic clock and the agent waits for the link to be
quiet before each mic block (device/dev/lockstep.py), so a loaded machine changes how long a
run takes, never what happens in it. Here two processes burn both cores while the demo runs
several times at different speeds: every run must wake, answer, be interrupted and truncate at
the same sample.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

from device.dev.simulate import DEMO_WAV


def _burn(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def _outcome(tmp: Path, speed: str) -> dict:
    tl = tmp / f"t{speed}.jsonl"
    r = subprocess.run([sys.executable, "-m", "device", "simulate", "--mic", str(DEMO_WAV), "--timeline", str(tl),
                        "--speed", speed, "--echo-gain", "0.5", "--echo-delay-ms", "30"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "lockstep off" not in r.stderr
    recs = [json.loads(line) for line in tl.read_text().splitlines()]
    return {
        "states": [(x["t"], x["state"]) for x in recs if x["event"] == "state"],
        "barge_in": [(x["t"], x["source"]) for x in recs if x["event"] == "barge_in"],
        "truncate": [(x["t"], x["item_id"] is not None, x["audio_end_ms"]) for x in recs
                     if x["event"] == "send" and x["type"] == "conversation.item.truncate"],
        "playback": [(x["t"], x["event"], x.get("played_ms")) for x in recs
                     if x["event"] in ("playback_start", "playback_stop")],
    }


def test_the_demo_plays_out_the_same_on_every_run_even_on_a_loaded_machine(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    burners = [ctx.Process(target=_burn, args=(time.monotonic() + 240,), daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    try:
        runs = [_outcome(tmp_path, speed) for speed in ("4", "16", "64")]
    finally:
        for b in burners:
            b.terminate()
    first = runs[0]
    assert [s for _, s in first["barge_in"]] == ["local_vad"], first
    assert len(first["truncate"]) == 1 and first["truncate"][0][2] > 0
    for other in runs[1:]:
        assert other == first
