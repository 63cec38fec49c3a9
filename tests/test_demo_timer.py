"""`voxbox demo --scenario timer`: the bundled timer scenario end to end (scripted local model, simulate).

"Hey jarvis — set a timer for three seconds": the model calls set_timer, the device runs it and
answers; the ring starts at its due sample of speaker.wav; the demo's button press stops it. The
timeline has DESIGN.md's tool_call / timer / earcon events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device.audio import wavio
from device.dev.demo_report import timer_facts
from device.dev.simulate import TIMER_PRESS_S

pytest.importorskip("livekit")


@pytest.fixture(scope="module")
def timer_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("timer_demo")
    r = subprocess.run([sys.executable, "-m", "device", "demo", "--scenario", "timer", "--out", str(out),
                        "--speed", "8"], capture_output=True, text=True, timeout=300)
    return r, out


def test_the_timer_scenario_sets_rings_on_time_and_a_press_stops_it(timer_demo) -> None:
    r, out = timer_demo
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    calls = [x for x in recs if x["event"] == "tool_call"]
    assert [(c["name"], c["arguments"]) for c in calls] == [("set_timer", {"duration_s": 3})]
    assert [x["ok"] for x in recs if x["event"] == "tool_result"] == [True]
    timers = [x for x in recs if x["event"] == "timer"]
    assert [x["action"] for x in timers] == ["set", "ring", "stop"]
    set_, ring, stop = timers
    assert set_["due_t"] == pytest.approx(calls[0]["t"] + 3.0, abs=0.011)
    assert stop["reason"] == "button" and stop["t"] == pytest.approx(TIMER_PRESS_S, abs=0.011)
    assert "timer" in [x["name"] for x in recs if x["event"] == "earcon"]
    # The model was told, then asked to answer.
    sent = [x for x in recs if x["event"] == "send"]
    i = next(k for k, x in enumerate(sent) if x.get("item_type") == "function_call_output")
    assert any(x["type"] == "response.create" for x in sent[i:])
    # speaker.wav: the ring starts within 20 ms (audio clock) of the due time; quiet after the press.
    speaker, rate = wavio.read_wav(out / "speaker.wav")
    facts = timer_facts(recs, speaker[:, 0], rate)
    assert facts is not None and "onset_t" in facts, facts
    assert abs(facts["onset_error_ms"]) <= 20
    after = speaker[int((stop["t"] + 0.05) * rate):int((stop["t"] + 1.0) * rate), 0]
    assert not after.any()
    # The press only stopped the ring: it opened no conversation.
    assert not [x for x in recs if x["event"] == "state" and TIMER_PRESS_S <= x["t"] < TIMER_PRESS_S + 1.0
                and x["state"] == "listening"]
    assert "timer          set_timer (ok)" in r.stdout
