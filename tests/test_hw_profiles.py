"""Hardware profiles in hw/: each loads, validates against device/config.py, and drives mock GPIO."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from device.config import Settings
from device.errors import ConfigError
from device.gpio import build_gpio
from device.service import hw

HW_DIR = Path(__file__).resolve().parent.parent / "hw"
PROFILES = sorted(p.stem for p in HW_DIR.glob("*.toml"))


def test_the_profiles_are_there():
    # The 2-mic HAT has two revisions with different codecs, overlays and card names: one profile each.
    assert PROFILES == ["generic-usb", "respeaker-2mic-hat", "respeaker-2mic-hat-v2", "respeaker-4mic-hat",
                        "respeaker-usb-4mic"]
    assert hw.list_profiles(env={}) == PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_loads_and_builds_its_gpio(name):
    p = hw.load_profile(name, env={})
    assert p.name == name and p.path == HW_DIR / f"{name}.toml"
    assert p.description and p.alsa_capture and p.alsa_playback and p.wiring
    s = p.apply(Settings())
    factory = MockFactory()
    try:
        ind, buttons = build_gpio(s.gpio, factory, animate=False)
        ind.show("listening")
        if hasattr(ind, "render"):
            ind.render(0)
        assert (buttons is not None) == (s.gpio.button_pin >= 0)
        ind.close()
        if buttons:
            buttons.close()
    finally:
        factory.reset()


def test_profile_facts():
    two = hw.load_profile("respeaker-2mic-hat", env={}).apply(Settings())
    assert (two.audio.input_channels, two.gpio.led_driver, two.gpio.apa102_count, two.gpio.button_pin) == \
        (2, "apa102", 3, 17)
    assert two.audio.input_rate == two.audio.output_rate  # WM8960: one clock
    four = hw.load_profile("respeaker-4mic-hat", env={}).apply(Settings())
    assert (four.audio.input_channels, four.gpio.apa102_count, four.gpio.led_pins) == (4, 12, [5])
    usb = hw.load_profile("respeaker-usb-4mic", env={}).apply(Settings())
    assert (usb.audio.input_channels, usb.audio.channels, usb.aec.enabled) == (6, [0], False)
    gen = hw.load_profile("generic-usb", env={}).apply(Settings())
    assert gen.gpio.led_driver == "leds" and gen.gpio.led_pins and gen.gpio.button_pin >= 0


def test_profile_by_path_and_unknown_name():
    p = hw.load_profile(str(HW_DIR / "generic-usb.toml"), env={})
    assert p.name == "generic-usb"
    with pytest.raises(ConfigError, match=r"unknown \(known: generic-usb, respeaker-2mic-hat"):
        hw.load_profile("respeaker-9mic", env={})
    with pytest.raises(ConfigError, match="file not found"):
        hw.load_profile("/nonexistent/x.toml", env={})


GOOD_META = """[profile]
name = "t"
description = "d"
alsa_capture = "c"
alsa_playback = "p"
wiring = "w"
"""


@pytest.mark.parametrize("text,match", [
    ("[audio]\ninput_channels = 2\n", "missing \\[profile\\]"),
    (GOOD_META.replace('wiring = "w"\n', ""), "profile.wiring must be a string"),
    (GOOD_META + 'colour = "red"\n', "profile.colour: unknown key"),
    (GOOD_META + "[realtime]\nurl = 'ws://x'\n", "\\[realtime\\] is not a hardware section"),
    (GOOD_META + "[audio]\nmic_gain = 3\n", "audio.mic_gain: unknown setting"),
    (GOOD_META + "[gpio]\nbutton_pin = 'seventeen'\n", "gpio.button_pin: expected an integer"),
    (GOOD_META + "[gpio]\nled_driver = 'neopixel'\n", "gpio.led_driver: 'neopixel' is not one of"),
    (GOOD_META + "[audio\n", "invalid TOML"),
    (GOOD_META + 'overlays = "dtoverlay=x"\n', "profile.overlays must be a list of strings"),
    (GOOD_META + 'mixer = ["Capture"]\n', "profile.mixer entry 'Capture': expected 'CONTROL=VALUE'"),
])
def test_bad_profiles_are_one_clear_error(tmp_path, text, match):
    f = tmp_path / "t.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        hw.load_profile(f, env={})
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_load_settings_puts_the_profile_under_file_and_environment(tmp_path):
    cfg = tmp_path / "voxbox.toml"
    cfg.write_text('profile = "respeaker-2mic-hat"\n[gpio]\nbrightness = 0.8\n[audio]\ninput_rate = 16000\n')
    s = hw.load_settings(cfg, env={"VOXBOX_GPIO_BUTTON_PIN": "27"})
    assert s.gpio.led_driver == "apa102" and s.gpio.apa102_count == 3  # from the profile
    assert s.gpio.brightness == 0.8 and s.audio.input_rate == 16000  # the file wins over the profile
    assert s.gpio.button_pin == 27  # the environment wins over both
    assert s.audio.input_channels == 2
    assert "profile respeaker-2mic-hat" in s.source


def test_load_settings_profile_from_environment_and_none(tmp_path):
    s = hw.load_settings(None, env={"VOXBOX_PROFILE": "respeaker-usb-4mic", "VOXBOX_CONFIG": ""})
    assert s.audio.channels == [0] and s.aec.enabled is False
    cfg = tmp_path / "plain.toml"
    cfg.write_text("[gpio]\nhold_s = 3.0\n")
    s = hw.load_settings(cfg, env={})
    assert s.gpio.hold_s == 3.0 and s.gpio.led_driver == "none"


def test_hw_dir_from_environment(tmp_path):
    (tmp_path / "mine.toml").write_text(GOOD_META + "[gpio]\nbutton_pin = 4\n")
    env = {"VOXBOX_HW_DIR": str(tmp_path)}
    assert hw.list_profiles(env)[0] == "mine"
    assert hw.load_profile("mine", env).apply(Settings()).gpio.button_pin == 4


def test_2mic_hat_v1_is_the_kernel_wm8960_overlay_with_its_mixer_switched_on():
    p = hw.load_profile("respeaker-2mic-hat", env={})
    assert (p.alsa_capture, p.alsa_playback) == ("wm8960soundcard", "wm8960soundcard")
    assert "dtoverlay=wm8960-soundcard" in p.overlays
    mixer = dict(p.mixer)
    # The mics reach the ADC only through the boost mixers, and the PGA must capture.
    for control in ("Left Boost Mixer LINPUT1", "Right Boost Mixer RINPUT1", "Left Input Mixer Boost",
                    "Right Input Mixer Boost"):
        assert mixer[control] == "on", control
    assert ("Capture", "cap") in p.mixer
    assert "amixer -c wm8960soundcard sset 'Left Input Mixer Boost' on" in p.amixer_commands()


def test_2mic_hat_v2_is_the_tlv320aic3104_on_seeeds_overlay():
    p = hw.load_profile("respeaker-2mic-hat-v2", env={})
    assert (p.alsa_capture, p.alsa_playback) == ("seeed2micvoicec", "seeed2micvoicec")
    assert "dtoverlay=respeaker-2mic-v2_0" in p.overlays and "TLV320AIC3104" in p.description
    s = p.apply(Settings())
    assert s.audio.input_device == s.audio.output_device == "seeed2micvoicec"
    assert s.audio.input_rate == s.audio.output_rate and s.audio.input_channels == 2
    assert "wm8960" not in (s.audio.input_device + s.audio.output_device)


def test_apa102_boards_turn_spi_on():
    for name in PROFILES:
        p = hw.load_profile(name, env={})
        wants_spi = p.apply(Settings()).gpio.led_driver == "apa102"
        assert ("dtparam=spi=on" in p.overlays) == wants_spi, name


def test_playback_goes_to_a_card_every_pi_has_and_never_to_default():
    """A Pi 5 has no "Headphones" card; "default" under a system service is HDMI (Lite) or PipeWire (desktop)."""
    for name in PROFILES:
        s = hw.load_profile(name, env={}).apply(Settings())
        assert s.audio.output_device not in ("", "default", "Headphones"), name
    gen = hw.load_profile("generic-usb", env={})
    assert gen.alsa_playback != "default" and "plughw" in (gen.path.read_text())
    unit = (HW_DIR.parent / "systemd" / "voxbox.service").read_text()
    assert "Environment=PA_ALSA_PLUGHW=1" in unit.splitlines()  # PortAudio opens the named card as plughw:
