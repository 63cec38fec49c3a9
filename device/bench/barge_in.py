"""The `barge_in` section of `voxbox bench`: echo cancellation and barge-in while the speaker plays.

    run(quick: bool = False) -> dict        JSON-able results
    format_table(result) -> str             the readable table

The scenarios come from scripts/make_barge_in_set.py (cached in $VOXBOX_CACHE_DIR or
~/.cache/voxbox, made on first use): espeak-ng replies played loudly through the
simulated sound card (echo gain 0.3-1.0, delay 10-60 ms, with and without a room
response) while the user (a) stays silent or (b) interrupts at a known instant.

What runs is the daemon's own path: `SimAudio` (the simulated card: IN.wav as the
mic, echo of what the speaker really played mixed in) → `Agent.process_block`
(frontend, AEC, VAD, the conversation machine, player flush, truncate). Only the
network is scripted: the agent's link is replaced by a recorder, and the reply
arrives as Realtime server events (response.created, audio deltas streamed at 4 ×
real time, response.done), as the local server would send them. One clock: the
mic samples, so results do not depend on machine load.

Measured per scenario, from IN.wav / OUT.wav (the speaker) and the timeline:
false barge-ins (any barge-in in an echo-only scenario, or before the user's onset),
detection (a barge-in within DETECT_WINDOW_S of the onset), onset → silence (the
first OUT.wav sample after which it stays zero, minus the onset in IN.wav), the
truncate's `audio_end_ms` against the reply audio OUT.wav really played, ERLE of
the AEC on the echo-only scenarios (device.audio.aec.erle_db, after 1 s), and the
AEC's CPU time per audio second (time.process_time around its calls). The full set also
measures that cost alone (cpu_pass(): every CPU_EVERY-th scenario, CPU_REPEATS times in this
process, the quietest pass), as a device runs it: the parallel runs share the cores and their
reading moved ~10 % between two benches of the same code (AEC + detectors 0.031, 0.0345 on a
2-core AMD EPYC VM), where the pass read 0.026 and 0.029 (two passes minutes apart: the noise
of a shared machine changes slower than a pass, so the quietest of 3 only narrows it).
Two bounds per interruption (full set only) tell the echo's cost from the pipeline's:
the VAD alone on the user's speech (vad_floor_ms), and the whole run again with no echo
in the mic while the canceller still gets the reply as reference (run_scenario(echo=False)).
Each scenario also runs as a second turn (full set only; run_scenario(warm=True)): the
device played another reply first, as in a conversation, so the canceller is not cold.
And each as the first reply after a restart (full set only; run_scenario(restart=...)): the device
played another reply in a first life and kept what it learnt of the room (device/audio/room.py) in
its state directory; the restarted agent rehearses it and plays its start-up sound, which checks it
(STARTUP_S before the wake). "same": in that room; "moved": the first life was in another room
(MOVED), so what it kept is wrong here; "startup": no first life, the device's very first start; and
that first start again in a noisier room (NOISY: white noise at NOISY_FLOOR_DB on the mic, 15 dB over the
set's floor), whose floor the rehearsal must play the room over.
In server mode (run_scenario(server_mode=True): the uplink open while the device speaks) each
runs cold and as a second turn too; the report gives what the uplink carried in each.
Each interruption's word is also said as an answer just after a reply (full set only; run_answer()):
50, 150 or 300 ms (in turn, by the scenario's number) after a second turn's reply played out, in server
mode, where the tail gate (device/conversation/tailgate.py) holds the room's tail back from the uplink:
whether the server's VAD heard it, its start after the word's onset against the same VAD on the mic
alone (no echo, no device: server_vad_start_ms), its starts on the reply's echo or tail, and the gap
really left after the reply's last sample in OUT.wav.
Earcons are on, as the device plays them: the wake chime when the bench's wake opens the
conversation (t = 0, alone: the canceller's own APM for lone earcons cleans it), the `done`
sound when the turn ends, under the reply's start. Measured apart: the wake chime's echo left
in the uplink while the device listens (chime_echo(): uplink power / mic power over the chime
and its 0.2 s tail), and earcon_wakes(): each earcon played alone into an idle device with the
real wake-word detector. An earcons-off run of each scenario (cold) is the comparison row.
Scenarios run in parallel worker processes (process_time is per process).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device.audio.dsp import round_int16
from device.audio.frontend import EchoCanceller
from device.bench import sets
from device.link.base import Link, LinkListener
from device.link.twin import RecordingLink
from device.listen.wakeword import NoWake

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_barge_in_set.py"
MIC_RATE = 16000
DETECT_WINDOW_S = 1.5  # a barge-in later than this after the onset is not the user's
STREAM_SPEED = 4.0  # the scripted server sends reply audio this much faster than it plays
DELTA_MS = 100  # reply audio per delta event
WARM_START_S = 0.5  # warm runs: the first reply starts here ...
WARM_GAP_S = 2.0  # ... and the scenario's reply this long after it ended (the canceller idles after 1 s)
# The echo path changes this long into a second turn's reply (run_scenario(path_change=...)): its gain
# up 2.9 dB and its delay 8 ms longer, as when the device is moved or a speaker's own volume is turned.
PATH_CHANGE_AT_S = 3.0
PATH_CHANGE = (1.4, 8.0)  # (gain factor, extra delay ms)
# A restart (any restart=): the scenario's IN.wav starts this long after the agent (its start-up sound, 2.6 s,
# the room's tail after it and the rehearsal)
STARTUP_S = 4.5
# cpu_pass(): these runs of the full set (every CPU_EVERY-th scenario, both families), repeated
CPU_EVERY = 10
CPU_REPEATS = 3
MOVED = (0.6, 25.0)  # restart="moved": the room before it, (gain factor, extra delay ms) and another RT60


# ---------------------------------------------------------------- the scenario set

def ensure_set(quick: bool, directory: Path | None = None) -> Path:
    """The scenario set's directory, made by scripts/make_barge_in_set.py if incomplete or made by
    another version of the script (device/bench/sets.py). Raises VoxboxError if the script fails."""
    d = directory or sets.cache_dir() / f"barge-in-set-{'quick' if quick else 'full'}"

    def make() -> None:
        cmd = [sys.executable, str(SCRIPT), str(d)] + (["--quick"] if quick else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            from device.errors import VoxboxError

            raise VoxboxError(f"make_barge_in_set failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")

    return sets.ensure(d, "scenarios.json", [SCRIPT, SCRIPT.parent / "human_voices.py"], make)


def load_scenarios(d: Path) -> list[dict]:
    return json.loads((d / "scenarios.json").read_text())


def _rt60(sc: dict) -> float | None:
    """The scenario's room RT60 in ms (None: no room; sets from before the second room: 250)."""
    return None if not sc["room"] else float(sc.get("room_rt60_ms") or 250.0)


def _room(sc: dict) -> np.ndarray | None:
    """The simulated room's impulse response at MIC_RATE (device/audio/sim.py), or None."""
    from device.audio.sim import room_response

    rt60 = _rt60(sc)
    return None if rt60 is None else room_response(MIC_RATE, rt60_ms=rt60)


def without_earcons(settings: Any) -> Any:
    """`settings` with every earcon off: the bench's comparison row (what the earcons cost)."""
    import dataclasses

    from device.appliance.earcons import NAMES

    return dataclasses.replace(settings, sounds=dataclasses.replace(settings.sounds, **{n: False for n in NAMES}))


# ---------------------------------------------------------------- the harness

def _meter_detectors(agent: Any) -> list[float]:
    """CPU seconds the agent's echo gate and residual gate spend in push() (a one-item list, added
    to as the run goes): the detectors' share of the issue's "AEC + detectors" cost."""
    spent = [0.0]
    for det in (agent.frontend.echo_gate, agent.frontend.residual_gate):
        if det is None:
            continue
        inner = det.push

        def push(*args: Any, _inner: Any = inner) -> bool:
            t0 = time.process_time()
            try:
                return bool(_inner(*args))
            finally:
                spent[0] += time.process_time() - t0

        det.push = push
    return spent


class MeteredAec:
    """The echo canceller, with its input/output and CPU time recorded (ERLE, cost)."""

    def __init__(self, inner: EchoCanceller, keep: bool) -> None:
        self.inner = inner
        self.keep = keep
        self.mic: list[np.ndarray] = []
        self.out: list[np.ndarray] = []
        self.cpu = 0.0
        self.frames = 0

    def reference(self, frame: np.ndarray) -> None:
        t0 = time.process_time()
        self.inner.reference(frame)
        self.cpu += time.process_time() - t0

    def process(self, frame: np.ndarray) -> np.ndarray:
        t0 = time.process_time()
        out = self.inner.process(frame)
        self.cpu += time.process_time() - t0
        self.frames += 1
        if self.keep:
            self.mic.append(frame.copy())
            self.out.append(out)
        return out

    def forget_echo_path(self) -> None:
        self.inner.forget_echo_path()

    @property
    def idle(self) -> bool:  # the frontend's idle bypass must reach the real canceller
        return self.inner.idle

    @idle.setter
    def idle(self, value: bool) -> None:
        self.inner.idle = value

    @property
    def earcon(self) -> bool:  # a lone earcon goes to the canceller's own APM for it
        return self.inner.earcon

    @earcon.setter
    def earcon(self, value: bool) -> None:
        self.inner.earcon = value

    @property
    def last_levels(self) -> tuple[float, float] | None:
        return self.inner.last_levels

    @property
    def estimated_delay_ms(self) -> int | None:  # the echo gate uses the real estimate
        return self.inner.estimated_delay_ms


def _read16(path: Path) -> np.ndarray:
    from device.audio import wavio

    x, rate = wavio.read_wav(path)
    assert rate in (MIC_RATE, 24000), rate
    return x[:, 0] if x.ndim == 2 else x


