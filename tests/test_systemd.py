"""systemd/: the unit's sandbox score, its syntax, and what audio and GPIO need from it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "voxbox.service"
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def directives(path: Path = UNIT) -> dict[str, list[str]]:
    """Key -> values (in order) of a unit file, for all sections."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@needs_analyze
def test_exposure_score_is_low():
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    text = proc.stdout + proc.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", text)
    assert m, text[-2000:]
    score = float(m.group(1))
    print(f"systemd-analyze security exposure: {score}")
    assert score <= MAX_EXPOSURE, text


@needs_analyze
def test_unit_has_no_unknown_or_bad_directives(tmp_path):
    # ExecStart points at the installed venv; verify needs an executable that exists here.
    unit = tmp_path / "voxbox.service"
    unit.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", UNIT.read_text()))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    bad = [line for line in (proc.stdout + proc.stderr).splitlines()
           if str(unit) in line or "Unknown" in line or "ignoring" in line.lower()]
    assert proc.returncode == 0 and not bad, proc.stderr


def test_service_contract():
    d = directives()
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] == "10" and one["Restart"] == "always"
    assert one["User"] == "voxbox"
    assert one["ExecStart"] == "/opt/voxbox/.venv/bin/voxbox run --config /etc/voxbox/voxbox.toml"
    assert one["EnvironmentFile"] == "-/etc/voxbox/voxbox.env"
    assert one["StateDirectory"] == "voxbox"
    assert set(one["SupplementaryGroups"].split()) == {"audio", "gpio", "spi"}
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectKernelTunables"):
        assert one[key] in ("yes", "strict"), key
    assert one["ProtectSystem"] == "strict"
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert "@system-service" in d["SystemCallFilter"]


def test_config_error_does_not_restart_loop():
    """Exit 2 (bad config, one line) is final; anything else restarts (the watchdog, a crash)."""
    one = {k: v[-1] for k, v in directives().items()}
    assert one["RestartPreventExitStatus"].split() == ["2"] and one["Restart"] == "always"
    # No start timeout of its own: the daemon extends the default while it waits for its sound card.
    assert "TimeoutStartSec" not in one and "TimeoutSec" not in one


def test_sandbox_keeps_audio_gpio_and_spi_working():
    d = directives()
    one = {k: v[-1] for k, v in d.items()}
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-alsa", "char-gpiochip", "char-spi"} <= allowed  # /dev/snd/*, /dev/gpiochip*, /dev/spidev*
    assert one["DevicePolicy"] == "closed"
    # These would hide what the daemon needs:
    assert one.get("PrivateDevices", "no") == "no"    # /dev/snd, /dev/gpiochip*, /dev/spidev*
    assert one.get("ProcSubset", "all") == "all"      # /proc/asound (ALSA), /proc/cpuinfo (gpiozero)
    assert one.get("PrivateUsers", "no") == "no"      # the audio/gpio/spi groups would not map
    assert one.get("PrivateNetwork", "no") == "no"    # the realtime WebSocket
    assert one.get("MemoryDenyWriteExecute", "no") == "no"  # libffi closures, TFLite
    assert one["WorkingDirectory"] == "/var/lib/voxbox"  # lgpio writes its notify files in the cwd


def test_env_example_and_config_template():
    env = (ROOT / "systemd" / "voxbox.env.example").read_text()
    assert "0600" in env and re.search(r"(?m)^OPENAI_API_KEY=$", env)
    tmpl = (ROOT / "systemd" / "voxbox.toml.example").read_text()
    assert "@PROFILE@" in tmpl and "api_key" not in tmpl.replace("OPENAI_API_KEY", "")


def test_config_template_is_a_valid_config(tmp_path):
    from device import config

    for profile in ("", "respeaker-2mic-hat"):
        f = tmp_path / "voxbox.toml"
        f.write_text((ROOT / "systemd" / "voxbox.toml.example").read_text().replace("@PROFILE@", profile))
        s = config.load(f, env={})
        assert s.profile == profile and s.gpio.state_dir == "/var/lib/voxbox"


def test_install_script_syntax_and_refusals():
    script = ROOT / "systemd" / "install.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    help_ = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert help_.returncode == 0 and "--profile" in help_.stdout
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
    # An unknown profile stops it before anything on the machine is touched.
    unknown = subprocess.run(["bash", str(script), "--profile", "no-such-board", "--no-start"],
                             capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 2
    if os.geteuid() == 0:
        assert "unknown profile 'no-such-board'" in unknown.stderr and "respeaker-2mic-hat" in unknown.stderr
    else:
        assert "run as root" in unknown.stderr
