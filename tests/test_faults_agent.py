"""Faults seen from the whole agent (device.agent.Agent on SimAudio, as `simulate` runs it).

What a user would notice: the timeline (and the LEDs) show `offline` while the link
is down and the conversation state again once it is back; replies resume after a
server restart; nothing at all reaches the wire while idle or muted (counted at the
server); local turns (turn_detection none) end with commit + response.create.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_faults_support import AgentRun, appended_audio, make_agent
from test_link_support import TracedServer

from device.audio import wavio
from device.conversation.agent import ScheduledPress


def after(run: AgentRun, t: float, name: str, **match: object) -> list[dict]:
    return [r for r in run.events(name, **match) if r["t"] >= t]


def test_agent_shows_offline_and_resumes_across_server_restarts(fixtures_dir: Path) -> None:
    two, rate = wavio.read_wav(fixtures_dir / "two_utterances.wav")
    mic = np.concatenate([two, two, two])  # three conversations, opened by the button
    period = len(two) / rate
    presses = [ScheduledPress(0.5 + k * period) for k in range(3)]
    kills = [1.8 + k * period for k in range(3)]  # while the user is talking in each conversation

    async def main() -> AgentRun:
        server = TracedServer(speed=16.0)
        port = await server.start()
        run = make_agent(mic, rate, f"ws://127.0.0.1:{port}/v1/realtime", speed=4.0, presses=presses)
        agent = run.agent
        task = asyncio.create_task(agent.run(wait_connected_s=5))
        servers = [server]
        for k, t in enumerate(kills):
            while agent.now < t:
                await asyncio.sleep(0.005)
            await (server.kill() if k % 2 == 0 else server.stop())
            await asyncio.sleep(0.15)  # down for 0.15 s (0.6 s of mic time)
            server = TracedServer(speed=16.0)
            await server.start(port=port)
            servers.append(server)
        await asyncio.wait_for(task, 60)
        await server.stop()
        run.servers = servers  # type: ignore[attr-defined]
        return run

    run = asyncio.run(main())
    disc = [d for d in run.events("disconnect") if d["reason"] != "client closed"]  # not the end of the run
    conn = run.events("connect")
    assert len(disc) == 3 and len(conn) == 4, (disc, conn)
    states = run.events("state")
    for d in disc:
        # offline is shown at the moment of the disconnect, and left on the next connect
        shown = [s for s in states if s["t"] >= d["t"]]
        assert shown[0]["state"] == "offline" and shown[0]["t"] == d["t"], shown[:2]
        back = next(c for c in conn if c["t"] >= d["t"])
        nxt = next(s for s in states if s["t"] >= back["t"])
        assert nxt["state"] != "offline" and nxt["t"] == back["t"]
        assert run.events("led", pattern="offline")
    # every server got the session first, and a reply was played after every restart
    for srv in run.servers:  # type: ignore[attr-defined]
        assert srv.inbound and srv.inbound[0]["type"] == "session.update"
    for d in disc:
        assert after(run, d["t"], "playback_start"), f"no reply after the restart at {d['t']}"
    summary = run.timeline.records[-1]
    assert summary["event"] == "summary" and summary["reconnects"] == 3
    # offline audio is kept up to the bound (2 s of mic time); only what is past it may be dropped
    offline_s = [next(c for c in conn if c["t"] >= d["t"])["t"] - d["t"] for d in disc]
    over_ms = sum(max(0.0, s - 2.0) for s in offline_s) * 1000
    # (+100 ms: audio still queued for the socket when it dropped joins the offline buffer)
    assert run.agent.link.stats.dropped_audio_ms <= over_ms + 100, (offline_s, run.agent.link.stats)


@pytest.mark.parametrize("case", ["idle", "muted"])
def test_zero_bytes_on_the_wire_while_idle_or_muted(case: str, fixtures_dir: Path) -> None:
    """Counted at the server: not one input_audio_buffer.append (nor any audio) arrives."""
    if case == "idle":
        mic, rate = wavio.read_wav(fixtures_dir / "negative_0.wav")  # speech, but no wake word
        mic = np.concatenate([mic, mic])
        presses: list[ScheduledPress] = []
    else:
        phrase, rate = wavio.read_wav(fixtures_dir / "hey_jarvis_en-us.wav")
        # the button held from 0.1 s for 2.5 s (muted at 2.1 s), then the wake phrase and talk, muted
        mic = np.concatenate([np.zeros((rate * 2, phrase.shape[1]), np.int16), phrase, phrase])
        presses = [ScheduledPress(0.1, 2.5)]

    async def main() -> tuple[AgentRun, TracedServer]:
        server = TracedServer()
        port = await server.start()
        run = make_agent(mic, rate, f"ws://127.0.0.1:{port}/v1/realtime", speed=8.0, presses=presses)
        await run.agent.run(wait_connected_s=5)
        await server.stop()
        return run, server

    run, server = asyncio.run(main())
    assert run.events("connect")  # the link was up the whole time
    appends = server.received("input_audio_buffer.append")
    wire = sum(len(json.dumps(a, separators=(",", ":"))) for a in appends)
    assert wire == 0 and appended_audio(server.inbound) == b""
    assert [e["type"] for e in server.inbound] == ["session.update"]  # nothing else either
    summary = run.timeline.records[-1]
    assert summary["uplink_bytes"] == 0 and summary["uplink_audio_ms"] == 0
    assert not run.events("uplink_start")
    if case == "idle":
        assert not run.events("wake") and set(run.states()) == {"offline", "idle"}
    else:
        assert run.events("button", action="hold") and run.states()[-1] == "muted"
        assert not run.events("wake")


def test_local_turns_through_simulate(fixtures_dir: Path, tmp_path: Path) -> None:
    """turn_detection = "none": the server only listens; the device's VAD ends each turn with
    commit + response.create, and the parrot answers."""
    conf = tmp_path / "voxbox.toml"
    conf.write_text('[realtime]\nturn_detection = "none"\n')
    tl = tmp_path / "t.jsonl"
    r = subprocess.run([sys.executable, "-m", "device", "simulate", "--config", str(conf), "--mic",
                        str(fixtures_dir / "two_utterances.wav"), "--press", "0.5", "--timeline", str(tl),
                        "--speed", "8"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in tl.read_text().splitlines()]

    def ev(name: str, **m: object) -> list[dict]:
        return [x for x in recs if x["event"] == name and all(x.get(k) == v for k, v in m.items())]

    sent = [x["type"] for x in ev("send")]
    assert sent[0] == "session.update"
    assert not ev("speech_start", source="server_vad")  # the server does no turn detection
    assert not ev("recv", type="input_audio_buffer.speech_started")
    commits = [i for i, s in enumerate(sent) if s == "input_audio_buffer.commit"]
    assert commits, sent
    for i in commits:
        assert sent[i + 1] == "response.create"  # each local turn: commit then response.create
    # the first commit follows the local VAD's end of speech of the first utterance
    first_end = ev("speech_end", source="local_vad")[0]["t"]
    first_commit = ev("send", type="input_audio_buffer.commit")[0]["t"]
    assert first_commit == first_end
    assert ev("recv", type="input_audio_buffer.committed") and ev("recv", type="response.done")
    states = [x["state"] for x in ev("state")]
    i = states.index("listening")
    assert states[i:i + 3] == ["listening", "thinking", "speaking"]
    # both utterances answered; the second one starts while the first reply plays (a barge-in)
    assert len(ev("playback_start")) == 2
    assert [x["reason"] for x in ev("playback_stop")] == ["barge_in", "done"]
    assert ev("send", type="conversation.item.truncate") and ev("recv", type="conversation.item.truncated")
    summary = recs[-1]
    assert summary["event"] == "summary" and summary["errors"] == 0, (r.stderr, [x for x in recs if "error" in str(x)])
