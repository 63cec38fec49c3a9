"""The timeline writes off the caller's thread, keeps records only when asked, and never blocks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from device.timeline import Timeline, read


def test_every_record_reaches_the_file_by_close_and_none_is_kept_unless_asked(tmp_path: Path) -> None:
    tl = Timeline(tmp_path / "sub" / "t.jsonl")
    for i in range(5000):
        tl.log(i / 100, "tick", n=i)
    tl.close()
    recs = read(tmp_path / "sub" / "t.jsonl")
    assert [r["n"] for r in recs] == list(range(5000)) and recs[1] == {"t": 0.01, "event": "tick", "n": 1}
    with pytest.raises(RuntimeError, match="keep=True"):
        _ = tl.records


def test_kept_records_are_the_written_ones(tmp_path: Path) -> None:
    tl = Timeline(tmp_path / "t.jsonl", keep=True)
    tl.log(1.23456, "state", state="idle")
    tl.close()
    assert tl.records == read(tmp_path / "t.jsonl") == [{"t": 1.2346, "event": "state", "state": "idle"}]


class StalledDisk:
    """A stream whose writes hang until released (a disk that stopped answering)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, line: str) -> int:
        self.release.wait()
        self.lines.append(line)
        return len(line)

    def flush(self) -> None:
        pass


def test_a_stalled_disk_neither_blocks_the_caller_nor_grows_memory() -> None:
    disk = StalledDisk()
    tl = Timeline(disk, max_pending=100)
    for i in range(1000):  # returns at once although nothing can be written
        tl.log(i, "tick")
    assert 1000 - 101 <= tl.dropped <= 1000 - 100  # the queue, plus the line the writer holds
    disk.release.set()
    tl.close()
    assert len(disk.lines) == 1000 - tl.dropped
