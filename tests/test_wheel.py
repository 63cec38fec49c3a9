"""The built wheel works outside the checkout: it carries the model manifests (models/), the
hardware profiles (hw/) and the sounds, and `voxbox detect` / `voxbox check` find them from any folder.

The wheel is built from a copy of the source tree (`pip wheel --no-deps`) and installed with
`--no-deps` into a fresh venv that does not see the checkout. Its third-party dependencies
(LiteRT, numpy, the model packages: hundreds of MB) are borrowed from the test's own venv through a
.pth line appended after the fresh venv's site-packages: the wheel's `device` comes first, and the
test checks that this is the copy that ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from device.dev.server import free_loopback_port

REPO = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "demo-out",
                              "bench-out", "generated", ".pytest_cache", ".hypothesis")


# Nothing of the checkout may leak in: not through PYTHONPATH (the test run's own may point at it).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VOXBOX_MODELS_DIR", "VOXBOX_HW_DIR",
                                                              "VOXBOX_CONFIG", "VOXBOX_PROFILE")}


def _ok(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=CLEAN_ENV)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr[-2000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with only the built wheel installed (dependencies borrowed, see above)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=SKIP)
    _ok(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(src))
    wheel = next((base / "dist").glob("voxbox-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    _ok(sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel))
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=CLEAN_ENV).stdout.strip())
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_borrowed_deps.pth").write_text("".join(f"{p}\n" for p in borrowed))
    return env_dir / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "voxbox"), *args], cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=180)


def test_the_wheel_carries_models_and_profiles(installed: Path, tmp_path: Path) -> None:
    code = ("import device, device.listen.manifest as m, device.service.hw as hw; "
            "print(device.__file__); print(m.models_dir()); print(','.join(hw.list_profiles({})))")
    out = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env=CLEAN_ENV, check=True).stdout.split("\n")
    venv_dir = installed.parent.resolve()
    assert Path(out[0]).resolve().is_relative_to(venv_dir), out[0]  # the wheel's copy, not the checkout
    assert Path(out[1]).is_relative_to(venv_dir) and (Path(out[1]) / "hey_jarvis.openwakeword.json").is_file()
    assert {"respeaker-2mic-hat", "generic-usb"} <= set(out[2].split(","))


def test_the_wheel_carries_the_sounds(installed: Path, tmp_path: Path) -> None:
    # The earcons (device/appliance/sounds/*.wav) were left out of the wheel: installed from it, the
    # device started, woke and rang its timers in silence, one warning line per sound.
    code = ("import device; from device.appliance.earcons import NAMES, Earcons; from device.config import "
            "SoundsSettings; print(device.__file__); print(','.join(Earcons(SoundsSettings(), 24000).enabled)); "
            "print(','.join(sorted(NAMES)))")
    r = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=CLEAN_ENV, check=True)
    out = r.stdout.split("\n")
    assert Path(out[0]).resolve().is_relative_to(installed.parent.resolve()), out[0]
    assert out[1] == out[2] and "startup" in out[1].split(","), r.stdout + r.stderr


def test_detect_hey_jarvis_from_another_folder(installed: Path, tmp_path: Path, fixtures_dir: Path) -> None:
    wav = tmp_path / "hey.wav"
    shutil.copy(fixtures_dir / "hey_jarvis_en-us.wav", wav)
    r = run(installed, tmp_path, "detect", "hey.wav")
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout.strip().splitlines()[0])
    assert [d["wake_word"] for d in line["detections"]] == ["hey_jarvis"], line
    r = run(installed, tmp_path, "detect", "--wake-word", "okay_nabu", "hey.wav")  # another shipped manifest
    assert r.returncode == 0 and json.loads(r.stdout)["detections"] == [], r.stdout + r.stderr


def test_check_with_a_hw_profile_from_another_folder(installed: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "voxbox.toml"
    cfg.write_text(f'profile = "respeaker-2mic-hat"\n[realtime]\nurl = "ws://127.0.0.1:{free_loopback_port()}/v1/realtime"\n')
    r = run(installed, tmp_path, "check", "--config", "voxbox.toml")
    lines = r.stdout.splitlines()
    assert any(line.startswith("ok") and "profile respeaker-2mic-hat" in line for line in lines), r.stdout + r.stderr
    assert any(line.startswith("ok") and "models" in line and "hey_jarvis" in line for line in lines), r.stdout
    assert "Traceback" not in r.stdout + r.stderr
