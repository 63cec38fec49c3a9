"""A thin, uniform wrapper over the TFLite runtimes we can use on a Pi.

LiteRT (`ai_edge_litert`) is preferred; `tflite_runtime` is the fallback. A third,
`tflite_c`, is the TFLite C library pymicro_wakeword ships, driven through ctypes
(device/listen/_private.py, the one module that reaches into a dependency): never picked by
default, it is what microWakeWord's exact mode asks for first, since its int8 kernels
are the reference's own (bit-identical) and ~3x faster than LiteRT's exact ones. The
runtime can be forced with the `runtime` argument or the environment variable
VOXBOX_TFLITE_RUNTIME (`ai_edge_litert` / `litert`, `tflite_runtime` /
`tflite-runtime`, `tflite_c`). Every failure to load a model becomes one ModelError line.
"""

from __future__ import annotations

import contextlib
import importlib
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
        from device.listen import _private

        return _private.TfLiteC if _private.tflite_c_library() is not None else None
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
