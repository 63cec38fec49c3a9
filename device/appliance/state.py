"""Small JSON state files under the state directory (timers, volume).

`write_json` is atomic (temp file + rename: a power cut leaves the old or the new file, never
half of one). `read_json` returns (data, problem): a missing file is (None, None); a file that
cannot be read or parsed is (None, "one line saying why"), and the caller starts afresh.
Both do disk I/O: call them off the audio path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> tuple[Any, str | None]:
    """(data, None), (None, None) when there is no file, or (None, problem) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path}: cannot read ({exc.__class__.__name__})"
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"{path}: corrupt JSON ({str(exc)[:80]})"


class Restorable(Protocol):
    def load_json(self, data: Any) -> str | None: ...


def restore(obj: Restorable, path: Path) -> str | None:
    """Load `obj`'s state from `path`; a problem (one line) when the file was unusable and set aside.

    A corrupt file is renamed to `<name>.corrupt` (kept for a look, out of the way) and `obj`
    keeps its fresh state: the device starts without the lost timers rather than not at all.
    """
    data, problem = read_json(path)
    if data is not None:
        problem = obj.load_json(data)
        if problem:
            problem = f"{path}: {problem}"
    if problem:
        try:
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            pass
    return problem
