"""The listen stack on tflite_runtime (Raspberry Pi OS Bookworm's Python 3.11 + tflite-runtime 2.14).

Skipped unless tflite_runtime imports and works here (its 2.14 wheels need numpy < 2). CI runs
the listen tests a second time in such a venv, with VOXBOX_TFLITE_RUNTIME=tflite_runtime:

    python3.11 -m venv .venv-tfl
    .venv-tfl/bin/pip install "numpy<2" "tflite-runtime==2.14.0" -e ".[test]"
    VOXBOX_TFLITE_RUNTIME=tflite_runtime .venv-tfl/bin/python -m pytest -q \\
        tests/test_listen_tflite_runtime.py tests/test_listen_interpreter.py tests/test_listen_wakeword.py \\
        tests/test_listen_micro.py tests/test_listen_manifest.py tests/test_listen_commands.py \\
        tests/test_listen_vad.py -k "not truncated"

(-k "not truncated": tflite_runtime 2.14 segfaults on a truncated .tflite that passes the shim's
header checks; LiteRT reports it.)
"""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.wavio import read_mono
from device.config import WakeSettings
from device.errors import ModelError
from device.listen.interpreter import load_interpreter
from device.listen.manifest import package_dir
from device.listen.microwakeword import MicroWakeWordDetector
from device.listen.wakeword import WakeWordDetector, resolve_models

RT = "tflite_runtime"


def _tflite_runtime_works() -> bool:
    # under numpy 2, tflite_runtime 2.14 imports but cannot create an interpreter
    try:
        load_interpreter(package_dir("pyopen_wakeword") / "models" / "alexa.tflite", runtime=RT)
    except ModelError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _tflite_runtime_works(),
                                reason="tflite_runtime is not usable here (2.14 needs numpy < 2)")


def _feed(det, audio):
    det.reset()
    return [(d.wake_word, round(d.t, 2)) for i in range(0, len(audio), 160) for d in det.process(audio[i : i + 160])]


def test_interpreter_reports_tflite_runtime():
    it = load_interpreter(package_dir("pyopen_wakeword") / "models" / "hey_jarvis.tflite", runtime=RT)
    assert it.runtime == RT
    out = it.run(np.zeros((1, 16, 96), dtype=np.float32))
    assert out.shape == (1, 1) and 0 <= float(out[0, 0]) <= 1
    mww = load_interpreter(package_dir("pymicro_wakeword") / "models" / "okay_nabu.tflite", runtime=RT,
                           xnnpack=False)
    assert mww.input_shape(0) == (1, 3, 40)


def test_openwakeword_on_tflite_runtime(fixtures_dir):
    specs = resolve_models(WakeSettings(words=["hey_jarvis", "alexa"]))
    ours, lite = WakeWordDetector(specs, runtime=RT), WakeWordDetector(specs, runtime="ai_edge_litert")
    assert ours.runtime == RT
    for name, want in [("hey_jarvis_en-us.wav", ["hey_jarvis"]), ("alexa.wav", ["alexa"]), ("negative_1.wav", [])]:
        audio = read_mono(fixtures_dir / name, 16000)
        assert [w for w, _ in _feed(ours, audio)] == want
        assert _feed(ours, audio) == _feed(lite, audio)
        ours.reset()
        lite.reset()
        a = np.array([list(s.values()) for _, s in ours.scores(audio)])
        b = np.array([list(s.values()) for _, s in lite.scores(audio)])
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_microwakeword_on_tflite_runtime(fixtures_dir):
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    specs = resolve_models(WakeSettings(engine="microwakeword", words=["alexa", "hey_jarvis"]))
    det = MicroWakeWordDetector(specs, runtime=RT)
    assert det.runtime == RT
    for name, want in [("alexa.wav", ["alexa"]), ("negative_1.wav", []), ("hey_jarvis_en-gb.wav", [])]:
        audio = read_mono(fixtures_dir / name, 16000)
        assert [w for w, _ in _feed(det, audio)] == want
        ref, feats = MicroWakeWord.from_builtin(Model("alexa")), MicroWakeWordFeatures()
        ref_hit = any(ref.process_streaming(f) for f in feats.process_streaming(audio.tobytes()))
        assert ref_hit == ("alexa" in want)
