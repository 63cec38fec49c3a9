"""A thin, uniform wrapper over the TFLite runtimes we can use on a Pi.

LiteRT (`ai_edge_litert`) is preferred; `tflite_runtime` is the fallback. A third,
`tflite_c`, is the TFLite C library pymicro_wakeword ships
(pymicro_wakeword/lib/libtensorflowlite_c.so) driven through ctypes: never picked by
default, it is what microWakeWord's exact mode asks for first, since its int8 kernels
are the reference's own (bit-identical) and ~3x faster than LiteRT's exact ones. The
runtime can be forced with the `runtime` argument or the environment variable
VOXBOX_TFLITE_RUNTIME (`ai_edge_litert` / `litert`, `tflite_runtime` /
`tflite-runtime`, `tflite_c`). Every failure to load a model becomes one ModelError line.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import io
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.errors import ModelError
from device.quiet import quiet_stderr

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tflite_c")
DEFAULT_RUNTIMES = RUNTIMES[:2]  # tried in this order when none is forced
_MODULES = {"ai_edge_litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}
_ALIASES = {"litert": "ai_edge_litert", "ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime",
            "tflite": "tflite_runtime", "tflite-c": "tflite_c", "libtensorflowlite_c": "tflite_c"}
ENV_RUNTIME = "VOXBOX_TFLITE_RUNTIME"


def _normalise_runtime(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in RUNTIMES:
        raise ModelError(f"TFLite runtime {name!r} is unknown (use one of: {', '.join(RUNTIMES)})")
    return key


def _import_runtime(name: str) -> Any:
    """The runtime's Interpreter class, or None if it cannot be imported."""
    if name == "tflite_c":
        return _TfLiteC if _c_library() is not None else None
    try:
        # tflite_runtime built for numpy 1.x prints a long warning on stderr under numpy 2
        with contextlib.redirect_stderr(io.StringIO()):
            module = importlib.import_module(_MODULES[name])
        return module.Interpreter
    except Exception:  # ImportError, or a broken binary wheel
        return None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"model {path}: no such file")
    if not path.is_file():
        raise ModelError(f"model {path}: not a file")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelError(f"model {path}: cannot read ({exc.strerror})") from None
    if len(head) < 8:
        raise ModelError(f"model {path}: file is empty or truncated")
    if head[4:8] != b"TFL3":  # the flatbuffer file identifier of every .tflite
        raise ModelError(f"model {path}: not a TFLite model (no TFL3 identifier)")
    root = int.from_bytes(head[:4], "little")
    if root >= path.stat().st_size:
        raise ModelError(f"model {path}: truncated TFLite file")


class Interpreter:
    """One loaded model. Inputs/outputs are addressed by position (0, 1, ...)."""

    def __init__(self, raw: Any, runtime: str, path: Path) -> None:
        self._raw = raw
        self.runtime = runtime
        self.path = path
        self._refresh()

    def _refresh(self) -> None:
        self.input_details: list[dict[str, Any]] = self._raw.get_input_details()
        self.output_details: list[dict[str, Any]] = self._raw.get_output_details()
        self._in_idx = [d["index"] for d in self.input_details]
        self._in_dtype = [d["dtype"] for d in self.input_details]
        self._out_idx = [d["index"] for d in self.output_details]

    def input_shape(self, i: int = 0) -> tuple[int, ...]:
        return tuple(int(x) for x in self.input_details[i]["shape"])

    def output_shape(self, i: int = 0) -> tuple[int, ...]:
        return tuple(int(x) for x in self.output_details[i]["shape"])

    def resize_input(self, i: int, shape: Sequence[int]) -> None:
        """Resize input `i` (a no-op if it already has this shape) and reallocate tensors."""
        try:
            self._raw.resize_tensor_input(self._in_idx[i], list(shape))
            with quiet_stderr():  # (re)allocating applies XNNPACK, which prints an INFO line
                self._raw.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model {self.path}: cannot resize input {i} to {list(shape)} ({exc})") from None
        self._refresh()

    def set_input(self, value: np.ndarray, i: int = 0) -> None:
        """Copy `value` into input `i` (it must have the input's shape)."""
        if value.dtype != self._in_dtype[i]:
            value = value.astype(self._in_dtype[i])
        self._raw.set_tensor(self._in_idx[i], value)

    def invoke(self) -> None:
        self._raw.invoke()

    def get_output(self, i: int = 0) -> np.ndarray:
        """A copy of output `i`."""
        return self._raw.get_tensor(self._out_idx[i])

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """set_input for each input, invoke, return output 0."""
        for i, value in enumerate(inputs):
            self.set_input(value, i)
        self.invoke()
        return self.get_output(0)


def available_runtimes() -> list[str]:
    """Runtimes that can be imported here, in order of preference."""
    return [name for name in RUNTIMES if _import_runtime(name) is not None]


