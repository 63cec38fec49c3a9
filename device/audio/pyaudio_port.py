"""The real sound card: PyAudio (PortAudio) behind the AudioPort protocol.

Both streams run in callback mode and the callbacks only move bytes:

* input: each block of `frames_per_buffer_ms` goes into a bounded deque and the
  asyncio loop is woken with `call_soon_threadsafe` (only while `read()` waits).
  When the deque is full the oldest block is dropped and counted
  (`stats.overflows`); the callback never blocks. While the agent is idle
  (`set_idle(True)`: only the wake word listens) the loop is woken once per
  IDLE_BATCH_MS and `read()` hands over the blocks of that span as one: the wake
  word needs 80 ms per step anyway, and a wake-up of the Python loop costs several
  times the per-block work it does (cold caches: `voxbox bench --section daemon`
  shows it part by part). Leaving idle takes effect at the next read(), with no
  audio lost: the stream is never reopened, PortAudio's blocks stay as they are.
* output: each callback pulls exactly the samples it needs from the Player
  (`player.pull`) in blocks of `output_buffer_ms / 2` (the device keeps two of
  them: the output latency is about `output_buffer_ms`), so `Player.flush()`
  silences the speaker within one block plus that latency (~30 ms by default). The pulled samples
  also go to a bounded "played" deque that `speaker_played()` drains (the echo
  canceller's reference). If the device refuses the player's rate, the stream
  opens at a rate it supports and a streaming soxr resampler converts in the
  callback.

The input is opened at the device's default rate and channel count unless
`audio.input_rate` / `audio.input_channels` say otherwise. Software devices
(ALSA `default`, `pulse`, `dsnoop`...) advertise 32+ channels; for them the
port opens one channel (the sound server mixes) unless told otherwise.

Device loss (USB unplugged, sound server gone): when a stream stops or its
callbacks stall for more than `stall_s`, `healthy` turns False and `read()`
raises AudioDeviceLost (one clear line). The agent decides what to show and
calls `await reopen()`, which re-scans the devices and reopens with backoff.

PortAudio's ALSA/JACK probing writes dozens of "ALSA lib ..." lines to fd 2:
`quiet_stderr()` silences fd 2 around PyAudio() init, stream opens and
terminate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.audio import dsp
from device.audio.alsa_errors import ALSA
from device.audio.player import Player
from device.audio.ports import PortStats
from device.config import AudioSettings
from device.errors import ConfigError, VoxboxError
from device.quiet import quiet_stderr

log = logging.getLogger(__name__)

STALL_S = 1.0  # no callback for this long on a running stream = device lost
IN_QUEUE_S = 2.0  # mic audio kept while nobody reads, then the oldest is dropped
PLAYED_QUEUE_S = 2.0  # speaker reference kept while nobody drains it
IDLE_BATCH_MS = 80  # read() size while idle: one openWakeWord step
VIRTUAL_CHANNELS = 8  # a device advertising more channels than this is a software mixer


class AudioDeviceLost(VoxboxError):
    """The sound card went away or stopped delivering audio."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: int
    is_default_input: bool = False
    is_default_output: bool = False


def _pyaudio_module() -> Any:
    try:
        import pyaudio
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise VoxboxError(f"PyAudio is not available ({exc}); install pyaudio and portaudio19") from None
    return pyaudio


def _new_pyaudio() -> Any:
    pyaudio = _pyaudio_module()
    with quiet_stderr():
        try:
            return pyaudio.PyAudio()
        except Exception as exc:  # noqa: BLE001
            raise VoxboxError(f"cannot initialise PortAudio: {exc}") from None


def _terminate(pa: Any) -> None:
    with quiet_stderr():
        try:
            pa.terminate()
        except Exception:  # noqa: BLE001
            pass


def _default_index(pa: Any, kind: str) -> int | None:
    try:
        info = pa.get_default_input_device_info() if kind == "input" else pa.get_default_output_device_info()
    except OSError:
        return None
    return int(info["index"])


