"""The talk button: press, release and hold callbacks over gpiozero's Button.

A press calls `on_press()` at once (the agent opens a conversation or barges
in); `on_release()` follows when it is let go. Held for `hold_s` seconds,
`on_hold()` is called once, while still pressed: the agent toggles mute then
(and stores it with `MuteStore`). `held` tells `on_release` whether the press
became a hold. Callbacks run on gpiozero's own threads: hand them to the event
loop with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpiozero import Button

log = logging.getLogger("voxbox.gpio")

Callback = Callable[[], None] | None


class Buttons:
    def __init__(self, pin: int, *, hold_s: float = 2.0, pull_up: bool = True,
                 bounce_s: float | None = 0.02, pin_factory=None) -> None:
        self.on_press: Callback = None
        self.on_release: Callback = None
        self.on_hold: Callback = None
        self.held = False  # the current (or last) press lasted hold_s
        self.hold_s = hold_s
        self.button = Button(pin, pull_up=pull_up, bounce_time=bounce_s, hold_time=hold_s,
                             hold_repeat=False, pin_factory=pin_factory)
        self.button.when_pressed = self._pressed
        self.button.when_released = self._released
        self.button.when_held = self._held

    @property
    def is_pressed(self) -> bool:
        return bool(self.button.is_pressed)

    def _pressed(self) -> None:
        self.held = False
        self._call("press", self.on_press)

    def _released(self) -> None:
        self._call("release", self.on_release)

    def _held(self) -> None:
        self.held = True
        self._call("hold", self.on_hold)

    @staticmethod
    def _call(action: str, cb: Callback) -> None:
        log.debug("button %s", action)
        if cb is None:
            return
        try:
            cb()
        except Exception:  # gpiozero's thread must survive a bad callback
            log.exception("button %s callback failed", action)

    def close(self) -> None:
        self.button.close()


class VolumeButtons:
    """Volume up/down buttons (gpiozero Buttons, active low): `on_step(+1)` / `on_step(-1)` per press.

    `on_step` runs on gpiozero's thread: hand it to the event loop (`call_soon_threadsafe`).
    """

    def __init__(self, up_pin: int, down_pin: int, on_step: Callable[[int], object], *,
                 bounce_s: float | None = 0.02, pin_factory=None) -> None:
        self.on_step = on_step
        self.buttons: list[Button] = []
        for pin, step in ((up_pin, 1), (down_pin, -1)):
            if pin < 0:
                continue
            b = Button(pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory)
            b.when_pressed = lambda step=step: self._call(step)
            self.buttons.append(b)

    def _call(self, step: int) -> None:
        try:
            self.on_step(step)
        except Exception:  # gpiozero's thread must survive a bad callback
            log.exception("volume button callback failed")

    def close(self) -> None:
        for b in self.buttons:
            b.close()