def load_interpreter(path: str | Path, threads: int = 1, runtime: str | None = None, *,
                     xnnpack: bool = True) -> Interpreter:
    """Load a .tflite model; ModelError (one line) if the file or runtime is unusable.

    xnnpack=False runs the builtin kernels without the default XNNPACK delegate: for
    int8 models this is bit-exact with the TFLite C library the reference engines use.
    The tflite_c runtime is that library, with its defaults (xnnpack is not applied).
    """
    path = Path(path)
    wanted = runtime or os.environ.get(ENV_RUNTIME) or ""
    candidates = [_normalise_runtime(wanted)] if wanted else list(DEFAULT_RUNTIMES)
    _check_file(path)
    cls, name = None, ""
    for name in candidates:
        cls = _import_runtime(name)
        if cls is not None:
            break
    if cls is None:
        raise ModelError(f"no usable TFLite runtime (tried {', '.join(candidates)}); install ai-edge-litert"
                         + (" (tflite_c comes with pymicro-wakeword)" if name == "tflite_c" else ""))
    if name == "tflite_runtime":
        _probe_in_subprocess(path, name)
    options = {}
    if not xnnpack and name in _MODULES:
        resolver = getattr(sys.modules.get(_MODULES[name]), "OpResolverType", None)
        if resolver is not None:
            options["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with quiet_stderr():  # LiteRT prints an INFO line when it sets up XNNPACK
            raw = cls(model_path=str(path), num_threads=max(1, int(threads)), **options)
    except (ValueError, RuntimeError, SystemError, ImportError) as exc:
        raise ModelError(f"model {path}: cannot load with {name} ({_first_line(exc)})") from None
    try:
        with quiet_stderr():
            raw.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        # Models with dynamic input dims (e.g. openWakeWord's melspectrogram, [-1, -1])
        # may only be allocatable once resize_input() has given them a real shape.
        if not any(-1 in d.get("shape_signature", ()) for d in raw.get_input_details()):
            raise ModelError(f"model {path}: cannot allocate tensors ({_first_line(exc)})") from None
    return Interpreter(raw, name, path)


_PROBED: dict[tuple[str, int, int], str] = {}


def _probe_in_subprocess(path: Path, runtime: str) -> None:
    """Load the model once in a child process first: tflite_runtime 2.14 has no flatbuffer
    verifier and segfaults on some damaged files, which would take the daemon down with it."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PROBED:
        # Construct and allocate; a Python-level allocate error (dynamic shapes before a
        # resize) is for the real load to judge, only a crash or a failed parse counts here.
        code = ("import sys\nfrom tflite_runtime.interpreter import Interpreter as I\n"
                "i = I(model_path=sys.argv[1])\ntry:\n    i.allocate_tensors()\nexcept Exception:\n    pass\n")
        try:
            r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
            _PROBED[key] = "" if r.returncode == 0 else (
                f"crashes {runtime} (signal {-r.returncode})" if r.returncode < 0 else
                (r.stderr.strip().splitlines() or ["cannot load"])[-1])
        except (OSError, subprocess.TimeoutExpired) as exc:
            _PROBED[key] = f"probe failed ({exc})"
    if _PROBED[key]:
        raise ModelError(f"model {path}: {runtime} cannot load it: {_PROBED[key]}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------- the TFLite C library

class _QuantParams(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


# TfLiteType -> numpy dtype (c/c_api_types.h)
_C_TYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8,
            10: np.float16, 11: np.float64}
_C_LIB: list[Any] = []  # [CDLL or None] once looked for


def _c_library() -> Any:
    """libtensorflowlite_c from the pymicro_wakeword package (not imported), typed; None if absent."""
    if not _C_LIB:
        lib = None
        spec = importlib.util.find_spec("pymicro_wakeword")
        if spec is not None and spec.submodule_search_locations:
            found = sorted(Path(next(iter(spec.submodule_search_locations)), "lib").glob("*tensorflowlite_c.*"))
            try:
                lib = ctypes.CDLL(str(found[0])) if found else None
            except OSError:
                lib = None
        if lib is not None:
            vp, i32 = ctypes.c_void_p, ctypes.c_int32
            for fn, args, res in [
                ("TfLiteModelCreateFromFile", [ctypes.c_char_p], vp), ("TfLiteModelDelete", [vp], None),
                ("TfLiteInterpreterOptionsCreate", [], vp), ("TfLiteInterpreterOptionsDelete", [vp], None),
                ("TfLiteInterpreterOptionsSetNumThreads", [vp, i32], None),
                ("TfLiteInterpreterCreate", [vp, vp], vp), ("TfLiteInterpreterDelete", [vp], None),
                ("TfLiteInterpreterAllocateTensors", [vp], ctypes.c_int),
                ("TfLiteInterpreterInvoke", [vp], ctypes.c_int),
                ("TfLiteInterpreterResizeInputTensor", [vp, i32, ctypes.POINTER(i32), i32], ctypes.c_int),
                ("TfLiteInterpreterGetInputTensorCount", [vp], i32),
                ("TfLiteInterpreterGetOutputTensorCount", [vp], i32),
                ("TfLiteInterpreterGetInputTensor", [vp, i32], vp),
                ("TfLiteInterpreterGetOutputTensor", [vp, i32], vp),
                ("TfLiteTensorType", [vp], i32), ("TfLiteTensorNumDims", [vp], i32),
                ("TfLiteTensorDim", [vp, i32], i32), ("TfLiteTensorByteSize", [vp], ctypes.c_size_t),
                ("TfLiteTensorData", [vp], vp), ("TfLiteTensorName", [vp], ctypes.c_char_p),
                ("TfLiteTensorQuantizationParams", [vp], _QuantParams),
            ]:
                f = getattr(lib, fn)
                f.argtypes, f.restype = args, res
        _C_LIB.append(lib)
    return _C_LIB[0]


class _TfLiteC:
    """One model on the TFLite C library, with the part of tf.lite.Interpreter's API the shim
    uses. Tensors are numpy views on the interpreter's buffers, re-made after every allocation."""

    def __init__(self, model_path: str, num_threads: int = 1) -> None:
        self._lib = lib = _c_library()
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
