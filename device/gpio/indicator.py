"""Indicators: show a pattern per state on LEDs, never blocking the caller.

`Indicator` itself only logs (gpio.led_driver = "none"). `AnimatedIndicator`
runs one daemon thread that renders the current pattern; `show()` only swaps
the pattern under a lock and wakes the thread, so it returns at once even when
a frame takes milliseconds to clock out over SPI. Subclasses implement
`_write(frame)` for one kind of hardware.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from device.gpio import patterns
from device.gpio.patterns import Anim, Pattern

log = logging.getLogger("voxbox.gpio")


class Indicator:
    """Shows LED patterns; this base class has no LEDs and only logs."""

    def __init__(self) -> None:
        self.pattern = "idle"

    def show(self, pattern: str) -> None:
        """Switch to `pattern` (idle|listening|thinking|speaking|muted|offline|error). Never blocks."""
        patterns.get(pattern)  # ValueError on an unknown name
        if pattern != self.pattern:
            log.debug("led pattern %s", pattern)
        self.pattern = pattern

    def close(self) -> None:
        """Turn the LEDs off and release the pins."""

    def __enter__(self) -> Indicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AnimatedIndicator(Indicator):
    """An indicator whose frames are rendered by a background thread.

    With `animate=False` no thread is started and nothing is drawn until
    `render(elapsed)` is called: tests use that to check the pins at any
    moment of an animation without sleeping.
    """

    fps = 25.0

    def __init__(self, count: int, *, brightness: float = 1.0, animate: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.count = count
        self.brightness = brightness
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._since = clock()
        self._last: tuple | None = None
        self._thread: threading.Thread | None = None
        if animate:
            self._thread = threading.Thread(target=self._run, name="voxbox-leds", daemon=True)
            self._thread.start()

    def show(self, pattern: str) -> None:
        patterns.get(pattern)
        with self._lock:
            if pattern == self.pattern:
                return
            self.pattern = pattern
            self._since = self._clock()
        log.debug("led pattern %s", pattern)
        self._wake.set()

    def anim(self, p: Pattern) -> Anim:
        """The animation this hardware uses for `p`."""
        return p.ring

    def render(self, elapsed: float | None = None) -> None:
        """Draw the current pattern `elapsed` seconds after it was shown (default: now)."""
        with self._lock:
            name, since = self.pattern, self._since
        if elapsed is None:
            elapsed = self._clock() - since
        frame = self.frame(patterns.get(name), elapsed)
        if frame != self._last:
            self._write(frame)
            self._last = frame

    def frame(self, p: Pattern, elapsed: float) -> tuple:
        """What `_write` receives for pattern `p` at `elapsed` seconds."""
        return tuple(patterns.colors(p, elapsed, self.count))

    def _write(self, frame: tuple) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self) -> None:
        period = 1.0 / self.fps
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.render()
            except Exception:  # a broken LED must never take the daemon down
                log.exception("led: cannot draw pattern %s", self.pattern)
                self._stop.wait(1.0)
            static = self.anim(patterns.get(self.pattern)).static
            self._wake.wait(None if static else period)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        try:
            self._write(self.frame(patterns.get("idle"), 0.0))
        except Exception:  # pins already gone
            pass
        self._close_devices()

    def _close_devices(self) -> None:
        pass


class LedIndicator(AnimatedIndicator):
    """Plain LEDs (gpiozero PWMLED, or LED where the pin has no PWM): the `mono` animations."""

    def __init__(self, leds: Sequence, **kw) -> None:
        self.leds = list(leds)
        self.pwm = all(hasattr(led, "pulse") for led in self.leds)  # PWMLED vs LED
        super().__init__(len(self.leds), **kw)

    def anim(self, p: Pattern) -> Anim:
        return p.mono

    def frame(self, p: Pattern, elapsed: float) -> tuple:
        lv = patterns.levels(p.mono, elapsed, self.count)
        if self.pwm:
            return tuple(round(v * self.brightness, 4) for v in lv)
        return tuple(1.0 if v >= 0.5 else 0.0 for v in lv)

    def _write(self, frame: tuple) -> None:
        for led, v in zip(self.leds, frame, strict=False):
            led.value = v

    def _close_devices(self) -> None:
        for led in self.leds:
            led.close()


class RgbIndicator(AnimatedIndicator):
    """One RGB LED (gpiozero RGBLED, with or without PWM)."""

    def __init__(self, rgbled, *, pwm: bool = True, **kw) -> None:
        self.rgbled = rgbled
        self.pwm = pwm
        super().__init__(1, **kw)

    def frame(self, p: Pattern, elapsed: float) -> tuple:
        (c,) = patterns.colors(p, elapsed, 1)
        if self.pwm:
            return tuple(round(v * self.brightness, 4) for v in c)
        return tuple(1.0 if v >= 0.5 else 0.0 for v in c)

    def _write(self, frame: tuple) -> None:
        self.rgbled.value = frame

    def _close_devices(self) -> None:
        self.rgbled.close()

