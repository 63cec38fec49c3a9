#!/usr/bin/env python3
"""Developer trace for the barge-in bench: one scenario, BargeIn's per-frame state at its decisions.

    python3 scripts/dev/bargein_trace.py NAME [--warm] [--path-change] [--restart same|moved] [--quick] [--no-echo]
                                        [--from S --to S] [--all]

Runs the scenario whose name starts with NAME (full set, or --quick) as the bench does
(run_scenario; --warm: as a second turn; --path-change: the bench's PATH_CHANGE; --restart: after a
first life, in the same room or a moved one), and prints, for
every frame between --from and --to (mic time, s) that the echo gate called near-end (--all: every
frame), what BargeIn._gate_decisions saw: the gates' verdicts, the echo path's share, the cancellers'
sign, the leak test (_leak), the linear residual's excess and coherence, ResidualGate.adding and its
mismatch hold, the canceller's mic/output levels (dB), the echo gate's run state. Then the timeline's
decisions. Uses the tree it is run from (PYTHONPATH or the checkout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from device.bench import barge_in as b
    from device.conversation import speaking as sp

    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--warm", action="store_true")
    p.add_argument("--path-change", action="store_true")
    p.add_argument("--restart", choices=("same", "moved", "startup"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-echo", action="store_true", help="the mic without the reply's echo (run_scenario(echo=False))")
    p.add_argument("--from", dest="t0", type=float, default=0.0)
    p.add_argument("--to", dest="t1", type=float, default=1e9)
    p.add_argument("--all", action="store_true", help="every frame, not only the echo gate's near-end ones")
    a = p.parse_args()
    rows: list[str] = []
    decide = sp.BargeIn._gate_decisions

    def traced(self: Any, fr: Any, erle_drop: bool) -> None:
        t = self.now
        if a.t0 <= t <= a.t1 and (fr.near or a.all):
            fe = self.frontend
            lv = fr.levels[fr.i] if fr.levels is not None else (np.nan, np.nan)
            adding = int(bool(fe.residual_adding[fr.i])) if fr.i < len(fe.residual_adding) else -1
            hold = getattr(fe.residual_gate, "_mismatch", None)
            rows.append(
                f"{t:7.2f} near={int(fr.near)} tail={int(fr.tail_near)} onset={int(bool(fe.near_onset[fr.i]))}"
                f" share={fr.share:.2f} canc={int(fr.cancellers)} res={int(fr.residual)} leak={int(self._leak(fr.i))}"
                f" coh={fr.coherence:.2f} exc={fr.excess:.2f} add={adding} hold={hold} mic={lv[0]:.1f} out={lv[1]:.1f}"
                f" onrun={self._onset_run} shown={int(self._onset_shown)} learnt={int(fr.learnt)}"
                f" linear_conv={int(self.linear.converged)} erle_drop={int(erle_drop)} paused={int(fr.paused)}")
        decide(self, fr, erle_drop)

    sp.BargeIn._gate_decisions = traced  # type: ignore[method-assign]
    d = b.ensure_set(a.quick)
    sc = next(s for s in b.load_scenarios(d) if s["name"].startswith(a.name))
    r = b.run_scenario(sc, d, warm=a.warm, path_change=b.PATH_CHANGE if a.path_change else None, keep_audio=True,
                       restart=a.restart, echo=not a.no_echo)
    print(sc["name"], {k: r.get(k) for k in ("detected", "latency_ms", "false_pauses", "false_barge_ins")})
    print([(round(x["t"], 3), x["event"], x.get("detector")) for x in r["records"]
           if x["event"] in ("playback_pause", "playback_resume", "speech_start", "barge_in")])
    print("\n".join(rows))


if __name__ == "__main__":
    main()
