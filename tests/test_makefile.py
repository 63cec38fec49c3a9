"""The Makefile's set-up on the systems people have: 32-bit stops at once, a bare Debian gets what the tests use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _fake_system(d: Path, dpkg_arch: str, machine: str) -> dict[str, str]:
    """PATH with `dpkg --print-architecture` and `uname -m` answering as another machine would."""
    d.mkdir()
    (d / "dpkg").write_text(f"#!/bin/sh\n[ \"$1\" = --print-architecture ] && echo {dpkg_arch} && exit 0\nexit 1\n")
    (d / "uname").write_text(f"#!/bin/sh\necho {machine}\n")
    for f in d.iterdir():
        f.chmod(0o755)
    return {**os.environ, "PATH": f"{d}:{os.environ['PATH']}"}


@pytest.mark.parametrize("dpkg_arch,machine", [
    ("armhf", "armv7l"),    # 32-bit Raspberry Pi OS on a Pi 3/Zero 2
    ("armhf", "aarch64"),   # 32-bit Raspberry Pi OS userland on the 64-bit kernel (Pi 4/5 default)
    ("armel", "armv6l"),    # Pi Zero / Pi 1
])
def test_setup_on_32_bit_stops_at_once_with_one_line(tmp_path: Path, dpkg_arch: str, machine: str) -> None:
    venv = tmp_path / "venv"
    r = subprocess.run(["make", "-s", "-C", str(REPO), "setup", f"VENV={venv}"], capture_output=True, text=True,
                       env=_fake_system(tmp_path / "bin", dpkg_arch, machine), timeout=60)
    assert r.returncode != 0
    said = [line for line in r.stderr.splitlines() if line.startswith("make: voxbox")]
    assert len(said) == 1 and "64-bit" in said[0] and "Raspberry Pi OS" in said[0] and dpkg_arch in said[0], r.stderr
    assert not venv.exists()  # nothing installed, nothing built


def test_64_bit_passes_the_system_check(tmp_path: Path) -> None:
    r = subprocess.run(["make", "-s", "-C", str(REPO), "check-system"], capture_output=True, text=True, timeout=60,
                       env=_fake_system(tmp_path / "bin", "arm64", "aarch64"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_apt_packages_cover_the_fixture_scripts_and_source_builds() -> None:
    text = (REPO / "Makefile").read_text()
    m = re.search(r"^APT_PACKAGES := ((?:.*\\\n)*.*)$", text, re.M)
    assert m
    pkgs = set(m.group(1).replace("\\\n", " ").split())
    # bc: make_fixtures.sh's sums; gcc + headers: PyAudio always, pyalsaaudio and spidev on ARM, compile.
    assert {"bc", "espeak-ng", "sox", "gcc", "python3-dev", "portaudio19-dev", "libasound2-dev"} <= pkgs
    for script in (REPO / "scripts").glob("*.sh"):
        if re.search(r"\bbc\b", script.read_text()):
            assert "bc" in pkgs, script