def run_scenario(sc: dict, set_dir: Path, settings: Any = None, *, keep_audio: bool = False,
                 echo: bool = True, warm: bool = False, server_mode: bool = False,
                 backend: BackendFactory | None = None, path_change: tuple[float, float] | None = None,
                 mic: np.ndarray | None = None, restart: str | None = None, startup_sound: bool = True,
                 floor_db: float | None = None) -> dict:
    """One scenario through the agent; the measurements (and, with keep_audio, OUT.wav and the AEC I/O).

    echo=False: the same run with no echo in the mic (the canceller still gets the reference),
    which isolates what the canceller and the detector cost from what the echo costs.
    warm=True: the device first plays another reply of the set (the user silent), then waits
    WARM_GAP_S, as in a conversation's second turn: the canceller has met this echo path before.
    Measured is the scenario's own reply only (times and OUT.wav from its start on).
    server_mode=True: conversation.barge_in = "server", so the uplink stays open while the device
    speaks; measured is what it carries (uplink_echo(): the residual echo, the server VAD on it).
    backend: who answers (default ScriptedRealtime: Realtime events written here); with another
    one (the GPT-Live parrot, device/bench/live.py) the uplink is measured too, and what the
    backend reports of the run is in res["backend"].
    path_change=(gain factor, extra delay ms): PATH_CHANGE_AT_S into the scenario's reply the echo
    path changes so (SimAudio's path_change); the canceller and the gates must learn it anew.
    mic: IN.wav itself (int16 [n] at MIC_RATE, t = 0 at its first sample as in set_dir / sc["mic"];
    answer_mic()), instead of set_dir / sc["mic"].
    restart: the device lived before, then restarted (first_life(): it played another reply of the set
    and kept what it learnt of the room in a state directory, which this run's agent starts from):
    "same", in the scenario's room; "moved", in another (MOVED): what it kept is wrong here. Or
    "startup": the device's first start, with a state directory. Each plays the start-up sound
    (sounds.startup, Agent._probe_room), the scenario's IN.wav STARTUP_S after the agent started; it is
    off in every other case, which models a device that keeps no state (no sound, no room). res["room_memory"]
    then says whether the first life kept the room ("kept"), whether the sound measured the room ("probed";
    "probe_db", how much of its echo the path learnt from it explained; "kept_db", the kept path's),
    whether this run rehearsed a room, what the room's check measured ("check_db", Frontend.room_check_db:
    the start-up sound's where it measured the room, else the wake chime's or the reply's; None: not
    made) and whether the kept room was forgotten. startup_sound=False: a restart with the sound switched
    off (sounds.startup), the wake chime then the room's first check.
    floor_db: a noisier room than the set's (its mic floor -60 dBFS, 30.3 dB re 1 LSB RMS): white noise at
    floor_db dB re 1 LSB RMS (seeded by the scenario's name) added to the whole mic, before the wake too.
    """
    from device import config as cfg
    from device.audio.aec import build_aec, erle_db
    from device.audio.player import Player
    from device.audio.sim import SimAudio
    from device.conversation.agent import Agent
    from device.listen.vad import build_vad
    from device.timeline import Timeline

    settings = _startup_sound(settings or cfg.Settings(), restart is not None and startup_sound)
    if server_mode:
        settings = dataclasses.replace(settings, conversation=dataclasses.replace(settings.conversation,
                                                                                  barge_in="server"))
    mic = _read16(set_dir / sc["mic"]) if mic is None else mic
    reply = _read16(set_dir / sc["reply"])
    replies = [(sc["reply_start_s"], reply, "resp_bench", "item_bench")]
    user = mic  # IN.wav alone: the word, on the scenario's own clock
    pre_s = 0.0
    if warm:
        first, pre_s, floor = _warm_up(sc, set_dir)
        mic = np.concatenate((floor, mic))
        replies = [(WARM_START_S, first, "resp_warm", "item_warm"), (pre_s + sc["reply_start_s"], reply,
                                                                      "resp_bench", "item_bench")]
    elif restart:
        pre_s = STARTUP_S
        mic = np.concatenate((_mic_floor(pre_s), mic))
        replies = [(pre_s + sc["reply_start_s"], reply, "resp_bench", "item_bench")]
    if floor_db is not None:
        noise = np.random.default_rng(zlib.crc32(sc["name"].encode())).standard_normal(len(mic))
        mic = round_int16(mic + noise * 10 ** (floor_db / 20))
    player = Player(settings.audio.output_rate)
    change = None if path_change is None else (pre_s + sc["reply_start_s"] + PATH_CHANGE_AT_S, *path_change)
    sim = SimAudio(mic, MIC_RATE, player, speed=1e9, echo_gain=sc["echo_gain"] if echo else 0.0,
                   echo_delay_ms=sc["echo_delay_ms"], room_ir=_room(sc), path_change=change)
    inner = build_aec(settings.aec)
    aec = MeteredAec(inner, keep=sc["family"] == "silent" or keep_audio) if inner is not None else None
    timeline = Timeline(None, keep=True)
    server = (backend or ScriptedRealtime)(replies, settings)
    state = tempfile.TemporaryDirectory(prefix="voxbox-bench-") if restart else None
    kept = state is not None and restart != "startup" and first_life(sc, set_dir, Path(state.name), settings,
                                                                      moved=restart == "moved")
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=build_vad(settings.vad), link=server.link, aec=aec,
                  state_dir=None if state is None else Path(state.name))
    detector_cpu = _meter_detectors(agent)
    sim.keep_going = lambda: server.keep_going(agent)

    _play(agent, sim, server, wake_s=pre_s if restart else 0.0)
    agent.appliance.close()
    if state is not None:
        state.cleanup()
    out = sim.speaker_audio()
    chime = chime_echo(timeline.records, sim.mic_audio(), server.uplink(), settings)
    # The reply's measurements start at the reply: the wake chime before it is not the reply.
    start = next((r for r in timeline.records if r["event"] == "playback_start" and r["t"] >= pre_s - 1e-9), None)
    reply_frame = int(start["t"] * 100) if start else 0
    if start is not None:
        out = out.copy()
        out[: int(round(start["speaker_s"] * settings.audio.output_rate))] = 0
    recs = timeline.records
    if warm or pre_s:
        # Only the scenario's own reply is measured: its times, and OUT.wav from its start.
        warm_barges = sum(1 for r in recs if r["event"] == "barge_in" and r["t"] < pre_s)
        warm_pauses = sum(1 for r in recs if r["event"] == "playback_pause" and r["t"] < pre_s)
        recs = [r for r in recs if r["t"] >= pre_s - 1e-9]
        out[: int(round(pre_s * settings.audio.output_rate))] = 0
    # The scenario's times on the run's clock (its onset after the warm-up's pre_s); uplink_echo takes
    # the scenario's own and pre_s (given the run's, it counted the user's word as echo, warm).
    timed = {**sc, "onset_s": None if sc.get("onset_s") is None else round(sc["onset_s"] + pre_s, 4)}
    res = measure(timed, recs, out, settings.audio.output_rate)
    if echo and start is not None and sc.get("onset_s") is not None:
        res["ser_db"] = _ser(sc, user, reply, start["speaker_s"] - pre_s)
    if chime is not None:
        res["chime"] = chime
    if restart:
        room = {r["action"]: r for r in timeline.records if r["event"] == "room"}
        probed = room.get("probed", {})
        res["room_memory"] = {"kept": kept, "rehearsed": "rehearsed" in room, "forgotten": "forgotten" in room,
                              "probed": probed.get("ok"), "probe_db": probed.get("explained_db"),
                              "kept_db": probed.get("kept_db"),
                              "check_db": room["checked"]["reduction_db"] if "checked" in room else None}
    if warm:
        # The device interrupting its first reply is a false barge-in too, and leaves no second turn
        # to measure (the conversation went on without the scenario's reply): counted apart.
        res["warm_up_barge_ins"] = warm_barges
        # ... and so is a pause in it: the first reply's echo alone, in this scenario's room and gain.
        res["warm_up_pauses"] = warm_pauses
    if aec is not None:
        res["aec_cpu_s"] = aec.cpu
        res["detector_cpu_s"] = detector_cpu[0]
        res["aec_audio_s"] = aec.frames / 100
        if sc["family"] == "silent" and aec.mic:
            h = inner.hold_frames if inner is not None else 0
            k = reply_frame * 160  # ERLE of the reply's echo (converge_s from its first loud frame)
            m, o = np.concatenate(aec.mic)[k:], np.concatenate(aec.out)[k:]
            n = min(len(m), len(o) - h * 160)
            try:
                res["erle_db"] = round(erle_db(m[:n], o[h * 160 : h * 160 + n], converge_s=1.0), 1)
            except ValueError:
                pass
    if server_mode or backend is not None:
        res["uplink"] = uplink_echo(sc, timeline.records, sim.mic_audio(), server.uplink(), pre_s)
    if backend is not None:
        res["backend"] = server.report(timed, pre_s)
    if keep_audio:
        res["out"] = out
        res["uplink_pcm"] = server.uplink()  # 24 kHz, from the wake (t = 0)
        if aec is not None:
            res["aec_mic"] = np.concatenate(aec.mic) if aec.mic else np.zeros(0, np.int16)
            res["aec_out"] = np.concatenate(aec.out) if aec.out else np.zeros(0, np.int16)
            res["hold_frames"] = getattr(inner, "hold_frames", 0)
        res["records"] = recs
    return res


def _play(agent: Any, sim: Any, server: Any, wake_s: float = 0.0,
          buttons: tuple[tuple[float, str], ...] = ()) -> None:
    """The bench's run: the agent woken at wake_s (the wake chime plays; 0: before the first block), then
    block by block over the simulated card, the backend stepping before each block, until the card's
    mic and reply are over. buttons: (mic time s, "press" | "release" | "hold") in time order, each
    handled at the first block boundary at or after its time."""
    from device.conversation import machine as cv

    async def go() -> None:
        agent.start()
        await server.start(agent)
        woken = False
        blocks = 0
        todo = list(buttons)
        while True:
            if not woken and agent.now >= wake_s - 1e-9:
                agent.handle(cv.Wake(agent.now, "bench", 1.0))
                woken = True
            while todo and agent.now >= todo[0][0] - 1e-9:
                agent.handle(cv.Button(agent.now, todo.pop(0)[1]))  # type: ignore[arg-type]
            if (block := await sim.read()) is None:
                break
            await server.step(agent, blocks)
            agent.process_block(block)
            blocks += 1

    asyncio.run(go())


