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
    # bc: make_fixtures.sh's sums; gcc + headers: PyAudio always, pyalsaaudio and spidev on ARM, compile;
    # libspeexdsp1: the residual gate's linear canceller, loaded through ctypes.
    assert {"bc", "espeak-ng", "sox", "gcc", "python3-dev", "portaudio19-dev", "libasound2-dev",
            "libspeexdsp1"} <= pkgs
    for script in (REPO / "scripts").glob("*.sh"):
        if re.search(r"\bbc\b", script.read_text()):
            assert "bc" in pkgs, script


def _fake_dpkg(d: Path, installed: dict[str, tuple[str, str]], commands: tuple[str, ...] = ()) -> dict[str, str]:
    """PATH whose `dpkg-query -W` knows only `installed` (name -> (status, Provides)), plus `commands` as stubs.

    Answers both forms the set-up uses: `-W -f=FMT` (every package) and `-W -f=FMT NAME` (one).
    """
    d.mkdir()
    rows = "\n".join(f"{name}|{status}|{provides}" for name, (status, provides) in installed.items())
    (d / "dpkg-query").write_text(
        "#!/usr/bin/env bash\n"
        f"rows='{rows}'\n"
        'fmt=${2#-f=}; want=${3:-}; found=1\n'
        "while IFS='|' read -r name status provides; do\n"
        '  [ -z "$name" ] && continue\n'
        '  [ -n "$want" ] && [ "$want" != "$name" ] && continue\n'
        '  case $status in "install ok installed") abbrev="ii ";; "hold ok installed") abbrev="hi ";;\n'
        '    *) abbrev="un ";; esac\n'
        '  out=${fmt//\'${Status}\'/$status}; out=${out//\'${db:Status-Abbrev}\'/$abbrev}\n'
        '  out=${out//\'${Provides}\'/$provides}\n'
        '  printf "%b" "$out"; found=0\n'
        'done <<< "$rows"\n'
        '[ -n "$want" ] && exit $found; exit 0\n')
    for cmd in commands:
        (d / cmd).write_text("#!/bin/sh\nexit 0\n")
    for f in d.iterdir():
        f.chmod(0o755)
    # PATH is this dir alone, with the tools the script uses linked in: this machine's node and npm
    # (in /usr/bin, like everything else) must not answer for the fake system.
    for tool in ("bash", "sed", "tr", "sort", "grep"):
        (d / tool).symlink_to(shutil.which(tool) or tool)
    return {**os.environ, "PATH": str(d)}


def _missing(env: dict[str, str], *pkgs: str) -> list[str]:
    script = REPO / "scripts" / "apt_missing.sh"
    r = subprocess.run([shutil.which("bash") or "bash", str(script), *pkgs], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_a_held_nodesource_nodejs_is_not_replaced_by_debian_s_nodejs_and_npm(tmp_path: Path) -> None:
    # The CI machine's NodeSource nodejs, held: apt-get would refuse Debian's npm (it conflicts) and fail
    # the whole install, so set-up stopped before any test ran.
    env = _fake_dpkg(tmp_path / "bin", {
        "nodejs": ("hold ok installed", "nodejs-dev, nodejs-doc, nodejs-legacy, npm"),
        "sox": ("install ok installed", ""),
        "espeak-ng": ("deinstall ok config-files", ""),
    })
    assert _missing(env, "nodejs", "npm", "sox", "espeak-ng", "bc") == ["espeak-ng", "bc"]


def test_node_on_path_without_a_debian_package_counts_as_nodejs_and_npm(tmp_path: Path) -> None:
    # node and npm from nvm or a tarball: dpkg knows neither, the commands are there.
    env = _fake_dpkg(tmp_path / "bin", {"sox": ("install ok installed", "")}, commands=("node", "npm"))
    assert _missing(env, "nodejs", "npm", "sox") == []
    bare = _fake_dpkg(tmp_path / "bare", {})
    assert _missing(bare, "nodejs", "npm", "sox") == ["nodejs", "npm", "sox"]


def test_a_package_provided_by_another_counts_as_there(tmp_path: Path) -> None:
    env = _fake_dpkg(tmp_path / "bin", {"python3.11-venv": ("install ok installed", "python3-venv (= 3.11.2-6)")})
    assert _missing(env, "python3-venv", "gcc") == ["gcc"]
