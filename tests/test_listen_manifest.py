"""device.listen.manifest: builtin manifests, user models dropped into models/, rejection of bad ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from device.audio.wavio import read_mono
from device.config import WakeSettings
from device.errors import ModelError
from device.listen.manifest import ENV_MODELS_DIR, find_manifests, load_manifest, models_dir, sha256_file
from device.listen.wakeword import build_wake_detector

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


def _feed(det, audio):
    det.reset()
    return [d.wake_word for i in range(0, len(audio), 160) for d in det.process(audio[i : i + 160])]


@pytest.mark.parametrize("path", sorted(REPO_MODELS.glob("*.json")), ids=lambda p: p.name)
def test_builtin_manifests_match_the_installed_models(path):
    m = load_manifest(path)
    assert m.sha256 == sha256_file(m.path), "the installed package's model changed: update the manifest"
    assert m.license and m.source and m.commercial_use is not None
    assert m.threshold is not None and 0 < m.threshold < 1
    det = build_wake_detector(WakeSettings(engine=m.engine, words=[], models=[str(path)]))
    assert det.names == [m.name]


def test_models_dir_default_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_MODELS_DIR, raising=False)
    assert models_dir() == REPO_MODELS
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    assert models_dir() == tmp_path and find_manifests("openwakeword") == {}


def _user_model(d: Path, name: str = "my_word", **changes) -> Path:
    """A copy of the openWakeWord hey_jarvis model with its manifest, as a user would drop them in."""
    builtin = load_manifest(REPO_MODELS / "hey_jarvis.openwakeword.json")
    shutil.copy(builtin.path, d / f"{name}.tflite")
    manifest = {"engine": "openwakeword", "wake_word": "My Word", "file": f"{name}.tflite",
                "sha256": builtin.sha256, "input_shape": [1, 16, 96], "output_shape": [1, 1],
                "threshold": 0.5, "source": "trained by me", "license": "proprietary", "commercial_use": True}
    manifest.update(changes)
    path = d / f"{name}.json"
    path.write_text(json.dumps(manifest))
    return path


def test_user_model_dropped_into_models_dir(monkeypatch, tmp_path, fixtures_dir):
    _user_model(tmp_path)
    for builtin in REPO_MODELS.glob("*.json"):  # the builtins stay usable next to it
        shutil.copy(builtin, tmp_path)
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    det = build_wake_detector(WakeSettings(words=["my_word", "alexa"]))
    assert det.names == ["my_word", "alexa"]
    assert _feed(det, read_mono(fixtures_dir / "hey_jarvis_en-us.wav", 16000)) == ["my_word"]
    assert _feed(det, read_mono(fixtures_dir / "negative_1.wav", 16000)) == []


def test_user_model_listed_in_config_by_manifest_or_tflite(tmp_path, fixtures_dir):
    path = _user_model(tmp_path)
    audio = read_mono(fixtures_dir / "hey_jarvis_en-gb.wav", 16000)
    for entry in (path, path.with_suffix(".tflite")):  # the .tflite finds the .json beside it
        det = build_wake_detector(WakeSettings(words=[], models=[str(entry)]))
        assert det.names == ["my_word"] and _feed(det, audio) == ["my_word"]


def test_manifest_threshold_is_used(tmp_path, fixtures_dir):
    path = _user_model(tmp_path, threshold=0.9999)
    det = build_wake_detector(WakeSettings(words=[], models=[str(path)]))
    assert _feed(det, read_mono(fixtures_dir / "hey_jarvis_en-us.wav", 16000)) == []


@pytest.mark.parametrize("changes, message", [
    ({"sha256": "0" * 64}, r"sha256 of .*my_word.tflite is 14bff7786049…, the manifest says 000000000000…"),
    ({"input_shape": [1, 32, 96]}, r"input shape of my_word.tflite is \[1, 16, 96\], the manifest says \[1, 32, 96\]"),
    ({"output_shape": [1, 2]}, r"output shape of my_word.tflite is \[1, 1\], the manifest says \[1, 2\]"),
    ({"file": "elsewhere/missing.tflite"}, r"model file 'elsewhere/missing.tflite' not found"),
    ({"file": "package:no_such_package_xyz/m.tflite"}, r"package 'no_such_package_xyz' is not installed"),
    ({"file": "package:pyopen_wakeword/models/nope.tflite"}, r"not found"),
    ({"engine": "porcupine"}, r"engine must be one of openwakeword, microwakeword"),
    ({"engine": "microwakeword"}, r"an microwakeword model, but wake.engine is openwakeword"),
    ({"threshold": 1.5}, r"threshold = 1.5 is out of range"),
    ({"trigger_level": "two"}, r"trigger_level must be a whole number"),
    ({"sha256": "xyz"}, r"sha256 must be 64 hex digits"),
    ({"file": None}, r"'file' \(the .tflite model\) is missing"),
])
def test_bad_manifests_are_one_clear_model_error(tmp_path, changes, message):
    path = _user_model(tmp_path, **changes)
    with pytest.raises(ModelError, match=message) as info:
        build_wake_detector(WakeSettings(words=[], models=[str(path)]))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_manifest_of_the_other_engine_model_is_rejected_by_shape(tmp_path):
    """A microWakeWord manifest pointing at an openWakeWord classifier: the engine refuses the tensors."""
    path = _user_model(tmp_path, engine="microwakeword", sha256="", input_shape=[1, 3, 40])
    with pytest.raises(ModelError, match="not a streaming microWakeWord model"):
        build_wake_detector(WakeSettings(engine="microwakeword", words=[], models=[str(path)]))


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_unreadable_manifest(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=message):
        build_wake_detector(WakeSettings(words=[], models=[str(path)]))


def test_corrupt_model_behind_a_manifest(tmp_path):
    path = _user_model(tmp_path, sha256="")
    path.with_suffix(".tflite").write_bytes(b"garbage that is not a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        build_wake_detector(WakeSettings(words=[], models=[str(path)]))


def test_manifest_for_another_file_beside_a_tflite(tmp_path):
    _user_model(tmp_path, file="other.tflite")
    shutil.copy(tmp_path / "my_word.tflite", tmp_path / "other.tflite")
    with pytest.raises(ModelError, match="describes .*other.tflite"):
        build_wake_detector(WakeSettings(words=[], models=[str(tmp_path / "my_word.tflite")]))
