"""APA102 LED ring (ReSpeaker 2-mic and 4-mic Pi HATs) over SPI through gpiozero.

Transport: hardware SPI through gpiozero's pin factory (/dev/spidev0.1 on the
ReSpeaker HATs, with the lgpio factory), else bit-banging GPIO11 (clock) and
GPIO10 (data) with two gpiozero output devices — which is also what the tests
get from gpiozero's MockFactory.

Wire format: a start frame of 4 zero bytes, then per LED
`0xE0 | brightness(5 bits), blue, green, red`, then an end frame of
ceil(n/16) zero bytes to clock the data through the chain.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

from gpiozero import Device, DigitalOutputDevice, GPIOPinInUse, PinFactoryFallback, SPISoftwareFallback

from device.gpio.indicator import AnimatedIndicator
from device.gpio.patterns import RGB

log = logging.getLogger("voxbox.gpio")

SPI_PORT = 0
SPI_DEVICE = 1  # CE1: where the ReSpeaker HATs wire their APA102 chain


def encode(pixels: Sequence[RGB], brightness: float) -> list[int]:
    """The SPI bytes that set `pixels` (colours 0..1) at a global brightness 0..1."""
    level = 0 if brightness <= 0 else max(1, min(31, round(brightness * 31)))
    out = [0x00] * 4
    for r, g, b in pixels:
        out += [0xE0 | level, _byte(b), _byte(g), _byte(r)]
    out += [0x00] * ((len(pixels) + 15) // 16)
    return out


def decode(data: Sequence[int], count: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Inverse of `encode` (for tests and `voxbox check`): (5-bit brightness, [(r, g, b) bytes])."""
    if list(data[:4]) != [0, 0, 0, 0]:
        raise ValueError("APA102 data must start with 4 zero bytes")
    leds = [data[4 + 4 * i: 8 + 4 * i] for i in range(count)]
    if any(len(f) != 4 or f[0] & 0xE0 != 0xE0 for f in leds):
        raise ValueError("APA102 LED frames must start with 0b111")
    level = leds[0][0] & 0x1F if leds else 0
    return level, [(f[3], f[2], f[1]) for f in leds]


def _byte(v: float) -> int:
    return max(0, min(255, round(v * 255)))


class BitBangSPI:
    """Write-only SPI on two GPIO outputs (clock, data): APA102 needs no select or MISO line."""

    def __init__(self, clock_pin: int = 11, data_pin: int = 10, *, pin_factory=None) -> None:
        self.clock = DigitalOutputDevice(clock_pin, pin_factory=pin_factory)
        try:
            self.data = DigitalOutputDevice(data_pin, pin_factory=pin_factory)
        except Exception:
            self.clock.close()
            raise

    def write(self, data: Sequence[int]) -> None:
        clock, mosi = self.clock.pin, self.data.pin
        for byte in data:
            for shift in range(7, -1, -1):
                mosi.state = (byte >> shift) & 1
                clock.state = 1  # the LED samples on the rising edge
                clock.state = 0

    def close(self) -> None:
        self.clock.close()
        self.data.close()


def open_spi(port: int = SPI_PORT, device: int = SPI_DEVICE, *, pin_factory=None):
    """Hardware SPI (/dev/spidevPORT.DEVICE) through gpiozero, else bit-banging on GPIO11/GPIO10."""
    factory = pin_factory or Device.pin_factory
    if factory is None:
        factory = Device.pin_factory = Device._default_pin_factory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SPISoftwareFallback)
            warnings.simplefilter("ignore", PinFactoryFallback)
            spi = factory.spi(port=port, device=device)
        spi.clock_mode = 0
        spi.bits_per_word = 8
        return spi
    except GPIOPinInUse:
        raise
    except Exception as exc:  # no spidev here: GPIO11 is SCLK, GPIO10 is MOSI on SPI0
        log.info("APA102: no hardware SPI (%s); bit-banging GPIO11/GPIO10", exc)
    return BitBangSPI(11, 10, pin_factory=factory)


class APA102:
    """A chain of `count` APA102 LEDs; `write(pixels, brightness)` sets them all."""

    def __init__(self, count: int, *, port: int = SPI_PORT, device: int = SPI_DEVICE, pin_factory=None) -> None:
        self.count = count
        self.spi = open_spi(port, device, pin_factory=pin_factory)

    def write(self, pixels: Sequence[RGB], brightness: float) -> None:
        if len(pixels) != self.count:
            raise ValueError(f"APA102: {len(pixels)} colours for {self.count} LEDs")
        self.spi.write(encode(pixels, brightness))

    def close(self) -> None:
        self.spi.close()


class Apa102Indicator(AnimatedIndicator):
    """Patterns on an APA102 ring; `power` (optional) are output devices switched on while in use."""

    fps = 20.0

    def __init__(self, ring: APA102, power: Sequence = (), **kw) -> None:
        self.ring = ring
        self.power = list(power)
        for dev in self.power:
            dev.on()
        super().__init__(ring.count, **kw)

    def _write(self, frame: tuple) -> None:
        self.ring.write(frame, self.brightness)

    def _close_devices(self) -> None:
        self.ring.close()
        for dev in self.power:
            dev.off()
            dev.close()
