"""The device's function tools over GPT-Live (Responses delegation).

Pure pieces: `session.start` carries the enabled tools as Responses delegation; the dialect reads
the delegated stream's calls out of `response.event` and answers with `response.item.create` +
`response.create`. The agent runs them through the same Appliance/ToolBox as on Realtime (timeline,
ring at its sample, errors as outputs). The local parrot delegates scripted calls, over a raw
WebSocket and end to end through `voxbox serve` on a loopback port. Every event both ways is
validated against openai.types.live (the nested Responses events against openai.types.responses).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_support import check_live_client_event, check_live_server_event
from test_appliance_agent import Rig, assert_mcp_failure_noted, no_sounds_but_the_timer, onset_s, quiet
from test_link_support import TracedServer, turn, wait_for
from test_live_agent import ThreadServer
from websockets.asyncio.client import connect

from device import config as cfg
from device.appliance.tools import function_tools, live_delegation
from device.audio import wavio
from device.conversation import machine as cv
from device.conversation.agent import ScheduledPress
from device.dev.demo_report import ring_onset, timer_facts
from device.dev.server import free_loopback_port
from device.dev.server_model import ScriptTurn, load_script
from device.dev.simulate import TIMER_PRESS_S, TIMER_SCRIPT, TIMER_WAV, SimOptions, simulate
from device.link import live_protocol as lp
from device.link.dialect import LiveDialect, for_settings
from device.link.protocol import ServerEvent

pytest.importorskip("openai")


def live_settings(**tools: Any) -> cfg.Settings:
    s = no_sounds_but_the_timer()
    return dataclasses.replace(s, realtime=cfg.RealtimeSettings(api="live"),
                               tools=dataclasses.replace(s.tools, **tools))


def delegated(call_id: str, name: str, arguments: str, item_id: str = "fc_1",
              delegation_id: str = "dlg_1") -> list[dict[str, Any]]:
    """What GPT-Live sends when its Responses backend calls a function: the delegation, then the
    stream's function_call item (added, arguments done without call_id or name, done)."""
    item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": "",
            "status": "in_progress"}
    inner = [{"type": "response.output_item.added", "output_index": 0, "item": item},
             {"type": "response.function_call_arguments.done", "output_index": 0, "item_id": item_id,
              "arguments": arguments},
             {"type": "response.output_item.done", "output_index": 0,
              "item": {**item, "arguments": arguments, "status": "completed"}}]
    out: list[dict[str, Any]] = [{"type": "session.delegation.created", "event_id": "ev_d", "offset_ms": 1200,
                                  "delegation": {"id": delegation_id, "type": "delegation", "target": "responses",
                                                 "response_id": "resp_1"}}]
    out += [{"type": "response.event", "event_id": f"ev_{k}", "delegation_id": delegation_id,
             "event": {**e, "sequence_number": k}} for k, e in enumerate(inner)]
    for ev in out:
        check_live_server_event(ev)
    return out


# --------------------------------------------------------------------------- pure pieces


def test_session_start_carries_the_enabled_tools_as_responses_delegation() -> None:
    s = live_settings(mcp=[cfg.McpServerSettings(label="ha", server_url="https://ha.local/mcp",
                                                 authorization_env="HA_TOKEN")])
    d = for_settings(s)
    assert isinstance(d, LiveDialect)
    (start,) = d.wire(cv.OpenSession(), lambda _i: 0)
    check_live_client_event(start)
    deleg = start["session"]["delegation"]
    assert deleg["type"] == "responses" and deleg["responses"]["model"] == s.tools.delegation_model
    tools = deleg["responses"]["tools"]
    # The same JSON schemas as the Realtime session's tools.
    assert [t for t in tools if t["type"] == "function"] == function_tools(list(cfg.TOOL_NAMES))
    assert [t["server_label"] for t in tools if t["type"] == "mcp"] == ["ha"]
    # Switched off one by one: gone from the delegation; all off and no MCP: no delegation at all.
    fewer = live_delegation(dataclasses.replace(s.tools, enabled=["set_timer", "stop"], mcp=[]), env={})
    assert fewer is not None and [t["name"] for t in fewer["responses"]["tools"]] == ["set_timer", "stop"]
    assert live_delegation(cfg.ToolsSettings(enabled=[]), env={}) is None
    (bare,) = for_settings(live_settings(enabled=[])).wire(cv.OpenSession(), lambda _i: 0)
    check_live_client_event(bare)
    assert "delegation" not in bare["session"]