def moved_room(sc: dict) -> tuple[float, float, float | None]:
    """Another room than sc's (run_scenario(restart="moved")): (echo gain, echo delay ms, RT60 ms or None).
    MOVED's gain factor and extra delay, and the next of no room, RT60 250 and 500 ms."""
    rooms: list[float | None] = [None, 250.0, 500.0]
    gain, extra_ms = MOVED
    return sc["echo_gain"] * gain, sc["echo_delay_ms"] + extra_ms, rooms[(rooms.index(_rt60(sc)) + 1) % 3]


def first_life(sc: dict, set_dir: Path, state_dir: Path, settings: Any = None, *, moved: bool = False) -> bool:
    """The device's life before a restart (run_scenario(restart=...)): woken, it plays another reply of
    sc's voice family (_warm_up's) in sc's room (or moved_room's), the user silent, its agent keeping
    its state in state_dir. True if it kept the room there (room.json)."""
    from device import config as cfg
    from device.appliance.runtime import ROOM_FILE
    from device.audio.aec import build_aec
    from device.audio.player import Player
    from device.audio.sim import SimAudio, room_response
    from device.conversation.agent import Agent
    from device.listen.vad import build_vad
    from device.timeline import Timeline

    settings = _startup_sound(settings or cfg.Settings(), False)  # it lived with a reply, not the sound
    first, pre_s, floor = _warm_up(sc, set_dir)
    gain, delay, rt60 = moved_room(sc) if moved else (sc["echo_gain"], sc["echo_delay_ms"], _rt60(sc))
    player = Player(settings.audio.output_rate)
    sim = SimAudio(floor, MIC_RATE, player, speed=1e9, echo_gain=gain, echo_delay_ms=delay,
                   room_ir=None if rt60 is None else room_response(MIC_RATE, rt60_ms=rt60))
    server = ScriptedRealtime([(WARM_START_S, first, "resp_life", "item_life")], settings)
    agent = Agent(settings, sim, Timeline(None), wake=NoWake(), vad=build_vad(settings.vad), link=server.link,
                  aec=build_aec(settings.aec), state_dir=state_dir)
    sim.keep_going = lambda: server.keep_going(agent)

    _play(agent, sim, server)
    agent.appliance.close()  # the writer thread saves what is pending, as at the daemon's stop
    return (state_dir / ROOM_FILE).exists()


def _startup_sound(settings: Any, on: bool) -> Any:
    """settings with the start-up sound (sounds.startup) on or off."""
    return dataclasses.replace(settings, sounds=dataclasses.replace(settings.sounds, startup=on))


def _ser(sc: dict, user: np.ndarray, reply: np.ndarray, start_s: float) -> float | None:
    """The word's signal-to-echo ratio at the mic (dB, device/bench/ser.py): user, IN.wav; reply, the
    scenario's reply (24 kHz), its first sample played start_s into IN.wav's clock."""
    from device.bench.ser import reply_echo, word_ser_db

    echo = reply_echo(reply, 24000, start_s, mic_rate=MIC_RATE, length=len(user), echo_gain=sc["echo_gain"],
                      echo_delay_ms=sc["echo_delay_ms"], room_ir=_room(sc))
    return word_ser_db(user, echo, sc["onset_s"], MIC_RATE)


def _warm_up(sc: dict, set_dir: Path) -> tuple[np.ndarray, float, np.ndarray]:
    """A second turn's start (run_scenario(warm=True)) → (first, pre_s, floor). first: the reply played
    before sc's, another of its voice family ("reply_K" espeak, "human_NAME" recorded), PCM16 at
    24 kHz, from WARM_START_S; pre_s: where sc's own IN.wav starts on the run's clock (s), WARM_GAP_S
    after it; floor: the mic before that, int16 [pre_s * MIC_RATE], a -60 dBFS floor (seed 0)."""
    others = sorted((set_dir / "replies").glob(Path(sc["reply"]).name.split("_")[0] + "_*.wav"))
    names = [str(p.relative_to(set_dir)) for p in others]
    first = _read16(others[(names.index(sc["reply"]) + 1) % len(others)])
    pre_s = round(WARM_START_S + len(first) / 24000 + WARM_GAP_S, 2)
    return first, pre_s, _mic_floor(pre_s)


def _mic_floor(seconds: float) -> np.ndarray:
    """The mic before a scenario's IN.wav (a second turn's first reply, a restart's start-up sound):
    int16 [seconds * MIC_RATE], a -60 dBFS floor (seed 0)."""
    return round_int16(np.random.default_rng(0).standard_normal(int(seconds * MIC_RATE)) * 32768 * 1e-3)


Reply = tuple[float, np.ndarray, str, str]  # (mic time s, PCM16 at 24 kHz, response id, item id)


class Backend(Protocol):
    """The server side of one scenario run (run_scenario): it answers with the scenario's replies."""

    def link(self, listener: LinkListener) -> Link:
        """The agent's link (a LinkFactory)."""
        ...

    async def start(self, agent: Any) -> None:
        """The link comes up (before the bench's wake word)."""

    async def step(self, agent: Any, block: int) -> None:
        """Before the agent gets mic block `block` (10 ms each, from 0): the server's turn."""

    def keep_going(self, agent: Any) -> bool:
        """After the mic ends: is a reply still due or playing?"""
        ...

    def uplink(self) -> np.ndarray:
        """Everything the agent sent up (24 kHz PCM16), from the wake on."""
        ...

    def report(self, sc: dict, pre_s: float) -> dict:
        """What the backend saw of the run (JSON-able; `sc` with its onset on this run's clock, and
        pre_s: where the measured reply's turn begins, 0 unless warm)."""
        ...


BackendFactory = Callable[[list[Reply], Any], Backend]  # (replies, settings) -> Backend


