"""The function tools: session.tools in the GA shape (openai types), validation, every tool's behaviour."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter

from device import config as cfg
from device.appliance.timers import Timers
from device.appliance.tools import ToolBox, missing_tokens, session_tools
from device.appliance.volume import Volume

openai_rt = pytest.importorskip("openai.types.realtime")
from openai.types.realtime import RealtimeFunctionTool, RealtimeSessionCreateRequest  # noqa: E402
from openai.types.realtime.realtime_tools_config_union import Mcp, RealtimeToolsConfigUnion  # noqa: E402

ORIGIN = 1_800_000_000.0  # a fixed wall-clock origin (epoch s) for the tests


def box(**tools) -> ToolBox:
    settings = cfg.ToolsSettings(**tools)
    return ToolBox(settings, Timers(ORIGIN, max_s=settings.timer_max_s), Volume(50))


def out(result) -> dict:
    return json.loads(result.output)


def test_session_tools_are_realtime_function_tools_and_mcp():
    settings = cfg.ToolsSettings(mcp=[cfg.McpServerSettings(
        label="home", server_url="https://ha.local/mcp_server/sse", allowed_tools=["HassTurnOn"],
        require_approval="never", authorization_env="HA_TOKEN")])
    tools = session_tools(settings, env={"HA_TOKEN": "secret-token"})
    adapter = TypeAdapter(RealtimeToolsConfigUnion)
    parsed = [adapter.validate_python(t) for t in tools]
    funcs = [p for p in parsed if isinstance(p, RealtimeFunctionTool)]
    assert [f.name for f in funcs] == list(cfg.TOOL_NAMES)
    assert all(f.parameters["type"] == "object" for f in funcs)
    (mcp,) = [p for p in parsed if isinstance(p, Mcp)]
    assert (mcp.server_label, mcp.server_url, mcp.allowed_tools, mcp.require_approval, mcp.authorization) == (
        "home", "https://ha.local/mcp_server/sse", ["HassTurnOn"], "never", "secret-token")
    # And as a whole session (session.update's session object).
    RealtimeSessionCreateRequest.model_validate({"type": "realtime", "tools": tools, "tool_choice": "auto"})


def test_tools_switch_off_one_by_one():
    for name in cfg.TOOL_NAMES:
        enabled = [n for n in cfg.TOOL_NAMES if n != name]
        names = [t["name"] for t in session_tools(cfg.ToolsSettings(enabled=enabled), env={})]
        assert name not in names and len(names) == len(cfg.TOOL_NAMES) - 1
        r = box(enabled=enabled).run(name, "{}", 0.0)
        assert not r.ok and "unknown tool" in out(r)["error"]


def test_missing_mcp_token_is_reported_without_the_value():
    s = cfg.ToolsSettings(mcp=[cfg.McpServerSettings(label="home", server_url="https://x/mcp",
                                                     authorization_env="HA_TOKEN")])
    assert missing_tokens(s, env={}) == ["tools.mcp 'home': environment variable HA_TOKEN is not set"]
    assert "authorization" not in session_tools(s, env={})[-1]


@pytest.mark.parametrize("name,args,needle", [
    ("no_such_tool", "{}", "unknown tool"),
    ("set_timer", "{not json", "not JSON"),
    ("set_timer", "{}", "duration_s"),
    ("set_timer", '{"duration_s": "ten"}', "duration_s"),
    ("set_timer", '{"duration_s": 10, "colour": "red"}', "colour"),
    ("set_alarm", '{"time": "25:00"}', "time"),
    ("set_volume", '{"level": 150}', "level"),
    ("set_volume", '{"level": 10, "change": 5}', "set_volume"),
    ("cancel_timer", "{}", "cancel_timer"),
])
def test_bad_calls_give_an_error_output(name, args, needle):
    r = box().run(name, args, 0.0)
    assert not r.ok
    assert needle in out(r)["error"]


@pytest.mark.parametrize("seconds,reason", [(0, "more than zero"), (-5, "more than zero"), (7200, "one hour")])
def test_timer_out_of_range_is_refused_with_a_reason(seconds, reason):
    b = box(timer_max_s=3600.0)
    r = b.run("set_timer", json.dumps({"duration_s": seconds}), 0.0)
    assert not r.ok and reason in out(r)["error"]
    assert not b.timers.pending


def test_set_list_cancel_timer():
    b = box()
    r = b.run("set_timer", '{"duration_s": 300, "label": "pasta"}', 10.0)
    assert r.ok and r.timer_events[0].action == "set"
    assert b.timers.due_t(r.timer_events[0].timer) == pytest.approx(310.0)
    b.run("set_timer", '{"duration_s": 60}', 10.0)
    listed = out(b.run("list_timers", "", 70.0))["timers"]
    assert [(x["seconds_left"], x.get("label")) for x in listed] == [(0, None), (240, "pasta")]
    r = b.run("cancel_timer", '{"label": "Pasta"}', 80.0)
    assert r.ok and [e.action for e in r.timer_events] == ["cancel"]
    assert [x.label for x in b.timers.pending.values()] == [""]
    r = b.run("cancel_timer", '{"id": "t99"}', 80.0)
    assert not r.ok and "no pending timer" in out(r)["error"]


def test_set_alarm_next_occurrence():
    b = box()
    now = b.timers.local_time(0.0)
    hhmm = f"{(now.hour + 1) % 24:02d}:{now.minute:02d}"
    r = b.run("set_alarm", json.dumps({"time": hhmm, "label": "wake up"}), 0.0)
    assert r.ok
    due = b.timers.due_t(r.timer_events[0].timer)
    assert 3000 < due <= 3600 + 60  # about an hour ahead (DST-proof bounds)
    assert out(r)["at"] == hhmm
    past = f"{now.hour:02d}:{now.minute:02d}"  # this minute has begun: tomorrow
    r = b.run("set_alarm", json.dumps({"time": past}), 0.0)
    assert 22 * 3600 < b.timers.due_t(r.timer_events[0].timer) <= 25 * 3600


def test_set_volume_level_and_change():
    b = box()
    r = b.run("set_volume", '{"level": 80}', 0.0)
    assert r.ok and out(r)["level"] == 80 and r.volume_changed
    assert out(b.run("set_volume", '{"change": -30}', 0.0))["level"] == 50
    assert out(b.run("set_volume", '{"change": 90}', 0.0))["level"] == 100


def test_stop_ends_ringing():
    b = box()
    b.run("set_timer", '{"duration_s": 1}', 0.0)
    assert [e.action for e in b.timers.due(1.0)] == ["ring"]
    r = b.run("stop", "{}", 2.0)
    assert r.ok and r.stop and out(r)["stopped_ringing"] == 1
    assert [(e.action, e.reason) for e in r.timer_events] == [("stop", "tool")]
    assert not b.timers.ringing


def test_get_time_is_the_local_time_of_the_clock():
    b = box()
    o = out(b.run("get_time", "{}", 90.0))
    expect = b.timers.local_time(90.0)
    assert (o["date"], o["time"]) == (expect.strftime("%Y-%m-%d"), expect.strftime("%H:%M"))