def test_the_dialect_reads_delegated_calls_and_answers_them() -> None:
    d = for_settings(live_settings())
    d.wire(cv.OpenSession(), lambda _i: 0)
    calls = [c for ev in delegated("call_7", "set_timer", '{"duration_s":3}')
             for c in d.function_calls(ServerEvent(ev["type"], ev))]
    # At arguments.done (call_id and name from the announced item), and again whole at output_item.done.
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [("call_7", "set_timer", '{"duration_s":3}')] * 2
    assert all(c.response_id for c in calls)  # filed under the delegation: the machine asks again for it
    out = d.tool_output("call_7", '{"ok":true}')
    check_live_client_event(out)
    assert out["type"] == "response.item.create" and out["item"] == {
        "type": "function_call_output", "call_id": "call_7", "output": '{"ok":true}'}
    (create,) = d.wire(cv.SendResponseCreate(tool_outputs=True), lambda _i: 0)
    check_live_client_event(create)
    assert create["type"] == "response.create"
    # A turn's end is no reason to ask the Responses backend; nor is anything without delegation.
    assert d.wire(cv.SendResponseCreate(), lambda _i: 0) == []
    bare = for_settings(live_settings(enabled=[]))
    bare.wire(cv.OpenSession(), lambda _i: 0)
    assert bare.wire(cv.SendResponseCreate(tool_outputs=True), lambda _i: 0) == []
    # An arguments.done for an item never announced is left to its output_item.done.
    orphan = {"type": "response.event", "event_id": "e", "event": {
        "type": "response.function_call_arguments.done", "output_index": 0, "item_id": "fc_x", "arguments": "{}",
        "sequence_number": 0}}
    assert d.function_calls(ServerEvent("response.event", orphan)) == []


def test_the_machine_asks_gpt_live_again_after_tool_outputs_without_counting_a_response() -> None:
    m = cv.Conversation(cfg.ConversationSettings(), sessions=True)
    m.handle(cv.Connected(0.0))
    m.handle(cv.Wake(0.5, "w", 1.0))
    out = m.handle(cv.ToolDone(1.0, "dlg_1"))
    assert cv.SendResponseCreate(tool_outputs=True) in out and m.phase == "thinking"
    assert m.creates_pending == 0  # GPT-Live sends no response.created to pair it with


# --------------------------------------------------------------------------- the agent


class LiveRig(Rig):
    def ask_live(self, call_id: str, name: str, arguments: str) -> None:
        self.agent.handle(cv.Wake(self.agent.now, "test", 1.0))
        self.link.deliver("session.started", session={"id": "sess_1", "expires_at": 0, "model": "gpt-live-1",
                                                      "status": "active"})
        for ev in delegated(call_id, name, arguments):
            fields = {k: v for k, v in ev.items() if k != "type"}
            self.link.deliver(ev["type"], **fields)


