"""device.listen.wakeword: openWakeWord through our shim, on espeak speech."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device.audio.wavio import read_mono
from device.config import WakeSettings
from device.errors import ModelError
from device.listen.wakeword import WakeWordDetector, build_wake_detector, builtin_models_dir, builtin_wake_words

POSITIVES = ["hey_jarvis_en-us.wav", "hey_jarvis_en-gb.wav", "hey_jarvis_en_f2.wav"]
NEGATIVES = ["negative_0.wav", "negative_1.wav", "negative_2.wav", "negative_3.wav", "silence.wav",
             "two_utterances.wav", "alexa.wav"]


@pytest.fixture(scope="module")
def detector() -> WakeWordDetector:
    return build_wake_detector(WakeSettings(words=["hey_jarvis"]))


@pytest.fixture(scope="module")
def speech(fixtures_dir):
    return json.loads((fixtures_dir / "fixtures.json").read_text())


def _audio(fixtures_dir, name: str) -> np.ndarray:
    return read_mono(fixtures_dir / name, 16000)


def _feed(det: WakeWordDetector, audio: np.ndarray, chunk: int = 160):
    det.reset()
    out = []
    for i in range(0, len(audio), chunk):
        out += det.process(audio[i : i + chunk])
    return out


@pytest.mark.parametrize("name", POSITIVES)
def test_fires_on_hey_jarvis(detector, fixtures_dir, speech, name):
    found = _feed(detector, _audio(fixtures_dir, name))
    assert len(found) == 1, found
    (start, end), d = speech[name]["speech"][0], found[0]
    assert d.wake_word == "hey_jarvis" and d.score >= 0.5
    # "hey jarvis" is the first ~0.8 s of the utterance: it fires right after it
    assert start + 0.4 < d.t < start + 1.6, (d, start, end)


@pytest.mark.parametrize("name", NEGATIVES)
def test_silent_on_other_speech_and_silence(detector, fixtures_dir, name):
    assert _feed(detector, _audio(fixtures_dir, name)) == []


def _reference_scores(audio: np.ndarray, word: str) -> np.ndarray:
    from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

    ref, features = OpenWakeWord.from_builtin(Model(word)), OpenWakeWordFeatures.from_builtin()
    raw, probs = audio.tobytes(), []
    for i in range(0, len(raw), 2560):
        for emb in features.process_streaming(raw[i : i + 2560]):
            probs.extend(ref.process_streaming(emb))
    return np.array(probs)


@pytest.mark.parametrize("name", ["hey_jarvis_en-us.wav", "hey_jarvis_en_f2.wav", "negative_1.wav"])
def test_scores_match_the_reference_engine(detector, fixtures_dir, name):
    audio = _audio(fixtures_dir, name)
    detector.reset()
    ours = np.array([s["hey_jarvis"] for _, s in detector.scores(audio)])
    ref = _reference_scores(audio, "hey_jarvis")
    # the reference also scores its 8 s of autofill silence first: compare the real steps
    assert len(ours) == len(audio[480:]) // 1280 + 1
    np.testing.assert_allclose(ours, ref[-len(ours):], atol=1e-4, rtol=0)
    assert abs(ours.max() - ref.max()) < 1e-4


def test_step_times_and_chunking_do_not_matter(detector, fixtures_dir):
    audio = _audio(fixtures_dir, "hey_jarvis_en-gb.wav")
    detector.reset()
    whole = detector.scores(audio)
    # the first 80 ms step ends 30 ms in (the reference's autofill alignment), then every 80 ms
    assert [round(t, 3) for t, _ in whole[:3]] == [0.03, 0.11, 0.19]
    for chunk in (1, 160, 1000, 1280, 7777):
        if chunk == 1:
            audio_part = audio[:4000]  # sample by sample is slow in Python: a prefix will do
            detector.reset()
            ref = detector.scores(audio_part)
            detector.reset()
            got = [s for i in range(len(audio_part)) for s in detector.scores(audio_part[i : i + 1])]
            assert got == ref
            continue
        detector.reset()
        got = [s for i in range(0, len(audio), chunk) for s in detector.scores(audio[i : i + chunk])]
        assert got == whole
    detector.reset()
    assert detector.scores(audio) == whole  # reset really restores the start state


def test_several_words_share_one_pipeline(fixtures_dir):
    det = build_wake_detector(WakeSettings(words=["hey_jarvis", "alexa"]))
    assert det.names == ["hey_jarvis", "alexa"]
    assert [d.wake_word for d in _feed(det, _audio(fixtures_dir, "hey_jarvis_en-us.wav"))] == ["hey_jarvis"]
    assert [d.wake_word for d in _feed(det, _audio(fixtures_dir, "alexa.wav"))] == ["alexa"]
    assert _feed(det, _audio(fixtures_dir, "negative_3.wav")) == []


def test_unknown_wake_word_lists_known_ones():
    with pytest.raises(ModelError) as info:
        build_wake_detector(WakeSettings(words=["hey_computer"]))
    msg = str(info.value)
    assert "hey_computer" in msg and "hey_jarvis" in msg and "alexa" in msg and "\n" not in msg
    assert "melspectrogram" not in builtin_wake_words()


def test_custom_tflite_path(tmp_path, fixtures_dir):
    custom = tmp_path / "my_word.tflite"
    shutil.copy(builtin_models_dir() / "hey_jarvis.tflite", custom)
    det = build_wake_detector(WakeSettings(words=[], models=[str(custom)]))
    assert det.names == ["my_word"]
    assert [d.wake_word for d in _feed(det, _audio(fixtures_dir, "hey_jarvis_en-us.wav"))] == ["my_word"]


@pytest.mark.parametrize("entry, message", [
    ("/nonexistent/model.tflite", "no such file"),
    ("model.onnx", "expected a .tflite"),
    ("manifest.json", "manifest manifest.json: no such file"),
])
def test_bad_custom_models(entry, message):
    with pytest.raises(ModelError, match=message):
        build_wake_detector(WakeSettings(words=[], models=[entry]))


def test_feature_model_is_not_a_classifier(tmp_path):
    bad = tmp_path / "emb.tflite"
    shutil.copy(builtin_models_dir() / "embedding_model.tflite", bad)
    with pytest.raises(ModelError, match="not an openWakeWord classifier"):
        build_wake_detector(WakeSettings(words=[], models=[str(bad)]))


def test_trigger_level_and_refractory(fixtures_dir):
    audio = _audio(fixtures_dir, "hey_jarvis_en-us.wav")
    twice = np.concatenate([audio, audio])
    det = build_wake_detector(WakeSettings(refractory_s=0.0))  # every frame over the threshold
    assert len(_feed(det, twice)) > 2
    det = build_wake_detector(WakeSettings(refractory_s=1.0))
    found = _feed(det, twice)
    assert len(found) == 2 and found[1].t - found[0].t == pytest.approx(len(audio) / 16000, abs=0.2)
    det = build_wake_detector(WakeSettings(refractory_s=30.0))
    assert len(_feed(det, twice)) == 1
    # frames over threshold in a row: espeak's "hey jarvis" gives a handful, not 40
    scores = [s["hey_jarvis"] for _, s in det.scores(audio)]
    det = build_wake_detector(WakeSettings(trigger_level=3))
    assert len(_feed(det, audio)) == 1
    det = build_wake_detector(WakeSettings(trigger_level=40))
    assert _feed(det, audio) == [] and max(scores) > 0.5


@pytest.mark.parametrize("transform", [
    lambda x: x * 8,  # loud and hard-clipped
    lambda x: x * 40,  # nearly a square wave
    lambda x: x + 12000,  # big DC offset
    lambda x: x // 30,  # very quiet
])
def test_loud_clipped_dc_input_is_sane(detector, fixtures_dir, transform):
    audio = _audio(fixtures_dir, "hey_jarvis_en-gb.wav").astype(np.int64)
    mangled = np.clip(transform(audio), -32768, 32767).astype(np.int16)
    detector.reset()
    scores = np.array([s["hey_jarvis"] for _, s in detector.scores(mangled)])
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
    assert len(_feed(detector, mangled)) <= 1


@pytest.mark.parametrize("signal", ["dc", "full_scale_square", "loud_noise"])
def test_non_speech_extremes_do_not_fire(detector, signal):
    n = 3 * 16000
    if signal == "dc":
        x = np.full(n, 20000)
    elif signal == "full_scale_square":
        x = np.where((np.arange(n) // 40) % 2 == 0, 32767, -32768)
    else:
        x = np.random.default_rng(0).standard_normal(n) * 10000
    assert _feed(detector, np.clip(x, -32768, 32767).astype(np.int16)) == []


def test_rejects_non_int16(detector):
    with pytest.raises(TypeError):
        detector.process(np.zeros(160, dtype=np.float32))
