"""sd_notify, watchdog and signals, against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid

import pytest

from device.service import systemd as service


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd; NOTIFY_SOCKET points at it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def messages(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


def test_ready_status_watchdog_stopping(notify_socket):
    assert service.ready("up and listening")
    assert notify_socket.recv(4096).decode() == f"READY=1\nMAINPID={os.getpid()}\nSTATUS=up and listening"
    assert service.status("thinking\nhard")  # one line on systemctl status
    assert notify_socket.recv(4096) == b"STATUS=thinking hard"
    assert service.watchdog_ping()
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert service.stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket(monkeypatch):
    name = f"voxbox-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert service.status("abstract")
        assert sock.recv(4096) == b"STATUS=abstract"
    finally:
        sock.close()


def test_no_socket_is_a_quiet_no_op(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert service.ready() is False
    assert service.notify("READY=1", env={"NOTIFY_SOCKET": "relative/path"}) is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    monkeypatch.setattr(service, "_warned", False)
    assert service.watchdog_ping() is False  # nobody listening: logged, not raised
    assert service.watchdog_ping() is False
    assert caplog.text.count("sd_notify") == 1


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "10000000"}, 10.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "ten"}, None),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "x"}, None),
])
def test_watchdog_interval(env, expected):
    assert service.watchdog_interval(env) == expected


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_watchdog_pings_at_most_every_half_interval(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    clock = FakeClock()
    wd = service.Watchdog(clock=clock)
    assert wd.interval == 10.0 and wd.enabled
    sent = []
    for _ in range(2000):  # 20 s of 10 ms frames
        sent.append(wd.frame())
        clock.t += 0.01
    assert sum(sent) == 4 and wd.pings == 4  # t = 0, 5, 10, 15 s
    assert [i for i, s in enumerate(sent) if s] == [0, 500, 1000, 1500]
    assert messages(notify_socket) == ["WATCHDOG=1"] * 4


def test_watchdog_stays_silent_when_the_audio_loop_stalls(notify_socket):
    clock = FakeClock()
    wd = service.Watchdog(10.0, clock=clock)
    assert wd.frame()
    clock.t += 60  # no frames for a minute: nothing was sent meanwhile
    assert messages(notify_socket) == ["WATCHDOG=1"]
    assert wd.frame()  # audio is back
    assert messages(notify_socket) == ["WATCHDOG=1"]


def test_watchdog_checks_health(notify_socket):
    clock = FakeClock()
    hb = service.Heartbeat(3.0, clock=clock)
    wd = service.Watchdog(10.0, clock=clock, healthy=hb)
    assert wd.frame()
    clock.t += 6
    assert not wd.frame()  # event loop silent for 6 s > 3 s: no ping
    hb.beat()
    assert wd.frame()
    assert len(messages(notify_socket)) == 2


def test_watchdog_disabled_outside_systemd(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    calls = []
    wd = service.Watchdog(send=lambda: calls.append(1))
    assert not wd.enabled
    assert not any(wd.frame() for _ in range(100)) and calls == []


def test_first_signal_stops_cleanly_and_notifies(notify_socket):
    stopped = []

    async def main():
        async with service.ShutdownSignals(on_stop=lambda: stopped.append(True)) as sigs:
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
            got = await asyncio.wait_for(sigs.wait(), 5)
            return got, sigs.stop_requested

    got, requested = asyncio.run(main())
    assert got == signal.SIGTERM and requested and stopped == [True]
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=stopping on SIGTERM"
    # handlers removed afterwards: default SIGINT handling is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_signal_forces_exit():
    async def main():
        async with service.ShutdownSignals(notify_systemd=False):
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(5)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())


def test_request_without_signal():
    async def main():
        sigs = service.ShutdownSignals(notify_systemd=False).install()
        try:
            asyncio.get_running_loop().call_soon(sigs.request)
            return await asyncio.wait_for(sigs.wait(), 2)
        finally:
            sigs.remove()

    assert asyncio.run(main()) == signal.SIGTERM


def test_extend_timeout_message(notify_socket):
    assert service.extend_timeout(30, "waiting for audio: no input\ndevice 'X'")
    assert notify_socket.recv(4096) == b"EXTEND_TIMEOUT_USEC=30000000\nSTATUS=waiting for audio: no input device 'X'"


def test_waiting_for_a_missing_card_keeps_extending_the_start_timeout(notify_socket, monkeypatch, caplog):
    """Until the card shows up, every retry asks systemd for EXTEND_WAIT_S more and says why; no READY yet."""
    from device.audio import pyaudio_port
    from device.config import Settings
    from device.errors import VoxboxError
    from device.service import run

    attempts = []

    class LateCard:
        def __init__(self, audio, player):
            attempts.append(1)
            if len(attempts) < 4:
                raise VoxboxError("no input device matching 'seeed2micvoicec'")

    monkeypatch.setattr(pyaudio_port, "PyAudioPort", LateCard)
    port = asyncio.run(run._open_audio(Settings(), player=None, indicator=None, delay=0.001))
    assert isinstance(port, LateCard) and len(attempts) == 4
    got = messages(notify_socket)
    usec = int(run.EXTEND_WAIT_S * 1_000_000)
    why = "no input device matching 'seeed2micvoicec'"
    assert got == [f"EXTEND_TIMEOUT_USEC={usec}\nSTATUS=waiting for audio: {why}"] * 3
    assert run.EXTEND_WAIT_S > run.MAX_RETRY_S  # each extension outlasts the longest sleep before the next
    assert caplog.text.count("seeed2micvoicec") == 1  # one log line per distinct problem