def test_a_live_timer_call_runs_through_the_same_tools_answers_and_rings_at_its_sample() -> None:
    rig = LiveRig(quiet(6.0), live_settings())
    rig.run({50: lambda: rig.ask_live("call_1", "set_timer", '{"duration_s": 1.5, "label": "tea"}'),
             400: lambda: rig.agent.press("press"), 410: lambda: rig.agent.press("release")})
    for e in rig.link.sent:
        check_live_client_event(e)
    start = rig.sent("session.start")[0]
    assert start["session"]["delegation"]["responses"]["tools"][0]["name"] == "set_timer"
    (out,) = rig.sent("response.item.create")  # once, though two events carried the call
    assert out["item"]["call_id"] == "call_1" and json.loads(out["item"]["output"])["ok"] is True
    types = rig.link.sent_types()
    assert types.index("response.create") == types.index("response.item.create") + 1
    assert types.count("response.create") == 1 and "conversation.item.create" not in types
    (call,) = rig.events("tool_call")
    assert call["name"] == "set_timer" and call["arguments"] == {"duration_s": 1.5, "label": "tea"}
    assert [(r["call_id"], r["ok"]) for r in rig.events("tool_result")] == [("call_1", True)]
    sends = [r for r in rig.events("send") if r["type"] == "response.item.create"]
    assert sends[0]["item_type"] == "function_call_output" and sends[0]["round_trip_ms"] >= 0
    assert {r.get("event_type") for r in rig.events("recv") if r["type"] == "response.event"} == {
        "response.output_item.added", "response.function_call_arguments.done", "response.output_item.done"}
    timers = rig.events("timer")
    assert [x["action"] for x in timers] == ["set", "ring", "stop"]
    due = timers[0]["due_t"]
    assert due == pytest.approx(0.5 + 1.5, abs=0.011)
    start_s = onset_s(rig.sim.speaker_audio())
    assert start_s is not None and abs(start_s - due) <= 0.020
    assert timers[2]["reason"] == "button" and onset_s(rig.sim.speaker_audio(), after_s=4.05) is None
    assert len(rig.agent.tool_round_trips_ms) == 1


@pytest.mark.parametrize("name,args,needle", [
    ("launch_rocket", "{}", "unknown tool"),
    ("set_timer", '{"duration_s": 0}', "more than zero"),
    ("set_timer", "{broken", "not JSON"),
    ("set_volume", '{"level": 300}', "bad arguments"),
])
def test_a_bad_live_call_goes_back_as_an_error_output_and_one_journal_line(
        name: str, args: str, needle: str, caplog: pytest.LogCaptureFixture) -> None:
    rig = LiveRig(quiet(1.5), live_settings())
    with caplog.at_level(logging.WARNING, logger="voxbox.appliance"):
        rig.run({20: lambda: rig.ask_live("call_x", name, args)})
    (out,) = rig.sent("response.item.create")
    check_live_client_event(out)
    assert needle in json.loads(out["item"]["output"])["error"]
    assert [r["ok"] for r in rig.events("tool_result")] == [False]
    lines = [r for r in caplog.records if r.name == "voxbox.appliance"]
    assert len(lines) == 1 and "call_x" in lines[0].getMessage()
    assert "response.create" in rig.link.sent_types()  # the model hears why and goes on
    assert rig.agent.machine.phase == "thinking" and rig.agent.machine.session_open


def test_a_failing_mcp_server_behind_the_delegation_is_one_line_and_the_call_still_runs() -> None:
    rig = LiveRig(quiet(1.0), live_settings())
    listing = {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "home", "tools": []}
    inner = [{"type": "response.output_item.added", "output_index": 0, "item": listing},
             {"type": "response.mcp_list_tools.in_progress", "output_index": 0, "item_id": "mcpl_1"},
             {"type": "response.mcp_list_tools.failed", "output_index": 0, "item_id": "mcpl_1"}]

    def mcp() -> None:
        for k, e in enumerate(inner):
            ev = {"type": "response.event", "event_id": f"m{k}", "delegation_id": "dlg_0",
                  "event": {**e, "sequence_number": k}}
            check_live_server_event(ev)
            rig.link.deliver(ev["type"], **{x: v for x, v in ev.items() if x != "type"})

    rig.run({5: lambda: rig.ask_live("c1", "get_time", "{}"), 10: mcp})
    assert_mcp_failure_noted(rig)


# --------------------------------------------------------------------------- the local parrot


def _silence(s: float) -> np.ndarray:
    return np.random.default_rng(4).normal(0, 20, int(s * 24000)).astype(np.int16)


async def _talk(ws: Any, audio: np.ndarray) -> None:
    for i in range(0, len(audio), 4800):
        ev = lp.input_audio_append(audio[i:i + 4800].tobytes())
        await ws.send(json.dumps(ev))


def _start(delegation: dict[str, Any] | None) -> dict[str, Any]:
    ev = lp.session_start("gpt-live-1", delegation=delegation)
    check_live_client_event(ev)
    return ev


def _validated(server: TracedServer) -> TracedServer:
    """Every message both ways is a valid GPT-Live event."""
    for ev in server.inbound:
        check_live_client_event(ev)
    for ev in server.outbound:
        check_live_server_event(ev)
    return server


