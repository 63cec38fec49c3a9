"""The timeline: a JSON Lines event log on the mic sample clock (a contract checked from outside).

Every record has `t` (seconds on the mic sample clock) and `event`. The writer
never raises into the audio path and never blocks it: `log()` serialises the record
and hands the line to a writer thread through a bounded queue (the file is written
and flushed there, in batches). If the disk stalls and the queue fills, lines are
dropped and counted (`dropped`), memory stays bounded; a failed write is counted
(`write_errors`), not thrown. `close()` writes every line still queued.

Records are kept in memory only when asked (`keep=True`: simulate, benches, tests
read `.records`); the daemon keeps none, so a long `voxbox run` does not grow.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

MAX_PENDING = 10000  # lines queued for the writer (~1-2 MB) before new ones are dropped


class TextSink(Protocol):
    """Where the lines go when not a path: an open text file, sys.stdout, a test's stand-in."""

    def write(self, s: str, /) -> int: ...

    def flush(self) -> None: ...


class Timeline:
    def __init__(self, path: str | Path | TextSink | None = None,
                 echo: Callable[[dict[str, Any]], None] | None = None, *, keep: bool = False,
                 max_pending: int = MAX_PENDING) -> None:
        """`path`: a file to write (created with its folders), an open text stream, or None for no file.
        `echo`: called with every record, on the caller's thread. `keep`: keep every record in `.records`."""
        self._fh: TextSink | None = None
        self._owned = False
        if isinstance(path, (str, Path)):
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            fh: IO[str] = p.open("w", encoding="utf-8")
            self._fh, self._owned = fh, True
        elif path is not None:
            self._fh = path
        self._echo = echo
        self._keep = keep
        self._records: list[dict[str, Any]] = []
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=max(1, max_pending))
        self._writer: threading.Thread | None = None
        if self._fh is not None:
            self._writer = threading.Thread(target=self._write_loop, args=(self._fh,), name="timeline-writer",
                                            daemon=True)
            self._writer.start()
        self.write_errors = 0
        self.dropped = 0  # lines not written because the writer fell MAX_PENDING behind

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every record logged so far, in order (only with keep=True)."""
        if not self._keep:
            raise RuntimeError("Timeline(keep=True) keeps records; this one only writes them")
        return self._records

    def log(self, t: float, event: str, **fields: Any) -> dict[str, Any]:
        """Record `event` at mic time `t` (seconds) with `fields` (JSON-able); never blocks."""
        rec: dict[str, Any] = {"t": round(float(t), 4), "event": event, **fields}
        if self._keep:
            self._records.append(rec)
        if self._writer is not None:
            try:
                self._lines.put_nowait(json.dumps(rec, separators=(",", ":")) + "\n")
            except queue.Full:
                self.dropped += 1
        if self._echo is not None:
            self._echo(rec)
        return rec

    def _write_loop(self, fh: TextSink) -> None:
        lines = self._lines
        while True:
            line = lines.get()
            if line is None:
                lines.task_done()
                break
            try:
                fh.write(line)
                if lines.empty():  # a batch is written: make it visible (tail -f, a crash later)
                    fh.flush()
            except (OSError, ValueError):
                self.write_errors += 1
            finally:
                lines.task_done()
        try:
            fh.flush()
        except (OSError, ValueError):
            self.write_errors += 1

    def wait_written(self) -> None:
        """Block until every line logged so far is written (tests; never on the audio path)."""
        if self._writer is not None:
            self._lines.join()

    def close(self) -> None:
        """Write every queued line, stop the writer and close a file this timeline opened."""
        if self._writer is None:
            return
        self._lines.put(None)  # after the last line: blocks only while the queue is full
        self._writer.join()
        self._writer = None
        if self._owned and isinstance(self._fh, io.TextIOBase):
            try:
                self._fh.close()
            except OSError:
                self.write_errors += 1
        self._fh = None


def read(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
