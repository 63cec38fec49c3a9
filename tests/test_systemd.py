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


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_install_script_passes_shellcheck():
    proc = subprocess.run(["shellcheck", "-S", "warning", str(ROOT / "systemd" / "install.sh")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def _dry_install(fake_root: Path, *args: str) -> str:
    """install.sh with ROOT= a fake root: files land there, machine-changing commands are printed."""
    proc = subprocess.run(["bash", str(ROOT / "systemd" / "install.sh"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "ROOT": str(fake_root)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _pi_root(tmp_path: Path, boot: str = "boot/firmware") -> Path:
    (tmp_path / boot / "overlays").mkdir(parents=True)
    (tmp_path / boot / "config.txt").write_text("# Raspberry Pi OS\ndtparam=audio=on\n\n[cm4]\notg_mode=1\n")
    return tmp_path / boot / "config.txt"


def test_install_dry_run_writes_the_overlay_spi_and_unit_once(tmp_path):
    config_txt = _pi_root(tmp_path)
    (config_txt.parent / "overlays" / "wm8960-soundcard.dtbo").write_bytes(b"")  # the kernel ships it
    out = _dry_install(tmp_path, "--profile", "respeaker-2mic-hat", "--no-start")
    again = _dry_install(tmp_path, "--profile", "respeaker-2mic-hat", "--no-start")
    lines = config_txt.read_text().splitlines()
    assert lines.count("dtoverlay=wm8960-soundcard") == 1 and lines.count("dtparam=spi=on") == 1  # idempotent
    # After the [cm4] section, the new lines must apply to every Pi: under [all].
    assert lines.index("[cm4]") < lines.index("[all]") < lines.index("dtoverlay=wm8960-soundcard")
    assert "kept dtoverlay=wm8960-soundcard" in again and "reboot" in out
    unit = tmp_path / "etc/systemd/system/voxbox.service"
    assert unit.read_text() == UNIT.read_text()
    assert 'profile = "respeaker-2mic-hat"' in (tmp_path / "etc/voxbox/voxbox.toml").read_text()
    assert oct((tmp_path / "etc/voxbox/voxbox.env").stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "opt/voxbox/device/cli.py").is_file()
    # What it would do to the machine: compiler and headers, the four groups, the WM8960 mixer, the service.
    apt = next(line for line in out.splitlines() if line.startswith("would run: apt-get install"))
    assert {"gcc", "python3-dev", "portaudio19-dev", "libasound2-dev", "libspeexdsp1"} <= set(apt.split())
    assert re.search(r"would run: (useradd|usermod) .*--?[Gg]\w* gpio\\?,spi\\?,i2c\\?,audio", out), out
    assert "would run: amixer -q -c wm8960soundcard sset Left\\ Input\\ Mixer\\ Boost on" in out
    assert "would run: alsactl store wm8960soundcard" in out
    assert "would run: systemctl enable voxbox.service" in out
    assert "lgpio" in out  # python3-lgpio from apt on Pi OS, else lgpio from PyPI


def test_install_dry_run_on_an_older_boot_layout_and_an_overlay_not_in_the_kernel(tmp_path):
    config_txt = _pi_root(tmp_path, "boot")  # before Bookworm: /boot/config.txt
    out = _dry_install(tmp_path, "--profile", "respeaker-2mic-hat-v2", "--no-start")
    lines = config_txt.read_text().splitlines()
    assert "dtoverlay=respeaker-2mic-v2_0" in lines and "dtparam=spi=on" in lines
    assert "respeaker-2mic-v2_0.dtbo is not installed" in out and "seeed-linux-dtoverlays" in out


def test_install_dry_run_without_apa102_leaves_spi_alone_and_starts_without_blocking(tmp_path):
    config_txt = _pi_root(tmp_path)
    out = _dry_install(tmp_path, "--profile", "generic-usb")
    assert "dtparam=spi=on" not in config_txt.read_text()
    assert "would run: systemctl restart --no-block voxbox.service" in out  # the daemon may wait for its card
