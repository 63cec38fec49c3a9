"""The audio port the agent talks to; PyAudio and the simulated twin implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from device.audio.player import Player


@dataclass
class PortStats:
    """A sound card's trouble counters (counted on PortAudio's thread, read by the agent)."""

    xruns: int = 0  # callback status flags: input overflow/underflow, output underflow/overflow
    overflows: int = 0  # mic blocks dropped because nobody read them in time
    played_dropped: int = 0  # speaker reference blocks dropped because nobody drained them
    callback_errors: int = 0  # exceptions caught inside a callback (then silence)
    library_xruns: int = 0  # xruns alsa-lib reported itself (its "underrun occurred" lines)
    reopens: int = 0


class AudioPort(Protocol):
    in_rate: int
    in_channels: int
    player: Player  # the speaker pulls reply audio from here
    stats: PortStats  # the summary record and the journal report these

    async def read(self) -> np.ndarray | None:
        """Next mic block [n, channels] int16 at in_rate; None when the source has ended."""
        ...

    def speaker_played(self) -> np.ndarray:
        """Speaker samples (playback rate) that went out since the previous call."""
        ...

    def set_idle(self, idle: bool) -> None:
        """True while only the wake word listens (no conversation, nothing playing): `read()` may
        then hand over bigger blocks, up to the wake word's 80 ms step, so the loop wakes less
        often; False: every block as soon as it arrives (blocks already queued come at once)."""
        ...
