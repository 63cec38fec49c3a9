"""`voxbox bench`: the benchmark sections, one report.

Each section is a module with `run(quick: bool) -> dict` and
`format_table(result) -> str`. Speed and memory goals are judged here, on
numbers measured in one run, never by timed assertions in the tests.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.bench import versions
from device.config import Settings
from device.errors import ConfigError

SECTIONS = {
    "listen": "device.bench.listen",
    "barge_in": "device.bench.barge_in",
    "link": "device.bench.link",
    "daemon": "device.bench.daemon",
    "live": "device.bench.live",
}


def run_bench(settings: Settings, json_out: Path | None = None, sections: list[str] | None = None,
              quick: bool = False, print_fn: Callable[[str], None] = print) -> int:
    wanted = sections or list(SECTIONS)
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise ConfigError(f"--section {unknown[0]}: unknown (known: {', '.join(SECTIONS)})")
    report: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or
                                          platform.machine(), "node": platform.node(),
                                          "python_packages": versions.python_versions(),
                                          "debian_packages": versions.debian_versions()},
                              "quick": quick, "sections": {}}
    failed = 0
    for name in wanted:
        mod = importlib.import_module(SECTIONS[name])
        t0 = time.monotonic()
        try:
            result = mod.run(quick=quick)
        except Exception as exc:  # one broken section must not hide the others
            result = {"error": f"{type(exc).__name__}: {exc}"}
            failed += 1
        result.setdefault("wall_s", round(time.monotonic() - t0, 1))
        report["sections"][name] = result
        print_fn(f"\n== {name}  ({result['wall_s']} s)")
        print_fn(mod.format_table(result) if "error" not in result else f"{name}: {result['error']}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2, default=str))
        print_fn(f"\nreport written to {json_out}")
    return 1 if failed else 0
