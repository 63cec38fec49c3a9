"""`voxbox demo --scenario timer [--api live]`: the bundled timer scenario end to end (scripted local
model, simulate), over Realtime and over GPT-Live.

"Hey jarvis — set a timer for three seconds": the model calls set_timer, the device runs it and
answers; the ring starts at its due sample of speaker.wav; the demo's button press stops it. The
timeline has DESIGN.md's tool_call / timer / earcon events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.audio import wavio
from device.dev.demo_report import ring_onset, timer_facts
from device.dev.simulate import TIMER_PRESS_S

pytest.importorskip("livekit")


@pytest.fixture(scope="module", params=["realtime", "live"])
def timer_demo(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The demo on each API: Realtime (session.tools), GPT-Live (Responses delegation)."""
    out = tmp_path_factory.mktemp(f"timer_demo_{request.param}")
    r = subprocess.run([sys.executable, "-m", "device", "demo", "--scenario", "timer", "--api", request.param,
                        "--out", str(out), "--speed", "8"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "VOXBOX_CONFIG": "/dev/null"})
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
    # The model was told (conversation.item.create / GPT-Live's response.item.create), then asked to answer.
    sent = [x for x in recs if x["event"] == "send"]
    i = next(k for k, x in enumerate(sent) if x.get("item_type") == "function_call_output")
    assert sent[i]["type"] == ("response.item.create" if "session.start" in [x["type"] for x in sent]
                               else "conversation.item.create")
    assert any(x["type"] == "response.create" for x in sent[i:])
    # speaker.wav: the ring starts within 20 ms (audio clock) of the due time; quiet after the press.
    speaker, rate = wavio.read_wav(out / "speaker.wav")
    facts = timer_facts(recs, speaker[:, 0], rate)
    assert facts is not None and "onset_t" in facts, facts
    assert abs(facts["onset_error_ms"]) <= 20
    after = speaker[int((stop["t"] + 0.05) * rate):int((stop["t"] + 1.0) * rate), 0]
    assert not after.any() or ring_onset(speaker[:, 0], rate, stop["t"] + 0.5, window_s=0.4) is None
    if not [x for x in recs if x["event"] == "playback_start" and x["t"] > stop["t"]]:
        assert not after.any()  # no reply after the press either: exact silence
    # The press only stopped the ring: it opened no conversation.
    assert not [x for x in recs if x["event"] == "state" and TIMER_PRESS_S <= x["t"] < TIMER_PRESS_S + 1.0
                and x["state"] == "listening"]
    assert "timer          set_timer (ok)" in r.stdout
