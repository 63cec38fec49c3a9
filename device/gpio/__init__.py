"""LEDs and the talk button (gpiozero).

    indicator, buttons = build_gpio(settings.gpio)          # real pins
    indicator, buttons = build_gpio(settings.gpio, MockFactory())   # tests

gpio.led_driver picks the indicator:
  none    logging only (also when gpio.enabled is false)
  leds    plain LEDs on gpio.led_pins (PWMLED, or on/off LED where PWM is missing)
  rgb     one RGB LED, gpio.led_pins = [red, green, blue]
  apa102  a ring of gpio.apa102_count APA102 LEDs on SPI 0.1 (ReSpeaker HATs);
          gpio.led_pins, if given, are power-enable pins driven high (GPIO5 on the 4-mic HAT)
gpio.button_pin >= 0 adds the talk button (Buttons); hold gpio.hold_s to toggle mute.
"""

from __future__ import annotations

from gpiozero import LED, PWMLED, RGBLED, DigitalOutputDevice, GPIOZeroError
from gpiozero.exc import PinPWMUnsupported

from device.config import GpioSettings
from device.errors import ConfigError, VoxboxError
from device.gpio.apa102 import APA102, Apa102Indicator
from device.gpio.buttons import Buttons
from device.gpio.indicator import AnimatedIndicator, Indicator, LedIndicator, RgbIndicator
from device.gpio.mute import MuteStore
from device.gpio.patterns import NAMES as PATTERN_NAMES

__all__ = [
    "AnimatedIndicator", "Apa102Indicator", "APA102", "Buttons", "Indicator", "LedIndicator",
    "MuteStore", "PATTERN_NAMES", "RgbIndicator", "build_gpio", "build_indicator",
]


def _check(gs: GpioSettings) -> None:
    if gs.led_driver == "leds" and not gs.led_pins:
        raise ConfigError("config gpio.led_pins: led_driver 'leds' needs at least one pin")
    if gs.led_driver == "rgb" and len(gs.led_pins) != 3:
        raise ConfigError("config gpio.led_pins: led_driver 'rgb' needs exactly 3 pins [red, green, blue]")
    if gs.led_driver == "apa102" and gs.apa102_count <= 0:
        raise ConfigError("config gpio.apa102_count: led_driver 'apa102' needs the number of LEDs")
    if gs.hold_s <= 0:
        raise ConfigError("config gpio.hold_s: must be positive")


def _pwm_leds(pins: list[int], pin_factory) -> tuple[list, bool]:
    """PWMLEDs on `pins`, or on/off LEDs if the pins cannot do PWM."""
    leds: list = []
    try:
        for pin in pins:
            leds.append(PWMLED(pin, pin_factory=pin_factory))
        return leds, True
    except PinPWMUnsupported:
        for led in leds:
            led.close()
        return [LED(pin, pin_factory=pin_factory) for pin in pins], False


def build_indicator(gs: GpioSettings, pin_factory=None, *, animate: bool = True) -> Indicator:
    """The indicator gs.led_driver asks for (see the module doc)."""
    if not gs.enabled or gs.led_driver == "none":
        return Indicator()
    kw = {"brightness": gs.brightness, "animate": animate}
    if gs.led_driver == "leds":
        leds, _ = _pwm_leds(gs.led_pins, pin_factory)
        return LedIndicator(leds, **kw)
    if gs.led_driver == "rgb":
        r, g, b = gs.led_pins
        try:
            led = RGBLED(r, g, b, pwm=True, pin_factory=pin_factory)
            return RgbIndicator(led, pwm=True, **kw)
        except PinPWMUnsupported:
            return RgbIndicator(RGBLED(r, g, b, pwm=False, pin_factory=pin_factory), pwm=False, **kw)
    power = [DigitalOutputDevice(p, pin_factory=pin_factory) for p in gs.led_pins]
    return Apa102Indicator(APA102(gs.apa102_count, pin_factory=pin_factory), power, **kw)


def build_gpio(settings: GpioSettings, pin_factory=None, *, animate: bool = True) -> tuple[Indicator, Buttons | None]:
    """(Indicator, Buttons or None) for these settings.

    ConfigError for settings that cannot work; VoxboxError (one line) when the
    pins cannot be had (no GPIO on this machine, pin busy, no SPI...).
    """
    _check(settings)
    indicator: Indicator | None = None
    try:
        indicator = build_indicator(settings, pin_factory, animate=animate)
        buttons = None
        if settings.enabled and settings.button_pin >= 0:
            buttons = Buttons(settings.button_pin, hold_s=settings.hold_s, pin_factory=pin_factory)
        return indicator, buttons
    except GPIOZeroError as exc:
        if indicator is not None:
            indicator.close()
        raise VoxboxError(f"gpio: {type(exc).__name__}: {exc}".rstrip(": ")) from None
