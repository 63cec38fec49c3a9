"""`voxbox devices` and `voxbox check` on a real (PulseAudio) sound setup and a real local server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyaudio")

from pulse_rig import pulse_rig_or_skip  # noqa: E402

from device.dev.server import free_loopback_port  # noqa: E402


@pytest.fixture(scope="module")
def rig_env():  # type: ignore[no-untyped-def]
    rig = pulse_rig_or_skip()
    try:
        env = rig.child_env(dict(os.environ))
        env.pop("OPENAI_API_KEY", None)
        yield env
    finally:
        rig.close()


def voxbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_devices_lists_the_sound_server(rig_env: dict[str, str]) -> None:
    r = voxbox(rig_env, "devices")
    assert r.returncode == 0, r.stderr
    assert any("pulse" in line or "default" in line for line in r.stdout.splitlines())
    assert "ALSA lib" not in r.stderr  # PortAudio's probe chatter is kept from the user


def test_check_passes_with_a_server_and_names_what_is_wrong_without(rig_env: dict[str, str], tmp_path: Path) -> None:
    port = free_loopback_port()
    server = subprocess.Popen([sys.executable, "-m", "device", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cfg = tmp_path / "ok.toml"
        cfg.write_text(f'[realtime]\nurl = "ws://127.0.0.1:{port}/v1/realtime"\n[gpio]\nenabled = false\n')
        deadline = time.monotonic() + 15
        while True:
            r = voxbox(rig_env, "check", "--config", str(cfg))
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)  # the server may still be binding its port
        assert r.returncode == 0, r.stdout + r.stderr
        assert "session.created" in r.stdout and "hey_jarvis" in r.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[realtime]\nurl = "ws://127.0.0.1:{free_loopback_port()}/v1/realtime"\n'
                   '[audio]\ninput_device = "no-such-card"\n[gpio]\nenabled = false\n')
    r = voxbox(rig_env, "check", "--config", str(bad))
    assert r.returncode == 1
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert any("audio" in f and "no-such-card" in f for f in fails), r.stdout
    assert any("server" in f and "cannot reach" in f for f in fails), r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_check_says_the_sound_server_and_what_a_system_service_needs(rig_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text(f'[realtime]\nurl = "ws://127.0.0.1:{free_loopback_port()}/v1/realtime"\n[gpio]\nenabled = false\n')
    r = voxbox(rig_env, "check", "--config", str(cfg))
    sound = [line for line in r.stdout.splitlines() if line.split()[1:2] == ["sound"]]
    assert len(sound) == 1 and sound[0].startswith("ok"), r.stdout
    # The rig is a PulseAudio session: the line says so and that the service goes through ALSA instead.
    assert "PulseAudio in this user's session" in sound[0] and "system service has no session" in sound[0]
