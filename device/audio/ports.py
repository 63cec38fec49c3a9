"""The audio port the agent talks to; PyAudio and the simulated twin implement it."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from device.audio.player import Player


class AudioPort(Protocol):
    in_rate: int
    in_channels: int
    player: Player  # the speaker pulls reply audio from here

    async def read(self) -> np.ndarray | None:
        """Next mic block [n, channels] int16 at in_rate; None when the source has ended."""
        ...

    def speaker_played(self) -> np.ndarray:
        """Speaker samples (playback rate) that went out since the previous call."""
        ...
