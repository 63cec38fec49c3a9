"""voxbox check's sound-stack line: ALSA direct (Pi OS Lite) or a sound server (desktop), and what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.errors import VoxboxError
from device.service import soundstack as ss

LITE_CARDS = """ 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
 1 [vc4hdmi1       ]: vc4-hdmi - vc4-hdmi-1
                      vc4-hdmi-1
 2 [wm8960soundcard]: simple-card - wm8960-soundcard
                      wm8960-soundcard
"""


def stack(sockets: set[str], env: dict[str, str] | None = None, cards: str = LITE_CARDS) -> ss.SoundStack:
    sessions = [Path("/run/user/1000"), Path("/run/user/999")]
    return ss.detect(env or {}, 999, lambda p: str(p) in sockets, sessions, cards)


def test_parse_cards():
    assert ss.parse_cards(LITE_CARDS) == (("vc4hdmi0", "vc4-hdmi - vc4-hdmi-0"), ("vc4hdmi1", "vc4-hdmi - vc4-hdmi-1"),
                                          ("wm8960soundcard", "simple-card - wm8960-soundcard"))


def test_pi_os_lite_is_alsa_direct_and_names_the_cards():
    s = stack(set())
    assert (s.server, s.foreign_server) == ("alsa", False)
    line = ss.advice(s, "wm8960", "wm8960", ["wm8960soundcard"], ["dtoverlay=wm8960-soundcard"])
    assert line.startswith("ALSA direct") and "wm8960soundcard" in line and "Pi OS Lite" in line


def test_desktop_service_sees_alsa_and_is_told_about_the_desktops_pipewire():
    s = stack({"/run/user/1000/pipewire-0"})  # the desktop user's PipeWire; we are uid 999, no session
    assert (s.server, s.foreign_server) == ("alsa", True)
    assert "sound server may hold a card" in ss.advice(s, "wm8960", "wm8960")


@pytest.mark.parametrize("sockets,env,server", [
    ({"/run/user/999/pipewire-0"}, {}, "pipewire"),
    ({"/tmp/rt/pulse/native"}, {"XDG_RUNTIME_DIR": "/tmp/rt"}, "pulseaudio"),
    (set(), {"PULSE_SERVER": "unix:/x"}, "pulseaudio"),
])
def test_a_session_with_a_sound_server_is_told_the_service_goes_through_alsa(sockets, env, server):
    s = stack(sockets, env)
    assert s.server == server
    line = ss.advice(s, "", "")
    assert "system service has no session" in line and "systemctl --user" in line


def test_missing_profile_card_names_the_overlay_and_the_reboot():
    with pytest.raises(VoxboxError, match=r"card 'seeed2micvoicec' is not there \(cards: vc4hdmi0, vc4hdmi1, "
                                          r"wm8960soundcard\): config.txt needs dtoverlay=respeaker-2mic-v2_0, "
                                          r"then a reboot"):
        ss.advice(stack(set()), "seeed2micvoicec", "seeed2micvoicec", ["seeed2micvoicec"],
                  ["dtoverlay=respeaker-2mic-v2_0", "dtparam=spi=on"])


def test_default_device_under_alsa_is_called_out():
    with pytest.raises(VoxboxError, match=r"audio.output_device is empty: ALSA 'default' is card 0 \(vc4hdmi0\)"):
        ss.advice(stack(set()), "USB", "")


def test_no_card_at_all():
    with pytest.raises(VoxboxError, match="no sound card at all"):
        ss.advice(stack(set(), cards=""), "USB", "USB")
