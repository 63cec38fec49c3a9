"""openWakeWord run through our interpreter shim.

Pipeline (the same maths as pyopen_wakeword.OpenWakeWordFeatures/OpenWakeWord,
so the scores match the reference engine):

  audio --1760-sample windows every 1280 samples (80 ms)--> melspectrogram.tflite
        --> 8 mel frames x 32, scaled mels/10 + 2
        --76-frame windows every 8 frames--> embedding_model.tflite --> one 96-d embedding per 80 ms
        --last N embeddings (N = the classifier's input, 16 for the builtins)--> classifier --> score

The reference starts every stream with 8 s of digital silence already queued
("autofill"). We reproduce its state exactly but cheaply: the silence windows
all give the same mel block and embedding, computed once at construction, so
reset() only copies arrays. The mel and embedding stages are shared by all
wake words; each word only adds one small classifier per 80 ms step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from device.config import WakeSettings
from device.errors import ConfigError, ModelError
from device.listen.interpreter import load_interpreter
from device.listen.manifest import ModelManifest, bare_manifest, find_manifests, load_manifest, models_dir, verify

SAMPLE_RATE = 16000
STEP_SAMPLES = 1280  # 80 ms
MEL_SAMPLES = 1760  # 80 ms + 30 ms of look-ahead for the 25 ms STFT windows
MEL_FRAMES_PER_STEP = 8
NUM_MELS = 32
EMB_FRAMES = 76  # mel frames per embedding (775 ms)
EMB_FEATURES = 96
_AUDIO_CAP = MEL_SAMPLES + 4 * SAMPLE_RATE  # samples kept before compaction
_EMB_CAP = 256  # embeddings kept before compaction (>= the longest classifier window)


def builtin_models_dir() -> Path:
    """pyopen_wakeword/models inside the installed package (never copied into the repo)."""
    spec = importlib.util.find_spec("pyopen_wakeword")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the pyopen-wakeword package is not installed (it ships the openWakeWord models)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


_FEATURE_MODELS = ("melspectrogram", "embedding_model")


def builtin_wake_words() -> list[str]:
    """Names of the wake words whose models ship with pyopen_wakeword."""
    models = builtin_models_dir()
    return sorted(p.stem for p in models.glob("*.tflite") if p.stem not in _FEATURE_MODELS)


@dataclass(frozen=True)
class WakeModelSpec:
    """One wake word to listen for: its name, its .tflite and how to threshold it.

    threshold / trigger_level None = the detector's defaults (settings). `manifest`
    pins the file (sha256, tensor shapes); the engine checks it after loading.
    """

    name: str
    path: Path
    threshold: float | None = None
    trigger_level: int | None = None
    sliding_window: int = 1
    manifest: ModelManifest | None = None


FALLBACK_THRESHOLD = 0.5  # for a model whose manifest names none


def known_wake_words(engine: str = "openwakeword") -> list[str]:
    """Names usable in wake.words for `engine`: the manifests in models/ (builtins and dropped-in ones)."""
    return sorted(find_manifests(engine))


def _spec(m: ModelManifest, settings: WakeSettings) -> WakeModelSpec:
    # A manifest's threshold / trigger level is the model's own calibration; the config
    # (or `voxbox detect --threshold`) overrides it only when set (0 = the model's own).
    threshold = settings.threshold or m.threshold or FALLBACK_THRESHOLD
    level = settings.trigger_level or m.trigger_level or 1
    return WakeModelSpec(m.name, m.path, threshold, level, m.sliding_window, m)


def resolve_models(settings: WakeSettings) -> list[WakeModelSpec]:
    """settings.words (manifest names in models/) + settings.models (paths) → model specs."""
    engine = settings.engine
    specs: list[WakeModelSpec] = []
    manifests = find_manifests(engine)
    for word in settings.words:
        name = word.strip().lower().replace(" ", "_").replace("-", "_")
        if name not in manifests:
            known = ", ".join(sorted(manifests)) or f"none: no {engine} manifests in {models_dir()}"
            raise ModelError(f"wake word {word!r} is unknown for engine {engine} (known: {known})")
        specs.append(_spec(load_manifest(manifests[name]), settings))
    for entry in settings.models:
        path = Path(entry).expanduser()
        if path.suffix == ".json":
            m = load_manifest(path)
        elif path.suffix == ".tflite":
            m = bare_manifest(path, engine)
        else:
            raise ModelError(f"wake model {entry}: expected a .tflite model or a .json manifest")
        if m.engine != engine:
            raise ModelError(f"wake model {entry}: an {m.engine} model, but wake.engine is {engine}")
        specs.append(_spec(m, settings))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelError(f"wake word {dupes[0]!r} is configured twice")
    return specs


@dataclass(frozen=True)
class WakeDetection:
    wake_word: str
    score: float
    t: float  # seconds of audio fed since creation/reset, at the end of the 80 ms step that fired


class WakeDetector(Protocol):
    """What the agent needs of a wake-word detector (WakeWordDetector, MicroWakeWordDetector)."""

    names: list[str]  # the wake words it listens for

    def process(self, pcm16: np.ndarray) -> list[WakeDetection]:
        """int16 16 kHz mono samples (any length, streaming) → the detections they completed."""
        ...

    def reset(self) -> None:
        """Forget the audio fed so far (a new conversation is over; listen afresh)."""
        ...


class NoWake:
    """A WakeDetector that never fires: conversations are opened by a script, a test or the button."""

    names: list[str] = []

    def process(self, pcm16: np.ndarray) -> list[WakeDetection]:
        return []

    def reset(self) -> None:
        pass


class _Features:
    """Shared melspectrogram + embedding stages, streaming, no per-step allocation."""

    def __init__(self, models_dir: Path, threads: int, runtime: str | None) -> None:
        self.mel = load_interpreter(models_dir / "melspectrogram.tflite", threads, runtime)
        self.mel.resize_input(0, (1, MEL_SAMPLES))
        self.emb = load_interpreter(models_dir / "embedding_model.tflite", threads, runtime)
        self.emb.resize_input(0, (1, EMB_FRAMES, NUM_MELS, 1))
        self.runtime = self.mel.runtime
        self._audio = np.zeros(_AUDIO_CAP, dtype=np.float32)
        self._mel_in = np.zeros((1, MEL_SAMPLES), dtype=np.float32)
        # mel history: the frames of the current 76-frame window plus the newest step
        self._mels = np.zeros((EMB_FRAMES + MEL_FRAMES_PER_STEP, NUM_MELS), dtype=np.float32)
        self._emb_in = np.zeros((1, EMB_FRAMES, NUM_MELS, 1), dtype=np.float32)
        # What 8 s of silence leaves behind (see the module docstring).
        self._silence_mels = self._mel_block(np.zeros(MEL_SAMPLES, dtype=np.float32))
        tiled = np.tile(self._silence_mels, (EMB_FRAMES // MEL_FRAMES_PER_STEP + 1, 1))
        self.silence_embedding = self._embed(tiled[:EMB_FRAMES]).copy()
        self.reset()

    def reset(self) -> None:
        # Stream position 0 is sample 128000 of the reference's virtual stream; its
        # next window starts 1280 samples earlier, in the silence.
        self._audio[:STEP_SAMPLES] = 0.0
        self._end = STEP_SAMPLES  # valid audio is _audio[:_end]
        self._next = 0  # start of the next mel window in _audio
        self._fed = 0  # real samples fed since reset
        # 72 silence mel frames (the most a multiple of 8 below 76) wait for the next window.
        n_wait = EMB_FRAMES // MEL_FRAMES_PER_STEP * MEL_FRAMES_PER_STEP
        self._mels[:n_wait] = np.tile(self._silence_mels, (n_wait // MEL_FRAMES_PER_STEP, 1))
        self._n_mels = n_wait

    def _mel_block(self, window: np.ndarray) -> np.ndarray:
        self._mel_in[0] = window
        out = self.mel.run(self._mel_in).reshape(-1, NUM_MELS)  # a fresh copy: scale in place
        out /= 10.0  # the scaling openWakeWord's embedding model was trained with
        out += 2.0
        return out

    def _embed(self, mels: np.ndarray) -> np.ndarray:
        self._emb_in[0, :, :, 0] = mels
        return self.emb.run(self._emb_in).reshape(EMB_FEATURES)

    def process(self, samples: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """Feed int16 audio; return (embedding, stream sample at its window end) per finished step."""
        out: list[tuple[np.ndarray, int]] = []
        room = _AUDIO_CAP - MEL_SAMPLES
        for pos in range(0, len(samples), room):
            piece = samples[pos : pos + room]
            if self._end + len(piece) > _AUDIO_CAP:  # compact: keep from the next window on
                keep = self._end - self._next
                self._audio[:keep] = self._audio[self._next : self._end]
                self._next, self._end = 0, keep
            self._audio[self._end : self._end + len(piece)] = piece
            self._end += len(piece)
            self._fed += len(piece)
            while self._end - self._next >= MEL_SAMPLES:
                block = self._mel_block(self._audio[self._next : self._next + MEL_SAMPLES])
                window_end = self._fed - (self._end - self._next - MEL_SAMPLES)
                self._next += STEP_SAMPLES
                n = len(block)
                self._mels[self._n_mels : self._n_mels + n] = block
                self._n_mels += n
                if self._n_mels >= EMB_FRAMES:
                    emb = self._embed(self._mels[:EMB_FRAMES])
                    self._mels[: self._n_mels - MEL_FRAMES_PER_STEP] = self._mels[MEL_FRAMES_PER_STEP : self._n_mels]
                    self._n_mels -= MEL_FRAMES_PER_STEP
                    out.append((emb, window_end))
        return out


class _Classifier:
    def __init__(self, spec: WakeModelSpec, threads: int, runtime: str | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.model = load_interpreter(spec.path, threads, runtime)
        shape = self.model.input_shape(0)
        if len(shape) != 3 or shape[2] != EMB_FEATURES or not 1 <= shape[1] <= _EMB_CAP // 2:
            raise ModelError(f"wake model {spec.path}: input shape {list(shape)} is not an openWakeWord classifier "
                             f"([1, N, {EMB_FEATURES}])")
        if spec.manifest is not None:
            verify(spec.manifest, shape, self.model.output_shape(0))
        self.windows = shape[1]
        self._in = np.zeros((1, self.windows, EMB_FEATURES), dtype=np.float32)

    def score(self, history: np.ndarray) -> float:
        self._in[0] = history[-self.windows :]
        return float(self.model.run(self._in).reshape(-1)[0])


class Triggers:
    """Per-model thresholding: `trigger_level` steps in a row over the threshold fire once,
    then the model is quiet for `refractory_s`. strict: score > threshold (microWakeWord's
    rule) instead of score >= threshold (openWakeWord's)."""

    def __init__(self, specs: Sequence[WakeModelSpec], threshold: float, trigger_level: int,
                 refractory_s: float, strict: bool = False) -> None:
        self.names = [s.name for s in specs]
        self.thresholds = [s.threshold if s.threshold is not None else threshold for s in specs]
        self.levels = [max(1, int(s.trigger_level if s.trigger_level is not None else trigger_level)) for s in specs]
        self.refractory_s = float(refractory_s)
        self.strict = strict
        self.reset()

    def reset(self) -> None:
        self._over = [0] * len(self.names)
        self._quiet_until = [-1.0] * len(self.names)

    def update(self, i: int, t: float, score: float) -> WakeDetection | None:
        over = score > self.thresholds[i] if self.strict else score >= self.thresholds[i]
        self._over[i] = self._over[i] + 1 if over else 0
        if self._over[i] >= self.levels[i] and t >= self._quiet_until[i]:
            self._over[i] = 0
            self._quiet_until[i] = t + self.refractory_s
            return WakeDetection(self.names[i], score, t)
        return None


class WakeWordDetector:
    """Several wake words on one shared feature pipeline. Feed int16 16 kHz mono."""

    def __init__(self, specs: Sequence[WakeModelSpec], *, threshold: float = 0.5, trigger_level: int = 1,
                 refractory_s: float = 2.0, threads: int = 1, runtime: str | None = None,
                 models_dir: Path | None = None) -> None:
        if not specs:
            raise ConfigError("config wake.words: at least one wake word or wake.models entry is needed")
        self._features = _Features(models_dir or builtin_models_dir(), threads, runtime)
        self._classifiers = [_Classifier(s, threads, runtime) for s in specs]
        self.names: list[str] = [c.name for c in self._classifiers]
        self.runtime = self._features.runtime
        self._triggers = Triggers(specs, threshold, trigger_level, refractory_s)
        self._history = np.zeros((_EMB_CAP, EMB_FEATURES), dtype=np.float32)
        self.last_scores: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self._features.reset()
        self._history[:] = self._features.silence_embedding
        self._n_hist = _EMB_CAP
        self._triggers.reset()
        self.last_scores = {name: 0.0 for name in self.names}

    def scores(self, pcm16: np.ndarray) -> list[tuple[float, dict[str, float]]]:
        """Feed audio; return (t, {word: score}) for every 80 ms step finished (no thresholding)."""
        samples = np.asarray(pcm16)
        if samples.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {samples.dtype}")
        if samples.ndim != 1:
            samples = samples.reshape(-1)
        steps = []
        for emb, end in self._features.process(samples):
            if self._n_hist == _EMB_CAP:  # compact the embedding history
                keep = _EMB_CAP // 2
                self._history[:keep] = self._history[_EMB_CAP - keep :]
                self._n_hist = keep
            self._history[self._n_hist] = emb
            self._n_hist += 1
            hist = self._history[: self._n_hist]
            scores = {c.name: c.score(hist) for c in self._classifiers}
            self.last_scores = scores
            steps.append((end / SAMPLE_RATE, scores))
        return steps

    def process(self, pcm16: np.ndarray) -> list[WakeDetection]:
        detections = []
        for t, scores in self.scores(pcm16):
            for i, c in enumerate(self._classifiers):
                d = self._triggers.update(i, t, scores[c.name])
                if d is not None:
                    detections.append(d)
        return detections


def build_wake_detector(settings: WakeSettings, *, threads: int = 1, runtime: str | None = None):
    """The detector for settings.engine, settings.words + settings.models.

    ModelError on an unknown word, a bad model or a manifest that does not match its model.
    Both engines' detectors have the WakeWordDetector interface (names, process, reset, scores).
    """
    specs = resolve_models(settings)
    if settings.engine == "microwakeword":
        from device.listen.microwakeword import MicroWakeWordDetector

        return MicroWakeWordDetector(specs, threshold=settings.threshold or FALLBACK_THRESHOLD,
                                     trigger_level=settings.trigger_level or 1,
                                     refractory_s=settings.refractory_s, threads=threads, runtime=runtime)
    if settings.engine != "openwakeword":
        raise ConfigError(f"config wake.engine: {settings.engine!r} is not one of openwakeword, microwakeword")
    return WakeWordDetector(specs, threshold=settings.threshold or FALLBACK_THRESHOLD,
                            trigger_level=settings.trigger_level or 1,
                            refractory_s=settings.refractory_s, threads=threads, runtime=runtime)