SCRIPT = [ScriptTurn(say="Timer set.", call_name="set_timer", call_arguments='{"duration_s":3}')]


def test_the_parrot_delegates_a_scripted_call_and_speaks_once_answered() -> None:
    deleg = live_delegation(cfg.ToolsSettings(), env={})

    async def main() -> TracedServer:
        server = TracedServer(script=SCRIPT)
        await server.start()
        try:
            async with connect(server.live_url) as ws:
                seen: list[dict[str, Any]] = []

                async def reader() -> None:
                    async for m in ws:
                        seen.append(json.loads(m))

                task = asyncio.create_task(reader())
                await ws.send(json.dumps(_start(deleg)))
                await _talk(ws, np.concatenate([turn(lead_s=0.3, tail_s=0.0), _silence(1.5)]))
                assert await wait_for(lambda: any(e["type"] == "response.event"
                                                  and e["event"]["type"] == "response.output_item.done"
                                                  for e in seen), 10)
                done = next(e for e in seen if e["type"] == "response.event"
                            and e["event"]["type"] == "response.output_item.done")
                call_id = done["event"]["item"]["call_id"]
                assert not any(e["type"] == "session.output_audio.delta" for e in seen)  # waits for the output
                await ws.send(json.dumps(lp.function_call_output(call_id, '{"ok":true}')))
                await ws.send(json.dumps(lp.response_create()))
                await _talk(ws, _silence(4.0))  # the session clock runs on input: the reply comes with it
                assert await wait_for(lambda: any(e["type"] == "session.output_transcript.delta" for e in seen), 10)
                await ws.send(json.dumps(lp.session_close()))
                await asyncio.wait_for(task, 10)
        finally:
            await server.stop()
        return server

    server = _validated(asyncio.run(main()))
    types = [e["type"] for e in server.outbound]
    assert "error" not in types
    started = server.outbound[0]
    assert started["type"] == "session.started" and started["session"]["delegation"]["type"] == "responses"
    created = next(e for e in server.outbound if e["type"] == "session.delegation.created")
    inner = [e["event"] for e in server.outbound if e["type"] == "response.event"]
    assert all(e["delegation_id"] == created["delegation"]["id"]
               for e in server.outbound if e["type"] == "response.event")
    assert [e["type"] for e in inner] == ["response.output_item.added", "response.function_call_arguments.done",
                                          "response.output_item.done"]
    assert inner[2]["item"]["name"] == "set_timer" and inner[2]["item"]["arguments"] == '{"duration_s":3}'
    # It spoke only after the output and response.create, and said the script's words.
    first_audio = types.index("session.output_audio.delta")
    assert first_audio > types.index("response.event")
    said = [e["delta"] for e in server.outbound if e["type"] == "session.output_transcript.delta"]
    assert said == ["Timer set. "]


def test_without_delegation_the_parrot_refuses_and_makes_no_call() -> None:
    async def main() -> TracedServer:
        server = TracedServer(script=SCRIPT)
        await server.start()
        try:
            async with connect(server.live_url) as ws:
                await ws.send(json.dumps(_start(None)))
                await ws.send(json.dumps(lp.function_call_output("call_1", "{}")))
                await ws.send(json.dumps(lp.response_create()))
                await _talk(ws, np.concatenate([turn(lead_s=0.3, tail_s=0.0), _silence(4.0)]))
                await ws.send(json.dumps(lp.session_close()))
                async for _ in ws:
                    pass
        finally:
            await server.stop()
        return server

    server = _validated(asyncio.run(main()))
    errors = [e["error"]["code"] for e in server.outbound if e["type"] == "error"]
    assert errors == ["delegation_not_configured", "delegation_not_configured"]
    types = [e["type"] for e in server.outbound]
    assert "session.delegation.created" not in types and "response.event" not in types
    said = [e["delta"] for e in server.outbound if e["type"] == "session.output_transcript.delta"]
    assert said == ["Timer set. "]  # the script's words, spoken without the call it could not make


# --------------------------------------------------------------------------- end to end


