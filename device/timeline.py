"""The timeline: a JSON Lines event log on the mic sample clock (contract in DESIGN.md).

Every record has `t` (seconds on the mic sample clock) and `event`. The writer
never raises into the audio path: a failed write is counted, not thrown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class Timeline:
    def __init__(self, path: str | Path | None = None, echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._fh: IO[str] | None = None
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            self._fh = p.open("w", encoding="utf-8")
        self._echo = echo
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.write_errors = 0

    def log(self, t: float, event: str, **fields: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"t": round(float(t), 4), "event": event, **fields}
        with self._lock:
            self.records.append(rec)
            if self._fh is not None:
                try:
                    self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
                    self._fh.flush()
                except (OSError, ValueError):
                    self.write_errors += 1
        if self._echo is not None:
            self._echo(rec)
        return rec

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
