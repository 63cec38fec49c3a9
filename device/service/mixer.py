"""Are the sound card's mixer controls as the hardware profile wants them? (`voxbox check`)

A profile's `mixer` lists (control, value) pairs in amixer's terms: "on"/"off" (a switch),
"cap"/"nocap" (a capture switch) or a raw volume ("39"). A WM8960 whose boost mixers are off
records silence, which looks like a dead microphone: this check names the control and the
amixer command that fixes it. Other values (percentages, dB) are not checked.

Read through pyalsaaudio (the `hw` extra): Mixer(control, cardindex=...).getmute() (1 = muted,
per channel), getrec() (1 = capturing), getvolume(pcmtype, VOLUME_UNITS_RAW); each raises
ALSAAudioError when the control lacks that capability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from device.errors import VoxboxError

# (control, wanted value) -> True (as wanted), False (not), None (value kind not checked)
Reader = Callable[[str, str], "bool | None"]


def mismatches(wanted: Sequence[tuple[str, str]], read: Reader) -> list[tuple[str, str]]:
    """The (control, value) pairs the card does not have; a control that cannot be read counts as one."""
    bad = []
    for control, value in wanted:
        try:
            ok = read(control, value)
        except VoxboxError:
            ok = False
        if ok is False:
            bad.append((control, value))
    return bad


def alsa_reader(card_id: str, module: Any = None) -> Reader:
    """A Reader for the ALSA card `card_id` (as in /proc/asound/cards); VoxboxError if it is not there.

    `module`: pyalsaaudio's `alsaaudio` (imported when None; tests pass a stand-in).
    """
    alsaaudio = module
    if alsaaudio is None:
        try:
            import alsaaudio  # type: ignore[no-redef]
        except ImportError:
            raise VoxboxError("pyalsaaudio is not installed (pip install 'voxbox[hw]'): mixer not checked") from None
    index = dict(zip(alsaaudio.cards(), alsaaudio.card_indexes(), strict=False)).get(card_id)
    if index is None:
        raise VoxboxError(f"card {card_id!r} is not there: mixer not checked")

    def read(control: str, value: str) -> bool | None:
        try:
            m = alsaaudio.Mixer(control, cardindex=index)
            if value in ("on", "off"):
                return all(bool(x) == (value == "off") for x in m.getmute())
            if value in ("cap", "nocap"):
                return all(bool(x) == (value == "cap") for x in m.getrec())
            if value.isdigit():
                caps = m.volumecap()
                capture = any("Capture" in c for c in caps) and not any("Playback" in c for c in caps)
                pcm = alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK
                return all(v == int(value) for v in m.getvolume(pcm, alsaaudio.VOLUME_UNITS_RAW))
        except alsaaudio.ALSAAudioError as exc:
            raise VoxboxError(f"{control}: {exc}") from None
        return None

    return read


def describe(card_id: str, wanted: Sequence[tuple[str, str]], read: Reader) -> str:
    """One line for `voxbox check`; VoxboxError naming the first wrong control and its amixer fix."""
    if not wanted:
        return "the profile sets no mixer controls"
    bad = mismatches(wanted, read)
    if bad:
        control, value = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise VoxboxError(f"{card_id}: {control!r} is not {value}{more}: amixer -c {card_id} sset '{control}' "
                          f"{value}, or rerun systemd/install.sh (it sets them all and stores them)")
    return f"{card_id}: the {len(wanted)} mixer settings of the profile are in place"