def _devices(pa: Any) -> list[DeviceInfo]:
    d_in, d_out = _default_index(pa, "input"), _default_index(pa, "output")
    out = []
    for i in range(pa.get_device_count()):
        d = pa.get_device_info_by_index(i)
        out.append(DeviceInfo(index=i, name=str(d["name"]),
                              max_input_channels=int(d["maxInputChannels"]),
                              max_output_channels=int(d["maxOutputChannels"]),
                              default_rate=int(round(d["defaultSampleRate"])),
                              is_default_input=i == d_in, is_default_output=i == d_out))
    return out


def list_devices() -> list[DeviceInfo]:
    """Every PortAudio device (the `voxbox devices` listing), without ALSA's stderr noise."""
    pa = _new_pyaudio()
    try:
        return _devices(pa)
    finally:
        _terminate(pa)


def find_device(devices: list[DeviceInfo], spec: str, kind: str, default: int | None) -> DeviceInfo:
    """`spec`: "" = the default device, digits = an index, else a name substring (case-insensitive).

    Raises ConfigError naming the available devices of that kind.
    """
    def usable(d: DeviceInfo) -> bool:
        return (d.max_input_channels if kind == "input" else d.max_output_channels) > 0

    candidates = [d for d in devices if usable(d)]
    listing = ", ".join(f"{d.index}: {d.name!r}" for d in candidates) or "none"
    key = f"audio.{kind}_device"
    spec = spec.strip()
    if not spec:
        match = next((d for d in candidates if d.index == default), None)
        if match is None:
            if not candidates:
                raise ConfigError(f"{key}: no {kind} device found (available {kind} devices: none)")
            match = candidates[0]
        return match
    if spec.isdigit():
        match = next((d for d in candidates if d.index == int(spec)), None)
        if match is None:
            raise ConfigError(f"{key}: no {kind} device with index {spec} (available {kind} devices: {listing})")
        return match
    low = spec.lower()
    exact = [d for d in candidates if d.name.lower() == low]
    partial = [d for d in candidates if low in d.name.lower()]
    if exact or partial:
        return (exact or partial)[0]
    raise ConfigError(f"{key}: no {kind} device matches {spec!r} (available {kind} devices: {listing})")


def _supported(pa: Any, pyaudio: Any, rate: int, dev: int, channels: int, kind: str) -> bool:
    kw: dict[str, Any] = {}
    if kind == "input":
        kw = dict(input_device=dev, input_channels=channels, input_format=pyaudio.paInt16)
    else:
        kw = dict(output_device=dev, output_channels=channels, output_format=pyaudio.paInt16)
    try:
        with quiet_stderr():
            return bool(pa.is_format_supported(rate, **kw))
    except ValueError:
        return False


