"""Files a user hands the tools: every WAV header variant, and the daemon's channel map.

sox writes WAVE_FORMAT_EXTENSIBLE headers for 24/32-bit and for more than 2 channels; those
must read like the same audio with a plain header. `detect`/`vad --config F` map channels as
the daemon does (audio.channels).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.audio import wavio
from device.config import AudioSettings, Settings
from device.listen.commands import detect_files, vad_files

pytestmark = pytest.mark.skipif(shutil.which("sox") is None, reason="sox makes the header variants")


def _format_tag(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[20:22], "little")


@pytest.mark.parametrize("args,ch", [(["-b", "24"], 1), (["-b", "32"], 1), (["-b", "16"], 4),
                                     (["-b", "32", "-e", "floating-point"], 1)])
def test_extensible_headers_read_like_plain_ones(tmp_path: Path, fixtures_dir: Path, args: list[str], ch: int) -> None:
    src = fixtures_dir / "hey_jarvis_en-us.wav"
    out = tmp_path / "variant.wav"
    remix = ["remix"] + ["1"] * ch if ch > 1 else []
    subprocess.run(["sox", "-D", str(src), *args, str(out), *remix], check=True)
    if args != ["-b", "32", "-e", "floating-point"]:
        assert _format_tag(out) == 0xFFFE  # really the extensible header this test is about
    plain, rate = wavio.read_wav(src)
    got, got_rate = wavio.read_wav(out)
    assert got_rate == rate and got.shape == (len(plain), ch)
    assert np.abs(got.astype(np.int32) - plain[:, :1].astype(np.int32)).max() <= 1
    (found,) = detect_files([out], Settings())
    assert [d["wake_word"] for d in found["detections"]] == ["hey_jarvis"]


def _speech_and_noise(fixtures_dir: Path, tmp_path: Path) -> Path:
    speech, rate = wavio.read_wav(fixtures_dir / "hey_jarvis_en-us.wav")
    noise = np.random.default_rng(1).standard_normal(len(speech)) * 12000
    two = np.stack([speech[:, 0], np.clip(noise, -32768, 32767).astype(np.int16)], axis=1)
    path = tmp_path / "speech_l_noise_r.wav"
    wavio.write_wav(path, two, rate)
    return path


def test_detect_and_vad_map_channels_as_the_daemon_does(tmp_path: Path, fixtures_dir: Path) -> None:
    path = _speech_and_noise(fixtures_dir, tmp_path)
    left = Settings(audio=AudioSettings(channels=[0]))  # settings are frozen: built, not changed
    (hit,) = detect_files([path], left)
    (mono,) = detect_files([fixtures_dir / "hey_jarvis_en-us.wav"], Settings())
    assert [d["wake_word"] for d in hit["detections"]] == ["hey_jarvis"]
    assert hit["detections"][0]["t"] == pytest.approx(mono["detections"][0]["t"], abs=0.01)
    right = Settings(audio=AudioSettings(channels=[1]))
    (noise_only,) = detect_files([path], right)
    assert noise_only["detections"] == []
    (speech,) = vad_files([path], left)
    assert len(speech["speech"]) == 1 and 0.8 < speech["speech"][0][0] < 1.3
    wrong = Settings(audio=AudioSettings(channels=[2]))
    (err,) = detect_files([path], wrong)
    assert "channel 2" in err["error"]


def test_cli_config_channels_reach_detect(tmp_path: Path, fixtures_dir: Path) -> None:
    path = _speech_and_noise(fixtures_dir, tmp_path)
    conf = tmp_path / "voxbox.toml"
    conf.write_text("[audio]\nchannels = [0]\n")
    r = subprocess.run([sys.executable, "-m", "device", "detect", "--config", str(conf), str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (line,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert [d["wake_word"] for d in line["detections"]] == ["hey_jarvis"]
