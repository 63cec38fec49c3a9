"""The whole agent over GPT-Live against the local parrot (simulate, file audio, loopback):
session per conversation, nothing lost before session.started, renewal on expiry, mute,
full duplex with echo. The server's own counters say what really arrived."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_support import check_live_client_event, check_live_server_event
from test_link_support import TracedServer, turn

from device.audio import wavio
from device.config import AecSettings, ConversationSettings, Settings
from device.conversation.agent import ScheduledPress
from device.dev.simulate import DEMO_INFO, SimOptions, simulate


class ThreadServer:
    """The local server (traced) on its own event loop thread, for a simulate run in this one."""

    def __init__(self, **kw: Any) -> None:
        self.server = TracedServer(**kw)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[TracedServer]:
    ts = ThreadServer()
    try:
        yield ts.server
    finally:
        ts.stop()
    for ev in ts.server.inbound:  # every event both ways is a valid GPT-Live event
        check_live_client_event(ev)
    for ev in ts.server.outbound:
        check_live_server_event(ev)


def _silence(s: float) -> np.ndarray:
    return np.random.default_rng(3).normal(0, 20, int(s * 24000)).astype(np.int16)


def run(tmp: Path, server: TracedServer, mic: np.ndarray, presses: list[ScheduledPress], *,
        echo_gain: float = 0.0, settings: Settings | None = None) -> list[dict[str, Any]]:
    path = tmp / "mic.wav"
    wavio.write_wav(path, mic, 24000)
    s = settings or Settings()
    # 2x: the server shares this process (and a busy machine); faster runs starve its thread.
    opts = SimOptions(mic=path, url=server.live_url, presses=presses, speed=2.0, echo_gain=echo_gain,
                      echo_delay_ms=30.0 if echo_gain else 0.0, api="live")
    return simulate(s, opts)


def ev(recs: list[dict[str, Any]], name: str, **m: object) -> list[dict[str, Any]]:
    return [r for r in recs if r["event"] == name and all(r.get(k) == v for k, v in m.items())]


def test_press_opens_a_session_nothing_is_lost_and_the_follow_up_window_closes_it(
        tmp_path: Path, server: TracedServer) -> None:
    speech = turn(lead_s=0.2, tail_s=0.0)
    mic = np.concatenate([_silence(1.5), speech, _silence(9.0)])
    recs = run(tmp_path, server, mic, [ScheduledPress(0.5)])
    stats = server.live_api.stats
    assert (stats.connections, stats.sessions_started, stats.sessions_open) == (1, 1, 0)
    assert stats.close_reasons == ["close_requested"]
    press = ev(recs, "button", action="release")[0]["t"]
    start, started = ev(recs, "session", action="start")[0], ev(recs, "session", action="started")[0]
    close = ev(recs, "session", action="close")[0]
    assert press <= start["t"] <= started["t"] and start["api"] == "live"
    assert ev(recs, "recv", type="session.closed") and ev(recs, "send", type="session.close")
    # Every ms from the press to the close reached the server, the part before session.started included
    # (the last few blocks, queued when the conversation closed, are dropped with it).
    summary = recs[-1]
    sent_ms = close["t"] - press
    assert -100 <= summary["uplink_audio_ms"] - sent_ms * 1000 <= 20
    assert stats.audio_bytes == summary["uplink_audio_ms"] * 48 and stats.muted_audio_bytes == 0
    # The user's sentence was heard whole (the session clock starts at the press).
    heard = [e for e in server.outbound if e["type"] == "session.input_transcript.delta"]
    assert len(heard) == 1
    onset_ms = (1.5 + 0.2 - press) * 1000
    assert heard[0]["start_ms"] <= onset_ms and heard[0]["end_ms"] >= onset_ms + (len(speech) / 24 - 200) - 250
    # The reply played to its end, then the follow-up window (6 s) passed with no speech.
    # (A gap in the stream longer than MODEL_GAP_S, on a loaded machine, splits it in two: still all played.)
    stops = ev(recs, "playback_stop")
    assert {r["reason"] for r in stops} == {"done"}
    assert sum(r["played_ms"] for r in stops) >= len(speech) / 24 + 200  # the turn, its prefix and tail
    done_t = stops[-1]["t"]
    assert 5.9 <= close["t"] - done_t <= 6.2
    assert summary["errors"] == 0


def test_expired_session_is_renewed_with_the_conversation_so_far(tmp_path: Path, server: TracedServer) -> None:
    server.live_api.max_session_s = 6.4  # the first session expires after the first reply
    speech, question = turn(lead_s=0.2, tail_s=0.0), turn("what time is it", lead_s=0.0, tail_s=0.0)
    mic = np.concatenate([_silence(1.0), speech, _silence(4.5), question, _silence(9.0)])
    s = Settings(conversation=ConversationSettings(follow_up_s=4.0))
    recs = run(tmp_path, server, mic, [ScheduledPress(0.5)], settings=s)
    stats = server.live_api.stats
    assert stats.sessions_started >= 2 and stats.close_reasons[0] == "expired"
    assert stats.close_reasons[-1] == "close_requested" and stats.sessions_open == 0
    assert ev(recs, "session", action="expired") and ev(recs, "session", action="renew")
    starts = [e for e in server.inbound if isinstance(e, dict) and e.get("type") == "session.start"]
    assert "input" not in starts[0]["session"]
    history = [(m["role"], m["content"][0]["text"]) for m in starts[1]["session"]["input"]]
    assert [r for r, _ in history] == ["user", "assistant"]
    assert history[0][1].startswith("(user turn 1") and history[1][1].startswith("(parrot reply 1")
    # The second question is answered in the new session and played.
    assert len(ev(recs, "playback_start")) == 2 and recs[-1]["errors"] == 0
    heard = [e for e in server.outbound if e["type"] == "session.input_transcript.delta"]
    assert len(heard) == 2 and heard[1]["delta"].startswith("(user turn 1, 1.")  # the question, whole


def test_mute_sends_nothing_and_a_long_mute_closes_the_session(tmp_path: Path, server: TracedServer) -> None:
    speech = turn(lead_s=0.2, tail_s=0.0)
    mic = np.concatenate([_silence(1.0), speech, _silence(4.0), speech, _silence(6.0)])
    hold_at = 1.0 + len(speech) / 24000 + 3.5  # after the reply, held 2.5 s: muted while the user talks on
    recs = run(tmp_path, server, mic, [ScheduledPress(0.5), ScheduledPress(hold_at, 2.5)])
    assert ev(recs, "mute", muted=True) and ev(recs, "send", type="session.input_audio.mute")
    assert ev(recs, "recv", type="session.input_audio.muted")
    # Nothing left the device while muted: no audio after the mute event, none counted muted at the server.
    types = [e.get("type") for e in server.inbound if isinstance(e, dict)]
    muted_at = types.index("session.input_audio.mute")
    assert "session.input_audio.append" not in types[muted_at:]
    stats = server.live_api.stats
    assert stats.muted_audio_bytes == 0 and stats.audio_bytes == recs[-1]["uplink_audio_ms"] * 48
    # Still muted 5 s later: the session was closed.
    mute_t = ev(recs, "mute", muted=True)[0]["t"]
    close_t = ev(recs, "session", action="close")[0]["t"]
    assert 4.9 <= close_t - mute_t <= 5.2 and stats.close_reasons == ["close_requested"]
    assert len(ev(recs, "transcript", role="user")) == 1  # the talk while muted never reached the model


@pytest.mark.parametrize("aec", [True, False])
def test_full_duplex_with_echo(tmp_path: Path, server: TracedServer, aec: bool) -> None:
    """The uplink stays open while the model speaks: with the echo canceller the parrot does not hear
    itself at echo gain 1.0; without it, the same echo makes it interrupt itself."""
    speech = turn(lead_s=0.2, tail_s=0.0)
    mic = np.concatenate([_silence(1.0), speech, _silence(6.0)])
    # barge_in off: only the model's own decision is under test here
    s = Settings(aec=AecSettings(enabled=aec), conversation=ConversationSettings(barge_in="off"))
    recs = run(tmp_path, server, mic, [ScheduledPress(0.5)], echo_gain=1.0, settings=s)
    speaking = [r["t"] for r in ev(recs, "state", state="speaking")]
    assert speaking
    if aec:  # AEC3 at echo gain 1.0: the parrot hears no echo worth stopping for
        # The uplink was open the whole time the device spoke (no uplink_stop before the session closed).
        assert [r["t"] for r in ev(recs, "uplink_stop")] == [r["t"] for r in ev(recs, "session", action="close")]
        assert server.live_api.stats.interruptions == []
        assert sum(r["played_ms"] for r in ev(recs, "playback_stop")) >= len(speech) / 24 - 100
    else:
        assert server.live_api.stats.interruptions, "the parrot should hear the uncancelled echo"


def test_demo_plays_out_over_gpt_live(tmp_path: Path) -> None:
    """`voxbox demo --api live`: the bundled scenario (wake word, question, interruption) over GPT-Live."""
    out = tmp_path / "demo"
    env = {**os.environ, "VOXBOX_CONFIG": "/dev/null"}
    r = subprocess.run([sys.executable, "-m", "device", "demo", "--api", "live", "--speed", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    info = json.loads(DEMO_INFO.read_text())
    actions = [x["action"] for x in ev(recs, "session")]
    assert actions[:2] == ["start", "started"] and actions[-2:] == ["close", "closed"]
    assert all(x["api"] == "live" for x in ev(recs, "session"))
    assert ev(recs, "send", type="session.start") and ev(recs, "recv", type="session.input_transcript.delta")
    assert not ev(recs, "send", type="response.cancel") and not ev(recs, "send", type="conversation.item.truncate")
    barge = ev(recs, "barge_in", source="local_vad")
    assert len(barge) == 1 and info["interrupt"][0] <= barge[0]["t"] <= info["interrupt"][1]
    assert len(ev(recs, "playback_start")) == 2  # the answer to the question, then to the interruption
    assert recs[-1]["event"] == "summary" and recs[-1]["errors"] == 0
