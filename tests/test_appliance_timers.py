"""Timers and alarms: due times on the caller's clock, ringing, stop paths, persistence across a restart."""

from __future__ import annotations

import json

import pytest

from device.appliance.state import restore, write_json
from device.appliance.timers import TimerRefused, Timers

ORIGIN = 1_800_000_000.0


def test_timer_rings_at_its_due_moment_on_the_clock():
    tm = Timers(ORIGIN)
    tm.set_timer(2.5, 3.0, "tea")
    assert tm.due(5.49) == []
    (ev,) = tm.due(5.51)
    assert (ev.action, ev.t, ev.timer.label) == ("ring", pytest.approx(5.5), "tea")
    assert not tm.pending and list(tm.ringing) == [ev.timer.id]


def test_refusals_and_the_limit_on_count():
    tm = Timers(ORIGIN, max_s=60, max_timers=2)
    for bad in (0, -1, 61, float("nan")):
        with pytest.raises(TimerRefused):
            tm.set_timer(0.0, bad)
    tm.set_timer(0.0, 10)
    tm.set_timer(0.0, 20)
    with pytest.raises(TimerRefused, match="already 2 timers"):
        tm.set_timer(0.0, 30)


@pytest.mark.parametrize("reason", ["button", "tool", "speech"])
def test_stop_ends_all_ringing(reason):
    tm = Timers(ORIGIN)
    tm.set_timer(0.0, 1)
    tm.set_timer(0.0, 1.5)
    tm.due(2.0)
    events = tm.stop(3.0, reason)
    assert sorted(e.timer.id for e in events) == ["t1", "t2"] and {e.reason for e in events} == {reason}
    assert tm.stop(3.1, reason) == []


def test_ringing_stops_by_itself_after_ring_max():
    tm = Timers(ORIGIN, ring_max_s=900)
    tm.set_timer(0.0, 10)
    tm.due(10.0)
    assert tm.expired(909.0) == []
    (ev,) = tm.expired(910.0)
    assert (ev.action, ev.reason) == ("stop", "ring_max")
    assert not tm.ringing


def test_pending_timer_survives_a_restart(tmp_path):
    path = tmp_path / "timers.json"
    before = Timers(ORIGIN)
    before.set_timer(100.0, 60, "eggs")  # due at wall ORIGIN + 160
    write_json(path, before.to_json())
    # The daemon comes back 30 s later (wall clock), its new clock starting at 0 again.
    after = Timers(ORIGIN + 130.0)
    assert restore(after, path) is None
    (timer,) = after.pending.values()
    assert timer.label == "eggs" and after.due_t(timer) == pytest.approx(30.0)
    assert after.due(29.9) == [] and len(after.due(30.0)) == 1
    # New ids do not collide with the restored ones.
    assert after.set_timer(0.0, 5).timer.id != timer.id


def test_timer_due_while_down_rings_at_start(tmp_path):
    path = tmp_path / "timers.json"
    before = Timers(ORIGIN)
    before.set_timer(0.0, 10)
    write_json(path, before.to_json())
    after = Timers(ORIGIN + 3600)
    restore(after, path)
    assert [e.action for e in after.due(0.0)] == ["ring"]


@pytest.mark.parametrize("content", ["{not json", json.dumps({"timers": [{"id": "t1"}]}), json.dumps([1, 2]),
                                     json.dumps({"timers": [{"id": "t1", "kind": "bomb", "label": "",
                                                             "due_wall": 1.0, "duration_s": 1}]})])
def test_corrupt_state_is_reported_and_reset(tmp_path, content):
    path = tmp_path / "timers.json"
    path.write_text(content)
    tm = Timers(ORIGIN)
    problem = restore(tm, path)
    assert problem is not None and "\n" not in problem and str(path) in problem
    assert not tm.pending
    assert not path.exists() and (tmp_path / "timers.json.corrupt").exists()


def test_missing_state_is_no_problem(tmp_path):
    assert restore(Timers(ORIGIN), tmp_path / "none.json") is None
