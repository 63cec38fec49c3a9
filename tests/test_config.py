"""Settings: choices come from the types, one validation for file, environment and command line."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

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


def test_settings_cannot_change_after_validation() -> None:
    s = config.load(None, env={"VOXBOX_CONFIG": ""})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.wake.threshold = 1.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.log_level = "debug"  # type: ignore[misc]


def test_overrides_win_over_file_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "voxbox.toml"
    f.write_text("[wake]\nthreshold = 0.3\n")
    s = config.load(f, env={"VOXBOX_WAKE_THRESHOLD": "0.4"}, overrides={"wake": {"threshold": 0.7}})
    assert s.wake.threshold == 0.7 and s.source == str(f)


# Every command-line option that sets a setting, with a bad value (the setting it names), and the
# environment's way to say the same: both are exit 2 with the same single line.
CLI_OVERRIDES = [
    (["detect", "--threshold", "1.5"], "wake.threshold", ("VOXBOX_WAKE_THRESHOLD", "1.5", ["detect"])),
    (["detect", "--wake-word", "no_such_word"], "no_such_word", None),
    (["vad", "--engine", "bogus"], "vad.engine", ("VOXBOX_VAD_ENGINE", "bogus", ["vad"])),
    (["simulate", "--url", "http://example.org", "--mic"], "realtime.url",
     ("VOXBOX_REALTIME_URL", "http://example.org", ["simulate", "--mic"])),
]


@pytest.mark.parametrize(("argv", "names", "env"), CLI_OVERRIDES)
def test_a_bad_command_line_value_is_a_config_error_like_the_environment(
        argv: list[str], names: str, env: tuple[str, str, list[str]] | None, fixtures_dir: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from device import cli

    wav = str(fixtures_dir / "hey_jarvis_en-us.wav")  # a file the command would read fine
    cfg_file = tmp_path / "empty.toml"
    cfg_file.write_text("")
    for name in [n for n in os.environ if n.startswith("VOXBOX_")]:
        monkeypatch.delenv(name)
    assert cli.main([*argv, wav, "--config", str(cfg_file)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("voxbox: ") and names in err
    if env is None:
        return
    var, value, env_argv = env
    monkeypatch.setenv(var, value)
    assert cli.main([*env_argv, wav, "--config", str(cfg_file)]) == 2
    assert capsys.readouterr().err == err
