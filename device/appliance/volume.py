"""The volume: one level 0-100, a software gain for the player, optionally an ALSA mixer.

`Volume.set(level)` / `change(delta)` clamp to 0-100 and return the new level. Without a mixer
the level is a software gain on the PCM the player hands to the speaker (`gain()`, linear,
a 40 dB range: level 100 = 1.0, 50 = -20 dB, 0 = silent). With a mixer (the hardware profile
names an ALSA control, `volume.mixer`) the level goes to the mixer and the software gain
stays 1.0, so the echo canceller's reference keeps its full resolution.

The mixer is a seam: `Mixer` is the protocol, `AlsaMixer` wraps pyalsaaudio's
`alsaaudio.Mixer(control, cardindex=...)` (`setvolume`/`getvolume`, percent), `MixerTwin`
records what it was told (tests). Ducking (`duck_gain`) is separate from the level: the player
multiplies by it while the user talks.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from device.errors import VoxboxError

log = logging.getLogger("voxbox.volume")

RANGE_DB = 40.0  # level 1 is -39.6 dB; 0 is silence


class Mixer(Protocol):
    def set_percent(self, level: int) -> None: ...


class MixerTwin:
    """A mixer that only remembers (tests, and `simulate`)."""

    def __init__(self) -> None:
        self.levels: list[int] = []

    def set_percent(self, level: int) -> None:
        self.levels.append(level)


class AlsaMixer:
    """An ALSA simple mixer control through pyalsaaudio. Raises VolumeError if it cannot be opened."""

    def __init__(self, control: str, card: int = 0) -> None:
        try:
            import alsaaudio
        except ImportError as exc:
            raise VolumeError(f"volume.mixer {control!r}: pyalsaaudio is not installed ({exc})") from None
        try:
            self._mixer: Any = alsaaudio.Mixer(control, cardindex=card)
        except alsaaudio.ALSAAudioError as exc:
            raise VolumeError(f"volume.mixer {control!r} on card {card}: {exc}") from None

    def set_percent(self, level: int) -> None:
        self._mixer.setvolume(int(level))


class VolumeError(VoxboxError):
    """The mixer control cannot be used (one line)."""


def gain_of(level: int) -> float:
    """Linear gain of a level 0-100 (a log taper: equal steps sound equal)."""
    if level <= 0:
        return 0.0
    return float(10 ** ((level - 100) / 100 * RANGE_DB / 20))


class Volume:
    def __init__(self, level: int = 100, *, step: int = 10, mixer: Mixer | None = None,
                 duck_db: float = -15.0) -> None:
        self.step = step
        self.mixer = mixer
        self.level = _clamp(level)
        self.duck = float(10 ** (duck_db / 20))
        self.dirty = False
        self._apply()

    def _apply(self) -> None:
        if self.mixer is not None:
            try:
                self.mixer.set_percent(self.level)
            except Exception as exc:  # a mixer that went away must not take the volume with it
                log.warning("volume: mixer failed (%s); software gain from now on", exc)
                self.mixer = None

    def set(self, level: int) -> int:
        new = _clamp(level)
        if new != self.level:
            self.level = new
            self.dirty = True
            self._apply()
        return self.level

    def change(self, delta: int) -> int:
        return self.set(self.level + delta)

    def up(self) -> int:
        return self.change(self.step)

    def down(self) -> int:
        return self.change(-self.step)

    def gain(self) -> float:
        """The software gain the player applies (1.0 when a mixer does the work)."""
        return 1.0 if self.mixer is not None else gain_of(self.level)

    def to_json(self) -> dict[str, int]:
        return {"level": self.level}

    def load_json(self, data: Any) -> str | None:
        try:
            level = data["level"]
        except (TypeError, KeyError):
            return "not a volume state"
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 100:
            return f"volume level {level!r} is not 0-100"
        self.level = level
        self._apply()
        return None


def _clamp(level: int) -> int:
    return max(0, min(100, int(level)))
