"""device.listen.microwakeword: microWakeWord through our shim, against pymicro_wakeword on espeak speech."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from device.audio.wavio import read_mono
from device.config import WakeSettings
from device.errors import ModelError
from device.listen.interpreter import available_runtimes, load_interpreter
from device.listen.manifest import package_dir
from device.listen.microwakeword import MicroWakeWordDetector
from device.listen.wakeword import build_wake_detector, known_wake_words, resolve_models

WORDS = ["hey_jarvis", "okay_nabu", "alexa", "hey_mycroft"]
# espeak utterances the builtin microWakeWord models fire on (okay_nabu: en-gb does,
# en+f2 does not — see the bench for rates), and ones they must not fire on.
SPEECH = {
    "alexa_us": ("en-us", 150, "alexa, play some music"),
    "nabu_gb": ("en-gb", 150, "okay nabu, turn on the lights"),
    "mycroft_f2": ("en+f2", 150, "hey mycroft, what time is it"),
    "near_nabu": ("en-us", 150, "okay now, let us begin"),
    "near_alexa": ("en-us", 150, "she opened a lexicon of old words"),
    "plain": ("en-gb", 150, "the weather is nice today"),
}


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are needed for the speech fixtures")
    d = tmp_path_factory.mktemp("micro")
    out = {}
    for name, (voice, speed, text) in SPEECH.items():
        raw, wav = d / f"{name}.raw.wav", d / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(["sox", "-R", "-D", "-V1", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav),
                        "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse",
                        "pad", "1.0", "1.0"], check=True)
        out[name] = read_mono(wav, 16000)
    return out


@pytest.fixture(scope="module")
def detector():
    return build_wake_detector(WakeSettings(engine="microwakeword", words=WORDS))


def _feed(det, audio, chunk=160):
    det.reset()
    found = []
    for i in range(0, len(audio), chunk):
        found += det.process(audio[i : i + chunk])
    return found


def _reference(audio: np.ndarray, word: str) -> tuple[list[float], bool]:
    """pymicro_wakeword's windowed probabilities at each model step, and whether it detects."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    mww, features = MicroWakeWord.from_builtin(Model(word)), MicroWakeWordFeatures()
    raw, probs, detected = audio.tobytes(), [], False
    for i in range(0, len(raw), 320):
        for f in features.process_streaming(raw[i : i + 320]):
            p = mww.process_streaming_prob(f)
            probs.append(p)
            detected |= p > mww.probability_cutoff
    return probs[mww.stride - 1 :: mww.stride], detected


def _ours(det, audio, word):
    det.reset()
    return [s[word] for _, s in det.scores(audio) if word in s]


def test_builtin_words_come_from_manifests():
    assert known_wake_words("microwakeword") == sorted(WORDS)
    assert "hey_rhasspy" in known_wake_words("openwakeword")
    specs = resolve_models(WakeSettings(engine="microwakeword", words=["okay_nabu"]))
    assert specs[0].threshold == 0.85 and specs[0].sliding_window == 5
    assert specs[0].path == package_dir("pymicro_wakeword") / "models" / "okay_nabu.tflite"


@pytest.mark.parametrize("name, word", [("alexa_us", "alexa"), ("nabu_gb", "okay_nabu"),
                                        ("mycroft_f2", "hey_mycroft")])
def test_fires_on_its_phrase(detector, speech, name, word):
    found = _feed(detector, speech[name])
    assert [d.wake_word for d in found] == [word], found
    assert 1.2 < found[0].t < len(speech[name]) / 16000 and found[0].score > 0.85


@pytest.mark.parametrize("name", ["near_nabu", "near_alexa", "plain"])
def test_silent_on_near_misses_and_other_speech(detector, speech, name):
    assert _feed(detector, speech[name]) == []


@pytest.fixture(scope="module")
def litert_detector():
    return build_wake_detector(WakeSettings(engine="microwakeword", words=WORDS), runtime="ai_edge_litert")


@pytest.mark.parametrize("runtime", ["default", "litert"])
@pytest.mark.parametrize("name", sorted(SPEECH))
def test_bit_identical_to_the_reference(detector, litert_detector, speech, name, runtime):
    """With the TFLite C library (the default) and with LiteRT's exact kernels; tflite_runtime
    2.14's older int8 kernels differ by a quantisation step now and then."""
    det = detector if runtime == "default" else litert_detector
    for word in WORDS:
        ref, ref_detected = _reference(speech[name], word)
        ours = _ours(det, speech[name], word)
        # the reference reports 0.0 until its sliding window (5) is full; we report nothing
        assert ref[: len(ref) - len(ours)] == [0.0] * (len(ref) - len(ours))
        if det.runtime in ("ai_edge_litert", "tflite_c"):
            assert ours == ref[len(ref) - len(ours) :]
        else:
            np.testing.assert_allclose(ours, ref[len(ref) - len(ours) :], atol=0.08, rtol=0)
        assert ref_detected == any(d.wake_word == word for d in _feed(det, speech[name]))


@pytest.mark.parametrize("name", sorted(SPEECH))
def test_xnnpack_mode_stays_close(speech, name):
    """exact=False (XNNPACK): scores drift a little from the reference, detections agree here."""
    fast = MicroWakeWordDetector(resolve_models(WakeSettings(engine="microwakeword", words=WORDS)), exact=False)
    for word in WORDS:
        ref, ref_detected = _reference(speech[name], word)
        ours = _ours(fast, speech[name], word)
        np.testing.assert_allclose(ours, ref[len(ref) - len(ours) :], atol=0.08, rtol=0)
        assert ref_detected == any(d.wake_word == word for d in _feed(fast, speech[name]))


