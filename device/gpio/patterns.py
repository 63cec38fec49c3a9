"""LED patterns, one per conversation state: pure functions of elapsed time.

A pattern has a colour and two animations: `ring` for colour devices (an RGB
LED, an APA102 ring) and `mono` for plain LEDs, where colour is lost and the
animation alone must tell the states apart. Levels are 0..1; the drivers scale
them by gpio.brightness and write them to pins.

    state      colour   ring / RGB               plain LEDs
    idle       -        off                      off
    listening  blue     solid                    solid
    thinking   cyan     spinning (RGB: pulsing)  blink 2 Hz
    speaking   green    pulsing 1.2 s            pulsing 1.2 s (on/off LEDs: blink)
    muted      red      solid                    short blip every 2 s
    offline    amber    blink 0.5 Hz             blink 0.5 Hz
    error      red      blink 2.5 Hz             blink 2.5 Hz
    ringing    white    blink 2 Hz               blink 4 Hz    (a timer or alarm rings; not a state)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

RGB = tuple[float, float, float]
Mode = Literal["off", "solid", "blink", "pulse", "spin"]


@dataclass(frozen=True)
class Anim:
    mode: Mode
    period_s: float = 1.0
    duty: float = 0.5  # blink: fraction of the period that is on

    @property
    def static(self) -> bool:
        """True if the frame never changes after the first one."""
        return self.mode in ("off", "solid")


@dataclass(frozen=True)
class Pattern:
    name: str
    color: RGB
    ring: Anim
    mono: Anim


BLUE: RGB = (0.0, 0.35, 1.0)
CYAN: RGB = (0.0, 0.8, 0.8)
GREEN: RGB = (0.0, 1.0, 0.25)
RED: RGB = (1.0, 0.0, 0.0)
AMBER: RGB = (1.0, 0.45, 0.0)
WARM_WHITE: RGB = (1.0, 0.85, 0.6)
BLACK: RGB = (0.0, 0.0, 0.0)

PATTERNS: dict[str, Pattern] = {
    p.name: p
    for p in (
        Pattern("idle", BLACK, Anim("off"), Anim("off")),
        Pattern("listening", BLUE, Anim("solid"), Anim("solid")),
        Pattern("thinking", CYAN, Anim("spin", 1.0), Anim("blink", 0.5)),
        Pattern("speaking", GREEN, Anim("pulse", 1.2), Anim("pulse", 1.2)),
        Pattern("muted", RED, Anim("solid"), Anim("blink", 2.0, 0.1)),
        Pattern("offline", AMBER, Anim("blink", 2.0), Anim("blink", 2.0)),
        Pattern("error", RED, Anim("blink", 0.4), Anim("blink", 0.4)),
        Pattern("ringing", WARM_WHITE, Anim("blink", 0.5), Anim("blink", 0.25)),
    )
}

NAMES: tuple[str, ...] = tuple(PATTERNS)


def get(name: str) -> Pattern:
    """The pattern called `name`; ValueError naming the known ones otherwise."""
    try:
        return PATTERNS[name]
    except KeyError:
        raise ValueError(f"unknown LED pattern {name!r} (known: {', '.join(NAMES)})") from None


def levels(anim: Anim, elapsed: float, n: int) -> list[float]:
    """Brightness 0..1 of each of `n` lights, `elapsed` seconds into the animation."""
    mode = anim.mode
    if mode == "spin" and n < 3:
        mode = "pulse"  # a chase needs a few lights to be seen
    phase = (elapsed / anim.period_s) % 1.0 if anim.period_s > 0 else 0.0
    if mode == "off":
        return [0.0] * n
    if mode == "solid":
        return [1.0] * n
    if mode == "blink":
        return [1.0 if phase < anim.duty else 0.0] * n
    if mode == "pulse":  # starts bright, dims, comes back
        return [0.5 + 0.5 * math.cos(2 * math.pi * phase)] * n
    # spin: a head with a fading tail of about a third of the ring
    head = phase * n
    tail = max(1.0, n / 3)
    return [max(0.0, 1.0 - ((head - i) % n) / tail) for i in range(n)]


def colors(pattern: Pattern, elapsed: float, n: int) -> list[RGB]:
    """Colour of each of `n` pixels (ring or RGB LED) at `elapsed` seconds."""
    r, g, b = pattern.color
    return [(r * lv, g * lv, b * lv) for lv in levels(pattern.ring, elapsed, n)]
