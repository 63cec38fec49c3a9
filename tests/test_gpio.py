"""LED patterns, indicators and the button, on gpiozero's MockFactory."""

from __future__ import annotations

import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from device.config import GpioSettings
from device.errors import ConfigError, VoxboxError
from device.gpio import (
    APA102,
    PATTERN_NAMES,
    Apa102Indicator,
    Buttons,
    Indicator,
    LedIndicator,
    MuteStore,
    RgbIndicator,
    build_gpio,
    patterns,
)
from device.gpio.apa102 import decode, encode

STATES = ("idle", "listening", "thinking", "speaking", "muted", "offline", "error")


@pytest.fixture
def pwm_factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


class ClockPin(MockPin):
    """GPIO11 of a mock Pi that samples GPIO10 on each rising edge, as an APA102 does."""

    def __init__(self, factory, info):
        super().__init__(factory, info)
        self.bits: list[int] = []

    def _set_state(self, value):
        if value and not self._state:
            self.bits.append(int(self.factory.pin(10).state))
        super()._set_state(value)

    def take(self) -> list[int]:
        b, self.bits = self.bits, []
        return [int("".join(map(str, b[i:i + 8])), 2) for i in range(0, len(b), 8)]


def wait_for(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


# --- patterns (pure) ---------------------------------------------------------

def test_every_state_has_a_pattern():
    assert set(PATTERN_NAMES) == set(STATES) | {"ringing"}  # ringing: a timer, shown over any state
    with pytest.raises(ValueError, match="unknown LED pattern 'party'.*listening"):
        patterns.get("party")


def test_plain_led_animations_tell_the_states_apart():
    # (mode, period, duty) of the plain-LED animation: no two states alike
    specs = {n: patterns.get(n).mono for n in (*STATES, "ringing")}
    assert len(set(specs.values())) == len(specs)


def test_levels_of_each_mode():
    assert patterns.levels(patterns.Anim("off"), 3.3, 2) == [0.0, 0.0]
    assert patterns.levels(patterns.Anim("solid"), 3.3, 2) == [1.0, 1.0]
    blink = patterns.Anim("blink", 1.0, 0.25)
    assert patterns.levels(blink, 0.2, 1) == [1.0] and patterns.levels(blink, 0.3, 1) == [0.0]
    assert patterns.levels(blink, 5.1, 1) == [1.0]
    pulse = patterns.Anim("pulse", 2.0)
    assert patterns.levels(pulse, 0.0, 1) == [1.0]
    assert patterns.levels(pulse, 1.0, 1) == pytest.approx([0.0])
    assert patterns.levels(pulse, 0.5, 1) == pytest.approx([0.5])
    spin = patterns.Anim("spin", 1.0)
    lv = patterns.levels(spin, 0.5, 6)  # head on light 3, tail of 2 behind it
    assert lv == pytest.approx([0, 0, 0.5, 1.0, 0, 0])
    assert patterns.levels(spin, 0.0, 2) == [1.0, 1.0]  # too few lights: pulses


# --- plain LEDs ---------------------------------------------------------------

# (pattern, seconds after show(), expected PWM value at brightness 0.5)
PLAIN_PWM = [
    ("idle", 0.0, 0.0), ("idle", 1.3, 0.0),
    ("listening", 0.0, 0.5), ("listening", 7.7, 0.5),
    ("thinking", 0.1, 0.5), ("thinking", 0.3, 0.0), ("thinking", 0.6, 0.5),
    ("speaking", 0.0, 0.5), ("speaking", 0.3, 0.25), ("speaking", 0.6, 0.0), ("speaking", 1.2, 0.5),
    ("muted", 0.1, 0.5), ("muted", 0.5, 0.0), ("muted", 1.9, 0.0), ("muted", 2.1, 0.5),
    ("offline", 0.5, 0.5), ("offline", 1.5, 0.0),
    ("error", 0.1, 0.5), ("error", 0.3, 0.0),
]


@pytest.mark.parametrize("name,t,value", PLAIN_PWM)
def test_plain_pwm_leds(pwm_factory, name, t, value):
    gs = GpioSettings(led_driver="leds", led_pins=[22, 23], brightness=0.5)
    ind, buttons = build_gpio(gs, pwm_factory, animate=False)
    assert isinstance(ind, LedIndicator) and ind.pwm and buttons is None
    ind.show(name)
    ind.render(t)
    for pin in (22, 23):
        assert pwm_factory.pin(pin).state == pytest.approx(value, abs=1e-3)
    ind.close()


@pytest.mark.parametrize("name,t,on", [
    ("idle", 0.0, False), ("listening", 0.0, True), ("thinking", 0.1, True), ("thinking", 0.3, False),
    ("speaking", 0.1, True), ("speaking", 0.6, False), ("muted", 0.1, True), ("muted", 1.0, False),
    ("offline", 0.5, True), ("offline", 1.5, False), ("error", 0.1, True), ("error", 0.3, False),
])
def test_plain_leds_without_pwm_switch_on_and_off(factory, name, t, on):
    ind, _ = build_gpio(GpioSettings(led_driver="leds", led_pins=[22]), factory, animate=False)
    assert not ind.pwm
    ind.show(name)
    ind.render(t)
    assert factory.pin(22).state == on
    ind.close()


def test_close_turns_leds_off(pwm_factory):
    ind, _ = build_gpio(GpioSettings(led_driver="leds", led_pins=[22], brightness=1.0), pwm_factory, animate=False)
    ind.show("listening")
    ind.render(0)
    assert pwm_factory.pin(22).state == 1.0
    ind.close()
    assert pwm_factory.pin(22).state == 0


# --- RGB LED ------------------------------------------------------------------

@pytest.mark.parametrize("name,t,rgb", [
    ("idle", 0.0, (0, 0, 0)),
    ("listening", 0.0, (0, 0.35, 1.0)),
    ("thinking", 0.0, (0, 0.8, 0.8)),          # a single LED pulses instead of spinning
    ("thinking", 0.5, (0, 0, 0)),
    ("speaking", 0.0, (0, 1.0, 0.25)),
    ("speaking", 0.6, (0, 0, 0)),
    ("muted", 5.0, (1.0, 0, 0)),
    ("offline", 0.5, (1.0, 0.45, 0)), ("offline", 1.5, (0, 0, 0)),
    ("error", 0.1, (1.0, 0, 0)), ("error", 0.3, (0, 0, 0)),
])
def test_rgb_led(pwm_factory, name, t, rgb):
    gs = GpioSettings(led_driver="rgb", led_pins=[17, 27, 22], brightness=1.0, button_pin=-1)
    ind, _ = build_gpio(gs, pwm_factory, animate=False)
    assert isinstance(ind, RgbIndicator)
    ind.show(name)
    ind.render(t)
    got = tuple(pwm_factory.pin(p).state for p in (17, 27, 22))
    assert got == pytest.approx(rgb, abs=1e-3)
    ind.close()


def test_rgb_led_brightness_scales_colour(pwm_factory):
    ind, _ = build_gpio(GpioSettings(led_driver="rgb", led_pins=[17, 27, 22], brightness=0.5), pwm_factory,
                        animate=False)
    ind.show("muted")
    ind.render(0)
    assert pwm_factory.pin(17).state == pytest.approx(0.5)
    ind.close()


def test_rgb_led_without_pwm(factory):
    ind, _ = build_gpio(GpioSettings(led_driver="rgb", led_pins=[17, 27, 22]), factory, animate=False)
    assert not ind.pwm
    ind.show("offline")
    ind.render(0.1)
    assert (factory.pin(17).state, factory.pin(27).state, factory.pin(22).state) == (1, 0, 0)
    ind.close()


# --- APA102 ring --------------------------------------------------------------

def test_apa102_encoding_round_trip():
    data = encode([(1.0, 0.0, 0.5), (0, 1.0, 0)], 0.3)
    assert data[:4] == [0, 0, 0, 0]
    assert data[4:8] == [0xE0 | 9, 128, 0, 255]  # brightness 0.3*31 -> 9; blue, green, red
    assert data[8:12] == [0xE0 | 9, 0, 255, 0]
    assert data[12:] == [0]  # end frame: ceil(2/16) bytes
    assert decode(data, 2) == (9, [(255, 0, 128), (0, 255, 0)])
    assert len(encode([(0, 0, 0)] * 12, 1.0)) == 4 + 48 + 1
    assert encode([(0, 0, 0)], 0.0)[4] == 0xE0


@pytest.mark.parametrize("count,power", [(3, []), (12, [5])])
def test_apa102_ring_over_spi(factory, count, power):
    clock = factory.pin(11, pin_class=ClockPin)
    gs = GpioSettings(led_driver="apa102", apa102_count=count, led_pins=power, brightness=1.0)
    ind, _ = build_gpio(gs, factory, animate=False)
    assert isinstance(ind, Apa102Indicator)
    for p in power:
        assert factory.pin(p).state == 1  # LED power enabled
    ind.show("listening")
    ind.render(0)
    level, leds = decode(clock.take(), count)
    assert level == 31 and leds == [(0, 89, 255)] * count
    ind.show("thinking")
    ind.render(0.0)
    level, leds = decode(clock.take(), count)
    assert leds[0] == (0, 204, 204) and leds[count // 2] == (0, 0, 0)  # head at LED 0
    ind.render((count // 2) / count)  # the 1 s turn, half-way round
    _, leds = decode(clock.take(), count)
    assert leds[count // 2] == (0, 204, 204) and leds[0] == (0, 0, 0)
    ind.show("muted")
    ind.render(0)
    assert decode(clock.take(), count)[1] == [(255, 0, 0)] * count
    ind.render(3.0)
    assert clock.take() == []  # nothing changed: nothing sent
    ind.show("idle")
    ind.render(0)
    assert decode(clock.take(), count)[1] == [(0, 0, 0)] * count
    ind.close()
    for p in power:
        assert factory.pin(p).state == 0


OFF = (0, 0, 0)
RING3 = [  # (pattern, seconds after show(), the 3 LEDs as (r, g, b) bytes at brightness 1)
    ("idle", 0.0, [OFF] * 3),
    ("listening", 0.0, [(0, 89, 255)] * 3),
    ("thinking", 0.0, [(0, 204, 204), OFF, OFF]),
    ("thinking", 1 / 3, [OFF, (0, 204, 204), OFF]),
    ("speaking", 0.0, [(0, 255, 64)] * 3),
    ("speaking", 0.6, [OFF] * 3),
    ("muted", 0.0, [(255, 0, 0)] * 3),
    ("offline", 0.5, [(255, 115, 0)] * 3),
    ("offline", 1.5, [OFF] * 3),
    ("error", 0.1, [(255, 0, 0)] * 3),
    ("error", 0.3, [OFF] * 3),
]


@pytest.mark.parametrize("name,t,leds", RING3)
def test_apa102_each_pattern(factory, name, t, leds):
    clock = factory.pin(11, pin_class=ClockPin)
    ind, _ = build_gpio(GpioSettings(led_driver="apa102", apa102_count=3, brightness=0.5), factory, animate=False)
    ind.show(name)
    ind.render(t)
    assert decode(clock.take(), 3) == (16, leds)  # brightness 0.5 -> 16 of 31
    ind.close()


def test_apa102_rejects_wrong_frame_length(factory):
    ring = APA102(3, pin_factory=factory)
    with pytest.raises(ValueError):
        ring.write([(0, 0, 0)], 1.0)
    ring.close()


# --- the animation thread -----------------------------------------------------

class SlowIndicator(LedIndicator):
    """An indicator whose every frame takes 200 ms to draw (a slow SPI bus)."""

    def __init__(self, *a, **kw):
        self.frames: list[tuple] = []
        self.drawing = threading.Event()
        super().__init__(*a, **kw)

    def _write(self, frame):
        self.drawing.set()
        time.sleep(0.2)
        self.frames.append(frame)
        super()._write(frame)


def test_show_never_blocks_and_the_thread_animates(pwm_factory):
    from gpiozero import PWMLED

    ind = SlowIndicator([PWMLED(22, pin_factory=pwm_factory)], brightness=1.0)
    try:
        ind.show("listening")
        assert ind.drawing.wait(1.0)
        t0 = time.perf_counter()
        for name in STATES:  # while a frame is being drawn
            ind.show(name)
        ind.show("error")
        assert time.perf_counter() - t0 < 0.05
        assert wait_for(lambda: ind.frames and ind.frames[-1] == (1.0,), 2.0)  # error starts on
        assert wait_for(lambda: (0.0,) in ind.frames[-3:], 2.0)  # ...and blinks by itself
    finally:
        ind.close()


def test_animated_build_renders_in_background(pwm_factory):
    ind, _ = build_gpio(GpioSettings(led_driver="leds", led_pins=[22], brightness=1.0), pwm_factory)
    try:
        ind.show("listening")
        assert wait_for(lambda: pwm_factory.pin(22).state == 1.0)
        ind.show("idle")
        assert wait_for(lambda: pwm_factory.pin(22).state == 0.0)
        ind.show("error")  # 0.4 s blink: both states seen within a second
        seen = set()
        wait_for(lambda: seen.add(pwm_factory.pin(22).state) or seen >= {0.0, 1.0}, 2.0)
        assert seen >= {0.0, 1.0}
    finally:
        ind.close()


def test_logging_indicator_without_leds(caplog):
    for gs in (GpioSettings(), GpioSettings(enabled=False, led_driver="leds", led_pins=[1])):
        ind, buttons = build_gpio(gs)
        assert type(ind) is Indicator and buttons is None
        with caplog.at_level("DEBUG", logger="voxbox.gpio"):
            ind.show("thinking")
        assert ind.pattern == "thinking" and "thinking" in caplog.text
        with pytest.raises(ValueError):
            ind.show("disco")
        ind.close()


@pytest.mark.parametrize("gs,key", [
    (GpioSettings(led_driver="leds"), "gpio.led_pins"),
    (GpioSettings(led_driver="rgb", led_pins=[1, 2]), "gpio.led_pins"),
    (GpioSettings(led_driver="apa102"), "gpio.apa102_count"),
    (GpioSettings(hold_s=0), "gpio.hold_s"),
])
def test_bad_gpio_settings(gs, key):
    with pytest.raises(ConfigError, match=key):
        build_gpio(gs, MockFactory())


def test_busy_pin_is_one_clear_error(factory):
    ind, _ = build_gpio(GpioSettings(led_driver="leds", led_pins=[22]), factory, animate=False)
    with pytest.raises(VoxboxError, match="^gpio: .*22"):
        build_gpio(GpioSettings(led_driver="leds", led_pins=[22]), factory, animate=False)
    ind.close()


# --- the button ---------------------------------------------------------------

class Recorder:
    def __init__(self, buttons: Buttons):
        self.events: list[tuple[str, float]] = []
        self.t0 = time.monotonic()
        for name in ("press", "release", "hold"):
            setattr(buttons, f"on_{name}", lambda name=name: self.events.append((name, time.monotonic() - self.t0)))

    @property
    def names(self) -> list[str]:
        return [e for e, _ in self.events]


def build_button(factory, hold_s=0.3):
    gs = GpioSettings(button_pin=17, hold_s=hold_s)
    _, buttons = build_gpio(gs, factory, animate=False)
    assert isinstance(buttons, Buttons)
    return buttons, factory.pin(17)


def test_short_press_calls_press_then_release(factory):
    buttons, pin = build_button(factory)
    rec = Recorder(buttons)
    assert pin.state == 1  # pulled up, active low
    pin.drive_low()
    assert wait_for(lambda: rec.names == ["press"])
    assert buttons.is_pressed
    time.sleep(0.05)
    pin.drive_high()
    assert wait_for(lambda: rec.names == ["press", "release"])
    time.sleep(0.4)  # well past hold_s: no late hold
    assert rec.names == ["press", "release"] and not buttons.held
    buttons.close()


def test_hold_calls_on_hold_once_after_hold_s(factory):
    buttons, pin = build_button(factory, hold_s=0.3)
    rec = Recorder(buttons)
    pin.drive_low()
    assert wait_for(lambda: "hold" in rec.names, 2.0)
    time.sleep(0.5)  # still held: no repeat
    pin.drive_high()
    assert wait_for(lambda: rec.names == ["press", "hold", "release"])
    t_press, t_hold = rec.events[0][1], rec.events[1][1]
    assert 0.25 <= t_hold - t_press < 1.5
    assert buttons.held
    pin.drive_low()  # a new press starts as not held
    assert wait_for(lambda: rec.names[-1] == "press")
    assert not buttons.held
    pin.drive_high()
    buttons.close()


def test_a_failing_callback_does_not_stop_the_button(factory, caplog):
    buttons, pin = build_button(factory)
    buttons.on_press = lambda: 1 / 0
    released = threading.Event()
    buttons.on_release = released.set
    pin.drive_low()
    time.sleep(0.05)
    pin.drive_high()
    assert released.wait(1.0)
    assert "press callback failed" in caplog.text
    buttons.close()


# --- mute state ---------------------------------------------------------------

def test_mute_state_persists(tmp_path):
    d = tmp_path / "state"
    store = MuteStore(d)
    assert store.muted is False
    assert store.toggle() is True
    assert (d / "muted").read_text() == "1\n"
    assert MuteStore(d).muted is True  # read at start
    store.set(False)
    assert MuteStore(d).muted is False
    assert [p.name for p in d.iterdir()] == ["muted"]  # no temp files left


def test_mute_state_without_a_writable_dir(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = MuteStore(blocker / "sub")  # a directory below a file: never writable
    assert store.toggle() is True and store.muted is True
    assert store.toggle() is False
    assert caplog.text.count("kept in memory only") == 1
