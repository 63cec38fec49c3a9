"""Model manifests: one JSON file per wake-word model in models/.

A manifest names the model file, says which engine runs it and how (threshold,
trigger level, sliding window), and pins it: the file's sha256 and the shapes
of its input and output tensors. Fields:

  name            wake word id reported in detections (default: the file name up to its first dot)
  engine          "openwakeword" | "microwakeword"
  wake_word       the phrase, for people ("Hey Jarvis")
  file            "package:<python package>/<path inside it>" (a model shipped in an installed
                  package, never copied into the repo) or a path relative to the manifest
  sha256          hex digest of the file (optional for user models, checked when present)
  input_shape, output_shape   the model's tensor shapes (optional, checked when present)
  threshold       score needed to fire (microWakeWord: its probability_cutoff)
  trigger_level   consecutive steps at or over the threshold (default 1)
  sliding_window  probabilities averaged before thresholding (microWakeWord; default 1)
  source, license, commercial_use   provenance; models/README.md summarises the builtins

Builtin manifests are package data (device/resources.py: the repo's models/, copied
into the wheel), so an installed voxbox finds them from any working directory;
$VOXBOX_MODELS_DIR replaces them. A user drops my_word.tflite + my_word.json there
and names "my_word" in wake.words, or lists the .json (or a .tflite with a .json beside it) in wake.models.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.errors import ModelError
from device.resources import package_data

ENGINES = ("openwakeword", "microwakeword")
ENV_MODELS_DIR = "VOXBOX_MODELS_DIR"
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class ModelManifest:
    name: str
    engine: str
    path: Path  # the resolved model file
    source_path: Path | None  # the manifest file (None: built from a bare .tflite)
    wake_word: str = ""
    threshold: float | None = None
    trigger_level: int | None = None
    sliding_window: int = 1
    sha256: str = ""
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    source: str = ""
    license: str = ""
    commercial_use: bool | None = None

    @property
    def where(self) -> str:
        return str(self.source_path or self.path)


def models_dir() -> Path:
    """$VOXBOX_MODELS_DIR, else the manifests shipped with the package (the repo's models/)."""
    env = os.environ.get(ENV_MODELS_DIR, "").strip()
    return Path(env).expanduser() if env else package_data("models")


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_file(ref: str, base: Path) -> Path:
    """"package:pkg/rel/path" or a path (relative to `base`, the manifest's directory)."""
    if ref.startswith("package:"):
        package, _, rel = ref[len("package:"):].partition("/")
        if not package or not rel:
            raise ModelError(f"model file {ref!r}: expected package:<package>/<path>")
        return package_dir(package) / rel
    path = Path(ref).expanduser()
    return path if path.is_absolute() else base / path


def sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _SHA_CACHE[key]


def _shape(value: Any, key: str, where: Path) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ModelError(f"manifest {where}: {key} must be a list of integers")
    return tuple(value)


def _number(data: dict, key: str, where: Path, typ: type, low: float, high: float) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (typ is int and not isinstance(value, int)):
        raise ModelError(f"manifest {where}: {key} must be a {'whole ' if typ is int else ''}number")
    if not low <= value <= high:
        raise ModelError(f"manifest {where}: {key} = {value} is out of range [{low}, {high}]")
    return typ(value)


def load_manifest(path: str | Path) -> ModelManifest:
    """Parse and check one manifest; the model file must exist (its contents are checked by verify())."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"manifest {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"manifest {path}: cannot read ({exc})") from None
    except ValueError as exc:
        raise ModelError(f"manifest {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"manifest {path}: expected a JSON object")
    engine = data.get("engine")
    if engine not in ENGINES:
        raise ModelError(f"manifest {path}: engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    ref = data.get("file")
    if not isinstance(ref, str) or not ref:
        raise ModelError(f"manifest {path}: 'file' (the .tflite model) is missing")
    try:
        model = resolve_file(ref, path.parent)
    except ModelError as exc:
        raise ModelError(f"manifest {path}: {exc}") from None
    if not model.is_file():
        raise ModelError(f"manifest {path}: model file {ref!r} not found (looked at {model})")
    name = data.get("name") or path.name.split(".")[0]
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ModelError(f"manifest {path}: name {name!r} must be letters, digits and underscores")
    sha = data.get("sha256", "")
    if not isinstance(sha, str) or (sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower()))):
        raise ModelError(f"manifest {path}: sha256 must be 64 hex digits")
    commercial = data.get("commercial_use")
    return ModelManifest(
        name=name, engine=engine, path=model, source_path=path,
        wake_word=str(data.get("wake_word", name)),
        threshold=_number(data, "threshold", path, float, 0.0, 1.0),
        trigger_level=_number(data, "trigger_level", path, int, 1, 1000),
        sliding_window=_number(data, "sliding_window", path, int, 1, 1000) or 1,
        sha256=sha.lower(),
        input_shape=_shape(data.get("input_shape"), "input_shape", path),
        output_shape=_shape(data.get("output_shape"), "output_shape", path),
        source=str(data.get("source", "")), license=str(data.get("license", "")),
        commercial_use=commercial if isinstance(commercial, bool) else None,
    )


def bare_manifest(path: Path, engine: str) -> ModelManifest:
    """A .tflite given without a manifest: a sibling <stem>.json is used if there is one."""
    sibling = path.with_suffix(".json")
    if sibling.is_file():
        m = load_manifest(sibling)
        if m.path.resolve() != path.resolve():
            raise ModelError(f"manifest {sibling}: describes {m.path}, not {path}")
        return m
    return ModelManifest(name=path.stem, engine=engine, path=path, source_path=None)


def find_manifests(engine: str, directory: Path | None = None) -> dict[str, Path]:
    """{name: manifest path} for every manifest of `engine` in the models directory.

    Only the engine and name are read here; a broken manifest of this engine is
    reported when it is used, one of another engine is ignored.
    """
    directory = directory or models_dir()
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and data.get("engine") == engine:
            found.setdefault(str(data.get("name") or path.name.split(".")[0]), path)
    return found


def verify(manifest: ModelManifest, input_shape: Sequence[int], output_shape: Sequence[int]) -> None:
    """The model file's sha256 and tensor shapes against the manifest; ModelError on a mismatch."""
    if manifest.sha256:
        actual = sha256_file(manifest.path)
        if actual != manifest.sha256:
            raise ModelError(f"manifest {manifest.where}: sha256 of {manifest.path} is {actual[:12]}…, "
                             f"the manifest says {manifest.sha256[:12]}… (wrong file or changed model)")
    for what, want, got in (("input", manifest.input_shape, input_shape), ("output", manifest.output_shape,
                                                                          output_shape)):
        if want is not None and tuple(want) != tuple(got):
            raise ModelError(f"manifest {manifest.where}: {what} shape of {manifest.path.name} is {list(got)}, "
                             f"the manifest says {list(want)}")