# ------------------------------------------------------------------ the port
def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PyAudioPort:
    """AudioPort over PyAudio: mic blocks from `read()`, speaker fed from `player`."""

    def __init__(self, settings: AudioSettings, player: Player, *, stall_s: float = STALL_S) -> None:
        self.settings = settings
        self.player = player
        self.stall_s = stall_s
        self.stats = PortStats()
        # alsa-lib's own error lines ("underrun occurred") go to the log and the xrun count, not stderr.
        ALSA.install()
        self.error = ""  # the last device problem, one line ("" while healthy)
        self.in_rate = 0
        self.in_channels = 0
        self.out_rate = player.rate  # rate of the output stream (== player.rate unless resampling)
        self.out_channels = 1
        self.input_name = ""
        self.output_name = ""
        self._pyaudio = _pyaudio_module()
        self._pa: Any = None
        self._in_stream: Any = None
        self._out_stream: Any = None
        self._closed = False
        self._lost = False
        self._inq: deque[bytes] = deque()
        self._played: deque[np.ndarray] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fut: asyncio.Future[None] | None = None
        self._waiting = False
        self._batch = 1  # blocks per read(): IDLE_BATCH_MS worth while idle
        self._last_in = self._last_out = time.monotonic()
        self._resampler: dsp.StreamResampler | None = None
        self._rbuf = np.zeros(0, dtype=np.int16)
        self._open()

    # ---------------------------------------------------------- opening
    def _open(self) -> None:
        s = self.settings
        self._pa = _new_pyaudio()
        try:
            devices = _devices(self._pa)
            din = find_device(devices, s.input_device, "input", _default_index(self._pa, "input"))
            dout = find_device(devices, s.output_device, "output", _default_index(self._pa, "output"))
            self._open_input(din)
            self._open_output(dout)
        except BaseException:
            self._close_streams()
            _terminate(self._pa)
            self._pa = None
            raise
        self._lost = False
        self.error = ""
        log.info("audio: input %r %d Hz x%d, output %r %d Hz x%d (player %d Hz), latency %d samples",
                 self.input_name, self.in_rate, self.in_channels, self.output_name, self.out_rate,
                 self.out_channels, self.player.rate, self.player.latency_samples)

    def _open_input(self, dev: DeviceInfo) -> None:
        s, pa, pyaudio = self.settings, self._pa, self._pyaudio
        if s.input_channels:
            if s.input_channels > dev.max_input_channels:
                raise ConfigError(f"audio.input_channels: {dev.name!r} has {dev.max_input_channels} input channels, "
                                  f"not {s.input_channels}")
            channels = s.input_channels
        else:
            channels = dev.max_input_channels if dev.max_input_channels <= VIRTUAL_CHANNELS else 1
        rate = s.input_rate or dev.default_rate
        if not _supported(pa, pyaudio, rate, dev.index, channels, "input"):
            what = "audio.input_rate" if s.input_rate else "input"
            raise ConfigError(f"{what}: {dev.name!r} does not support {rate} Hz with {channels} channel(s)")
        self.in_rate, self.in_channels, self.input_name = rate, channels, dev.name
        frames = max(1, rate * s.frames_per_buffer_ms // 1000)
        self._inq = deque(maxlen=max(4, int(IN_QUEUE_S * 1000 / max(1, s.frames_per_buffer_ms))))
        self._last_in = time.monotonic()
        self._in_stream = self._open_stream("input", dev, rate, channels, frames, self._in_callback)

    def _open_stream(self, kind: str, dev: DeviceInfo, rate: int, channels: int, frames: int,
                     callback: Any) -> Any:
        direction = {kind: True, f"{kind}_device_index": dev.index}
        try:
            with quiet_stderr():
                return self._pa.open(format=self._pyaudio.paInt16, channels=channels, rate=rate,
                                     frames_per_buffer=frames, stream_callback=callback, **direction)
        except (OSError, ValueError) as exc:
            raise VoxboxError(f"cannot open {kind} {dev.name!r} at {rate} Hz x{channels}: {exc}") from None

    def _open_output(self, dev: DeviceInfo) -> None:
        s, pa, pyaudio = self.settings, self._pa, self._pyaudio
        want = self.player.rate
        channels = 1 if _supported(pa, pyaudio, want, dev.index, 1, "output") or dev.max_output_channels < 2 else 2
        rate = want
        if not _supported(pa, pyaudio, rate, dev.index, channels, "output"):
            options = [dev.default_rate, 48000, 44100, 32000, 22050, 16000]
            rate = next((r for r in options if _supported(pa, pyaudio, r, dev.index, channels, "output")), 0)
            if not rate:
                raise VoxboxError(f"output {dev.name!r} supports none of {want}, {dev.default_rate}, 48000, 44100 Hz")
        self.out_rate, self.out_channels, self.output_name = rate, channels, dev.name
        self._resampler = dsp.StreamResampler(want, rate, quality="MQ") if rate != want else None
        self._rbuf = np.zeros(0, dtype=np.int16)
        # output_buffer_ms is the device buffer: PortAudio/ALSA keeps two periods, so the
        # callback block is half of it (flush is heard within about output_buffer_ms + a block).
        block_ms = max(2, s.output_buffer_ms // 2)
        self._played = deque(maxlen=max(4, int(PLAYED_QUEUE_S * 1000 / block_ms)))
        frames = max(1, rate * block_ms // 1000)
        self._last_out = time.monotonic()
        self._out_stream = self._open_stream("output", dev, rate, channels, frames, self._out_callback)
        latency_s = float(self._out_stream.get_output_latency())
        self.player.latency_samples = int(round(latency_s * want))

    # ---------------------------------------------------------- callbacks (PortAudio's thread)
    def _in_callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> tuple[None, int]:
        self._last_in = time.monotonic()
        pyaudio = self._pyaudio
        if status & (pyaudio.paInputOverflow | pyaudio.paInputUnderflow):
            self.stats.xruns += 1
        if in_data:
            q = self._inq
            if q.maxlen is not None and len(q) >= q.maxlen:
                self.stats.overflows += 1  # the deque drops the oldest block
            q.append(in_data)
            if self._waiting and len(q) >= self._batch:
                self._wake()
        return None, pyaudio.paContinue

    def _out_callback(self, in_data: Any, frame_count: int, time_info: Any, status: int) -> tuple[bytes, int]:
        self._last_out = time.monotonic()
        pyaudio = self._pyaudio
        if status & (pyaudio.paOutputUnderflow | pyaudio.paOutputOverflow):
            self.stats.xruns += 1
        try:
            out = self._speaker_block(frame_count)
        except Exception:  # noqa: BLE001 - never let an exception kill the stream
            self.stats.callback_errors += 1
            out = np.zeros(frame_count, dtype=np.int16)
        if self.out_channels > 1:
            out = np.repeat(out, self.out_channels)
        return out.tobytes(), pyaudio.paContinue

    def _speaker_block(self, frames: int) -> np.ndarray:
        if self._resampler is None:
            block = self.player.pull(frames)
            self._keep_played(block)
            return block
        # Pull whole blocks of player samples until the resampler has produced a device
        # block; the surplus (under one block) waits in _rbuf for the next callback.
        # Tiny pulls would stall: soxr emits output in chunks, not sample by sample.
        buf = self._rbuf
        chunk = math.ceil(frames * self.player.rate / self.out_rate) + 1
        for _ in range(8):
            if len(buf) >= frames:
                break
            src = self.player.pull(chunk)
            self._keep_played(src)
            buf = np.concatenate((buf, self._resampler(src)))
        if len(buf) < frames:  # the resampler is still filling its delay line
            buf = np.concatenate((np.zeros(frames - len(buf), dtype=np.int16), buf))
        self._rbuf = buf[frames:]
        return buf[:frames]

    def _keep_played(self, block: np.ndarray) -> None:
        q = self._played
        if q.maxlen is not None and len(q) >= q.maxlen:
            self.stats.played_dropped += 1
        q.append(block)

    def _wake(self) -> None:
        loop, fut = self._loop, self._fut
        if loop is None or fut is None:
            return
        try:
            loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:  # the loop is closed
            pass

    # ---------------------------------------------------------- AudioPort
    async def read(self) -> np.ndarray | None:
        """The next mic block [n, in_channels] int16 at in_rate; None once closed.

        n is one device block, or IDLE_BATCH_MS of them while idle (see set_idle).

        Raises AudioDeviceLost when the device stops delivering (see `healthy`).
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.stats.library_xruns = ALSA.xruns
        while True:
            q = self._inq
            if q and (len(q) >= self._batch or self._closed):
                data = b"".join([q.popleft() for _ in range(min(self._batch, len(q)))])
                return np.frombuffer(data, dtype="<i2").reshape(-1, self.in_channels)
            if self._closed:
                return None
            self._raise_if_lost()
            # A bare future and a timer, not wait_for(): no task per block (idle CPU). The future
            # is in place before _waiting is set and the queue re-checked, so a block that lands
            # in between always finds something to wake.
            fut = loop.create_future()
            self._fut = fut
            self._waiting = True
            try:
                if len(self._inq) >= self._batch or self._closed:
                    continue
                timer = loop.call_later(min(0.25, self.stall_s / 2), _resolve, fut)
                try:
                    await fut
                finally:
                    timer.cancel()
            finally:
                self._waiting = False
                self._fut = None

    @property
    def backlog_s(self) -> float:
        """Mic audio captured and not read yet, in seconds: about 0 while read() keeps up; it grows while
        the reader is late (a loaded CPU) until the queue's bound drops blocks (stats.overflows)."""
        queued = list(self._inq)  # a copy: PortAudio's thread appends meanwhile
        per_s = 2 * self.in_channels * self.in_rate
        return sum(map(len, queued)) / per_s if per_s else 0.0

    def set_idle(self, idle: bool) -> None:
        """See AudioPort.set_idle: while idle, read() returns IDLE_BATCH_MS of blocks at a time."""
        # Called between reads (the agent's block): blocks already queued come at the next read().
        self._batch = max(1, -(-IDLE_BATCH_MS // max(1, self.settings.frames_per_buffer_ms))) if idle else 1

    def speaker_played(self) -> np.ndarray:
        """Speaker samples (player rate) handed to the device since the previous call."""
        parts = []
        q = self._played
        while q:
            try:
                parts.append(q.popleft())
            except IndexError:
                break
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # ---------------------------------------------------------- health
    def _problem(self) -> str:
        if self._lost:
            return self.error
        if self._pa is None or self._in_stream is None or self._out_stream is None:
            return "audio device not open"
        now = time.monotonic()
        for name, stream, last, dev in (("microphone", self._in_stream, self._last_in, self.input_name),
                                        ("speaker", self._out_stream, self._last_out, self.output_name)):
            if now - last > self.stall_s:
                try:
                    active = bool(stream.is_active())
                except Exception:  # noqa: BLE001
                    active = False
                state = "stream stopped" if not active else f"no callback for {now - last:.1f} s"
                return f"audio device lost: {name} {dev!r}: {state} (unplugged or sound server gone?)"
        return ""

    @property
    def healthy(self) -> bool:
        """False once a stream stopped or stalled for more than stall_s; reopen() to recover."""
        if self._closed:
            return False
        problem = self._problem()
        if problem and not self._lost:
            self._lost, self.error = True, problem
            log.warning("%s", problem)
        return not problem

    def _raise_if_lost(self) -> None:
        if not self.healthy:
            raise AudioDeviceLost(self.error)

    async def reopen(self, *, attempts: int = 0, first_delay_s: float = 0.5, max_delay_s: float = 10.0) -> None:
        """Close everything, re-scan the devices and open again; retries with exponential backoff.

        attempts=0 retries until it works or the port is closed. Raises the last error
        when `attempts` are used up, AudioDeviceLost if the port was closed meanwhile.
        """
        delay, n = first_delay_s, 0
        while not self._closed:
            n += 1
            try:
                await asyncio.to_thread(self._reopen_sync)
                self.stats.reopens += 1
                return
            except VoxboxError as exc:
                self._lost, self.error = True, str(exc)
                log.warning("audio reopen failed (attempt %d): %s", n, exc)
                if attempts and n >= attempts:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
        raise AudioDeviceLost("audio port closed")

    def _reopen_sync(self) -> None:
        self._close_streams()
        if self._pa is not None:
            _terminate(self._pa)
            self._pa = None
        self._inq.clear()
        if self._closed:
            return
        self._open()

    # ---------------------------------------------------------- closing
    def _close_streams(self) -> None:
        for attr in ("_in_stream", "_out_stream"):
            stream = getattr(self, attr)
            setattr(self, attr, None)
            if stream is None:
                continue
            try:
                with quiet_stderr():
                    stream.close()  # aborts an active stream (Pa_CloseStream)
            except Exception:  # noqa: BLE001 - a vanished device may fail to close
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_streams()
        if self._pa is not None:
            _terminate(self._pa)
            self._pa = None
        self._wake()

    def __enter__(self) -> PyAudioPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
