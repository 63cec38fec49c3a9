"""device.listen.interpreter: the LiteRT / tflite-runtime shim."""

from __future__ import annotations

import numpy as np
import pytest

from device.errors import ModelError
from device.listen.interpreter import available_runtimes, load_interpreter
from device.listen.wakeword import builtin_models_dir

MODELS = builtin_models_dir()


def test_loads_classifier_with_litert_by_default(monkeypatch):
    monkeypatch.delenv("VOXBOX_TFLITE_RUNTIME", raising=False)
    it = load_interpreter(MODELS / "hey_jarvis.tflite", threads=2)
    assert it.runtime == "ai_edge_litert"
    assert it.input_shape(0) == (1, 16, 96)
    out = it.run(np.zeros((1, 16, 96), dtype=np.float32))
    assert out.shape == (1, 1) and 0.0 <= float(out[0, 0]) <= 1.0


def test_runtime_forced_by_argument_and_environment(monkeypatch):
    assert load_interpreter(MODELS / "alexa.tflite", runtime="litert").runtime == "ai_edge_litert"
    monkeypatch.setenv("VOXBOX_TFLITE_RUNTIME", "ai_edge_litert")
    assert load_interpreter(MODELS / "alexa.tflite").runtime == "ai_edge_litert"
    monkeypatch.setenv("VOXBOX_TFLITE_RUNTIME", "onnx")
    with pytest.raises(ModelError, match="runtime 'onnx' is unknown"):
        load_interpreter(MODELS / "alexa.tflite")


def test_tflite_runtime_works_or_fails_with_one_line():
    """tflite_runtime 2.14 wheels are built for numpy 1.x: under numpy 2 they cannot run.
    Either it works and agrees with LiteRT, or the user gets one clear line."""
    x = np.random.default_rng(1).standard_normal((1, 16, 96)).astype(np.float32)
    want = load_interpreter(MODELS / "hey_jarvis.tflite", runtime="ai_edge_litert").run(x)
    try:
        it = load_interpreter(MODELS / "hey_jarvis.tflite", runtime="tflite_runtime")
    except ModelError as exc:
        assert "\n" not in str(exc) and "tflite_runtime" in str(exc)
        return
    assert it.runtime == "tflite_runtime"
    np.testing.assert_allclose(it.run(x), want, atol=1e-5)


def test_available_runtimes_lists_litert():
    assert available_runtimes()[0] == "ai_edge_litert"


def test_resize_dynamic_input():
    mel = load_interpreter(MODELS / "melspectrogram.tflite")
    mel.resize_input(0, (1, 1760))
    assert mel.input_shape(0) == (1, 1760)
    out = mel.run(np.zeros((1, 1760), dtype=np.float32))
    assert out.shape == (1, 1, 8, 32) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "empty or truncated"),
        (b"this is not a model at all", "not a TFLite model"),
        ("truncated", "truncated|cannot load"),
    ],
)
def test_bad_model_file_is_one_clear_model_error(tmp_path, content, message):
    path = tmp_path / "bad.tflite"
    if content == "truncated":
        path.write_bytes((MODELS / "hey_jarvis.tflite").read_bytes()[:3000])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as info:
        load_interpreter(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="not a file"):
        load_interpreter(tmp_path)
