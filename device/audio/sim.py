"""The simulated twin of the sound card: IN.wav as the mic, OUT.wav as the speaker.

One clock drives both: each block of mic samples read from IN.wav pulls the
matching span of speaker samples from the player, so sample n of OUT.wav is
the same instant as the matching moment of IN.wav (both start at 0). What the
speaker plays can leak back into the mic (`echo_gain`, `echo_delay_ms`, and an
optional room impulse response), as a speaker beside a microphone would.
Pacing follows the wall clock at `speed` × real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from device.audio import dsp
from device.audio.player import Player
from device.audio.ports import PortStats


def room_response(rate: int, rt60_ms: float = 250.0, seed: int = 7) -> np.ndarray:
    """A decaying noise impulse response (direct path first), normalised to unit energy."""
    n = max(1, int(rate * rt60_ms / 1000))
    rng = np.random.default_rng(seed)
    decay = np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
    ir = rng.standard_normal(n) * decay * 0.3
    ir[0] = 1.0
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


class SimAudio:
    def __init__(self, mic: np.ndarray, in_rate: int, player: Player, *, speed: float = 1.0,
                 echo_gain: float = 0.0, echo_delay_ms: float = 0.0, room_ir: np.ndarray | None = None,
                 block_ms: int = 10, tail_max_s: float = 60.0, keep_audio: bool = True,
                 path_change: tuple[float, float, float] | None = None) -> None:
        """keep_audio=False: keep neither OUT.wav nor the mic as heard (long runs: memory tests).
        path_change=(at_s, gain, delay_ms): from mic time at_s the echo path changes, its gain times
        `gain` and its delay delay_ms longer (the device moved, a USB speaker's own volume knob turned)."""
        self.mic = mic if mic.ndim == 2 else mic.reshape(-1, 1)
        self.in_rate = in_rate
        self.in_channels = self.mic.shape[1]
        self.player = player
        self.out_rate = player.rate
        self.speed = speed
        self.block = max(1, in_rate * block_ms // 1000)
        self.tail_max = int(tail_max_s * in_rate)
        self.keep_audio = keep_audio
        self.stats = PortStats()  # a simulated card has no xruns
        self.pos = 0  # mic samples read: the mic clock
        self._pulled = 0  # speaker samples pulled
        self._out: list[np.ndarray] = []
        self._heard: list[np.ndarray] = []  # the mic as the agent got it (IN.wav + echo), first channel
        self.last_speaker = np.zeros(0, dtype=np.int16)
        self.echo_gain = echo_gain
        self._echo_rs = dsp.StreamResampler(self.out_rate, in_rate, quality="QQ") if echo_gain > 0 else None
        self._echo_buf = np.zeros(int(in_rate * echo_delay_ms / 1000), dtype=np.float32)
        self._ir = room_ir
        self._ir_tail = np.zeros(0 if room_ir is None else len(room_ir) - 1, dtype=np.float32)
        self._path_change = path_change
        self._t0: float | None = None
        # The agent says whether the run may end once IN.wav is used up (reply still playing?).
        self.keep_going: Callable[[], bool] = lambda: player.busy
        # Awaited with the mic time (s) before each block: simulate's lockstep with its server.
        self.before_block: Callable[[float], Awaitable[None]] | None = None

    @property
    def seconds(self) -> float:
        return self.pos / self.in_rate

    def _echo(self, spk: np.ndarray, n: int) -> np.ndarray:
        assert self._echo_rs is not None
        if self._path_change is not None and self.pos >= self._path_change[0] * self.in_rate:
            _, gain, delay_ms = self._path_change
            self._path_change = None
            self.echo_gain *= gain
            # the echo still in flight arrives that much later
            lag = np.zeros(int(round(self.in_rate * delay_ms / 1000)), dtype=np.float32)
            self._echo_buf = np.concatenate((lag, self._echo_buf))
        e = self._echo_rs(spk).astype(np.float32) * self.echo_gain
        if self._ir is not None:
            full = np.convolve(e, self._ir)
            full[: len(self._ir_tail)] += self._ir_tail
            e, self._ir_tail = full[: len(e)], full[len(e) :]
        buf = np.concatenate((self._echo_buf, e))
        if len(buf) < n:
            buf = np.concatenate((buf, np.zeros(n - len(buf), dtype=np.float32)))
        self._echo_buf = buf[n:]
        return buf[:n]

    async def read(self) -> np.ndarray | None:
        """The next mic block [n, channels] int16, paced; None when the run is over."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        if self.before_block is not None:
            await self.before_block(self.pos / self.in_rate)
        total = len(self.mic)
        if self.pos >= total and (not self.keep_going() or self.pos >= total + self.tail_max):
            return None
        n = self.block
        block = self.mic[self.pos : self.pos + n]
        if len(block) < n:
            block = np.concatenate((block, np.zeros((n - len(block), self.in_channels), dtype=np.int16)))
        # The speaker plays the span of time this mic block covers.
        target = (self.pos + n) * self.out_rate // self.in_rate
        spk = self.player.pull(target - self._pulled)
        self._pulled = target
        if self.keep_audio:
            self._out.append(spk)
        self.last_speaker = spk
        if self._echo_rs is not None:
            mixed = block.astype(np.float32) + self._echo(spk, n)[:, None]
            block = dsp.round_int16(mixed)
        if self.keep_audio:
            self._heard.append(block[:, 0].copy())
        self.pos += n
        due = self._t0 + self.pos / self.in_rate / self.speed
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        return block

    def speaker_played(self) -> np.ndarray:
        """What the speaker played during the last block (the echo canceller's reference)."""
        return self.last_speaker

    def set_idle(self, idle: bool) -> None:
        """Ignored: a simulated block wakes nothing, and simulate's timelines keep one grain."""

    def mic_audio(self) -> np.ndarray:
        """What the microphone picked up (IN.wav plus the speaker's echo), first channel, at in_rate."""
        return np.concatenate(self._heard) if self._heard else np.zeros(0, dtype=np.int16)

    def speaker_audio(self) -> np.ndarray:
        return np.concatenate(self._out) if self._out else np.zeros(0, dtype=np.int16)
