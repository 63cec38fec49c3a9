"""Settings: choices come from the types, one validation for file, environment and command line."""

from __future__ import annotations

import typing

import pytest

from device import config
from device.config import Settings
from device.errors import ConfigError


def choice_settings() -> list[tuple[str, tuple[str, ...]]]:
    """(key, allowed values) of every setting typed as a Literal."""
    return [(key, typing.get_args(typ)) for key, _, typ in config._choice_fields(Settings())]


def env_name(key: str) -> str:
    return "VOXBOX_" + key.replace(".", "_").upper()


def test_the_choices_are_the_ones_users_know() -> None:
    got = dict(choice_settings())
    assert got["conversation.barge_in"] == ("local", "server", "both", "off")
    assert got["realtime.turn_detection"] == ("server_vad", "semantic_vad", "none")
    assert got["vad.engine"] == ("silero", "micro")
    assert got["wake.engine"] == ("openwakeword", "microwakeword")
    assert got["gpio.led_driver"] == ("none", "leds", "rgb", "apa102")


@pytest.mark.parametrize(("key", "choices"), choice_settings())
def test_every_choice_is_accepted_and_anything_else_is_one_clear_error(key: str, choices: tuple[str, ...]) -> None:
    for value in choices:
        s = config.load(None, env={env_name(key): value, "VOXBOX_CONFIG": ""}, base=Settings())
        section, _, name = key.rpartition(".")
        assert getattr(getattr(s, section) if section else s, name) == value
    with pytest.raises(ConfigError) as err:
        config.load(None, env={env_name(key): "bogus", "VOXBOX_CONFIG": ""})
    assert str(err.value) == f"config {key}: 'bogus' is not one of {', '.join(choices)}"
