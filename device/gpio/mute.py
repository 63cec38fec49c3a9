"""The mute state, kept across restarts in a small file under gpio.state_dir.

`MuteStore(dir).muted` is read at start; `set()` writes the file atomically
(temp file + rename). A store whose directory cannot be written still works in
memory and logs once: mute must never fail because of a read-only disk.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("voxbox.gpio")

FILE_NAME = "muted"


class MuteStore:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.muted = self._read()
        self._warned = False

    def _read(self) -> bool:
        try:
            text = self.path.read_text(encoding="ascii").strip().lower()
        except (OSError, UnicodeDecodeError):
            return False
        return text in ("1", "true", "yes", "on")

    def set(self, muted: bool) -> bool:
        """Store `muted`; returns it. Persisting is best effort."""
        self.muted = bool(muted)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".muted.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write("1\n" if self.muted else "0\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._warned:
                log.warning("mute state: cannot write %s (%s); kept in memory only", self.path, exc.strerror or exc)
                self._warned = True
        return self.muted

    def toggle(self) -> bool:
        """Flip and store the mute state; returns the new one."""
        return self.set(not self.muted)
