"""voxbox check's mixer line: the profile's controls read back through pyalsaaudio's API (a fake card here)."""

from __future__ import annotations

import pytest

from device.errors import VoxboxError
from device.service import hw, mixer


class FakeAlsa:
    """pyalsaaudio's module surface over a dict of controls: {name: {"mute": [...], "rec": [...], "vol": [...]}}."""

    PCM_PLAYBACK, PCM_CAPTURE, VOLUME_UNITS_RAW = 0, 1, 2

    class ALSAAudioError(Exception):
        pass

    def __init__(self, controls: dict[str, dict[str, object]]) -> None:
        self.controls = controls
        fake = self

        class Mixer:
            def __init__(self, control: str, cardindex: int = -1) -> None:
                if cardindex != 2 or control not in fake.controls:
                    raise fake.ALSAAudioError("Unable to find mixer control")
                self.c = fake.controls[control]

            def _get(self, key: str) -> list[int]:
                if key not in self.c:
                    raise fake.ALSAAudioError("not supported")
                return list(self.c[key])  # type: ignore[call-overload]

            def getmute(self) -> list[int]:
                return self._get("mute")

            def getrec(self) -> list[int]:
                return self._get("rec")

            def volumecap(self) -> list[str]:
                return list(self.c.get("caps", ["Playback Volume"]))  # type: ignore[call-overload]

            def getvolume(self, pcmtype: int = 0, units: int = 0) -> list[int]:
                assert units == fake.VOLUME_UNITS_RAW
                return self._get("cvol" if pcmtype == fake.PCM_CAPTURE else "vol")

        self.Mixer = Mixer

    def cards(self) -> list[str]:
        return ["vc4hdmi0", "vc4hdmi1", "wm8960soundcard"]

    def card_indexes(self) -> list[int]:
        return [0, 1, 2]


def wm8960(boost_on: bool) -> dict[str, dict[str, object]]:
    sw = [0] if boost_on else [1]  # getmute: 1 = muted = switch off
    c: dict[str, dict[str, object]] = {name: {"mute": sw} for name in (
        "Left Boost Mixer LINPUT1", "Right Boost Mixer RINPUT1", "Left Input Mixer Boost", "Right Input Mixer Boost",
        "Left Output Mixer PCM", "Right Output Mixer PCM")}
    c.update({"Left Input Boost Mixer LINPUT1": {"vol": [2]}, "Right Input Boost Mixer RINPUT1": {"vol": [2]},
              "Capture": {"rec": [1, 1], "cvol": [39, 39], "caps": ["Capture Volume"]},
              "ADC PCM": {"cvol": [195, 195], "caps": ["Capture Volume"]},
              "Speaker": {"vol": [110, 110]}, "Headphone": {"vol": [110, 110]}})
    return c


PROFILE = hw.load_profile("respeaker-2mic-hat", env={})


def test_a_card_set_as_the_profile_wants_passes():
    read = mixer.alsa_reader("wm8960soundcard", FakeAlsa(wm8960(boost_on=True)))
    assert mixer.describe("wm8960soundcard", PROFILE.mixer, read) == \
        f"wm8960soundcard: the {len(PROFILE.mixer)} mixer settings of the profile are in place"


def test_boost_mixers_off_is_named_with_its_amixer_fix():
    read = mixer.alsa_reader("wm8960soundcard", FakeAlsa(wm8960(boost_on=False)))
    with pytest.raises(VoxboxError, match=r"'Left Boost Mixer LINPUT1' is not on \(and 5 more\): "
                                          r"amixer -c wm8960soundcard sset 'Left Boost Mixer LINPUT1' on"):
        mixer.describe("wm8960soundcard", PROFILE.mixer, read)


def test_wrong_capture_volume_and_switch_and_a_missing_control():
    controls = wm8960(boost_on=True)
    controls["Capture"] = {"rec": [0, 0], "cvol": [10, 10], "caps": ["Capture Volume"]}
    del controls["Speaker"]
    read = mixer.alsa_reader("wm8960soundcard", FakeAlsa(controls))
    assert mixer.mismatches(PROFILE.mixer, read) == [("Capture", "cap"), ("Capture", "39"), ("Speaker", "110")]


def test_card_missing_or_no_pyalsaaudio_is_one_line():
    with pytest.raises(VoxboxError, match="card 'seeed2micvoicec' is not there"):
        mixer.alsa_reader("seeed2micvoicec", FakeAlsa({}))
    assert mixer.describe("x", [], lambda c, v: True) == "the profile sets no mixer controls"
