"""A private PulseAudio server with a FIFO microphone and a FIFO speaker, for tests.

    with PulseRig() as rig:                 # or the `pulse_rig` fixture (pytest.skip without pulseaudio)
        with rig.activate():                # os.environ → the rig (in-process PyAudio)
            ...                             # or subprocess.run(..., env=rig.child_env())
        start = rig.feed(tone)              # mic: int16 mono at rig.mic_rate, real-time pace
        rig.feed_wav("speech.wav")
        audio = rig.speaker_audio()         # everything the speaker sink played (int16 @ rig.spk_rate)

The server runs as whoever runs the tests (root in CI) with everything private:
runtime dir, HOME, cookie, socket, ALSA config, all in one temp dir removed at exit.
The command that works as root (a warning, no refusal):

    pulseaudio --daemonize=no -n -F <dir>/rig.pa --exit-idle-time=-1 \
               --use-pid-file=false --system=false --log-target=stderr

with XDG_RUNTIME_DIR / PULSE_RUNTIME_PATH / HOME pointing into the temp dir, and rig.pa:

    load-module module-native-protocol-unix auth-anonymous=1 socket=<dir>/native
    load-module module-pipe-source source_name=mic file=<dir>/mic.fifo format=s16le rate=16000 channels=1
    load-module module-pipe-sink sink_name=spk file=<dir>/spk.fifo format=s16le rate=24000 channels=1 \
                use_system_clock_for_timing=yes
    set-default-source mic
    set-default-sink spk

(module-pipe-source creates its FIFO and refuses an existing one; the sink is paced by
the system clock so the reader thread may drain it as fast as it likes.)

Clients get PULSE_SERVER=unix:<dir>/native, PULSE_CLIENTCONFIG (autospawn = no, so a
dead rig never spawns a stray daemon), and ALSA_CONFIG_PATH = alsa.conf + a file with
`pcm.!default { type pulse }  ctl.!default { type pulse }`, so PortAudio's ALSA `default`
and `pulse` devices reach the rig as on a desktop or a Pi running PulseAudio.

The mic writer thread feeds queued audio into the source FIFO at real-time pace in 10 ms
blocks and writes silence when the queue is empty (a pipe source's clock is the data).
The speaker reader thread drains the sink FIFO and keeps (arrival time, samples).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BLOCK_MS = 10


class PulseRigError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child: SIGTERM when the starting thread dies (even by a crash), so no daemon is left.

    Start the rig from a thread that outlives it (the main thread, as pytest fixtures do).
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: teardown still stops it
        pass


def pulseaudio_binary() -> str | None:
    return shutil.which("pulseaudio")


class PulseRig:
    def __init__(self, mic_rate: int = 16000, spk_rate: int = 24000, *, extra_alsa: str = "",
                 start_timeout_s: float = 10.0) -> None:
        self.mic_rate = mic_rate
        self.spk_rate = spk_rate
        self.extra_alsa = extra_alsa  # more ALSA config appended to the rig's asound.conf
        self.start_timeout_s = start_timeout_s
        self.dir = Path(tempfile.mkdtemp(prefix="voxbox-pulse-"))
        self.socket = self.dir / "native"
        self.mic_fifo = self.dir / "mic.fifo"
        self.spk_fifo = self.dir / "spk.fifo"
        self.log_path = self.dir / "pulseaudio.log"
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._mic_queue: list[np.ndarray] = []
        self._mic_written = 0  # samples written into the mic FIFO (the mic clock)
        self._spk_chunks: list[tuple[float, np.ndarray]] = []
        self._spk_partial = b""
        self._write_files()

    # ---------------------------------------------------------- setup
    def _write_files(self) -> None:
        d = self.dir
        (d / "runtime").mkdir(mode=0o700)
        (d / "home").mkdir()
        (d / "rig.pa").write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-pipe-source source_name=mic file={self.mic_fifo} format=s16le "
            f"rate={self.mic_rate} channels=1\n"
            f"load-module module-pipe-sink sink_name=spk file={self.spk_fifo} format=s16le "
            f"rate={self.spk_rate} channels=1 use_system_clock_for_timing=yes\n"
            "set-default-source mic\n"
            "set-default-sink spk\n")
        (d / "client.conf").write_text("autospawn = no\n")
        (d / "asound.conf").write_text(
            "pcm.!default { type pulse }\nctl.!default { type pulse }\n" + self.extra_alsa + "\n")

    def server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for k in ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE", "DBUS_SESSION_BUS_ADDRESS"):
            env.pop(k, None)
        env.update(HOME=str(self.dir / "home"), XDG_RUNTIME_DIR=str(self.dir / "runtime"),
                   PULSE_RUNTIME_PATH=str(self.dir / "runtime"), XDG_CONFIG_HOME=str(self.dir / "home"),
                   PULSE_STATE_PATH=str(self.dir / "home"), PULSE_CLIENTCONFIG=str(self.dir / "client.conf"))
        return env

    @property
    def env(self) -> dict[str, str]:
        """The variables a client needs (merge into a child's environment)."""
        alsa_conf = "/usr/share/alsa/alsa.conf"
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.dir / "client.conf"),
            "PULSE_RUNTIME_PATH": str(self.dir / "runtime"),
            "ALSA_CONFIG_PATH": f"{alsa_conf}:{self.dir / 'asound.conf'}",
        }

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        return env

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Point this process's environment at the rig (PyAudio() reads it at init)."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # ---------------------------------------------------------- server
    def start(self) -> PulseRig:
        binary = pulseaudio_binary()
        if binary is None:
            raise PulseRigError("pulseaudio is not installed")
        for fifo in (self.mic_fifo, self.spk_fifo):
            with contextlib.suppress(FileNotFoundError):
                fifo.unlink()
        self._stop.clear()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "--daemonize=no", "-n", "-F", str(self.dir / "rig.pa"), "--exit-idle-time=-1",
             "--use-pid-file=false", "--system=false", "--log-target=stderr"],
            env=self.server_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self._kill_server()
                raise PulseRigError(f"pulseaudio did not start: {tail}")
            time.sleep(0.05)
        self._threads = [threading.Thread(target=self._mic_writer, name="rig-mic", daemon=True),
                         threading.Thread(target=self._spk_reader, name="rig-spk", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _ready(self) -> bool:
        if not (self.socket.exists() and self.mic_fifo.exists() and self.spk_fifo.exists()):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.socket))
            except OSError:
                return False
        return True

    def log_tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [ln for ln in lines if ln.startswith("E:")]
        return " | ".join((errors or lines)[-n:])

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.child_env(), capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def _kill_server(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_server(self) -> None:
        """Kill the server and the feeder threads (the 'device' disappears); start() brings it back."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self._threads = []
        self._kill_server()

    def close(self) -> None:
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PulseRig:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- mic side
    def feed(self, samples: np.ndarray) -> int:
        """Queue int16 mono audio (at mic_rate) for the mic; returns the mic sample where it will start."""
        x = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
        with self._lock:
            start = self._mic_written + sum(len(c) for c in self._mic_queue)
            self._mic_queue.append(x)
        return start

    def feed_wav(self, path: str | Path) -> int:
        from device.audio import wavio

        return self.feed(wavio.read_mono(path, self.mic_rate))

    @property
    def mic_written(self) -> int:
        with self._lock:
            return self._mic_written

    def mic_pending(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._mic_queue)

    def _next_mic_block(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            filled = 0
            while filled < n and self._mic_queue:
                head = self._mic_queue[0]
                take = min(n - filled, len(head))
                out[filled:filled + take] = head[:take]
                filled += take
                if take == len(head):
                    self._mic_queue.pop(0)
                else:
                    self._mic_queue[0] = head[take:]
            self._mic_written += n
        return out

    def _mic_writer(self) -> None:
        n = self.mic_rate * BLOCK_MS // 1000
        fd = os.open(self.mic_fifo, os.O_WRONLY | os.O_NONBLOCK)  # pulse holds the read end
        try:
            t0 = time.monotonic()
            blocks = 0
            while not self._stop.is_set():
                data = self._next_mic_block(n).tobytes()
                try:
                    os.write(fd, data)
                except BlockingIOError:
                    pass  # the server is not reading: the audio is lost, as on a real mic
                except OSError:
                    return
                blocks += 1
                delay = t0 + blocks * BLOCK_MS / 1000 - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            os.close(fd)

    # ---------------------------------------------------------- speaker side
    def _spk_reader(self) -> None:
        fd = os.open(self.spk_fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    time.sleep(0.01)  # no writer at the moment
                    continue
                now = time.monotonic()
                data = self._spk_partial + data
                cut = len(data) - len(data) % 2
                self._spk_partial = data[cut:]
                with self._lock:
                    self._spk_chunks.append((now, np.frombuffer(data[:cut], dtype="<i2").copy()))
        finally:
            os.close(fd)

    def speaker_chunks(self) -> list[tuple[float, np.ndarray]]:
        """(monotonic arrival time, int16 samples) for everything the sink played so far."""
        with self._lock:
            return list(self._spk_chunks)

    def speaker_audio(self) -> np.ndarray:
        chunks = self.speaker_chunks()
        return np.concatenate([c for _, c in chunks]) if chunks else np.zeros(0, dtype=np.int16)

    def speaker_clear(self) -> None:
        with self._lock:
            self._spk_chunks.clear()


def pulse_rig_or_skip(**kwargs: object) -> PulseRig:
    """A started rig; pytest.skip (with the reason) only when the pulseaudio binary is absent."""
    import pytest

    if pulseaudio_binary() is None:
        pytest.skip("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins)")
    rig = PulseRig(**kwargs)  # type: ignore[arg-type]
    try:
        return rig.start()
    except BaseException:
        rig.close()
        raise


def pulse_rig_fixture(**kwargs: object):  # noqa: ANN201 - a pytest fixture body
    """`pulse_rig = pytest.fixture(scope="module")(pulse_rig_fixture)` style helper: yields a started rig."""
    rig = pulse_rig_or_skip(**kwargs)
    try:
        yield rig
    finally:
        rig.close()
