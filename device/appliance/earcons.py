"""The earcons: short sounds (device/appliance/sounds/*.wav, made by scripts/make_earcons.sh).

`Earcons(settings, rate)` loads the enabled ones once, at start (disk I/O, never on the audio
path), resampled to the player's rate and scaled to `sounds.level`; `get(name)` is their PCM16
or None when that sound is switched off. A missing file is one warning line and that sound stays
silent: a sound must never stop the daemon.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from device.audio import wavio
from device.audio.dsp import round_int16
from device.config import SoundsSettings

log = logging.getLogger("voxbox.sounds")

SOUNDS_DIR = Path(__file__).parent / "sounds"
NAMES = tuple(f.name for f in dataclasses.fields(SoundsSettings) if f.type in (bool, "bool"))


class Earcons:
    def __init__(self, settings: SoundsSettings, rate: int, directory: Path = SOUNDS_DIR) -> None:
        self.rate = rate
        self._pcm: dict[str, np.ndarray] = {}
        for name in NAMES:
            if not getattr(settings, name):
                continue
            try:
                x = wavio.read_mono(directory / f"{name}.wav", rate).astype(np.float32) * settings.level
            except Exception as exc:  # any unreadable file: that sound stays off
                log.warning("sound %s: cannot load (%s); it stays silent", name, exc)
                continue
            self._pcm[name] = round_int16(x)

    def get(self, name: str) -> np.ndarray | None:
        return self._pcm.get(name)

    @property
    def enabled(self) -> list[str]:
        return sorted(self._pcm)
