"""The playback queue: reply audio in, speaker blocks out, every sample counted.

`pull(n)` is called by the speaker (the PyAudio output callback, or the
simulated twin once per tick); it never blocks and never allocates more than
the block it returns. `flush()` drops everything queued, so the next pull is
silence: the speaker goes quiet within one block. Per item it counts the
samples handed to the speaker, minus the device's output latency, which is
what `conversation.item.truncate` needs as `audio_end_ms`.

Notes (item started, queue drained) are kept in a small deque that the agent
reads from its own thread; the speaker thread never calls into the agent.

Overlays (`overlay()`: earcons, a ringing timer) are mixed on top of the reply in the same
pull, so the echo canceller's reference (what the speaker played) has them too. They are not
items: not counted in `played_ms`, not in the notes, not dropped by `flush()`/`pause()`
(a barge-in silences the reply, not the timer); `stop_overlay()` ends them. An overlay may
start at a given speaker sample (a timer rings at its due sample, not at the next block) and
loop until a given sample. The whole block is then scaled by `gain` (software volume) times
`duck` (quieter while the user talks), in numpy, once per pull.

Jitter buffer: a reply starts, and after running dry goes on, only once `prebuffer_ms` of it is
queued or the producer said it is complete (`mark_complete()`: the response is done); until then
the speaker plays silence and nothing is counted. A reply streamed unevenly, or slower than real
time, then plays in a few longer runs instead of many short gaps (`gaps` counts the dry spells).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class _Overlay:
    name: str
    pcm: np.ndarray  # int16
    start: int  # speaker clock sample of its first sample
    end: int | None  # loop until this speaker sample; None = play once


@dataclass(frozen=True)
class PlayerNote:
    kind: str  # "start" (first sample of an item went out) | "idle" (queue ran dry after audio)
    item_id: str
    sample: int  # speaker sample clock when it happened


class Player:
    def __init__(self, rate: int, max_seconds: float = 120.0, latency_samples: int = 0) -> None:
        self.rate = rate
        self.latency_samples = latency_samples
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, np.ndarray]] = deque()
        self._head_pos = 0  # samples of the first queued chunk already played
        self._queued = 0
        self._max = int(max_seconds * rate)
        self._played: dict[str, int] = {}
        self._current: str | None = None
        self._clock = 0  # total samples pulled (the speaker's sample clock)
        self.notes: deque[PlayerNote] = deque(maxlen=256)
        self.dropped_samples = 0
        self._paused = False  # pause(): the speaker plays silence, the queue and counts stay as they are
        self._overlays: list[_Overlay] = []
        self.gain = 1.0  # software volume (linear)
        self.duck = 1.0  # extra gain while the user talks (1.0 = not ducked)
        self.prebuffer_ms = 0  # jitter buffer (the agent sets audio.prebuffer_ms)
        self._buffering = True  # waiting for prebuffer_ms (or the end of the response) before playing
        self._complete = False  # the producer has queued all it has (the response is done)
        self.gaps = 0  # times the reply ran dry while more of it was due

    # ---------------------------------------------------------- producer side
    def enqueue(self, item_id: str, pcm16: bytes | np.ndarray) -> None:
        data = np.frombuffer(pcm16, dtype="<i2") if isinstance(pcm16, (bytes, bytearray)) else pcm16
        if len(data) == 0:
            return
        with self._lock:
            room = self._max - self._queued
            if room <= 0:
                self.dropped_samples += len(data)
                return
            if len(data) > room:
                self.dropped_samples += len(data) - room
                data = data[:room]
            self._queue.append((item_id, data))
            self._queued += len(data)

    def flush(self) -> None:
        """Silence at once: drop everything queued (the next pull returns zeros)."""
        with self._lock:
            self._queue.clear()
            self._queued = 0
            self._head_pos = 0
            self._current = None
            self._paused = False
            self._buffering = True
            self._complete = False

    def mark_complete(self) -> None:
        """No more audio is coming for what is queued (the response is done): play it out now."""
        with self._lock:
            self._complete = True

    def trim(self, max_ms: int) -> int:
        """Keep at most `max_ms` queued: drop the oldest audio beyond it (a bounded lag behind a live
        stream). Returns the samples dropped (also counted in `dropped_samples`)."""
        keep = max(0, max_ms) * self.rate // 1000
        dropped = 0
        with self._lock:
            while self._queued > keep and self._queue:
                item_id, chunk = self._queue[0]
                left = len(chunk) - self._head_pos
                cut = min(left, self._queued - keep)
                self._head_pos += cut
                self._queued -= cut
                dropped += cut
                if self._head_pos >= len(chunk):
                    self._queue.popleft()
                    self._head_pos = 0
            self.dropped_samples += dropped
        return dropped

    def pause(self) -> None:
        """Silence at once but keep the queue: the next pulls return zeros and count nothing played."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Go on playing from where pause() stopped."""
        with self._lock:
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def overlay(self, name: str, pcm: np.ndarray, *, at: int | None = None, loop_until: int | None = None) -> None:
        """Mix `pcm` over the reply from speaker sample `at` (None or past: the next pull);
        with `loop_until`, repeat it until that speaker sample (or stop_overlay)."""
        if len(pcm) == 0:
            return
        with self._lock:
            start = self._clock if at is None else max(int(at), self._clock)
            self._overlays.append(_Overlay(name, pcm, start, loop_until))

    def stop_overlay(self, name: str | None = None) -> bool:
        """End the overlays called `name` (None: all); True if one was playing or due."""
        with self._lock:
            keep = [o for o in self._overlays if name is not None and o.name != name]
            stopped = len(keep) != len(self._overlays)
            self._overlays = keep
        return stopped

    def overlay_active(self, name: str) -> bool:
        with self._lock:
            return any(o.name == name for o in self._overlays)

    def _mix_overlays(self, out: np.ndarray) -> np.ndarray:
        """out + the overlays sounding in [clock, clock + len(out)), as int32 (lock held)."""
        n = len(out)
        mix = out.astype(np.int32)
        keep = []
        for o in self._overlays:
            begin = max(0, o.start - self._clock)  # first sample of this block it covers
            if begin >= n:
                keep.append(o)
                continue
            pos = self._clock + begin - o.start  # position in the sound
            stop = n if o.end is None else min(n, max(begin, o.end - self._clock))
            if o.end is None:
                take = min(stop - begin, len(o.pcm) - pos)
                mix[begin : begin + take] += o.pcm[pos : pos + take]
                if pos + take < len(o.pcm):
                    keep.append(o)
            else:
                idx = (pos + np.arange(stop - begin)) % len(o.pcm)
                mix[begin:stop] += o.pcm[idx]
                if self._clock + n < o.end:
                    keep.append(o)
        self._overlays = keep
        return mix

    # ---------------------------------------------------------- speaker side
    def pull(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            if self._buffering and self._queue and (
                    self._complete or self._queued * 1000 >= self.prebuffer_ms * self.rate):
                self._buffering = False
            if self._paused or self._buffering:
                out = self._finish_block(out)
                self._clock += n
                return out
            filled = 0
            while filled < n and self._queue:
                item_id, chunk = self._queue[0]
                if item_id != self._current:
                    self._current = item_id
                    self.notes.append(PlayerNote("start", item_id, self._clock + filled))
                take = min(n - filled, len(chunk) - self._head_pos)
                out[filled : filled + take] = chunk[self._head_pos : self._head_pos + take]
                filled += take
                self._head_pos += take
                self._queued -= take
                self._played[item_id] = self._played.get(item_id, 0) + take
                if self._head_pos >= len(chunk):
                    self._queue.popleft()
                    self._head_pos = 0
            if filled < n and self._current is not None and not self._queue:
                self.notes.append(PlayerNote("idle", self._current, self._clock + filled))
                self._current = None
                if not self._complete:
                    self.gaps += 1  # ran dry while more was due: buffer again before going on
                self._buffering = True
                self._complete = False
            out = self._finish_block(out)
            self._clock += n
        return out

    def _finish_block(self, out: np.ndarray) -> np.ndarray:
        """Overlays mixed in, gain and ducking applied (lock held)."""
        g = self.gain * self.duck
        if not self._overlays and g == 1.0:
            return out
        mix = self._mix_overlays(out) if self._overlays else out.astype(np.int32)
        if g != 1.0:
            mix = np.rint(mix * g).astype(np.int32)
        return np.clip(mix, -32768, 32767).astype(np.int16)

    # ---------------------------------------------------------- queries
    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._queue) or self._current is not None

    @property
    def clock(self) -> int:
        return self._clock

    @property
    def current_item(self) -> str | None:
        """The item whose audio is coming out of the speaker now (paused included); None between replies."""
        with self._lock:
            return self._current

    def forget(self, item_id: str) -> None:
        """Drop the played count of an item that is over (bounded memory; a compatible server
        that reuses item ids in a new session starts again from 0)."""
        with self._lock:
            if item_id != self._current:
                self._played.pop(item_id, None)

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` that reached the listener (output latency removed)."""
        with self._lock:
            samples = max(0, self._played.get(item_id, 0) - self.latency_samples)
        return int(samples * 1000 // self.rate)

    def forget_played(self) -> None:
        """Drop the played counts of items neither queued nor playing: the agent calls it when a
        conversation ends (no truncate can follow), so per-item state stays bounded in a long run."""
        with self._lock:
            live = {item for item, _ in self._queue}
            if self._current is not None:
                live.add(self._current)
            self._played = {k: v for k, v in self._played.items() if k in live}

    @property
    def items_counted(self) -> int:
        """How many items' played counts are held (bounded by forget_played)."""
        with self._lock:
            return len(self._played)

    def queued_ms(self) -> int:
        with self._lock:
            return int(self._queued * 1000 // self.rate)
