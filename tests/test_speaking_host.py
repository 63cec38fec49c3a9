"""Barge-in (device/conversation/speaking.BargeIn) through its seam alone: a twin of the agent's side
(speaking.Host) with the real conversation machine and Silero VAD, and no audio device, link or player."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.audio.frontend import Frontend, MicFrames
from device.audio.wavio import read_mono
from device.config import Settings
from device.conversation import machine as cv
from device.conversation import speaking
from device.listen.vad import SileroEngine, VadEvent, VadSegmenter

RATE = 16000
BLOCK = 320  # 20 ms mic blocks at 16 kHz


class Twin:
    """The agent's side of the seam: it carries out the machine's actions it is handed (records them,
    and sets the VAD strict as the agent does) and hands VAD starts and ends to the machine, unless
    `mask` says our own sound is in the mic."""

    def __init__(self, settings: Settings) -> None:
        self.machine = cv.Conversation(settings.conversation)
        self.frontend = Frontend(RATE)  # no canceller: every frame as heard
        self.vad = VadSegmenter(SileroEngine(), settings.vad)
        self.uplink_open = False
        self.clock = 0.0
        self.mask = False
        self.actions: list[cv.Action] = []
        self.logged: list[tuple[str, dict[str, Any]]] = []

    @property
    def now(self) -> float:
        return self.clock

    def log(self, event: str, **fields: Any) -> None:
        self.logged.append((event, fields))

    def apply(self, actions: list[cv.Action]) -> None:
        for a in actions:
            self.actions.append(a)
            if isinstance(a, cv.StrictVad):
                self.vad.set_strict(a.strict)

    def masked(self) -> bool:
        return self.mask

    def vad_events(self, events: list[VadEvent]) -> None:
        for ev in events:
            if ev.kind == "start" and self.machine.phase == "speaking" and self.mask:
                continue
            cls = cv.SpeechStart if ev.kind == "start" else cv.SpeechEnd
            self.apply(self.machine.handle(cls(self.now, "local_vad")))

    def kinds(self) -> list[str]:
        return [type(a).__name__ for a in self.actions]


def speaking_twin() -> tuple[Twin, speaking.BargeIn]:
    settings = Settings()
    host = Twin(settings)
    barge = speaking.BargeIn(host, settings)
    m = host.machine
    host.apply(m.start())
    for ev in (cv.Connected(0.0), cv.Wake(0.1, "hey_jarvis", 0.9), cv.Committed(0.5),
               cv.ResponseCreated(0.6, "resp_1"), cv.AudioDelta(0.7, "item_1", "resp_1", b"\0\0" * 2400)):
        host.apply(m.handle(ev))
    assert m.phase == "speaking" and host.vad.strict
    host.actions.clear()
    return host, barge


def feed(host: Twin, barge: speaking.BargeIn, audio: np.ndarray) -> None:
    for i in range(0, len(audio) - BLOCK + 1, BLOCK):
        host.clock += BLOCK / RATE
        mic = host.frontend.process(audio[i : i + BLOCK])
        barge.frames(mic.frames, mic.levels)


@pytest.fixture(scope="module")
def word(fixtures_dir: Path) -> np.ndarray:
    """A spoken phrase with 0.5 s of silence before it and 1 s after (int16, 16 kHz)."""
    speech = read_mono(fixtures_dir / "hey_jarvis_en-us.wav", RATE)
    pad = np.zeros(RATE // 2, dtype=np.int16)
    return np.concatenate((pad, speech, pad, pad))


def test_a_voice_over_the_reply_pauses_it_then_is_heard_again_in_the_pause_and_interrupts(word: np.ndarray) -> None:
    host, barge = speaking_twin()
    feed(host, barge, word)
    kinds = host.kinds()
    assert "PausePlayback" in kinds and "BargeIn" in kinds, kinds
    assert kinds.index("PausePlayback") < kinds.index("BargeIn")  # paused first, confirmed after
    assert cv.SendTruncate("item_1") in host.actions  # the model learns what was heard
    assert host.machine.phase == "listening"
    assert barge.pause_detector  # the timeline says which detector paused it


def test_silence_over_the_reply_interrupts_nothing() -> None:
    host, barge = speaking_twin()
    feed(host, barge, np.zeros(2 * RATE, dtype=np.int16))
    assert host.actions == [] and host.machine.phase == "speaking"


def test_our_own_sound_in_the_mic_neither_pauses_nor_interrupts_the_reply(word: np.ndarray) -> None:
    # An earcon or a ring (Host.masked): the same voice, heard as our own sound, leaves the reply alone.
    host, barge = speaking_twin()
    host.mask = True
    feed(host, barge, word)
    assert "PausePlayback" not in host.kinds() and "BargeIn" not in host.kinds(), host.kinds()
    assert host.machine.phase == "speaking"


class CancellerLevels(Frontend):
    """The frontend with a canceller's levels on every frame of a block: AEC3's output `aec3_db` and
    the linear canceller's `linear_db` relative to the mic's own level (dB re 1 LSB RMS)."""

    def __init__(self, aec3_db: float, linear_db: float) -> None:
        super().__init__(RATE)
        self.aec3_db, self.linear_db = aec3_db, linear_db

    def process(self, block: np.ndarray) -> MicFrames:
        frames = super().process(block).frames
        x = frames.astype(np.float64)
        mic_db = 10 * np.log10(np.mean(x * x, axis=1) + 1.0)
        self.residual_db = mic_db + self.linear_db
        return MicFrames(frames, np.stack((mic_db, mic_db + self.aec3_db), axis=1))


@pytest.mark.parametrize(("aec3_db", "linear_db", "pauses"), [
    # AEC3 takes 25 dB off the mic, the linear canceller 40 dB: AEC3's output stands 15 dB over the
    # linear canceller's, which would hold a user's voice whole, so what Silero hears is AEC3's leak.
    (-25.0, -40.0, False),
    # The linear canceller's output at the mic's level, AEC3's a little under it: both hold the voice.
    (-3.0, 0.0, True),
    # AEC3's output 8 dB over the linear canceller's: under BargeIn.AEC3_LEAK_DB, heard as the user.
    (-12.0, -20.0, True),
])
def test_silero_hearing_aec3_leak_the_linear_canceller_does_not_hold_pauses_nothing(
        word: np.ndarray, aec3_db: float, linear_db: float, pauses: bool) -> None:
    host, barge = speaking_twin()
    host.frontend = CancellerLevels(aec3_db, linear_db)
    feed(host, barge, word)
    assert ("PausePlayback" in host.kinds()) is pauses, host.kinds()
    assert host.machine.phase == ("listening" if pauses else "speaking")
    if pauses:  # Silero's fast stage paused it (not the double-talk test on the same levels)
        assert barge.pause_detector == "vad_chunk"
