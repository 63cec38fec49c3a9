"""The barge-in bench's CPU pass (device.bench.barge_in.cpu_pass): the cost of the AEC and the detectors
measured alone, the quietest of several passes, so a busy neighbour on a shared machine does not
read as the device's cost."""

from __future__ import annotations

from pathlib import Path

from device.bench import barge_in as bb


def test_the_quietest_pass_counts_and_the_spread_shows_the_noise() -> None:
    scenarios = [{"name": f"s{i:03d}"} for i in range(25)]
    seen: list[str] = []
    busy = iter([1.5] * 3 + [1.0] * 3 + [1.2] * 3)  # three passes over three scenarios, the second quiet

    def run_one(sc: dict, set_dir: Path, settings: object) -> dict:
        seen.append(sc["name"])
        f = next(busy)
        return {"aec_audio_s": 10.0, "aec_cpu_s": 0.1 * f, "detector_cpu_s": 0.2 * f}

    r = bb.cpu_pass(scenarios, Path("."), every=10, repeats=3, run_one=run_one)
    assert seen == ["s000", "s010", "s020"] * 3  # every 10th, one after the other, three times
    assert r is not None
    assert r["runs"] == 3 and r["repeats"] == 3 and r["audio_s"] == 30.0
    assert r["aec_per_audio_s"] == 0.01 and r["aec_and_detectors_per_audio_s"] == 0.03
    assert r["spread"] == 1.5


def test_no_audio_is_no_reading() -> None:
    r = bb.cpu_pass([{"name": "s"}], Path("."), run_one=lambda *a: {"aec_audio_s": 0.0})
    assert r is None