class ScriptedRealtime:
    """Realtime server events written here: each reply's response.created at its time, audio deltas
    streamed at STREAM_SPEED x real time, then response.done, as the local server would send them."""

    def __init__(self, replies: list[Reply], settings: Any) -> None:
        self.recorder = _UplinkRecorder()
        delta = settings.audio.output_rate * DELTA_MS // 1000
        self.plan = [(int(round(t * 100)), [x[i : i + delta] for i in range(0, len(x), delta)], rid, item)
                     for t, x, rid, item in replies]
        self.sent = [0] * len(self.plan)

    def link(self, listener: LinkListener) -> Link:
        return self.recorder.attach(listener)

    async def start(self, agent: Any) -> None:
        self.recorder.connect()

    def keep_going(self, agent: Any) -> bool:
        return bool(agent.keep_going())

    def uplink(self) -> np.ndarray:
        return self.recorder.pcm()

    def report(self, sc: dict, pre_s: float) -> dict:
        return {}

    async def step(self, agent: Any, block: int) -> None:
        from device.conversation import machine as cv

        server = self.recorder.deliver
        for k, (start_block, chunks, rid, item) in enumerate(self.plan):
            if block == start_block:
                # The user's turn ended: the reply begins (Committed → thinking → audio → speaking).
                agent.handle(cv.Committed(agent.now))
                server("response.created", response={"id": rid})
            if block >= start_block and self.sent[k] < len(chunks) and agent.machine.response_id == rid:
                due = int((block - start_block + 1) * 10 * STREAM_SPEED // DELTA_MS) + 1
                while self.sent[k] < min(due, len(chunks)):
                    # as parsed from the wire (the base64 decoding is the protocol's, tested there)
                    server("response.output_audio.delta", audio=chunks[self.sent[k]].astype("<i2").tobytes(),
                           response_id=rid, item_id=item)
                    self.sent[k] += 1
                if self.sent[k] == len(chunks):
                    server("response.output_audio.done", response_id=rid, item_id=item)
                    server("response.done", response={"id": rid, "status": "completed"})


class _UplinkRecorder(RecordingLink):
    """The link twin, keeping the uplink audio itself (24 kHz PCM16), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def send_audio(self, pcm16: bytes) -> None:
        super().send_audio(pcm16)
        self.chunks.append(pcm16)

    def pcm(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.chunks), dtype="<i2")


def uplink_echo(sc: dict, recs: list[dict], mic16: np.ndarray, up24: np.ndarray, pre_s: float = 0.0) -> dict:
    """What the server hears while the device speaks (server barge-in mode).

    mic16: the microphone (IN.wav + echo, 16 kHz); up24: the uplink (24 kHz), open from t = 0
    (the bench's wake), so uplink sample i is mic time i / 24000 s. Returns
    residual_db: uplink power / mic power while the scenario's reply plays and the user is
    silent (dB; the goal is <= -30), and the local server's VAD (device/dev/server_vad.py, its
    defaults as the session sets them) over the uplink: vad_on_echo (speech starts before the
    user's onset, or later than DETECT_WINDOW_S after it where none came within it, or, echo-only,
    at all) and vad_on_user (a start within DETECT_WINDOW_S of it; vad_user_ms: the first such start,
    ms after the onset, where there is one).
    """
    from device.dev.server_vad import ServerVad

    starts = [r["t"] for r in recs if r["event"] == "playback_start" and r["t"] >= pre_s - 1e-9]
    stops = [r["t"] for r in recs if r["event"] == "playback_stop" and r["t"] >= pre_s - 1e-9]
    onset = sc.get("onset_s")
    onset = None if onset is None else onset + pre_s
    t0 = starts[0] if starts else pre_s + sc["reply_start_s"]
    t1 = min([stops[0] if stops else len(mic16) / MIC_RATE] + ([onset] if onset is not None else []))
    a, b = int(t0 * MIC_RATE), int(t1 * MIC_RATE)
    m = mic16[a:b].astype(np.float64)
    u = up24[int(t0 * 24000) : int(t1 * 24000)].astype(np.float64)
    res: dict[str, Any] = {}
    if len(m) > MIC_RATE // 10 and len(u) > 2400:
        res["residual_db"] = round(float(10 * np.log10((np.mean(u * u) + 1.0) / (np.mean(m * m) + 1.0))), 1)
    vad = ServerVad()
    begins = [e.onset_ms / 1000 for e in vad.process(up24) if e.kind == "start"]
    user = None if onset is None else _user_start(begins, onset)
    heard = user is not None
    # Where the server missed the user the reply plays on over echo alone, and a start later than the
    # word's window is on echo too, as a pause there is in measure(). Where it heard them it stops the
    # reply (this bench's scripted server plays on regardless): nothing after that counts.
    res["vad_on_echo"] = sum(1 for t in begins if t0 - 0.1 <= t and (
        onset is None or t < onset or (not heard and t > onset + DETECT_WINDOW_S)))
    if onset is not None:
        res["vad_on_user"] = heard
    if user is not None and onset is not None:
        res["vad_user_ms"] = round((user - onset) * 1000, 1)
    return res


def _user_start(begins: list[float], onset: float) -> float | None:
    """The first of the server VAD's speech starts (s) that is the user's, from 0.1 s before their onset
    (s; its 32 ms windows start before it) to DETECT_WINDOW_S after it; None if none is."""
    return next((t for t in begins if onset - 0.1 <= t <= onset + DETECT_WINDOW_S), None)


CHIME_TAIL_S = 0.2  # the wake chime's echo is measured over the chime and this much after it


def chime_echo(recs: list[dict], mic16: np.ndarray, up24: np.ndarray, settings: Any) -> dict | None:
    """The wake chime's echo in the uplink while the device listens (None: no wake chime played).

    mic16: the microphone (IN.wav + echo, 16 kHz); up24: the uplink (24 kHz), open from the wake
    (t = 0), so uplink sample i is mic time i / 24000 s. Over the chime and CHIME_TAIL_S after
    it (cut at the turn's end): mic_db and uplink_db (dB re 1 LSB RMS) and residual_db, uplink
    power / mic power in dB: the echo the user's first words would carry, relative to the chime
    at the microphone (the mic holds the chime's echo and a -60 dBFS floor there).
    """
    from device.appliance.earcons import Earcons

    wake = next((r for r in recs if r["event"] == "earcon" and r.get("name") == "wake"), None)
    pcm = Earcons(settings.sounds, settings.audio.output_rate).get("wake")
    if wake is None or pcm is None:
        return None
    t0 = wake["t"]
    t1 = t0 + len(pcm) / settings.audio.output_rate + CHIME_TAIL_S
    t1 = min([t1] + [r["t"] for r in recs if r["event"] == "uplink_stop" and r["t"] > t0])
    m = mic16[int(t0 * MIC_RATE) : int(t1 * MIC_RATE)].astype(np.float64)
    u = up24[int(t0 * 24000) : int(t1 * 24000)].astype(np.float64)
    if len(m) < MIC_RATE // 20 or len(u) < 1200:
        return None
    pm, pu = float(np.mean(m * m)) + 1.0, float(np.mean(u * u)) + 1.0
    return {"mic_db": round(10 * np.log10(pm), 1), "uplink_db": round(10 * np.log10(pu), 1),
            "residual_db": round(10 * np.log10(pu / pm), 1)}


def earcon_wakes(settings: Any = None, echo_gain: float = 1.0, echo_delay_ms: float = 30.0) -> dict:
    """Each enabled earcon played alone into an idle device (the real wake-word detector, the
    simulated card with echo and a room response, a -60 dBFS floor): per earcon, `heard` = what
    the detector fired on (after the canceller, before the agent's mask) and `woke` = the wakes
    the agent acted on (a conversation opened by its own sound)."""
    from device import config as cfg

    settings = settings or cfg.Settings()
    return {name: _earcon_alone(settings, name, echo_gain, echo_delay_ms) for name in earcons_enabled(settings)}


def _earcon_alone(settings: Any, name: str, echo_gain: float, echo_delay_ms: float) -> dict:
    from device.audio.aec import build_aec
    from device.audio.player import Player
    from device.audio.sim import SimAudio, room_response
    from device.conversation.agent import Agent
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector
    from device.timeline import Timeline

    wake = _CountingWake(build_wake_detector(settings.wake))
    floor = np.random.default_rng(0).standard_normal(2 * MIC_RATE) * 32768 * 1e-3
    sim = SimAudio(np.rint(floor).astype(np.int16), MIC_RATE, Player(settings.audio.output_rate), speed=1e9,
                   echo_gain=echo_gain, echo_delay_ms=echo_delay_ms, room_ir=room_response(MIC_RATE))
    timeline = Timeline(None, keep=True)
    link = RecordingLink()
    agent = Agent(settings, sim, timeline, wake=wake, vad=build_vad(settings.vad), link=link.attach,
                  aec=build_aec(settings.aec))

    async def go() -> None:
        agent.start()
        link.connect()
        played = False
        while (block := await sim.read()) is not None:
            if not played and agent.now >= 0.5:  # into a settled, idle device
                agent.earcon(name)
                played = True
            agent.process_block(block)

    asyncio.run(go())
    return {"heard": wake.fired, "woke": sum(1 for r in timeline.records if r["event"] == "wake")}


def earcons_enabled(settings: Any) -> list[str]:
    from device.appliance.earcons import NAMES

    return [n for n in NAMES if getattr(settings.sounds, n)]


class _CountingWake:
    """A wake detector that counts its detections (the agent may then ignore them: its mask)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.names: list[str] = inner.names
        self.fired = 0

    def process(self, pcm: np.ndarray) -> list:
        found = self.inner.process(pcm)
        self.fired += len(found)
        return found

    def reset(self) -> None:
        self.inner.reset()


def measure(sc: dict, recs: list[dict], out: np.ndarray, out_rate: int) -> dict:
    """Barge-ins, onset → silence, truncate accuracy of one run (timeline + OUT.wav)."""
    from device.dev.demo_report import played_samples

    barges = [r["t"] for r in recs if r["event"] == "barge_in"]
    pauses = [r["t"] for r in recs if r["event"] == "playback_pause"]
    nz = np.flatnonzero(out)
    first = int(nz[0]) if len(nz) else 0
    silent_from = int(nz[-1]) + 1 if len(nz) else 0  # first sample after which OUT stays zero
    # Pauses leave runs of exact zeros inside the reply (its -78 dBFS floor never has 2 ms of them).
    played_ms = played_samples(out, first, silent_from, out_rate) * 1000 / out_rate
    res: dict[str, Any] = {"name": sc["name"], "family": sc["family"], "voices": sc.get("voices", "espeak"),
                           "reply_sex": sc.get("reply_sex"), "user_kind": sc.get("user_kind"),
                           "user_level_db": sc.get("user_level_db"), "offset_s": sc.get("offset_s"),
                           "echo_gain": sc["echo_gain"],
                           "echo_delay_ms": sc["echo_delay_ms"], "room": sc["room"],
                           "room_rt60_ms": _rt60(sc),
                           "reply_played_s": round(played_ms / 1000, 3), "barge_ins": barges,
                           "pauses": pauses}
    onset = sc.get("onset_s")
    if sc["family"] == "silent" or onset is None:
        res["false_barge_ins"] = len(barges)
        res["false_pauses"] = len(pauses)
        return res
    # Before the onset, and after DETECT_WINDOW_S of it (the word missed, the reply plays on over
    # echo alone), a pause or a barge-in is not the user's. Counted only before the onset, a pause
    # 2.9 s after a missed word went unseen (cold, talk_094: a false pause at 5.98 s).
    late = onset + DETECT_WINDOW_S
    res["false_barge_ins"] = sum(1 for t in barges if t < onset or t > late)
    res["false_pauses"] = sum(1 for t in pauses if t < onset or t > late)
    # Played while the user was silent: the reply time that counts towards the false-alarm rate.
    res["reply_before_onset_s"] = round(max(0.0, min(onset * out_rate, silent_from) - first) / out_rate, 3)
    res["reply_after_window_s"] = round(max(0.0, silent_from - max(late * out_rate, first)) / out_rate, 3)
    hit = [t for t in barges if onset <= t <= late]
    res["detected"] = bool(hit) and not any(t < onset for t in barges)
    if res["detected"]:
        res["latency_ms"] = round((silent_from / out_rate - onset) * 1000, 1)
        res["decision_ms"] = round((hit[0] - onset) * 1000, 1)
        trunc = [r for r in recs if r["event"] == "send" and r.get("type") == "conversation.item.truncate"]
        if trunc:
            res["audio_end_ms"] = trunc[0]["audio_end_ms"]
            res["truncate_err_ms"] = round(abs(trunc[0]["audio_end_ms"] - played_ms), 1)
    return res


def vad_floor_ms(sc: dict, set_dir: Path, settings: Any = None) -> float | None:
    """The fast stage's own latency on the user's speech alone: the configured VAD engine on
    IN.wav (no echo, no canceller), chunks cut from t = 0, first chunk at or
    above vad.suspect_threshold that ends after the onset, minus the onset (ms). A lower bound
    for the pause decision of any run of this scenario; None if the engine never gets there.
    """
    from device import config as cfg
    from device.listen.vad import build_vad

    settings = settings or cfg.Settings()
    onset = sc.get("onset_s")
    if onset is None:
        return None
    engine = build_vad(settings.vad).engine
    mic = _read16(set_dir / sc["mic"])
    n = engine.chunk_samples
    for i in range(0, len(mic) - n + 1, n):
        p = engine.probability(mic[i : i + n])
        end_s = (i + n) / MIC_RATE
        if end_s > onset and p >= settings.vad.suspect_threshold:
            return round((end_s - onset) * 1000, 1)
        if end_s > onset + DETECT_WINDOW_S:
            break
    return None


# ---------------------------------------------------------------- answers after the reply

ANSWER_DELAYS_S = (0.05, 0.15, 0.3)  # the bench's answers: the word this long after the reply ended
ANSWER_AFTER_S = 1.5  # ... and this much mic after the word
ANSWER_LATE_MS = 50.0  # the report counts the answers the server's VAD started this much later on than alone


def answer_delay(sc: dict) -> float:
    """The delay of sc's answer in the bench (_job): ANSWER_DELAYS_S in turn by the number in its name
    (talk_048 → 0.05 s, talk_049 → 0.15 s, talk_050 → 0.3 s): a grid cell's three words (echo gain x
    delay x room; the set numbers them from 48 in threes) get one of each."""
    m = re.search(r"_(\d+)(?:_|$)", sc["name"])
    return ANSWER_DELAYS_S[int(m.group(1)) % len(ANSWER_DELAYS_S) if m else 0]


def answer_mic(sc: dict, set_dir: Path, delay_s: float) -> tuple[np.ndarray, float]:
    """IN.wav of sc's user answering its reply (a talk scenario): their word (set_dir / sc["user"],
    16 kHz, times 10 ** (sc["user_level_db"] / 20), as scripts/make_barge_in_set.py mixes it) delay_s
    (s) after the reply's planned end (sc["reply_start_s"], where the scripted server starts it, plus
    its length), over the script's -60 dBFS floor (noise(), seeded by sc's name), then ANSWER_AFTER_S
    of the floor.

    → (mic, onset_s): int16 [n] at MIC_RATE with t = 0 at its first sample, as set_dir / sc["mic"];
    the word's first sample on that clock (s). As a second turn (run_answer) it starts pre_s into the
    run, as sc's reply does. The speaker plays the reply a block or so after the server starts it:
    run_answer measures the gap really left (gap_ms)."""
    reply_s = len(_read16(set_dir / sc["reply"])) / 24000
    user = _read16(set_dir / sc["user"]).astype(np.float64) * 10 ** (sc["user_level_db"] / 20)
    at = int(round((sc["reply_start_s"] + reply_s + delay_s) * MIC_RATE))
    rng = np.random.default_rng(zlib.crc32(sc["name"].encode()))
    mic = rng.standard_normal(at + len(user) + int(ANSWER_AFTER_S * MIC_RATE)) * 32768 * 1e-3
    mic[at : at + len(user)] += user
    return round_int16(mic), round(at / MIC_RATE, 4)


def run_answer(sc: dict, set_dir: Path, delay_s: float, settings: Any = None) -> dict:
    """sc's user answering its reply delay_s (s) after it ended (answer_mic), as a second turn in server
    mode (run_scenario(warm=True, server_mode=True)): the uplink just after a reply, where the tail gate
    (device/conversation/tailgate.py) holds back the room's tail. JSON-able:
    delay_s; gap_ms: the word's onset minus the end of the reply's last sample the speaker played
    (OUT.wav), None if it played none; played_out: the reply played to its end (playback_stop "done");
    heard, vad_ms: the server's VAD on the uplink started within DETECT_WINDOW_S of the onset, and its
    first start there in ms after the onset (uplink_echo's vad_on_user, vad_user_ms); vad_on_echo: its
    starts on the reply or its tail, before the onset (and, where it missed the word, after its window;
    uplink_echo); floor_ms: the same VAD on the run's IN.wav alone (no echo, no device:
    server_vad_start_ms), None where it did not start on the word. Both VAD starts come in its 32 ms
    windows, on one clock; the uplink runs 20-30 ms behind the mic, often one window later."""
    from device import config as cfg

    rate = (settings or cfg.Settings()).audio.output_rate
    mic, onset = answer_mic(sc, set_dir, delay_s)
    r = run_scenario({**sc, "onset_s": onset}, set_dir, settings, warm=True, server_mode=True, keep_audio=True,
                     mic=mic)
    _, pre_s, floor = _warm_up(sc, set_dir)
    nz = np.flatnonzero(r["out"])  # the scenario's reply alone (run_scenario zeroed what came before)
    up = r["uplink"]
    return {"delay_s": delay_s,
            "gap_ms": round(float(pre_s + onset - (nz[-1] + 1) / rate) * 1000, 1) if len(nz) else None,
            "played_out": any(x["event"] == "playback_stop" and x.get("reason") == "done"
                              and x.get("item_id") == "item_bench" for x in r["records"]),
            "heard": bool(up.get("vad_on_user")), "vad_ms": up.get("vad_user_ms"), "vad_on_echo": up["vad_on_echo"],
            "floor_ms": server_vad_start_ms(np.concatenate((floor, mic)), pre_s + onset)}


def server_vad_start_ms(mic16: np.ndarray, onset_s: float) -> float | None:
    """The local server's VAD (device/dev/server_vad.py, its defaults) on a mic alone: mic16, int16 at
    MIC_RATE from t = 0, resampled to 24 kHz as the uplink is (dsp.StreamResampler); its first speech
    start that is the user's (uplink_echo's window around onset_s, s) in ms after the onset, or None."""
    from device.audio.dsp import StreamResampler
    from device.dev.server_vad import ServerVad

    up = StreamResampler(MIC_RATE, 24000)(mic16, last=True)
    t = _user_start([e.onset_ms / 1000 for e in ServerVad().process(up) if e.kind == "start"], onset_s)
    return None if t is None else round((t - onset_s) * 1000, 1)


# ---------------------------------------------------------------- the bench

def _off(sc: dict, d: Path, settings: Any = None) -> dict:
    """The comparison row: the same scenario, cold, with every earcon off."""
    from device import config as cfg

    r = run_scenario(sc, d, without_earcons(settings or cfg.Settings()))
    return {k: r[k] for k in ("false_barge_ins", "false_pauses", "detected") if k in r}


def _job(args: tuple[dict, str, bool]) -> dict:
    sc, d, bounds = args
    row = run_scenario(sc, Path(d))
    row["earcons_off"] = _off(sc, Path(d))
    w = run_scenario(sc, Path(d), warm=True)
    row["warm"] = {k: w[k] for k in ("warm_up_barge_ins", "warm_up_pauses", "false_barge_ins", "false_pauses",
                                     "reply_played_s", "reply_before_onset_s", "reply_after_window_s", "detected",
                                     "latency_ms", "truncate_err_ms", "ser_db") if k in w}
    if sc["family"] == "silent":
        pc = run_scenario(sc, Path(d), warm=True, path_change=PATH_CHANGE)
        row["path_change"] = {k: pc[k] for k in ("false_barge_ins", "false_pauses", "warm_up_barge_ins")}
        # ... and in a first reply, where the gates have learnt PATH_CHANGE_AT_S of it when it changes
        cold = run_scenario(sc, Path(d), path_change=PATH_CHANGE)
        row["path_change"]["cold"] = {k: cold[k] for k in ("false_barge_ins", "false_pauses")}
        # ... and in server mode, where what the detectors make of the changed echo opens the uplink
        row["path_change"]["server"] = run_scenario(sc, Path(d), warm=True, server_mode=True,
                                                    path_change=PATH_CHANGE)["uplink"]
    # a first reply after a restart: in the room it learnt, or moved since; and a first start in a
    # noisier room, whose floor the start-up sound's record measures
    for case, kw in [(c, {"restart": c}) for c in RESTARTS] + [(NOISY, {"restart": "startup",
                                                                          "floor_db": NOISY_FLOOR_DB})]:
        r = run_scenario(sc, Path(d), **kw)
        row[f"restart_{case}"] = {k: r[k] for k in _OUTCOME_KEYS + ("room_memory",) if k in r}
    row["server"] = run_scenario(sc, Path(d), server_mode=True)["uplink"]
    row["server_warm"] = run_scenario(sc, Path(d), warm=True, server_mode=True)["uplink"]
    if sc["family"] == "talk":
        # The word again, as an answer just after a second turn's reply: the tail gate's cost.
        row["answer"] = run_answer(sc, Path(d), answer_delay(sc))
    if sc["family"] == "talk" and bounds:
        # Bounds: the VAD on the user alone, and the whole pipeline without the echo.
        row["vad_floor_ms"] = vad_floor_ms(sc, Path(d))
        quiet = run_scenario(sc, Path(d), echo=False)
        row["no_echo_latency_ms"] = quiet.get("latency_ms")
    return row


RESTARTS = ("same", "moved", "startup")  # run_scenario(restart=...) cases of the full bench
# ... and the first start again in a noisier room (run_scenario(floor_db=NOISY_FLOOR_DB)): a fridge or a
# fan, 15 dB over the set's floor. Its rehearsal over the default 30 dB floor interrupted a first reply on
# its own echo in 26 of 48 espeak and 10 of 48 human-voice runs (before the start-up sound measured it).
NOISY = "noisy"
NOISY_FLOOR_DB = 45.0
# what _outcome reads of a run
_OUTCOME_KEYS = ("false_barge_ins", "false_pauses", "reply_played_s", "reply_before_onset_s", "reply_after_window_s",
                 "detected", "latency_ms", "truncate_err_ms")


def _restart(rows: list[dict], case: str) -> dict | None:
    """The scenarios as a first reply after a restart (run_scenario(restart=case)): how many runs kept the
    room in their first life, measured it by the start-up sound, rehearsed or forgot it, the range of the
    start-up sound's check of the kept path and of the wake chime's check (dB), and _outcome."""
    runs = [{"family": r["family"], **r[f"restart_{case}"]} for r in rows if f"restart_{case}" in r]
    if not runs:
        return None
    mem = [x["room_memory"] for x in runs]
    checks = [m["check_db"] for m in mem if m["check_db"] is not None]
    kept_dbs = [m["kept_db"] for m in mem if m["kept_db"] is not None]
    return {"runs": len(runs), "kept": sum(1 for m in mem if m["kept"]),
            "probed": sum(1 for m in mem if m["probed"]),
            "rehearsed": sum(1 for m in mem if m["rehearsed"]), "forgotten": sum(1 for m in mem if m["forgotten"]),
            "kept_min_db": round(min(kept_dbs), 1) if kept_dbs else None,
            "kept_max_db": round(max(kept_dbs), 1) if kept_dbs else None,
            "check_min_db": round(min(checks), 1) if checks else None,
            "check_max_db": round(max(checks), 1) if checks else None, **_outcome(runs)}


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 1) if xs else None


def _outcome(rows: list[dict]) -> dict:
    """What a user notices over a set of runs: false barge-ins and pauses per reply time,
    interruptions detected, onset -> silence, truncate accuracy."""
    silent = [r for r in rows if r["family"] == "silent"]
    talk = [r for r in rows if r["family"] == "talk"]
    reply_s = sum(r["reply_played_s"] for r in silent) + sum(
        r.get("reply_before_onset_s", 0.0) + r.get("reply_after_window_s", 0.0) for r in talk)
    false = sum(r["false_barge_ins"] for r in rows)
    false_p = sum(r.get("false_pauses", 0) for r in rows)
    lat = [r["latency_ms"] for r in talk if "latency_ms" in r]
    terr = [r["truncate_err_ms"] for r in talk if "truncate_err_ms" in r]
    detected = sum(1 for r in talk if r.get("detected"))
    return {
        "reply_minutes": round(reply_s / 60, 2),
        "false_barge_ins": false,
        "false_per_10min": round(false / max(reply_s / 600, 1e-9), 2),
        "false_pauses": false_p,
        "false_pauses_per_10min": round(false_p / max(reply_s / 600, 1e-9), 2),
        "detected": detected, "talk": len(talk),
        "detection_rate": round(detected / max(len(talk), 1), 3),
        "latency_p50_ms": _pct(lat, 50), "latency_p95_ms": _pct(lat, 95),
        "latency_max_ms": round(max(lat), 1) if lat else None,
        "truncate_err_max_ms": round(max(terr), 1) if terr else None, "truncate_err_p95_ms": _pct(terr, 95),
    }


def _cpu(rows: list[dict]) -> tuple[float, float, float]:
    """The runs' CPU seconds in the AEC and in the detectors, and the audio seconds the AEC processed."""
    return (sum(r.get("aec_cpu_s", 0.0) for r in rows), sum(r.get("detector_cpu_s", 0.0) for r in rows),
            sum(r.get("aec_audio_s", 0.0) for r in rows))


def summarize(rows: list[dict]) -> dict:
    silent = [r for r in rows if r["family"] == "silent"]
    talk = [r for r in rows if r["family"] == "talk"]
    dec = [r["decision_ms"] for r in talk if "decision_ms" in r]
    cpu, det_cpu, audio = _cpu(rows)
    erle: dict[str, dict] = {}
    for fam, rooms in _rooms(silent).items():
        xs = [r["erle_db"] for r in rooms if "erle_db" in r]
        if xs:
            erle[fam] = {"n": len(xs), "median_db": _pct(xs, 50), "min_db": round(min(xs), 1)}
    by_gain: dict[str, dict] = {}
    for g in sorted({r["echo_gain"] for r in rows}):
        t = [r for r in talk if r["echo_gain"] == g]
        by_gain[f"{g:.1f}"] = {
            "false": sum(r["false_barge_ins"] for r in rows if r["echo_gain"] == g),
            "detected": sum(1 for r in t if r.get("detected")), "talk": len(t),
            "latency_p95_ms": _pct([r["latency_ms"] for r in t if "latency_ms" in r], 95)}
    return {
        "scenarios": len(rows), "silent": len(silent),
        **_outcome(rows),
        "decision_p50_ms": _pct(dec, 50),
        "bounds": _bounds(talk),
        "warm": _warm(rows),
        "restart": {case: _restart(rows, case) for case in RESTARTS + (NOISY,)},
        "families": {v: _family([r for r in rows if r.get("voices", "espeak") == v])
                     for v in sorted({r.get("voices", "espeak") for r in rows})},
        "erle": erle, "by_gain": by_gain,
        "by_room": {k: {"cold": _outcome(v), "warm": _warm(v)} for k, v in _rooms(rows).items()},
        "aec_cpu_per_audio_s": round(cpu / audio, 4) if audio else None,
        "aec_and_detectors_cpu_per_audio_s": round((cpu + det_cpu) / audio, 4) if audio else None,
        "earcons": _earcons(rows),
        "path_change": _path_change(rows),
        "missed": [r["name"] for r in talk if not r.get("detected")],
        "false_in": [r["name"] for r in rows if r["false_barge_ins"]],
    }


def _path_change(rows: list[dict]) -> dict | None:
    """Echo-only second turns whose echo path changed mid-reply (_job, PATH_CHANGE): in how many of them
    the device interrupted (false barge-ins) or paused its second reply; in server mode (where there is
    one), in how many the server's VAD started on the echo, and the uplink's echo re the reply at the
    mic, p50 and worst (dB, uplink_echo's residual_db); and ("cold") the same change in a first reply, how
    many it interrupted or paused."""
    runs = [r["path_change"] for r in rows if "path_change" in r]
    if not runs:
        return None
    out = {"runs": len(runs), "gain": PATH_CHANGE[0], "delay_ms": PATH_CHANGE[1], "at_s": PATH_CHANGE_AT_S,
           "runs_with_false_barge_ins": sum(1 for x in runs if x["false_barge_ins"]),
           "runs_with_false_pauses": sum(1 for x in runs if x["false_pauses"]),
           # before the change: the first reply interrupted, no second turn to change the path in
           "first_reply_barge_ins": sum(x["warm_up_barge_ins"] for x in runs)}
    colds = [x["cold"] for x in runs if x.get("cold")]
    if colds:
        out["cold"] = {"runs": len(colds),
                       "runs_with_false_barge_ins": sum(1 for x in colds if x["false_barge_ins"]),
                       "runs_with_false_pauses": sum(1 for x in colds if x["false_pauses"])}
    ups = [x["server"] for x in runs if x.get("server")]
    if ups:
        res = [u["residual_db"] for u in ups if "residual_db" in u]
        out["server"] = {"runs": len(ups), "vad_on_echo_runs": sum(1 for u in ups if u.get("vad_on_echo")),
                         "uplink_echo_p50_db": _pct(res, 50), "uplink_echo_worst_db": max(res) if res else None}
    return out


def _rooms(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by room: "direct" (none), "room" (RT60 250 ms, the first room's key) and "room_N" (RT60 N ms)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        rt = _rt60(r)  # rows carry the scenario's "room" and "room_rt60_ms"
        key = "direct" if rt is None else "room" if rt == 250.0 else f"room_{int(rt)}"
        out.setdefault(key, []).append(r)
    return out


def _earcons(rows: list[dict]) -> dict:
    """The wake chime's echo in the uplink (chime_echo) over the runs, and the earcons-off comparison."""
    res = [r["chime"]["residual_db"] for r in rows if "chime" in r]
    out: dict[str, Any] = {"chime_runs": len(res), "chime_residual_p50_db": _pct(res, 50),
                           "chime_residual_max_db": max(res) if res else None}
    off = [r["earcons_off"] for r in rows if "earcons_off" in r]
    if off:
        out["off"] = {"runs": len(off), "false_barge_ins": sum(o["false_barge_ins"] for o in off),
                      "false_pauses": sum(o.get("false_pauses", 0) for o in off),
                      "detected": sum(1 for o in off if o.get("detected"))}
    return out


def _warm(rows: list[dict]) -> dict | None:
    """The same scenarios as a second turn (run_scenario(warm=True)): the canceller met the echo before."""
    runs = [{"family": r["family"], **r["warm"]} for r in rows if "warm" in r]
    if not runs:
        return None
    measured = [x for x in runs if not x["warm_up_barge_ins"]]  # a second turn took place
    return {"runs": len(runs), "measured": len(measured),
            "first_reply_barge_ins": sum(x["warm_up_barge_ins"] for x in runs),
            "first_reply_pauses": sum(x.get("warm_up_pauses", 0) for x in runs), **_outcome(measured)}


def _family(rows: list[dict]) -> dict:
    """One voice family: cold, warm (second turn), the server mode's uplink, the answers after the reply
    and the latency bounds (_bounds: the VAD alone on the family's words, the pipeline without echo)."""
    out: dict[str, Any] = {"cold": _outcome(rows), "warm": _warm(rows), "restart": _restart(rows, "same"),
                           "moved": _restart(rows, "moved"), "startup": _restart(rows, "startup"),
                           NOISY: _restart(rows, NOISY), "by_ser": _by_ser(rows)}
    bounds = _bounds([r for r in rows if r["family"] == "talk"])
    if bounds:
        out["bounds"] = bounds
    for key in ("server", "server_warm"):  # first replies; second turns (run_scenario(warm=True))
        up = [r[key] for r in rows if key in r]
        if up:
            out[key] = _uplink(up, out["cold"]["reply_minutes"])
    answers = [r["answer"] for r in rows if "answer" in r]
    if answers:
        out["answers"] = {**_answers(answers), "by_delay": {
            f"{int(round(d * 1000))}": _answers([a for a in answers if a["delay_s"] == d])
            for d in sorted({a["delay_s"] for a in answers})}}
    return out


def _by_ser(rows: list[dict]) -> dict[str, dict[str, list[int]]]:
    """Interruptions caught by their word's signal-to-echo ratio at the mic (device/bench/ser.py):
    {band: {"cold": [caught, runs], "warm": [caught, runs]}}, the bands of ser.BANDS loudest first (warm:
    the second turns that took place)."""
    from device.bench.ser import BANDS, ser_band

    out: dict[str, dict[str, list[int]]] = {b: {"cold": [0, 0], "warm": [0, 0]} for _, b in BANDS}
    for r in rows:
        if r["family"] != "talk":
            continue
        runs = [("cold", r)]
        w = r.get("warm")
        if w and not w.get("warm_up_barge_ins"):
            runs.append(("warm", w))
        for when, x in runs:
            if x.get("ser_db") is not None:
                cell = out[ser_band(x["ser_db"])][when]
                cell[0] += int(bool(x.get("detected")))
                cell[1] += 1
    return {b: v for b, v in out.items() if v["cold"][1] or v["warm"][1]}


def _answers(xs: list[dict]) -> dict:
    """Answers after the reply (run_answer) over a set of runs: how many the server's VAD heard, its
    start after the word's onset p50/p95 (ms, of those heard) against the VAD alone on the mic (the
    floor, p50/p95 of those it started on; floor_missed: the others), how many heard started more than
    ANSWER_LATE_MS after their floor (two of the VAD's 32 ms windows or more: the uplink's own lag often
    costs one), the runs with a VAD start on echo, the runs whose reply did not play to its end, and the
    gap really left after the reply's last sample (ms, least and most)."""
    heard = [x for x in xs if x["heard"]]
    floors = [x["floor_ms"] for x in xs if x.get("floor_ms") is not None]
    gaps = [x["gap_ms"] for x in xs if x.get("gap_ms") is not None]
    return {"runs": len(xs), "heard": len(heard),
            "vad_p50_ms": _pct([x["vad_ms"] for x in heard], 50), "vad_p95_ms": _pct([x["vad_ms"] for x in heard], 95),
            "floor_p50_ms": _pct(floors, 50), "floor_p95_ms": _pct(floors, 95), "floor_missed": len(xs) - len(floors),
            "later_than_floor": sum(1 for x in heard if x.get("floor_ms") is not None
                                    and x["vad_ms"] - x["floor_ms"] > ANSWER_LATE_MS),
            "runs_with_vad_on_echo": sum(1 for x in xs if x["vad_on_echo"]),
            "not_played_out": sum(1 for x in xs if not x.get("played_out", True)),
            "gap_min_ms": min(gaps) if gaps else None, "gap_max_ms": max(gaps) if gaps else None}


def _uplink(up: list[dict], minutes: float) -> dict:
    """Server mode over a set of runs (their `uplink`s): the residual echo sent up, in dB re the reply
    at the mic (p50, worst), the server VAD's starts on echo (count, per 10 min of `minutes` of
    reply, runs with any) and on the user (runs, of the interruptions)."""
    res = [u["residual_db"] for u in up if "residual_db" in u]
    heard = [u["vad_on_user"] for u in up if "vad_on_user" in u]
    fires = sum(u["vad_on_echo"] for u in up)
    return {"runs": len(up), "residual_p50_db": _pct(res, 50), "residual_max_db": max(res) if res else None,
            "vad_on_echo": fires, "vad_on_echo_per_10min": round(fires / max(minutes / 10, 1e-9), 2),
            "runs_with_vad_on_echo": sum(1 for u in up if u["vad_on_echo"]),
            "vad_on_user": sum(heard), "talk": len(heard)}


def _bounds(talk: list[dict]) -> dict:
    """Latency floors (see vad_floor_ms and run_scenario(echo=False)); misses count as not done."""
    out: dict[str, dict] = {}
    for key, name in (("vad_floor_ms", "vad_alone"), ("no_echo_latency_ms", "no_echo")):
        have = [r for r in talk if key in r]
        xs = [r[key] for r in have if r[key] is not None]
        if have:
            out[name] = {"n": len(have), "found": len(xs), "p50_ms": _pct(xs, 50), "p95_ms": _pct(xs, 95),
                         "over_100ms": sum(1 for x in xs if x > 100) + len(have) - len(xs)}
    return out


def cpu_pass(scenarios: list[dict], set_dir: Path, settings: Any = None, *, every: int = CPU_EVERY,
             repeats: int = CPU_REPEATS, run_one: Callable[..., dict] | None = None) -> dict | None:
    """The AEC's and the detectors' CPU seconds per audio second, measured alone: every `every`-th
    scenario, cold, one after the other in this process, `repeats` times over; the pass with the
    least CPU counts (noise on a shared machine only ever adds time). Returns {"runs", "repeats",
    "audio_s", "aec_per_audio_s", "aec_and_detectors_per_audio_s" (the quietest pass's),
    "spread" (the busiest pass's total over the quietest's)}; None with no scenario or no audio.
    run_one: run_scenario's stand-in (tests)."""
    picked = scenarios[::every]
    one = run_one or run_scenario
    passes = []
    for _ in range(repeats):
        aec, det, audio = _cpu([one(sc, set_dir, settings) for sc in picked])
        if audio <= 0:
            return None
        passes.append((aec + det, aec, audio))
    if not passes:
        return None
    total, aec, audio = min(passes)
    busiest = max(p[0] / p[2] for p in passes)
    return {"runs": len(picked), "repeats": repeats, "audio_s": round(audio, 1),
            "aec_per_audio_s": round(aec / audio, 4), "aec_and_detectors_per_audio_s": round(total / audio, 4),
            "spread": round(busiest / (total / audio), 2) if total > 0 else None}


def run(quick: bool = False, *, set_dir: Path | None = None, jobs: int | None = None,
        settings: Any = None, bounds: bool = True, earcons_off: bool = True) -> dict:
    """The section: every scenario cold, as a second turn, after a restart (RESTARTS) and in server mode,
    and each interruption's word as an answer after the reply (full set; the quick set runs cold only);
    bounds=False leaves out the two latency bounds (a third fewer runs); earcons_off=False leaves out the earcons-off
    comparison (sequential runs only), and earcon_wakes() runs once."""
    d = ensure_set(quick, set_dir)
    scenarios = load_scenarios(d)
    t0 = time.monotonic()
    if settings is not None or (jobs or os.cpu_count() or 1) <= 1 or quick:
        rows = [run_scenario(sc, d, settings) for sc in scenarios]  # no bounds or warm runs: 3x the time
        if earcons_off:
            for row, sc in zip(rows, scenarios, strict=True):
                row["earcons_off"] = _off(sc, d, settings)
    else:
        # spawn, not fork: forked children inherit native library threads mid-state and can crash.
        with ProcessPoolExecutor(max_workers=jobs or min(4, os.cpu_count() or 1),
                                 mp_context=multiprocessing.get_context("spawn")) as ex:
            rows = list(ex.map(_job, [(sc, str(d), bounds) for sc in scenarios], chunksize=2))
    from device.config import Settings

    s = settings or Settings()
    summary = summarize(rows)
    summary["earcons"]["wakes"] = earcon_wakes(settings)
    if not quick:
        summary["cpu_alone"] = cpu_pass(scenarios, d, settings)
    result = {"quick": quick, "set": str(d), "wall_s": round(time.monotonic() - t0, 1),
              "vad": {"engine": s.vad.engine, "speaking_threshold": s.vad.speaking_threshold,
                      "speaking_min_speech_ms": s.vad.speaking_min_speech_ms,
                      "suspect_threshold": s.vad.suspect_threshold, "confirm_ms": s.conversation.confirm_ms},
              "aec": {"enabled": s.aec.enabled, "noise_suppression": s.aec.noise_suppression},
              "summary": summary, "scenarios": rows}
    return result


def format_table(result: dict) -> str:
    s = result["summary"]
    lines = [f"barge_in ({'quick' if result.get('quick') else 'full'}: {s['scenarios']} scenarios, "
             f"{s['silent']} echo-only + {s['talk']} interruptions, {s['reply_minutes']} min of reply "
             f"while the user was silent; {result.get('wall_s')} s)"]

    def row(name: str, value: Any, goal: str) -> str:
        return f"  {name:<38} {str(value):>12}   {goal}"

    lines.append(row("metric", "value", "goal"))
    lines.append(row("false barge-ins per 10 min of reply", f"{s['false_per_10min']} ({s['false_barge_ins']})",
                     "0"))
    lines.append(row("false pauses per 10 min of reply",
                     f"{s.get('false_pauses_per_10min')} ({s.get('false_pauses')})", "(resumed: a short gap)"))
    lines.append(row("interruptions detected", f"{s['detection_rate'] * 100:.1f} %", ">= 95 %"))
    lines.append(row("onset -> speaker silent p50", f"{s['latency_p50_ms']} ms", ""))
    lines.append(row("onset -> speaker silent p95", f"{s['latency_p95_ms']} ms", "<= 100 ms"))
    lines.append(row("onset -> speaker silent max", f"{s['latency_max_ms']} ms", ""))
    lines.append(row("|audio_end_ms - played| max", f"{s['truncate_err_max_ms']} ms", "<= 20 ms"))
    lines.append(row("|audio_end_ms - played| p95", f"{s['truncate_err_p95_ms']} ms", ""))
    b = s.get("bounds", {})
    if "vad_alone" in b:
        v = b["vad_alone"]
        lines.append(row("bound: VAD on the user alone p50/p95", f"{v['p50_ms']}/{v['p95_ms']} ms",
                         f"{v['over_100ms']} of {v['n']} over 100 ms"))
    if "no_echo" in b:
        v = b["no_echo"]
        lines.append(row("bound: no echo, AEC on, p50/p95", f"{v['p50_ms']}/{v['p95_ms']} ms",
                         f"{v['found']} of {v['n']} detected, {v['over_100ms']} over 100 ms or missed"))
    for case, r in (s.get("restart") or {}).items():
        if r:
            where = {"same": "in the room it learnt", "startup": "a first start (its start-up sound's path rehearsed "
                     "in an average voice)", NOISY: f"a first start in a noisier room (white floor "
                     f"{NOISY_FLOOR_DB:g} dB re 1 LSB RMS, the set's 30)"}.get(
                case, f"moved (echo x{MOVED[0]}, +{MOVED[1]:g} ms, another RT60)")
            kept_range = "" if r["kept_min_db"] is None else \
                f" (the kept path explained {r['kept_min_db']} to {r['kept_max_db']} dB of its echo)"
            check_range = "" if r["check_min_db"] is None else \
                f" (the room's check {r['check_min_db']} to {r['check_max_db']} dB)"
            lines.append(row(f"first reply after a restart, {case}: false b-i/pauses",
                             f"{r['false_barge_ins']}/{r['false_pauses']}",
                             f"0; {where}: detected {r['detected']}/{r['talk']}, p50/p95 {r['latency_p50_ms']}/"
                             f"{r['latency_p95_ms']} ms; room kept {r['kept']} of {r['runs']}, the start-up sound "
                             f"measured {r['probed']}{kept_range}, forgotten in {r['forgotten']}{check_range}"))
    w = s.get("warm")
    if w:
        lines.append(f"  the same scenarios as a second turn (another reply played first, then a 2 s gap; "
                     f"{w['measured']} of {w['runs']} reached it, {w['reply_minutes']} min of reply):")
        lines.append(row("  false barge-ins / pauses in the first replies",
                         f"{w['first_reply_barge_ins']} / {w.get('first_reply_pauses', '-')}", "0"))
        lines.append(row("  false barge-ins / pauses, second", f"{w['false_barge_ins']} / {w['false_pauses']}", "0"))
        lines.append(row("  interruptions detected", f"{w['detection_rate'] * 100:.1f} % ({w['detected']}/{w['talk']})",
                         ">= 95 %"))
        lines.append(row("  onset -> speaker silent p50/p95", f"{w['latency_p50_ms']}/{w['latency_p95_ms']} ms",
                         "p95 <= 100 ms"))
        lines.append(row("  |audio_end_ms - played| max", f"{w['truncate_err_max_ms']} ms", "<= 20 ms"))
    fams = s.get("families") or {}
    if fams:
        lines.append("  per voice family        false b-i  false pauses/10min  detected        onset->silent p50/p95")
        for v, f in fams.items():
            for when in ("cold", "warm", "restart", "moved", "startup", NOISY):
                o = f.get(when)
                if not o:
                    continue
                extra = f" (+{o['first_reply_barge_ins']} in first replies)" if when == "warm" else ""
                if when in RESTARTS + ("restart", NOISY):
                    extra = f" (room kept in {o['kept']} of {o['runs']})"
                lines.append(f"    {v:<7} {when:<7} {o['false_barge_ins']:>10}{extra}"
                             f" {o['false_pauses_per_10min']:>10}"
                             f"          {o['detection_rate'] * 100:5.1f} % ({o['detected']}/{o['talk']})"
                             f"  {o['latency_p50_ms']}/{o['latency_p95_ms']} ms"
                             + (f"; first replies' pauses {o['first_reply_pauses']}" if when == "warm" else ""))
            for key, when in (("server", "cold"), ("server_warm", "warm")):
                sv = f.get(key)
                if sv:
                    lines.append(f"    {v:<7} server, {when}: uplink echo vs mic p50 {sv['residual_p50_db']} dB, worst "
                                 f"{sv['residual_max_db']} dB (goal <= -30); server VAD on echo {sv['vad_on_echo']} "
                                 f"({sv['runs_with_vad_on_echo']} of {sv['runs']} runs; goal 0); on the user "
                                 f"{sv['vad_on_user']}/{sv['talk']}")
            if f.get("by_ser"):
                # What each case catches against how far the word stands over the echo at the mic.
                warm = any(c["warm"][1] for c in f["by_ser"].values())
                lines.append(f"    {v:<7} caught by the word's signal-to-echo ratio at the mic, cold"
                             + ("; warm: " if warm else ": ") + ", ".join(
                                 f"{band} dB {c['cold'][0]}/{c['cold'][1]}"
                                 + (f"; {c['warm'][0]}/{c['warm'][1]}" if warm else "")
                                 for band, c in f["by_ser"].items()))
            fb = (f.get("bounds") or {}).get("vad_alone")
            if fb:
                # The onset -> silent goals against what the VAD alone takes to hear the family's words.
                lines.append(f"    {v:<7} bound: the VAD on its words alone p50/p95 {fb['p50_ms']}/{fb['p95_ms']} ms"
                             f" ({fb['over_100ms']} of {fb['n']} over 100 ms)")
            a = f.get("answers")
            if a:
                cut = f"; {a['not_played_out']} replies not played out" if a["not_played_out"] else ""
                lines.append(f"    {v:<7} answers after a second turn's reply (server mode): heard {a['heard']}/"
                             f"{a['runs']} (goal all); server VAD start p50/p95 {a['vad_p50_ms']}/{a['vad_p95_ms']} ms"
                             f" after the onset, on the mic alone {a['floor_p50_ms']}/{a['floor_p95_ms']} ms"
                             f" ({a['floor_missed']} not started); {a['later_than_floor']} over {ANSWER_LATE_MS:g} ms"
                             f" later than alone; VAD on echo in {a['runs_with_vad_on_echo']} runs (goal 0){cut}")
                for ms, b in a["by_delay"].items():
                    lines.append(f"      {ms:>4} ms after (gap {b['gap_min_ms']}-{b['gap_max_ms']} ms): heard"
                                 f" {b['heard']}/{b['runs']}, p50/p95 {b['vad_p50_ms']}/{b['vad_p95_ms']} ms, alone"
                                 f" {b['floor_p50_ms']}/{b['floor_p95_ms']} ms, {b['later_than_floor']} later,"
                                 f" on echo {b['runs_with_vad_on_echo']}")
    ec = s.get("earcons") or {}
    if ec.get("chime_runs"):
        lines.append(row("wake chime's echo in the uplink p50/max", f"{ec['chime_residual_p50_db']}/"
                         f"{ec['chime_residual_max_db']} dB", "re the chime at the mic; goal <= -30"))
    if "wakes" in ec:
        heard = sum(w["heard"] for w in ec["wakes"].values())
        woke = sum(w["woke"] for w in ec["wakes"].values())
        lines.append(row(f"false wakes by earcons ({len(ec['wakes'])} alone)", f"{woke} (heard {heard})", "0"))
    if "off" in ec:
        o = ec["off"]
        lines.append(row("earcons off (comparison): false b-i/pauses", f"{o['false_barge_ins']}/{o['false_pauses']}",
                         f"on: {s['false_barge_ins']}/{s.get('false_pauses')}; detected {o['detected']} off, "
                         f"{s['detected']} on"))
    pc = s.get("path_change")
    if pc:
        lines.append(row("echo path change: runs false b-i/paused",
                         f"{pc['runs_with_false_barge_ins']}/{pc['runs_with_false_pauses']} of {pc['runs']}",
                         f"0 (second turns, echo x{pc['gain']} and +{pc['delay_ms']} ms {pc['at_s']} s in)"))
        if pc.get("cold"):
            c = pc["cold"]
            lines.append(row("... in a first reply (cold): runs false b-i/paused",
                             f"{c['runs_with_false_barge_ins']}/{c['runs_with_false_pauses']} of {c['runs']}",
                             f"0 (the same change {pc['at_s']} s into the first reply)"))
        if pc.get("server"):
            sv = pc["server"]
            lines.append(row("... server mode: VAD on echo; uplink echo p50/worst",
                             f"{sv['vad_on_echo_runs']} of {sv['runs']}; "
                             f"{sv['uplink_echo_p50_db']}/{sv['uplink_echo_worst_db']} dB", "0; <= -30 dB"))
    for fam, e in s["erle"].items():
        lines.append(row(f"ERLE echo-only, {fam} (n={e['n']})", f"{e['median_db']} dB", f"min {e['min_db']} dB"))
    lines.append(row("AEC CPU per audio second", f"{s['aec_cpu_per_audio_s']} s", "<= 0.02 s"))
    if s.get("aec_and_detectors_cpu_per_audio_s") is not None:
        lines.append(row("AEC + detectors CPU per audio second", f"{s['aec_and_detectors_cpu_per_audio_s']} s",
                         "<= 0.03 s"))
    alone = s.get("cpu_alone")
    if alone:
        lines.append(row(f"... alone ({alone['runs']} runs, quietest of {alone['repeats']}): AEC; AEC + detectors",
                         f"{alone['aec_per_audio_s']}; {alone['aec_and_detectors_per_audio_s']} s",
                         f"<= 0.02; <= 0.03 s (busiest x{alone['spread']})"))
    rooms = s.get("by_room") or {}
    if len(rooms) > 1:
        lines.append("  per room (cold; warm)   false b-i  false pauses/10min  detected        onset->silent p50/p95")
        for k, r in rooms.items():
            for when in ("cold", "warm"):
                o = r.get(when)
                if o:
                    det = (f"{o['detection_rate'] * 100:5.1f} % ({o['detected']}/{o['talk']})"
                           f"  {o['latency_p50_ms']}/{o['latency_p95_ms']} ms") if o["talk"] else "(echo only)"
                    lines.append(f"    {k:<9} {when:<5} {o['false_barge_ins']:>10} {o['false_pauses_per_10min']:>10}"
                                 f"          {det}")
    lines.append("  by echo gain: " + "; ".join(
        f"{g}: {v['false']} false, {v['detected']}/{v['talk']} detected, p95 {v['latency_p95_ms']} ms"
        for g, v in s["by_gain"].items()))
    if s["missed"]:
        lines.append("  missed: " + ", ".join(s["missed"][:8]) + (" ..." if len(s["missed"]) > 8 else ""))
    if s["false_in"]:
        more = " ..." if len(s["false_in"]) > 8 else ""
        lines.append("  false barge-ins in: " + ", ".join(s["false_in"][:8]) + more)
    return "\n".join(lines)


if __name__ == "__main__":  # python -m device.bench.barge_in [--quick] [--json F]
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    res = run(a.quick)
    print(format_table(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=float))
