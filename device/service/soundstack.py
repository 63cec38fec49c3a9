"""How this process reaches the sound card: ALSA directly, or a sound server (PipeWire, PulseAudio).

Raspberry Pi OS Lite has no sound server: the daemon opens the card through ALSA, by name. The
desktop image runs PipeWire inside the logged-in user's session; the voxbox system service has no
session, cannot reach that PipeWire, and must open the card through ALSA too, which works only
while the desktop's PipeWire does not hold it. `voxbox check` says which case it found and what to
change. Pure core (`detect`, `advice`) fed by a tiny probe of the filesystem (`probe`).

Facts used: PipeWire's socket is $XDG_RUNTIME_DIR/pipewire-0, PulseAudio's (and pipewire-pulse's)
$XDG_RUNTIME_DIR/pulse/native or $PULSE_SERVER; /run/user/<uid>/ holds every logged-in user's;
/proc/asound/cards lists the ALSA cards as " N [id ]: driver - long name".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from device.errors import VoxboxError


@dataclass(frozen=True)
class SoundStack:
    server: str  # "alsa" (none), "pipewire" or "pulseaudio": what this process's session runs
    cards: tuple[tuple[str, str], ...]  # (ALSA card id, long name) from /proc/asound/cards
    foreign_server: bool  # a sound server runs in another user's session (the desktop image)


_CARD = re.compile(r"^\s*\d+\s+\[(\S+)\s*\]:\s*(.*)$")


def parse_cards(text: str) -> tuple[tuple[str, str], ...]:
    """(id, long name) per card of a /proc/asound/cards text."""
    return tuple((m.group(1), m.group(2).strip()) for m in map(_CARD.match, text.splitlines()) if m)


def detect(env: Mapping[str, str], uid: int, exists: Callable[[Path], bool],
           sessions: Sequence[Path], cards_text: str) -> SoundStack:
    """The sound stack from the environment, which sockets exist, the /run/user/* dirs and the card list."""
    runtime = Path(env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}")
    if exists(runtime / "pipewire-0"):
        server = "pipewire"
    elif env.get("PULSE_SERVER") or exists(runtime / "pulse" / "native"):
        server = "pulseaudio"
    else:
        server = "alsa"
    foreign = any(d != runtime and (exists(d / "pipewire-0") or exists(d / "pulse" / "native")) for d in sessions)
    return SoundStack(server, parse_cards(cards_text), foreign)


def probe() -> SoundStack:
    """detect() on this machine."""
    run = Path("/run/user")
    try:
        sessions = sorted(p for p in run.iterdir() if p.is_dir()) if run.is_dir() else []
    except OSError:
        sessions = []
    try:
        cards = Path("/proc/asound/cards").read_text()
    except OSError:
        cards = ""
    return detect(os.environ, os.getuid(), lambda p: p.exists(), sessions, cards)


def _has_card(stack: SoundStack, name: str) -> bool:
    low = name.lower()
    return any(low in cid.lower() or low in long.lower() for cid, long in stack.cards)


def advice(stack: SoundStack, input_device: str, output_device: str, profile_cards: Sequence[str] = (),
           overlays: Sequence[str] = ()) -> str:
    """One line: what was found and what to change; VoxboxError (a warning in `check`) when something must change."""
    ids = ", ".join(cid for cid, _ in stack.cards) or "none"
    if stack.server != "alsa":
        what = "PipeWire" if stack.server == "pipewire" else "PulseAudio"
        return (f"{what} in this user's session (desktop): fine for `voxbox run` as this user; the system service "
                f"has no session, so it opens the card through ALSA by name (cards: {ids}); let {what} release "
                f"that card or run voxbox as a user service (systemctl --user)")
    if not stack.cards:
        raise VoxboxError("ALSA direct, but no sound card at all (/proc/asound/cards is empty): is the HAT's "
                          "overlay in config.txt and was the Pi rebooted?")
    missing = [c for c in dict.fromkeys(profile_cards) if not _has_card(stack, c)]
    if missing:
        fix = f"config.txt needs {'; '.join(o for o in overlays if 'overlay' in o)}, then a reboot" \
            if any("overlay" in o for o in overlays) else "is it plugged in?"
        raise VoxboxError(f"ALSA direct; the profile's card {missing[0]!r} is not there (cards: {ids}): {fix}")
    unnamed = [k for k, v in (("input", input_device), ("output", output_device)) if not v.strip()]
    if unnamed:
        raise VoxboxError(f"ALSA direct (cards: {ids}), but audio.{unnamed[0]}_device is empty: ALSA 'default' "
                          f"is card 0 ({stack.cards[0][0]}) under a service; name the card you mean")
    tail = "; a desktop session's sound server may hold a card: voxbox needs it free" if stack.foreign_server \
        else " (no sound server, as on Pi OS Lite)"
    return f"ALSA direct, cards: {ids}; voxbox opens the named card (plughw with PA_ALSA_PLUGHW=1){tail}"
