#!/usr/bin/env python3
"""Developer harness for the barge-in bench: every scenario of the full set in one mode, run by run.

    python3 scripts/dev/bargein_runs.py MODE OUT.json [--jobs N] [--only PREFIX] [--quick]
    python3 scripts/dev/bargein_runs.py --compare A.json B.json

MODE: cold, warm, off (earcons off, cold), rs / rm (a first reply after a restart in the same room / a
moved one: run_scenario(restart=...)), st (a first start with its start-up sound: restart="startup"),
stn (st in a noisier room, the bench's "noisy" row: white noise at 45 dB re 1 LSB RMS on the mic),
srvc / srvw (server mode cold / warm), pcw / pcc / pcs (the echo path change in a second turn, a first
reply, a second turn in server mode; echo-only scenarios), ne (no echo in the mic; talk scenarios),
nen / nesn (no echo in stn's noisier room: cold / a first start; talk scenarios), srvn (srvc in that room),
answer / answer_nogate (each talk scenario's word as an answer after a second turn's reply, run_answer
at the bench's delay; _nogate: the tail gate never started, BargeIn.reply_played_out patched
in-process). Uses the tree it is run from (PYTHONPATH or the checkout). Each run keeps what `measure` /
`uplink_echo` report plus the detectors named on the timeline's pauses and barge-ins, so two trees can
be compared run by run (--compare prints every run whose outcome differs, every other run whose local
catch, server VAD on the user or answer VAD moved by more than 5 ms, and the totals per voice family).
Not part of `voxbox bench`: this is how a change is tried on the whole set before the full bench
(which runs every mode at once, ~1 h here) is run from a frozen copy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MODES = {
    "cold": {}, "rs": {"restart": "same"}, "rm": {"restart": "moved"}, "st": {"restart": "startup"},
    "warm": {"warm": True}, "off": {"off": True},
    "srvc": {"server_mode": True}, "srvw": {"warm": True, "server_mode": True},
    "pcw": {"warm": True, "path_change": True}, "pcc": {"path_change": True},
    "pcs": {"warm": True, "server_mode": True, "path_change": True}, "ne": {"echo": False},
    "answer": {}, "answer_nogate": {},
    "stn": {"restart": "startup", "floor_db": 45.0}, "nen": {"echo": False, "floor_db": 45.0},
    "nesn": {"echo": False, "restart": "startup", "floor_db": 45.0},
    "srvn": {"server_mode": True, "floor_db": 45.0},
}
KEEP = ("name", "voices", "family", "detected", "latency_ms", "decision_ms", "false_barge_ins", "false_pauses",
        "warm_up_barge_ins", "warm_up_pauses", "uplink", "truncate_err_ms", "room_memory")


def _one(args: tuple[dict, str, str]) -> dict:
    from device import config as cfg
    from device.bench import barge_in as b

    sc, d, mode = args
    if mode.startswith("answer"):
        if mode == "answer_nogate":
            from device.conversation import speaking as sp

            sp.BargeIn.reply_played_out = lambda self: None  # type: ignore[method-assign]
        a = b.run_answer(sc, Path(d), b.answer_delay(sc))
        return {"name": sc["name"], "voices": sc["voices"], "family": sc["family"], "answer": a, "decisions": []}
    kw: dict[str, Any] = dict(MODES[mode])
    settings = b.without_earcons(cfg.Settings()) if kw.pop("off", False) else None
    if kw.pop("path_change", False):
        kw["path_change"] = b.PATH_CHANGE
    r = b.run_scenario(sc, Path(d), settings, keep_audio=True, **kw)
    out = {k: r[k] for k in KEEP if k in r}
    out["decisions"] = [(round(x["t"], 3), x["event"], x.get("detector") or x.get("source"))
                        for x in r["records"] if x["event"] in ("playback_pause", "barge_in")]
    return out


def run(mode: str, out: Path, jobs: int, only: str | None, quick: bool = False) -> None:
    from device.bench import barge_in as b

    d = b.ensure_set(quick)
    scs = b.load_scenarios(d)
    if mode.startswith("pc"):
        scs = [s for s in scs if s["family"] == "silent"]
    if mode in ("ne", "nen", "nesn") or mode.startswith("answer"):
        scs = [s for s in scs if s["family"] == "talk"]
    if only:
        scs = [s for s in scs if s["name"].startswith(only)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
        rows = list(ex.map(_one, [(s, str(d), mode) for s in scs], chunksize=2))
    out.write_text(json.dumps({"mode": mode, "rows": rows}, indent=0))
    print(out, len(rows), "runs")
    _totals(rows)


def _outcome(r: dict) -> tuple:
    up = r.get("uplink") or {}
    a = r.get("answer") or {}
    if a:
        return (a.get("heard"), a.get("vad_ms"), a.get("vad_on_echo"))
    return (r.get("detected"), r.get("false_barge_ins"), r.get("false_pauses"), r.get("warm_up_barge_ins"),
            r.get("warm_up_pauses"), up.get("vad_on_echo"), up.get("vad_on_user"))


def _totals(rows: list[dict]) -> None:
    import numpy as np

    for fam in sorted({r["voices"] for r in rows}):
        rs = [r for r in rows if r["voices"] == fam]
        talk = [r for r in rs if r["family"] == "talk"]
        lat = [r["latency_ms"] for r in talk if "latency_ms" in r]
        ups = [r["uplink"] for r in rs if "uplink" in r]
        res = [u["residual_db"] for u in ups if "residual_db" in u]
        line = (f"{fam:7s} caught {sum(1 for r in talk if r.get('detected'))}/{len(talk)}"
                f" false barge {sum(r.get('false_barge_ins', 0) for r in rs)}"
                f" runs paused {sum(1 for r in rs if r.get('false_pauses'))}"
                f" first-reply barge/pause {sum(r.get('warm_up_barge_ins', 0) for r in rs)}"
                f"/{sum(r.get('warm_up_pauses', 0) for r in rs)}")
        if lat:
            line += f" p50/p95 {np.percentile(lat, 50):.1f}/{np.percentile(lat, 95):.1f} ms"
        ans = [r["answer"] for r in rs if "answer" in r]
        if ans:
            vad = [x["vad_ms"] for x in ans if x["heard"]]
            late = sum(1 for x in ans if x["heard"] and x["floor_ms"] is not None and x["vad_ms"] - x["floor_ms"] > 50)
            echo = sum(1 for x in ans if x["vad_on_echo"])
            line += (f" | answers heard {len(vad)}/{len(ans)} vad p50/p95 {np.percentile(vad, 50):.1f}/"
                     f"{np.percentile(vad, 95):.1f} ms, >50 ms late {late}, on echo {echo}")
        if ups:
            line += (f" | vad on echo {sum(1 for u in ups if u.get('vad_on_echo'))} heard "
                     f"{sum(1 for u in ups if u.get('vad_on_user'))} worst {max(res) if res else None} dB")
        print(line)


def compare(a: Path, b: Path) -> None:
    ra = {r["name"]: r for r in json.loads(a.read_text())["rows"]}
    rb = {r["name"]: r for r in json.loads(b.read_text())["rows"]}
    same = 0
    for name in sorted(set(ra) & set(rb)):
        x, y = ra[name], rb[name]
        if _outcome(x) != _outcome(y):
            print(f"{name:22s} {_outcome(x)} -> {_outcome(y)}  {x['decisions']} -> {y['decisions']}")
        else:
            same += 1
            # the local catch, the server's VAD on the user (server modes), the answer heard (answer modes)
            for label, side, key in (("latency", None, "latency_ms"), ("server vad", "uplink", "vad_user_ms"),
                                     ("answer vad", "answer", "vad_ms")):
                lx = (x.get(side) or {}).get(key) if side else x.get(key)
                ly = (y.get(side) or {}).get(key) if side else y.get(key)
                if lx is not None and ly is not None and abs(lx - ly) > 5:
                    print(f"{name:22s} {label} {lx} -> {ly}")
    print(f"same outcome: {same} of {len(set(ra) & set(rb))}")
    print("A:")
    _totals(list(ra.values()))
    print("B:")
    _totals(list(rb.values()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?")
    p.add_argument("out", nargs="?", type=Path)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only")
    p.add_argument("--quick", action="store_true", help="the quick set (make test's)")
    p.add_argument("--compare", nargs=2, type=Path)
    a = p.parse_args()
    if a.compare:
        compare(*a.compare)
    else:
        run(a.mode, a.out, a.jobs, a.only, a.quick)


if __name__ == "__main__":
    main()
