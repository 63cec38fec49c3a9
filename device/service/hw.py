"""Hardware profiles: hw/*.toml, each a partial voxbox config plus a [profile] table.

    [profile]   name, description, alsa_capture, alsa_playback, wiring   (all strings;
                alsa_* are ALSA card ids as in /proc/asound/cards, e.g. "wm8960soundcard")
                overlays   config.txt lines the board needs (dtoverlay=...; optional list)
                mixer      "CONTROL=VALUE" amixer settings the card needs (optional list)
    [audio] [aec] [gpio] ...   the same sections and keys as device/config.py

A profile is named by its file stem (`respeaker-2mic-hat`) or given as a path.
`load_settings()` is `config.load()` with the profile named by the `profile`
setting applied underneath: defaults <- profile <- config file <- environment.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from device import config
from device.config import Settings
from device.errors import ConfigError
from device.resources import package_data

PROFILE_KEYS = ("name", "description", "alsa_capture", "alsa_playback", "wiring")
LIST_KEYS = ("overlays", "mixer")  # optional lists of strings
# Sections a profile may set: hardware only (no realtime URL or keys in a profile).
SECTIONS = ("audio", "aec", "gpio", "vad", "wake")


@dataclass(frozen=True)
class HwProfile:
    name: str
    description: str
    alsa_capture: str
    alsa_playback: str
    wiring: str
    path: Path
    settings: dict[str, dict[str, Any]]  # section -> {key: value}, as in the TOML
    overlays: tuple[str, ...] = ()  # config.txt lines: "dtoverlay=wm8960-soundcard"
    mixer: tuple[tuple[str, str], ...] = ()  # (control, value): amixer -c CARD sset CONTROL VALUE

    def amixer_commands(self) -> list[str]:
        """The shell commands that set this profile's mixer controls on its capture card."""
        return [f"amixer -c {self.alsa_capture} sset '{c}' {v}" for c, v in self.mixer]

    def apply(self, settings: Settings) -> Settings:
        """`settings` with this profile's values set (a new Settings)."""
        applied: Settings = config.apply_values(settings, "", self.settings)
        return applied


def profile_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where profiles are looked for: $VOXBOX_HW_DIR, /etc/voxbox/hw, then the ones shipped with the package.

    The shipped ones are package data (device/resources.py: the repo's top-level hw/, copied
    into the wheel), so an installed wheel has them too.
    """
    env = os.environ if env is None else env
    dirs = [Path(env["VOXBOX_HW_DIR"])] if env.get("VOXBOX_HW_DIR") else []
    return dirs + [Path("/etc/voxbox/hw"), package_data("hw")]


def list_profiles(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the profiles found, first directory winning."""
    names: dict[str, None] = {}
    for d in profile_dirs(env):
        for p in sorted(d.glob("*.toml"), key=lambda f: f.stem) if d.is_dir() else []:  # by name, not file name
            names.setdefault(p.stem, None)
    return list(names)


def find_profile(name_or_path: str | Path, env: Mapping[str, str] | None = None) -> Path:
    """The file of a profile name or path; ConfigError listing the known names if none."""
    s = str(name_or_path)
    if "/" in s or s.endswith(".toml"):
        p = Path(s).expanduser()
        if not p.is_file():
            raise ConfigError(f"hardware profile {s}: file not found")
        return p
    for d in profile_dirs(env):
        p = d / f"{s}.toml"
        if p.is_file():
            return p
    known = ", ".join(list_profiles(env)) or "none found"
    raise ConfigError(f"hardware profile {s!r}: unknown (known: {known})")


def load_profile(name_or_path: str | Path, env: Mapping[str, str] | None = None) -> HwProfile:
    """Read and check a profile; ConfigError naming the file and key on any problem."""
    path = find_profile(name_or_path, env)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"hardware profile {path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"hardware profile {path}: invalid TOML ({exc})") from None
    meta = data.pop("profile", None)
    if not isinstance(meta, dict):
        raise ConfigError(f"hardware profile {path}: missing [profile] table")
    for key in PROFILE_KEYS:
        if not isinstance(meta.get(key), str):
            raise ConfigError(f"hardware profile {path}: profile.{key} must be a string")
    extra = sorted(set(meta) - set(PROFILE_KEYS) - set(LIST_KEYS))
    if extra:
        raise ConfigError(f"hardware profile {path}: profile.{extra[0]}: unknown key "
                          f"(known: {', '.join(PROFILE_KEYS + LIST_KEYS)})")
    for key in LIST_KEYS:
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"hardware profile {path}: profile.{key} must be a list of strings")
    mixer = []
    for entry in meta.get("mixer", []):
        control, eq, value = entry.partition("=")
        if not eq or not control.strip() or not value.strip():
            raise ConfigError(f"hardware profile {path}: profile.mixer entry {entry!r}: expected 'CONTROL=VALUE'")
        mixer.append((control.strip(), value.strip()))
    for section, values in data.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ConfigError(f"hardware profile {path}: [{section}] is not a hardware section "
                              f"(allowed: {', '.join(SECTIONS)})")
    try:
        config.validate(_applied(data))
    except ConfigError as exc:
        raise ConfigError(f"hardware profile {path}: {exc}") from None
    return HwProfile(name=meta["name"], description=meta["description"], alsa_capture=meta["alsa_capture"],
                     alsa_playback=meta["alsa_playback"], wiring=meta["wiring"].strip(), path=path,
                     settings=data, overlays=tuple(meta.get("overlays", [])), mixer=tuple(mixer))


def _applied(data: dict[str, Any]) -> Settings:
    s: Settings = config.apply_values(Settings(), "", data)
    return s


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """config.load(path, env, overrides=...), with the hardware profile named by `profile` applied underneath."""
    env = os.environ if env is None else env
    settings = config.load(path, env, overrides=overrides)
    if not settings.profile:
        return settings
    prof = load_profile(settings.profile, env)
    merged = config.load(path, env, base=prof.apply(Settings()), overrides=overrides)
    return dataclasses.replace(merged, source=f"{settings.source} + profile {prof.name}")


def describe(p: HwProfile) -> str:
    """A few lines for `voxbox check` and the README."""
    head = [f"{p.name}: {p.description}", f"  ALSA card: capture {p.alsa_capture!r}, playback {p.alsa_playback!r}"]
    if p.overlays:
        head.append(f"  config.txt: {'; '.join(p.overlays)}")
    return "\n".join(head + [f"  {line}" for line in p.wiring.splitlines()])
