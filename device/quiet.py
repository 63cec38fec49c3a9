"""Silence fd 2 while native libraries print chatter we cannot turn off.

PortAudio/ALSA print probe failures at start-up, and TFLite prints an INFO line
when it applies its XNNPACK delegate; neither means anything to a user.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_quiet_lock = threading.RLock()
_quiet_depth = 0
_saved_fd: int | None = None


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send fd 2 to /dev/null for the duration (PortAudio/ALSA/JACK chatter)."""
    global _quiet_depth, _saved_fd
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - stderr may be closed or replaced
                pass
            try:
                _saved_fd = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:
                _saved_fd = None
        _quiet_depth += 1
        try:
            yield
        finally:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
