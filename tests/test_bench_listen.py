"""device.bench_listen: a quick run on the small labelled set gives every key, sane numbers and a table."""

from __future__ import annotations

import json
import shutil

import pytest

from device.bench import listen as bench_listen


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are needed for the labelled set")
    d = tmp_path_factory.mktemp("listen-set")
    return bench_listen.run(True, set_dir=d / "quick", jobs=2)


def test_result_shape(result):
    json.dumps(result)  # JSON-able
    assert result["set"]["size"] == "quick" and result["set"]["files"] > 10
    snrs = result["set"]["snrs"]
    for engine in ("openwakeword", "microwakeword"):
        entry = result["wake"][engine]
        assert set(entry) == {"ours", "ref", "agreement", "cpu_ratio"}
        for side in ("ours", "ref"):
            assert entry[side]["cpu_per_audio_s"] > 0
            assert set(entry[side]["models"]) == {"hey_jarvis", "okay_nabu", "alexa", "hey_mycroft"}
            for m in entry[side]["models"].values():
                assert set(m["detection_rate"]) == set(snrs)
                assert m["false_accepts_per_hour"] >= 0 and m["fires_on_other_phrases"] >= 0
        # our runners do what the reference engines do
        assert entry["agreement"] >= 0.9
    oww = result["wake"]["openwakeword"]
    assert oww["ours"]["models"]["hey_jarvis"]["detection_rate"]["clean"] == 1.0
    assert result["wake"]["microwakeword"]["ours"]["models"]["alexa"]["detection_rate"]["clean"] == 1.0
    for key in ("ours:silero", "ref:silero", "ours:micro", "ref:micro", "ref:webrtcvad"):
        v = result["vad"][key]
        assert v["cpu_per_audio_s"] > 0 and 0 <= v["raw"]["all"]["f1"] <= 1
        assert set(v["raw"]) == {"all", *snrs}
    assert result["vad"]["ours:silero"]["raw"] == result["vad"]["ref:silero"]["raw"]  # the same model
    assert result["vad"]["ours:silero"]["segmenter"]["all"]["recall"] > 0.9
    assert result["vad"]["ours:silero"]["raw"]["all"]["f1"] > 0.85
    for f in result["frontend"].values():
        assert 0 < f["cpu_per_audio_s"] < 1


def test_table(result):
    table = bench_listen.format_table(result)
    for text in ("ours:openwakeword", "ref:microwakeword", "FA/h", "ref:webrtcvad", "segmenter", "frontend",
                 "CPU s/audio s"):
        assert text in table