def test_the_timer_scenario_over_gpt_live_through_voxbox_serve(tmp_path: Path) -> None:
    """`voxbox serve --script` on a loopback port and `voxbox simulate --api live --url` against it: the
    tool runs, the ring starts at its sample of OUT.wav, the press stops it."""
    pytest.importorskip("livekit")
    port = free_loopback_port()
    env = {**os.environ, "VOXBOX_CONFIG": "/dev/null", "OPENAI_API_KEY": "test-key"}
    serve = subprocess.Popen([sys.executable, "-m", "device", "serve", "--port", str(port), "--api", "live",
                              "--script", str(TIMER_SCRIPT)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert serve.stderr is not None
        line = serve.stderr.readline()
        assert "GPT-Live (parrot, scripted)" in line, line
        out, tl = tmp_path / "out.wav", tmp_path / "timeline.jsonl"
        r = subprocess.run([sys.executable, "-m", "device", "simulate", "--mic", str(TIMER_WAV), "--api", "live",
                            "--url", f"ws://127.0.0.1:{port}/v1/live/sessions", "--press", str(TIMER_PRESS_S),
                            "--speaker-out", str(out), "--timeline", str(tl), "--speed", "4",
                            "--echo-gain", "0.5", "--echo-delay-ms", "30", "--room"],
                           capture_output=True, text=True, timeout=300, env=env)
    finally:
        serve.terminate()
        serve.wait(10)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [json.loads(x) for x in tl.read_text().splitlines()]
    calls = [x for x in recs if x["event"] == "tool_call"]
    assert [(c["name"], c["arguments"]) for c in calls] == [("set_timer", {"duration_s": 3})]
    assert [x["ok"] for x in recs if x["event"] == "tool_result"] == [True]
    sent = [x["type"] for x in recs if x["event"] == "send"]
    i = sent.index("response.item.create")
    assert sent[0] == "session.start" and "response.create" in sent[i:]
    timers = [x for x in recs if x["event"] == "timer"]
    assert [x["action"] for x in timers] == ["set", "ring", "stop"]
    assert timers[2]["reason"] == "button" and timers[2]["t"] == pytest.approx(TIMER_PRESS_S, abs=0.011)
    speaker, rate = wavio.read_wav(out)
    facts = timer_facts(recs, speaker[:, 0], rate)
    assert facts is not None and abs(facts["onset_error_ms"]) <= 20, facts
    # The ring's sound is nowhere in OUT.wav after the press (a reply may be; the ring may not).
    assert ring_onset(speaker[:, 0], rate, timers[2]["t"] + 0.5, window_s=0.4) is None
    assert recs[-1]["event"] == "summary" and recs[-1]["errors"] == 0


def test_the_timer_scenario_over_gpt_live_every_event_valid(tmp_path: Path) -> None:
    """The same scenario in process against the traced parrot: every event both ways valid, the
    output answers the call the delegated stream made, and the parrot speaks the script's words."""
    pytest.importorskip("livekit")
    ts = ThreadServer(script=load_script(TIMER_SCRIPT))
    try:
        recs = simulate(cfg.Settings(), SimOptions(mic=TIMER_WAV, url=ts.server.live_url, api="live", speed=4.0,
                                                   presses=[ScheduledPress(TIMER_PRESS_S)]))
    finally:
        ts.stop()
    server = _validated(ts.server)
    (start,) = server.received("session.start")
    assert start["session"]["delegation"]["type"] == "responses"
    done = [e["event"] for e in server.outbound if e["type"] == "response.event"
            and e["event"]["type"] == "response.output_item.done"]
    (out,) = server.received("response.item.create")
    assert [d["item"]["call_id"] for d in done] == [out["item"]["call_id"]]
    assert json.loads(out["item"]["output"])["ok"] is True
    types = [e.get("type") for e in server.inbound if isinstance(e, dict)]
    assert types.index("response.create") > types.index("response.item.create")
    said = [e["delta"] for e in server.outbound if e["type"] == "session.output_transcript.delta"]
    assert said[0] == "Timer set for three seconds. "
    assert [r["action"] for r in recs if r["event"] == "timer"] == ["set", "ring", "stop"]
    assert recs[-1]["errors"] == 0
