"""alsa-lib's error lines into the log, counted, instead of raw on stderr.

alsa-lib prints problems itself ("ALSA lib pcm.c:8526:(snd_pcm_recover) underrun occurred")
straight to fd 2 from PortAudio's thread, in the middle of a running daemon. Its public C API
lets a program take them over: `snd_lib_error_set_handler`. Here they go to the log at debug
level, and the xruns among them (underrun/overrun recovered by snd_pcm_recover) are counted
so they reach the timeline's `summary` and the rate-limited journal line with the other
audio counters. On a system without libasound nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger("device.audio.alsa")

# void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
# The variadic tail is not read: the format string says what happened.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)


class AlsaErrors:
    """Counts of what alsa-lib reported since `install()` (read from any thread)."""

    def __init__(self) -> None:
        self.xruns = 0  # underruns and overruns alsa-lib recovered
        self.other = 0  # every other alsa-lib error line
        self._lock = threading.Lock()
        self._handler: object | None = None  # the ctypes callback, kept alive while installed

    def report(self, function: str, message: str) -> None:
        """One alsa-lib error line: counted (an xrun or not) and logged at debug level."""
        xrun = "underrun" in message or "overrun" in message or function == "snd_pcm_recover"
        with self._lock:
            if xrun:
                self.xruns += 1
            else:
                self.other += 1
        log.debug("ALSA lib (%s) %s", function, message)

    def install(self) -> bool:
        """Take over alsa-lib's error output for this process; False where there is no libasound."""
        name = ctypes.util.find_library("asound")
        if name is None:
            return False
        try:
            lib = ctypes.CDLL(name)
            set_handler = lib.snd_lib_error_set_handler
        except (OSError, AttributeError):
            return False

        def handler(file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None) -> None:
            try:
                self.report((function or b"?").decode(errors="replace"),
                            (fmt or b"").decode(errors="replace").strip())
            except Exception:  # noqa: BLE001 - an exception must never cross back into C
                pass

        self._handler = _HANDLER(handler)
        set_handler.argtypes = [_HANDLER]
        set_handler(self._handler)
        return True


ALSA = AlsaErrors()  # one per process: alsa-lib has one handler
