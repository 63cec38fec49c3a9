"""The one module that reaches into dependencies' internals, because it is worth its speed.

pymicro-wakeword (pinned >=2,<3 in pyproject.toml) runs its models on a TFLite C library it
ships inside the package (`pymicro_wakeword/lib/*tensorflowlite_c.*`, found by a glob as the
package itself does). Its public API (`MicroWakeWord.process_streaming_prob`) runs one model
at a time with its own quantisation and a statistics.mean per step; microWakeWord's exact
mode here drives that same library through TFLite's C API directly: the same int8 kernels,
bit-identical probabilities, at about half the reference's CPU (measured: CPU ratio to the
reference 1.02 on LiteRT's builtin kernels, 0.55 on this library).

If the library moves or loses a symbol we bind, `tflite_c_library()` returns None (exact mode
falls back to LiteRT's builtin kernels, bit-identical too, slower) and `internals_moved()`
names what moved; tests/test_listen_private.py fails loudly on it.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "pymicro_wakeword"
LIBRARY_GLOB = "lib/*tensorflowlite_c.*"  # inside the package directory
SUPPORTED_MAJOR = 2  # pyproject.toml pins pymicro-wakeword below 3


class _QuantParams(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


_VP, _I32 = ctypes.c_void_p, ctypes.c_int32
# The TFLite C API functions TfLiteC uses (tensorflow/lite/core/c/c_api.h): name, argtypes, restype.
C_API: list[tuple[str, list[Any], Any]] = [
    ("TfLiteModelCreateFromFile", [ctypes.c_char_p], _VP), ("TfLiteModelDelete", [_VP], None),
    ("TfLiteInterpreterOptionsCreate", [], _VP), ("TfLiteInterpreterOptionsDelete", [_VP], None),
    ("TfLiteInterpreterOptionsSetNumThreads", [_VP, _I32], None),
    ("TfLiteInterpreterCreate", [_VP, _VP], _VP), ("TfLiteInterpreterDelete", [_VP], None),
    ("TfLiteInterpreterAllocateTensors", [_VP], ctypes.c_int),
    ("TfLiteInterpreterInvoke", [_VP], ctypes.c_int),
    ("TfLiteInterpreterResizeInputTensor", [_VP, _I32, ctypes.POINTER(_I32), _I32], ctypes.c_int),
    ("TfLiteInterpreterGetInputTensorCount", [_VP], _I32),
    ("TfLiteInterpreterGetOutputTensorCount", [_VP], _I32),
    ("TfLiteInterpreterGetInputTensor", [_VP, _I32], _VP),
    ("TfLiteInterpreterGetOutputTensor", [_VP, _I32], _VP),
    ("TfLiteTensorType", [_VP], _I32), ("TfLiteTensorNumDims", [_VP], _I32),
    ("TfLiteTensorDim", [_VP, _I32], _I32), ("TfLiteTensorByteSize", [_VP], ctypes.c_size_t),
    ("TfLiteTensorData", [_VP], _VP), ("TfLiteTensorName", [_VP], ctypes.c_char_p),
    ("TfLiteTensorQuantizationParams", [_VP], _QuantParams),
]

# TfLiteType -> numpy dtype (c/c_api_types.h)
_C_TYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8,
            10: np.float16, 11: np.float64}
_C_LIB: list[Any] = []  # [CDLL or None] once looked for
_MOVED: list[str] = []  # what internals_moved() reports, filled by the look-up


def library_path() -> Path | None:
    """Where pymicro_wakeword keeps its TFLite C library (the package is not imported); None if
    the package is not installed or the library is not there."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob(LIBRARY_GLOB))
    return found[0] if found else None


def tflite_c_library() -> Any:
    """The TFLite C library, its C API typed (ctypes.CDLL); None if absent or not as expected."""
    if not _C_LIB:
        lib = None
        path = library_path()
        if path is None:
            if importlib.util.find_spec(PACKAGE) is not None:
                _MOVED.append(f"{PACKAGE} no longer ships {LIBRARY_GLOB} in its package directory")
        else:
            try:
                lib = ctypes.CDLL(str(path))
                for fn, args, res in C_API:
                    f = getattr(lib, fn)
                    f.argtypes, f.restype = args, res
            except (OSError, AttributeError) as exc:  # cannot load, or a symbol we bind is gone
                _MOVED.append(f"{path} is not the TFLite C library TfLiteC binds ({exc})")
                lib = None
        _C_LIB.append(lib)
    return _C_LIB[0]