def test_chunking_and_reset_do_not_matter(detector, speech):
    audio = speech["nabu_gb"]
    detector.reset()
    whole = detector.scores(audio)
    for chunk in (1, 159, 160, 480, 7777):
        part = audio[:6000] if chunk == 1 else audio
        detector.reset()
        want = whole if chunk != 1 else detector.scores(part)
        detector.reset()
        got = [s for i in range(0, len(part), chunk) for s in detector.scores(part[i : i + chunk])]
        assert got == want
    # steps every 30 ms; the first model call after 50 ms of audio (30 ms window + 2 x 10 ms)
    detector.reset()
    times = [t for t, _ in detector.scores(audio[:16000])]
    assert np.allclose(np.diff(times), 0.03)


def test_refractory_and_trigger_level(speech):
    twice = np.concatenate([speech["alexa_us"]] * 2)
    det = build_wake_detector(WakeSettings(engine="microwakeword", words=["alexa"], refractory_s=1.0))
    assert len(_feed(det, twice)) == 2
    det = build_wake_detector(WakeSettings(engine="microwakeword", words=["alexa"], refractory_s=30.0))
    assert len(_feed(det, twice)) == 1
    det = build_wake_detector(WakeSettings(engine="microwakeword", words=["alexa"], trigger_level=200))
    assert _feed(det, twice) == []


def test_user_threshold_overrides_the_manifest(speech):
    specs = resolve_models(WakeSettings(engine="microwakeword", words=["alexa"], threshold=0.999))
    assert specs[0].threshold == 0.999
    det = build_wake_detector(WakeSettings(engine="microwakeword", words=["alexa"], threshold=0.999))
    assert _feed(det, speech["alexa_us"]) == []


@pytest.mark.parametrize("signal", ["silence", "dc", "square", "loud_noise", "clipped_speech"])
def test_extreme_input_is_sane(detector, speech, signal):
    n = 3 * 16000
    x = {"silence": np.zeros(n), "dc": np.full(n, 20000),
         "square": np.where((np.arange(n) // 40) % 2 == 0, 32767, -32768),
         "loud_noise": np.random.default_rng(0).standard_normal(n) * 20000,
         "clipped_speech": speech["plain"].astype(np.int64) * 30}[signal]
    audio = np.clip(x, -32768, 32767).astype(np.int16)
    detector.reset()
    scores = [v for _, s in detector.scores(audio) for v in s.values()]
    assert scores and all(0.0 <= v <= 1.0 for v in scores)
    assert _feed(detector, audio) == []


def test_exact_mode_runs_on_the_references_c_library(monkeypatch, litert_detector):
    # Unforced (CI also runs this file with VOXBOX_TFLITE_RUNTIME=tflite_runtime set).
    monkeypatch.delenv("VOXBOX_TFLITE_RUNTIME", raising=False)
    unforced = build_wake_detector(WakeSettings(engine="microwakeword", words=WORDS))
    assert unforced.runtime == "tflite_c" and litert_detector.runtime == "ai_edge_litert"
    monkeypatch.setenv("VOXBOX_TFLITE_RUNTIME", "ai_edge_litert")  # a forced runtime is kept
    assert build_wake_detector(WakeSettings(engine="microwakeword", words=["alexa"])).runtime == "ai_edge_litert"
    monkeypatch.delenv("VOXBOX_TFLITE_RUNTIME")
    fast = MicroWakeWordDetector(resolve_models(WakeSettings(engine="microwakeword", words=["alexa"])), exact=False)
    assert fast.runtime == "ai_edge_litert"


def test_tflite_c_interpreter_matches_litert_exact():
    path = package_dir("pymicro_wakeword") / "models" / "okay_nabu.tflite"
    c = load_interpreter(path, runtime="tflite_c")
    lite = load_interpreter(path, runtime="ai_edge_litert", xnnpack=False)
    assert c.runtime == "tflite_c" and "tflite_c" in available_runtimes()
    for a, b in [(c.input_details[0], lite.input_details[0]), (c.output_details[0], lite.output_details[0])]:
        assert list(a["shape"]) == list(b["shape"]) and a["dtype"] == b["dtype"]
        assert a["quantization"] == b["quantization"]
    rng = np.random.default_rng(0)
    for _ in range(50):  # streaming state carries over between calls
        x = rng.integers(-128, 128, (1, 3, 40)).astype(np.int8)
        out = c.run(x)
        assert out.dtype == np.uint8 and out.shape == (1, 1)
        assert out.tolist() == lite.run(x).tolist()
    with pytest.raises(ValueError, match="shape"):
        c.set_input(np.zeros((1, 2, 40), np.int8))


def test_tflite_c_bad_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    data = bytearray((package_dir("pymicro_wakeword") / "models" / "alexa.tflite").read_bytes())
    data[200:4000] = bytes(3800)
    bad.write_bytes(data)
    with pytest.raises(ModelError, match="cannot load with tflite_c") as info:
        load_interpreter(bad, runtime="tflite_c")
    assert "\n" not in str(info.value)


def test_unknown_word_lists_the_engines_words():
    with pytest.raises(ModelError, match="unknown for engine microwakeword.*alexa.*okay_nabu") as info:
        build_wake_detector(WakeSettings(engine="microwakeword", words=["hey_rhasspy"]))
    assert "\n" not in str(info.value)


def test_openwakeword_model_is_not_a_micro_model(tmp_path):
    bad = tmp_path / "oww.tflite"
    shutil.copy(package_dir("pyopen_wakeword") / "models" / "hey_jarvis.tflite", bad)
    with pytest.raises(ModelError, match="not a streaming microWakeWord model"):
        build_wake_detector(WakeSettings(engine="microwakeword", words=[], models=[str(bad)]))


def test_rejects_non_int16(detector):
    with pytest.raises(TypeError):
        detector.process(np.zeros(160, dtype=np.float32))
