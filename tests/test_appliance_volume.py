"""Volume (software gain, mixer seam, persistence), the player's overlays and ducking, the earcons."""

from __future__ import annotations

import numpy as np
import pytest

from device import config as cfg
from device.appliance.earcons import NAMES, Earcons
from device.appliance.state import restore, write_json
from device.appliance.volume import MixerTwin, Volume, gain_of
from device.audio.player import Player


def test_levels_clamp_and_gain_tapers():
    v = Volume(70, step=10)
    assert v.up() == 80 and v.change(50) == 100 and v.set(-3) == 0
    assert gain_of(100) == 1.0 and gain_of(0) == 0.0
    assert gain_of(50) == pytest.approx(0.1)  # -20 dB at the middle of a 40 dB range
    assert gain_of(60) > gain_of(50) > gain_of(40)


def test_mixer_takes_the_level_and_software_gain_stays_unity():
    twin = MixerTwin()
    v = Volume(40, mixer=twin)
    v.set(65)
    assert twin.levels == [40, 65] and v.gain() == 1.0
    assert Volume(40).gain() == pytest.approx(gain_of(40))


def test_a_failing_mixer_falls_back_to_software_gain():
    class Broken:
        def set_percent(self, level: int) -> None:
            raise OSError("card gone")

    v = Volume(50, mixer=Broken())
    assert v.mixer is None and v.gain() == pytest.approx(gain_of(50))


def test_level_persists_across_restarts(tmp_path):
    path = tmp_path / "volume.json"
    v = Volume(70)
    v.set(35)
    assert v.dirty
    write_json(path, v.to_json())
    again = Volume(70)  # the configured start level, overridden by the stored one
    assert restore(again, path) is None and again.level == 35
    path.write_text('{"level": 900}')
    fresh = Volume(70)
    assert restore(fresh, path) is not None and fresh.level == 70


def tone(n: int, amp: int = 10000) -> np.ndarray:
    return np.full(n, amp, dtype=np.int16)


def test_overlay_mixes_over_the_reply_starts_at_its_sample_and_survives_flush():
    p = Player(24000)
    p.enqueue("item_1", tone(480, 1000))
    p.overlay("timer", tone(100, 2000), at=300)
    out = p.pull(480)
    assert (out[:300] == 1000).all() and (out[300:400] == 3000).all() and (out[400:] == 1000).all()
    assert p.played_ms("item_1") == 20  # the overlay is not counted as the reply
    p.overlay("timer", tone(50, 2000), loop_until=p.clock + 200)
    p.flush()  # a barge-in silences the reply, not the ring
    out = p.pull(480)
    assert (out[:200] == 2000).all() and (out[200:] == 0).all()


def test_looping_overlay_stops_on_request():
    p = Player(24000)
    p.overlay("timer", np.arange(1, 101, dtype=np.int16), loop_until=10**9)
    a = p.pull(250)
    assert a[0] == 1 and a[100] == 1 and a[249] == 50  # wraps around the sound
    assert p.overlay_active("timer") and p.stop_overlay("timer")
    assert not p.pull(100).any() and not p.stop_overlay("timer")


def test_gain_and_ducking_scale_what_the_speaker_plays():
    p = Player(24000)
    p.gain = 0.5
    p.enqueue("a", tone(100, 10000))
    assert (p.pull(100) == 5000).all()
    p.duck = 0.1
    p.enqueue("a", tone(100, 10000))
    assert (p.pull(100) == 500).all()


def test_earcons_load_at_the_player_rate_and_switch_off_one_by_one():
    all_on = Earcons(cfg.SoundsSettings(), 16000)
    assert all_on.enabled == sorted(NAMES) == sorted(["wake", "done", "error", "mute", "unmute", "timer", "startup"])
    for name in NAMES:
        pcm = all_on.get(name)
        longest = 2.7 if name == "startup" else 1.0  # short sounds, but the start-up sweep (2.6 s)
        assert pcm is not None and 0.1 * 16000 <= len(pcm) < longest * 16000
        assert np.abs(pcm).max() > 1000
    quiet = Earcons(cfg.SoundsSettings(wake=False, level=0.25), 16000)
    assert quiet.get("wake") is None
    loud, soft = all_on.get("done"), quiet.get("done")
    assert loud is not None and soft is not None
    assert np.abs(soft).max() == pytest.approx(np.abs(loud).max() / 2, rel=0.02)


def test_missing_sound_file_stays_silent(tmp_path):
    assert Earcons(cfg.SoundsSettings(), 24000, directory=tmp_path).enabled == []


def test_volume_buttons_step_the_level(tmp_path):
    import threading

    from gpiozero.pins.mock import MockFactory

    from device.gpio.buttons import VolumeButtons

    factory = MockFactory()
    v = Volume(50, step=10)
    stepped = threading.Event()

    def on_step(step: int) -> None:
        v.change(step * v.step)
        stepped.set()

    buttons = VolumeButtons(5, 6, on_step, bounce_s=None, pin_factory=factory)
    try:
        for pin, want in ((5, 60), (5, 70), (6, 60)):
            stepped.clear()
            factory.pin(pin).drive_low()
            assert stepped.wait(1.0)
            factory.pin(pin).drive_high()
            assert v.level == want
    finally:
        buttons.close()
        factory.reset()
