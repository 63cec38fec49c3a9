"""device.listen.commands: `voxbox detect` / `voxbox vad` on files."""

from __future__ import annotations

import json

import pytest

from device.config import Settings, VadSettings
from device.listen.commands import detect_files, vad_files


def test_detect_files_any_rate_and_channels(fixtures_dir):
    files = [fixtures_dir / "hey_jarvis_48k_stereo.wav", fixtures_dir / "negative_1.wav"]
    out = list(detect_files(files, Settings()))
    assert [o["file"] for o in out] == [str(f) for f in files]
    (hit,) = out[0]["detections"]
    assert hit["wake_word"] == "hey_jarvis" and 1.4 < hit["t"] < 2.6 and hit["score"] >= 0.5
    assert out[1]["detections"] == []
    json.dumps(out)  # plain JSON types


def test_detect_files_same_result_at_48k_stereo_as_16k_mono(fixtures_dir):
    (a,) = detect_files([fixtures_dir / "hey_jarvis_48k_stereo.wav"], Settings())
    (b,) = detect_files([fixtures_dir / "hey_jarvis_en-us.wav"], Settings())
    assert a["detections"][0]["t"] == pytest.approx(b["detections"][0]["t"], abs=0.081)


def test_vad_files(fixtures_dir):
    names = ["two_utterances.wav", "silence.wav", "hey_jarvis_48k_stereo.wav"]
    want = json.loads((fixtures_dir / "fixtures.json").read_text())
    settings = Settings(vad=VadSettings(padding_ms=0))
    out = list(vad_files([fixtures_dir / n for n in names], settings))
    for name, o in zip(names, out, strict=True):
        assert o["file"] == str(fixtures_dir / name)
        assert len(o["speech"]) == len(want[name]["speech"])
        for (s, e), (ws, we) in zip(o["speech"], want[name]["speech"], strict=True):
            assert abs(s - ws) < 0.15 and abs(e - we) < 0.15
    json.dumps(out)


@pytest.mark.parametrize("command", [detect_files, vad_files])
def test_a_bad_file_is_reported_and_the_others_still_done(tmp_path, fixtures_dir, command):
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    good = fixtures_dir / "hey_jarvis_en-us.wav"
    out = list(command([junk, tmp_path / "missing.wav", good], Settings()))
    assert [o["file"] for o in out] == [str(junk), str(tmp_path / "missing.wav"), str(good)]
    assert "junk.wav" in out[0]["error"] and "no such file" in out[1]["error"]
    assert "error" not in out[2] and (out[2].get("detections") or out[2].get("speech"))


def test_cli_exits_2_after_doing_the_readable_files(tmp_path, fixtures_dir):
    import subprocess
    import sys

    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    r = subprocess.run([sys.executable, "-m", "device", "detect", str(junk),
                        str(fixtures_dir / "hey_jarvis_en-us.wav")], capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 2 and len(lines) == 2 and lines[1]["detections"][0]["wake_word"] == "hey_jarvis"
    assert r.stderr.strip().splitlines() == [f"voxbox: {lines[0]['error']}"]
