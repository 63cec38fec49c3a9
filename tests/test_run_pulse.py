"""`voxbox run` end to end on a real audio server: PulseAudio pipe mic/speaker + the local realtime server.

The daemon opens PortAudio's `default` device like on a desktop Pi; a wake
phrase and a question written into the mic FIFO must produce the parrot's
reply out of the speaker FIFO. Also checks READY=1 over a real NOTIFY_SOCKET,
the watchdog pings, a clean exit on SIGTERM, and that muting persists.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyaudio")

from pulse_rig import pulse_rig_or_skip  # noqa: E402

from device.audio import wavio  # noqa: E402
from device.dev.server import free_loopback_port  # noqa: E402


def wait_for(pred, timeout: float, every: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every)
    return False


def records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture()
def daemon_env(tmp_path: Path):  # type: ignore[no-untyped-def]
    rig = pulse_rig_or_skip()
    port = free_loopback_port()
    server = subprocess.Popen([sys.executable, "-m", "device", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = tmp_path / "state"
    cfg = tmp_path / "voxbox.toml"
    cfg.write_text(f"""
timeline = "{tmp_path / 'timeline.jsonl'}"
[realtime]
url = "ws://127.0.0.1:{port}/v1/realtime"
[gpio]
enabled = false
state_dir = "{state}"
[audio]
input_rate = 16000
input_channels = 1
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.2)
    env = rig.child_env(dict(os.environ))
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="1000000")
    env.pop("OPENAI_API_KEY", None)
    try:
        yield rig, cfg, env, notify, tmp_path
    finally:
        notify.close()
        server.terminate()
        server.wait(timeout=10)
        rig.close()


def start(cfg: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "device", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def notifications(sock: socket.socket, until: str, timeout: float) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if any(until in g for g in got):
            break
    return got


def test_wake_phrase_into_the_mic_fifo_gets_a_reply_out_of_the_speaker_fifo(daemon_env, fixtures_dir: Path) -> None:
    rig, cfg, env, notify, tmp = daemon_env
    proc = start(cfg, env)
    try:
        msgs = notifications(notify, "READY=1", 20)
        assert any("READY=1" in m for m in msgs), (msgs, proc.poll())
        tl = tmp / "timeline.jsonl"
        # A first start (an empty state directory): the start-up sound measures the room first, the wake
        # word masked while it sounds; the rig's mic does not hear its speaker, so nothing is kept.
        assert wait_for(lambda: any(r["event"] == "room" and r["action"] == "probed" for r in records(tl)), 15)
        assert not [r for r in records(tl) if r["event"] == "room" and r["action"] == "probed"][0]["ok"]
        rig.speaker_clear()
        phrase, rate = wavio.read_wav(fixtures_dir / "hey_jarvis_en-us.wav")  # "hey jarvis, what time is it?"
        assert rate == 16000
        rig.feed(np.concatenate((phrase[:, 0], np.zeros(rate * 2, np.int16))))
        assert wait_for(lambda: any(r["event"] == "playback_stop" for r in records(tl)), 30), records(tl)
        recs = records(tl)
        names = [r["event"] for r in recs]
        assert "wake" in names and "uplink_start" in names and "playback_start" in names
        states = [r["state"] for r in recs if r["event"] == "state"]
        assert "speaking" in states and states.index("listening") < states.index("speaking")
        # The parrot's reply is the user's own turn: about a second of speech out of the speaker.
        out = rig.speaker_audio()
        loud = np.flatnonzero(np.abs(out.astype(np.int32)) > 1000)
        assert len(loud) and (loud[-1] - loud[0]) / 24000 > 0.5
        # The watchdog is fed from the audio loop.
        assert any("WATCHDOG=1" in m for m in notifications(notify, "WATCHDOG=1", 3))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_missing_api_key_for_a_wss_url_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[realtime]\nurl = "wss://api.openai.com/v1/realtime?model=gpt-realtime"\n[gpio]\nenabled = false\n')
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    r = subprocess.run([sys.executable, "-m", "device", "run", "--config", str(cfg)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "OPENAI_API_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_muted_device_sends_nothing_and_stays_muted_across_restarts(daemon_env, fixtures_dir: Path) -> None:
    rig, cfg, env, notify, tmp = daemon_env
    state = tmp / "state"
    state.mkdir()
    (state / "muted").write_text("1\n")  # muted by a hold before the last restart
    proc = start(cfg, env)
    try:
        assert any("READY=1" in m for m in notifications(notify, "READY=1", 20))
        phrase, _ = wavio.read_wav(fixtures_dir / "hey_jarvis_en-us.wav")
        rig.feed(np.concatenate((phrase[:, 0], np.zeros(16000, np.int16))))
        assert wait_for(lambda: rig.mic_pending() == 0, 15)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    recs = records(tmp / "timeline.jsonl")
    assert [r["state"] for r in recs if r["event"] == "state"][-1] == "muted"
    assert not [r for r in recs if r["event"] in ("wake", "uplink_start", "playback_start")]
    summary = recs[-1]
    assert summary["event"] == "summary" and summary["uplink_bytes"] == 0 and summary["uplink_audio_ms"] == 0
    assert not rig.speaker_audio().any()


def test_sound_card_lost_and_back_shows_error_then_recovers(daemon_env, fixtures_dir: Path) -> None:
    rig, cfg, env, notify, tmp = daemon_env
    proc = start(cfg, env)
    tl = tmp / "timeline.jsonl"
    try:
        assert any("READY=1" in m for m in notifications(notify, "READY=1", 20))
        rig.stop_server()  # the USB card is unplugged: the sound server and its devices vanish
        assert wait_for(lambda: any(r["event"] == "state" and r["state"] == "error" for r in records(tl)), 15), \
            records(tl)[-5:]
        assert proc.poll() is None  # the daemon keeps running
        rig.start()
        assert wait_for(lambda: any(r["event"] == "audio_reopened" for r in records(tl)), 30), records(tl)[-5:]
        states = [r["state"] for r in records(tl) if r["event"] == "state"]
        assert states[-1] == "idle"
        # ... and it still works: the wake phrase opens a conversation.
        phrase, _ = wavio.read_wav(fixtures_dir / "hey_jarvis_en-us.wav")
        rig.feed(np.concatenate((phrase[:, 0], np.zeros(16000, np.int16))))
        assert wait_for(lambda: any(r["event"] == "wake" for r in records(tl)), 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    errors = [line for line in err.splitlines() if "audio device lost" in line]
    assert 1 <= len(errors) <= 2, err  # said once, not once per retry