def internals_moved() -> list[str]:
    """What no longer is where this module expects it (empty when all is in place, or when
    pymicro_wakeword is not installed at all)."""
    tflite_c_library()
    moved = list(_MOVED)
    try:
        version = importlib.metadata.version("pymicro-wakeword")
    except importlib.metadata.PackageNotFoundError:
        return moved
    if int(version.split(".")[0]) != SUPPORTED_MAJOR:
        moved.append(f"pymicro-wakeword {version} is not major version {SUPPORTED_MAJOR}: "
                     "check device/listen/_private.py against it, then move the pin")
    return moved


class TfLiteC:
    """One model on the TFLite C library, with the part of tf.lite.Interpreter's API the shim
    uses. Tensors are numpy views on the interpreter's buffers, re-made after every allocation."""

    def __init__(self, model_path: str, num_threads: int = 1) -> None:
        self._lib = lib = tflite_c_library()
        self._model = self._interp = None
        self._model = lib.TfLiteModelCreateFromFile(model_path.encode())
        if not self._model:
            raise ValueError("the TFLite C library cannot parse it")
        options = lib.TfLiteInterpreterOptionsCreate()
        lib.TfLiteInterpreterOptionsSetNumThreads(options, int(num_threads))
        self._interp = lib.TfLiteInterpreterCreate(self._model, options)
        lib.TfLiteInterpreterOptionsDelete(options)
        if not self._interp:
            raise ValueError("the TFLite C library cannot build an interpreter for it")
        n_in = lib.TfLiteInterpreterGetInputTensorCount(self._interp)
        n_out = lib.TfLiteInterpreterGetOutputTensorCount(self._interp)
        # tensor "index": inputs 0..n_in-1, outputs n_in.. (only this shim's own bookkeeping)
        self._tensors = ([lib.TfLiteInterpreterGetInputTensor(self._interp, i) for i in range(n_in)]
                         + [lib.TfLiteInterpreterGetOutputTensor(self._interp, i) for i in range(n_out)])
        self._n_in = n_in
        self._views: list[np.ndarray | None] = [None] * len(self._tensors)

    def __del__(self) -> None:
        if self._interp:
            self._lib.TfLiteInterpreterDelete(self._interp)
        if self._model:
            self._lib.TfLiteModelDelete(self._model)

    def _detail(self, index: int) -> dict[str, Any]:
        lib, t = self._lib, self._tensors[index]
        kind = lib.TfLiteTensorType(t)
        if kind not in _C_TYPES:
            raise ValueError(f"tensor type {kind} is not supported by this shim")
        shape = np.array([lib.TfLiteTensorDim(t, d) for d in range(lib.TfLiteTensorNumDims(t))], dtype=np.int32)
        q = lib.TfLiteTensorQuantizationParams(t)
        return {"name": (lib.TfLiteTensorName(t) or b"").decode(), "index": index, "shape": shape,
                "shape_signature": shape.copy(), "dtype": _C_TYPES[kind],
                "quantization": (float(q.scale), int(q.zero_point))}

    def get_input_details(self) -> list[dict[str, Any]]:
        return [self._detail(i) for i in range(self._n_in)]

    def get_output_details(self) -> list[dict[str, Any]]:
        return [self._detail(i) for i in range(self._n_in, len(self._tensors))]

    def resize_tensor_input(self, index: int, shape: Sequence[int]) -> None:
        dims = (ctypes.c_int32 * len(shape))(*shape)
        if self._lib.TfLiteInterpreterResizeInputTensor(self._interp, index, dims, len(shape)) != 0:
            raise ValueError(f"cannot resize input {index}")
        self._views = [None] * len(self._tensors)

    def allocate_tensors(self) -> None:
        self._views = [None] * len(self._tensors)
        if self._lib.TfLiteInterpreterAllocateTensors(self._interp) != 0:
            raise RuntimeError("AllocateTensors failed")

    def _view(self, index: int) -> np.ndarray:
        view = self._views[index]
        if view is None:
            lib, t = self._lib, self._tensors[index]
            d = self._detail(index)
            size, ptr = lib.TfLiteTensorByteSize(t), lib.TfLiteTensorData(t)
            if not ptr:
                raise RuntimeError("tensors are not allocated")
            buf = (ctypes.c_char * size).from_address(ptr)
            view = self._views[index] = np.frombuffer(buf, dtype=d["dtype"]).reshape(d["shape"])
        return view

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        view = self._view(index)
        if value.shape != view.shape:
            raise ValueError(f"cannot set tensor: got shape {list(value.shape)}, want {list(view.shape)}")
        view[...] = value

    def invoke(self) -> None:
        if self._lib.TfLiteInterpreterInvoke(self._interp) != 0:
            raise RuntimeError("Invoke failed")

    def get_tensor(self, index: int) -> np.ndarray:
        return self._view(index).copy()
