"""SpeexDSP's echo canceller (MDF, a linear adaptive filter), through its C API.

The one module that touches libspeexdsp (Debian/Raspberry Pi OS package `libspeexdsp1`, 1.2.1
in Debian 12 and 13; API in speex/speex_echo.h). Of the bindings on PyPI, speexaec 0.1.3 needs
numpy >= 2 (the tflite-runtime venv runs numpy 1.x) and speexdsp-aec 0.1.0 is proprietary, so
the four functions are called through ctypes here (the same output as speexaec's, bit for bit).

`LinearCanceller` gives the *linear* canceller's output: the mic less the filter's echo
estimate, with no suppressor after it. The user's voice passes it whole during double talk,
where AEC3's output (device/audio/aec.py) hides it for 100-300 ms; the barge-in's residual
detector (device/audio/residualgate.py) listens to it. Not for the uplink: it leaves the echo
AEC3's suppressor takes out.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from device.errors import VoxboxError

_SET_SAMPLING_RATE = 24  # SPEEX_ECHO_SET_SAMPLING_RATE
_GET_IMPULSE_RESPONSE_SIZE = 27  # SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE
_GET_IMPULSE_RESPONSE = 29  # SPEEX_ECHO_GET_IMPULSE_RESPONSE (spx_int32_t[size])
_SONAME = "libspeexdsp.so.1"


def _load() -> ctypes.CDLL:
    """The library, its four echo functions typed; VoxboxError with one line if it is missing."""
    name = ctypes.util.find_library("speexdsp") or _SONAME
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise VoxboxError(f"libspeexdsp not found ({e}): install the Debian package libspeexdsp1") from None
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_destroy.restype = None
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_echo_cancellation.restype = None
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 3
    lib.speex_echo_ctl.restype = ctypes.c_int
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return lib


_lib: ctypes.CDLL | None = None


class LinearCanceller:
    """SpeexDSP MDF echo canceller on int16 frames of `frame` samples at `rate` Hz; its filter
    spans `taps` samples (4096 at 16 kHz: 256 ms, the echo's lag and a living room's tail)."""

    def __init__(self, frame: int = 160, taps: int = 4096, rate: int = 16000) -> None:
        global _lib
        if _lib is None:
            _lib = _load()
        self._lib = _lib
        self.frame = frame
        self._st: ctypes.c_void_p | None = ctypes.c_void_p(_lib.speex_echo_state_init(frame, taps))
        if not self._st or not self._st.value:
            raise VoxboxError("libspeexdsp: speex_echo_state_init failed")
        r = ctypes.c_int(rate)
        _lib.speex_echo_ctl(self._st, _SET_SAMPLING_RATE, ctypes.byref(r))
        # The C call's buffers, their addresses taken once (ndarray.ctypes costs more than the copies)
        self._mic = np.zeros(frame, dtype=np.int16)
        self._ref = np.zeros(frame, dtype=np.int16)
        self._out = np.zeros(frame, dtype=np.int16)
        self._args = (self._st, self._mic.ctypes.data, self._ref.ctypes.data, self._out.ctypes.data)
        self._cancel = _lib.speex_echo_cancellation

    def impulse_response(self) -> np.ndarray:
        """The filter's estimate of the echo path, float64[n] at `rate` (n: the library's size, the
        filter's taps and a frame), in the library's fixed scale: what it learnt of the room (its
        decay is the room's, see device/audio/tail.py decay_from_response). Raises VoxboxError if closed."""
        if self._st is None:
            raise VoxboxError("libspeexdsp: the canceller is closed")
        n = ctypes.c_int(0)
        self._lib.speex_echo_ctl(self._st, _GET_IMPULSE_RESPONSE_SIZE, ctypes.byref(n))
        buf = (ctypes.c_int32 * max(n.value, 0))()
        self._lib.speex_echo_ctl(self._st, _GET_IMPULSE_RESPONSE, buf)
        return np.frombuffer(bytes(buf), dtype=np.int32).astype(np.float64)

    def process(self, mic: np.ndarray, ref: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One frame: mic and the reference played in step (int16[frame] each) -> the mic less
        the echo estimate (int16[frame], a new array; or written into `out`, any dtype, and it)."""
        ms, rs = np.shape(mic), np.shape(ref)
        if ms != (self.frame,) or rs != (self.frame,):
            raise ValueError(f"LinearCanceller: frames of {self.frame} samples, got {ms} and {rs}")
        self._mic[:] = mic
        self._ref[:] = ref
        self._cancel(*self._args)
        if out is None:
            return self._out.copy()
        out[...] = self._out
        return out

    def __del__(self) -> None:
        st = getattr(self, "_st", None)
        if st:
            self._lib.speex_echo_state_destroy(st)
            self._st = None
