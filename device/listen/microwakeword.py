"""microWakeWord run through our interpreter shim.

Pipeline (the same arithmetic as pymicro_wakeword.MicroWakeWord +
MicroWakeWordFeatures, so the probabilities are bit-identical):

  audio --160-sample (10 ms) blocks--> TFLite-Micro audio frontend (pymicro_features.MicroFrontend)
        --> 40 features per 10 ms (30 ms windows; the first comes after 30 ms)
        --every `stride` features (the model's input dim 1, 3 for the builtins)-->
        quantise round(f / scale + zero_point) to int8 --> streaming model (it keeps its own
        state between calls) --> uint8 probability, dequantised
        --mean of the last `sliding_window` probabilities--> score, fires when > threshold

Kernels: by default (exact=True) the models run on the TFLite C library that
pymicro_wakeword ships and runs them on (the interpreter shim's `tflite_c`
runtime, in device/listen/_private.py): the same int8 kernels, so bit-identical
probabilities, 10-15 us a call.
With another runtime forced (argument or VOXBOX_TFLITE_RUNTIME), or without that
library, exact mode uses LiteRT's builtin kernels without the XNNPACK delegate:
bit-identical too, but ~3x slower a call (25-42 us), about the reference's CPU in all.
exact=False uses XNNPACK, ~8x faster a call (6 us), but its int8 arithmetic
differs by a quantisation step now and then, and the streaming state carries
that forward: windowed scores drift up to ~0.05 from the reference's, which can
move a detection near the cutoff; and its kernels depend on the CPU: under an emulated
Armv9-class CPU its scores stayed at 0.0 where the reference reaches 0.87-0.99 (Cortex-A53,
A72 and A76 are fine). So exact stays the default; XNNPACK is not used until measured on
real recordings on the boards voxbox supports.
Quantised features are clipped to the int8 range (the reference lets them wrap
around on very loud input; identical otherwise). The frontend is shared by all
wake words; each word adds one small model call every 30 ms. Streaming state
cannot be cleared in place, so reset() reloads the models (as the reference does).
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from device.errors import ConfigError, ModelError
from device.listen.interpreter import (
    ENV_RUNTIME,
    Interpreter,
    available_runtimes,
    load_interpreter,
)
from device.listen.manifest import verify
from device.listen.wakeword import SAMPLE_RATE, Triggers, WakeDetection, WakeModelSpec

BLOCK_SAMPLES = 160  # 10 ms: one frontend step
NUM_FEATURES = 40


def _frontend() -> Any:
    """pymicro_features' public MicroFrontend (the reference's audio frontend)."""
    try:
        return importlib.import_module("pymicro_features").MicroFrontend()
    except ImportError as exc:
        raise ModelError(f"microWakeWord needs the pymicro-features package ({exc})") from None


class _Model:
    def __init__(self, spec: WakeModelSpec, threads: int, runtime: str | None, exact: bool) -> None:
        self.spec = spec
        self.name = spec.name
        self._threads, self._runtime, self._exact = threads, runtime, exact
        model = self._load()
        shape, out_shape = model.input_shape(0), model.output_shape(0)
        details_in, details_out = model.input_details[0], model.output_details[0]
        if (len(shape) != 3 or shape[0] != 1 or shape[2] != NUM_FEATURES or not 1 <= shape[1] <= 100
                or details_in["dtype"] not in (np.int8, np.uint8)):
            raise ModelError(f"wake model {spec.path}: input {list(shape)} {np.dtype(details_in['dtype']).name} is "
                             f"not a streaming microWakeWord model ([1, stride, {NUM_FEATURES}] int8)")
        if int(np.prod(out_shape)) != 1 or details_out["dtype"] not in (np.int8, np.uint8):
            raise ModelError(f"wake model {spec.path}: output {list(out_shape)} is not one quantised probability")
        (self.in_scale, self.in_zero), (self.out_scale, self.out_zero) = (details_in["quantization"],
                                                                          details_out["quantization"])
        if not self.in_scale or not self.out_scale:
            raise ModelError(f"wake model {spec.path}: tensors are not quantised (no scale)")
        if spec.manifest is not None:
            verify(spec.manifest, shape, out_shape)
        self.stride = shape[1]
        self.in_dtype = details_in["dtype"]
        info = np.iinfo(self.in_dtype)
        self.in_range = (info.min, info.max)
        self.window = max(1, int(spec.sliding_window))
        self.runtime = model.runtime
        self.model = model
        self._probs: deque[float] = deque(maxlen=self.window)
        self._fresh = True
        # The reference's float32 dequantisation, (q - zero) * scale, as a table over all q.
        out_info = np.iinfo(details_out["dtype"])
        levels = np.arange(out_info.min, out_info.max + 1).astype(np.float32)
        self._dequant = [float(v) for v in (levels - self.out_zero) * self.out_scale]
        self._dequant_base = out_info.min

    def _load(self) -> Interpreter:
        return load_interpreter(self.spec.path, self._threads, self._runtime, xnnpack=not self._exact)

    def reset(self) -> None:
        if not self._fresh:  # the streaming state lives in the interpreter: start a new one
            self.model = self._load()
            self._fresh = True
        self._probs.clear()

    @property
    def quant_key(self) -> tuple:
        """Models with the same key take the same quantised input (computed once per step)."""
        return (self.stride, self.in_scale, self.in_zero, np.dtype(self.in_dtype).str)

    def quantiser(self) -> Any:
        """A function float64 [stride, 40] → [1, stride, 40] in the input dtype: round(f / scale + zero),
        clipped. It writes into buffers of its own and returns the same array every call."""
        scale, zero, (lo, hi) = self.in_scale, self.in_zero, self.in_range
        buf = np.empty((self.stride, NUM_FEATURES), dtype=np.float64)
        out = np.empty((1, self.stride, NUM_FEATURES), dtype=self.in_dtype)
        divide, add, rint, clip = np.divide, np.add, np.rint, np.clip

        def quantise(features: np.ndarray) -> np.ndarray:
            divide(features, scale, out=buf)
            add(buf, zero, out=buf)
            rint(buf, out=buf)  # rint and np.round both round half to even
            clip(buf, lo, hi, out=buf)
            out[0] = buf  # exact: whole numbers inside the dtype's range
            return out

        return quantise

    def step(self, quantised: np.ndarray) -> float | None:
        """One model call; the mean of the last `sliding_window` probabilities, None until it is full."""
        self._fresh = False
        probs = self._probs
        probs.append(self._dequant[self.model.run(quantised).item() - self._dequant_base])
        if len(probs) < self.window:
            return None
        return sum(probs) / self.window


class MicroWakeWordDetector:
    """Several microWakeWord models on one shared audio frontend. Feed int16 16 kHz mono."""

    def __init__(self, specs: Sequence[WakeModelSpec], *, threshold: float = 0.5, trigger_level: int = 1,
                 refractory_s: float = 2.0, threads: int = 1, runtime: str | None = None,
                 exact: bool = True) -> None:
        if not specs:
            raise ConfigError("config wake.words: at least one wake word or wake.models entry is needed")
        self._fe = _frontend()
        if runtime is None and exact and not os.environ.get(ENV_RUNTIME) and "tflite_c" in available_runtimes():
            runtime = "tflite_c"  # the reference's own library: its int8 kernels, 3x faster than LiteRT's exact ones
        self._models = [_Model(s, threads, runtime, exact) for s in specs]
        self.names: list[str] = [m.name for m in self._models]
        self.runtime = self._models[0].runtime
        self._triggers = Triggers(specs, threshold, trigger_level, refractory_s, strict=True)
        self._stride = int(np.lcm.reduce([m.stride for m in self._models]))  # feature ring size
        self._feats = np.zeros((self._stride, NUM_FEATURES), dtype=np.float64)
        # Models sharing a quantised input: (stride, quantiser, [(name, step)]), in model order.
        groups: dict[tuple, tuple[int, Any, list]] = {}
        for m in self._models:
            groups.setdefault(m.quant_key, (m.stride, m.quantiser(), []))[2].append((m.name, m.step))
        self._groups = list(groups.values())
        self.last_scores: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self._fe.reset()
        for m in self._models:
            m.reset()
        self._triggers.reset()
        self._pending = b""  # int16 bytes short of a 10 ms block
        self._fed = 0  # samples fed since reset
        self._n_feats = 0  # features since reset
        self.last_scores = {name: 0.0 for name in self.names}

    def scores(self, pcm16: np.ndarray) -> list[tuple[float, dict[str, float]]]:
        """Feed audio; return (t, {word: score}) for every model step (every `stride` x 10 ms).

        A word is missing from a step's dict until its sliding window is full, or when its
        stride does not divide that step.
        """
        samples = np.asarray(pcm16)
        if samples.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {samples.dtype}")
        raw = samples.reshape(-1).tobytes()
        if self._pending:
            raw = self._pending + raw
        n = len(raw)
        start = self._fed - len(self._pending) // 2
        steps: list[tuple[float, dict[str, float]]] = []
        pos = 0  # in bytes
        block = 2 * BLOCK_SAMPLES
        process = self._fe.process_samples
        ring, ring_size, groups, n_feats = self._feats, self._stride, self._groups, self._n_feats
        while pos + block <= n:
            out_fe = process(raw[pos : pos + block])
            features = out_fe.features
            pos += 2 * max(int(out_fe.samples_read), 1)
            if not features:
                continue
            ring[n_feats % ring_size] = features
            n_feats += 1
            out: dict[str, float] = {}
            for stride, quantise, models in groups:
                if n_feats % stride == 0:
                    k = (n_feats - stride) % ring_size
                    quantised = quantise(ring[k : k + stride])
                    for name, step in models:
                        prob = step(quantised)
                        if prob is not None:
                            out[name] = prob
            if out:
                self.last_scores.update(out)
                steps.append(((start + pos // 2) / SAMPLE_RATE, out))
        self._n_feats = n_feats
        self._pending = raw[pos:]
        self._fed = start + n // 2
        return steps

    def process(self, pcm16: np.ndarray) -> list[WakeDetection]:
        detections = []
        for t, scores in self.scores(pcm16):
            for i, name in enumerate(self.names):
                if name in scores:
                    d = self._triggers.update(i, t, scores[name])
                    if d is not None:
                        detections.append(d)
        return detections
