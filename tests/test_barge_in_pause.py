"""Pause first, confirm in the pause: what made the pause never confirms it.

The agent plays a reply (a RecordingLink delivers it); then its detectors are scripted frame by
frame: the echo gate's verdicts, the VAD's events and the double-talk test. The conversation
machine, the player and the agent's barge-in logic are the real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from device import config as cfg
from device.audio.aec import build_aec
from device.audio.player import Player
from device.audio.sim import SimAudio
from device.conversation import machine as cv
from device.conversation.agent import Agent
from device.conversation.speaking import BargeIn
from device.link.twin import RecordingLink
from device.listen.vad import VadEvent
from device.listen.wakeword import NoWake
from device.timeline import Timeline


class ScriptedVad:
    """The VadSegmenter surface the agent uses; `script` maps a frame number (from 1) to events."""

    def __init__(self) -> None:
        self.script: dict[int, list[VadEvent]] = {}
        self.frames = 0
        self.resets: list[int] = []
        self.fed_s = 0.0
        self.last_probability = 0.0  # the fast stage (SuspectGate) never fires
        self.engine = SimpleNamespace(chunk_samples=512)

    def process(self, pcm16: np.ndarray) -> list[VadEvent]:
        self.frames += 1
        self.fed_s += len(pcm16) / 16000
        return self.script.pop(self.frames, [])

    def reset(self) -> None:
        self.resets.append(self.frames)

    def set_strict(self, strict: bool) -> None:
        pass


class ScriptedDtd:
    def __init__(self, fire: set[int]) -> None:
        self.fire, self.frames = fire, 0

    def arm(self, now: float) -> None:
        pass

    def disarm(self) -> None:
        pass

    def update(self, now: float, mic_db: float, out_db: float) -> bool:
        self.frames += 1
        return self.frames in self.fire


class LearntGate:
    """An echo gate that has learnt the echo path and expects echo (its verdicts come per frame)."""

    learnt, active, ready = 500, True, True
    tail_db = 2.5  # the room's decay it measured, dB per frame (RT60 240 ms)
    unconfirmed = 0  # pauses it was told ended with nothing confirmed (EchoGate.pause_unconfirmed)

    def read_room(self) -> None:
        pass  # no paired residual gate: no linear canceller's filter to read the room off

    @property
    def pause_tail_db(self) -> float:
        return self.tail_db  # the gaps measured the room: the pause waits out the same decay

    @property
    def short_room_db(self) -> float:
        return self.tail_db  # ... and no filter reading says it is slower

    def pause_unconfirmed(self) -> None:
        self.unconfirmed += 1

    def __init__(self) -> None:
        # Its TailMeter: settled, the reference silent and its echo all arrived (TailCeiling counts from then).
        self.tail = SimpleNamespace(settled=False)


class ConvergedCanceller:
    """The canceller's measured ERLE over the threshold: the echo it removes is there."""

    converged = True
    erle_db = 25.0

    def update(self, mic_db: float, out_db: float, echo: bool) -> None:
        pass


def _speaking_agent(barge_in: cfg.BargeInMode = "local", *, sim: SimAudio | None = None, real_aec: bool = False,
                    reply_samples: int = 48000, done: bool = False,
                    blocks: int = 5) -> tuple[Agent, Timeline, ScriptedVad]:
    """An agent playing a 330 Hz reply of reply_samples at 24 kHz (done: and its response.done sent),
    `blocks` mic blocks in; sim: the card (None: a silent mic, no echo); real_aec: AEC3 and the echo
    gate built as the daemon builds them (else none: the tests script the gates' verdicts)."""
    settings = dataclasses.replace(cfg.Settings(), sounds=cfg.SoundsSettings(wake=False, done=False))
    settings = dataclasses.replace(settings, conversation=dataclasses.replace(settings.conversation,
                                                                              barge_in=barge_in))
    if sim is None:
        sim = SimAudio(np.zeros((16000, 1), np.int16), 16000, Player(settings.audio.output_rate), speed=1e9)
    timeline = Timeline(None, keep=True)
    link = RecordingLink()
    vad = ScriptedVad()
    agent = Agent(settings, sim, timeline, wake=NoWake(), vad=vad, link=link.attach,  # type: ignore[arg-type]
                  aec=build_aec(settings.aec) if real_aec else None)

    async def go() -> None:
        agent.start()
        link.connect()
        agent.handle(cv.Wake(0.0, "test", 1.0))
        agent.handle(cv.Committed(agent.now))
        link.deliver("response.created", response={"id": "resp_1"})
        tone = (np.sin(np.arange(reply_samples) * 2 * np.pi * 330 / 24000) * 8000).astype("<i2").tobytes()
        link.deliver("response.output_audio.delta", audio=tone, response_id="resp_1", item_id="item_1")
        if done:
            link.deliver("response.done", response={"id": "resp_1", "status": "completed"})
        for _ in range(blocks):
            agent.process_block(await sim.read())  # type: ignore[arg-type]

    asyncio.run(go())
    if not done:
        assert agent.machine.phase == "speaking"
    return agent, timeline, vad


def _frames(agent: Agent, near: list[bool], share: float = 0.5, level_db: float = 60.0,
            echo_left_db: float = -20.0, tail_share: float | None = None,
            frame: np.ndarray | None = None, out_db: float | None = None, residual: bool = False,
            residual_db: float | None = None, floor_db: float = np.inf,
            near_tail: list[bool] | None = None, near_onset: list[bool] | None = None,
            learnt: int | None = None, excess: float = 0.0, coherence: float = 0.0,
            adding: bool = False, settled: bool = False, shape: float = float("nan")) -> None:
    """One 10 ms frame per verdict through the agent's detectors (no echo: silent mic frames);
    share: the echo path's predicted echo as a share of the mic (EchoGate.echo_share); level_db:
    the mic's level as the canceller measured it (dB re 1 LSB); echo_left_db: the gate's bound on
    the echo over the mic's noise floor (EchoGate.echo_left_db); tail_share: the share with the
    prediction held at the room's decay (EchoGate.tail_share; None: the same as share); frame: the
    canceller's output, [1, 160] int16 (None: silence), no echo expected in it by the post-filter;
    out_db: its level as the canceller measured it (None: level_db - 2); residual: the residual
    gate's verdict (ResidualGate.near) for every frame; residual_db: the linear canceller's output
    level (ResidualGate.level_db; None: not measured); floor_db: the mic's noise floor the gate
    measured (EchoGate.floor_db; inf: not known); near_tail: the verdicts against the bound at the
    room's decay (EchoGate.near_tail; None: the same as near, a room measured); near_onset: those
    or the mic rising over the fast bound (EchoGate.near_onset; None: the same as near_tail); learnt:
    the frames of loud reference the gate has learnt the echo path on (EchoGate.learnt; None: LearntGate's);
    excess: the share of the linear canceller's output over its predicted residual (ResidualGate.excess);
    coherence: the share of that output the reference explains (RefCoherence.score); adding: that
    output's run over its prediction has had a frame over the mic (ResidualGate.adding); settled: the
    reference silent and its echo all arrived (TailMeter.settled); shape: that output's correlation with
    the echo's spectral shape (ResidualGate.shape; nan: not judged)."""
    fe = agent.frontend
    fe.echo_gate = gate = LearntGate()  # type: ignore[assignment]
    if learnt is not None:
        gate.learnt = learnt
    gate.tail.settled = settled
    pcm = np.zeros((1, 160), np.int16) if frame is None else frame
    tails = near if near_tail is None else near_tail
    for verdict, tail, onset in zip(near, tails, tails if near_onset is None else near_onset, strict=True):
        fe.near = np.array([verdict])
        fe.near_tail = np.array([tail])
        fe.near_onset = np.array([onset])
        fe.raw = pcm
        fe.echo = np.zeros((1, fe.echo.shape[1]))
        fe.echo_share = np.array([share])
        fe.echo_left = np.array([echo_left_db])
        fe.floor_db = np.array([floor_db])
        fe.tail_share = np.array([share if tail_share is None else tail_share])
        fe.residual_near = np.array([residual])
        fe.residual_db = np.zeros(0) if residual_db is None else np.array([residual_db])
        fe.residual_excess = np.array([excess])
        fe.residual_coherence = np.array([coherence])
        fe.residual_adding = np.array([adding])
        fe.residual_shape = np.array([shape])
        agent.samples += 160
        agent._frames(pcm.copy(), np.array([[level_db, level_db - 2.0 if out_db is None else out_db]]))


def _events(timeline: Timeline) -> list[str]:
    return [r["event"] for r in timeline.records if r["event"] in ("playback_pause", "barge_in")]


def test_a_double_talk_run_ending_on_the_frame_that_paused_does_not_confirm_it() -> None:
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd({5})  # type: ignore[assignment]
    _frames(agent, [True] * 5)  # five near-end frames pause the reply on the fifth
    assert _events(timeline) == ["playback_pause"]
    assert agent.machine.phase == "speaking"


def test_a_double_talk_run_ending_on_the_frame_the_vad_paused_on_does_not_confirm_it() -> None:
    # The bench's false barge-in (human_silent_038, RT60 500 ms, gain 1.0): a leak of the canceller
    # started the VAD, which paused the reply, and the double-talk test, firing on the same leak in
    # the same frame, confirmed it: the reply cut on its own echo.
    agent, timeline, vad = _speaking_agent()
    agent.barge.dtd = ScriptedDtd({2})  # type: ignore[assignment]
    vad.script = {vad.frames + 2: [VadEvent("start", 0.0)]}
    _frames(agent, [True, True])  # near-end frames keep the gate open: the VAD's start pauses
    assert _events(timeline) == ["playback_pause"]
    assert agent.machine.phase == "speaking"


def test_a_vad_start_right_after_a_gate_pause_needs_near_end_frames_heard_in_the_pause() -> None:
    agent, timeline, vad = _speaking_agent()
    n = vad.frames
    vad.script = {n + 5: [VadEvent("start", 0.0)], n + 7: [VadEvent("start", 0.0)]}
    _frames(agent, [True] * 5 + [False, False])  # the frames that paused are before it
    assert _events(timeline) == ["playback_pause"]
    assert agent.machine.phase == "speaking"
    # ... while a voice the gate hears in the pause, with the VAD, confirms it.
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    _frames(agent, [True, True, True])
    assert _events(timeline) == ["playback_pause", "barge_in"]


def _resume(agent: Agent) -> None:
    """The pause's confirm_ms passes with nothing confirmed: the machine's tick resumes the reply."""
    assert agent.machine.paused_until is not None
    agent.samples = max(agent.samples, int(np.ceil(agent.machine.paused_until * agent.audio.in_rate)))
    agent.apply(agent.machine.handle(cv.Tick(agent.now)))
    assert agent.machine.paused_until is None


def test_a_resumed_reply_needs_a_new_run_to_pause_again_and_the_gate_measures_the_room_on_its_pause() -> None:
    # Bench, cold, RT60 500 ms (human_silent_007): the room's tail beat the gate's bound all through
    # a pause and nothing confirmed it; the run of 14 tail frames then paused the resumed reply on
    # its first frame, three times in a row.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gate's runs alone
    _frames(agent, [True] * 5, share=0.9, echo_left_db=40.0)  # a pause on five near-end frames
    # the room's tail in the pause, the gate's bound still 40 dB over the noise: nothing confirms
    _frames(agent, [True] * 12, share=0.9, echo_left_db=40.0)
    assert _events(timeline) == ["playback_pause"]
    gate = agent.frontend.echo_gate
    _resume(agent)
    assert gate.unconfirmed == 1  # type: ignore[union-attr]  # its silence held the room's tail alone
    _frames(agent, [True] * 4, share=0.9, echo_left_db=40.0)
    assert _events(timeline) == ["playback_pause"]  # four frames of the resumed reply: not yet a run
    _frames(agent, [True], share=0.9, echo_left_db=40.0)
    assert _events(timeline) == ["playback_pause", "playback_pause"]  # five: a new run pauses it


def test_a_vad_start_that_pauses_the_reply_lets_the_voice_start_again_in_the_pause() -> None:
    agent, timeline, vad = _speaking_agent()
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    _frames(agent, [True] * 3)  # (a voice: the gate hears more than a frame of it)
    assert _events(timeline) == ["playback_pause"]
    # The segment was dropped: without it the VAD would stay in it past confirm_ms, and nothing
    # could confirm the pause where there is no canceller.
    assert vad.resets and vad.resets[-1] == vad.frames


def test_a_short_word_the_echo_cannot_be_in_confirms_the_pause_it_made_at_once() -> None:
    # A word that ends 70 ms after the pause (bench: espeak talk_080, a 0 dB phrase) leaves no
    # near-end run once the reply's echo has died away; frames the predicted echo is under a
    # tenth of are the user's however young the pause is. Those that made the pause do not count.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, share=0.05)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True], share=0.05)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True], share=0.05)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_near_end_frames_the_echo_may_still_be_in_do_not_confirm_a_young_pause() -> None:
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5 + [True] * 4)  # 40 ms into the pause: the echo of the reply is still arriving
    assert _events(timeline) == ["playback_pause"]
    assert agent.machine.phase == "speaking"


def test_quiet_frames_in_a_pause_never_confirm_it_whatever_the_echo_prediction() -> None:
    # A room whose tail outlasts the gate's 2.5 dB-per-frame decay is called near-end all through
    # the pause while the echo path's prediction has already fallen (review: RT60 500 ms, two false
    # barge-ins in six echo-only runs). The user's voice is loud; that tail is not.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5)
    _frames(agent, [True] * 25, share=0.05, level_db=35.0)  # to 250 ms into the pause, at 35 dB
    assert _events(timeline) == ["playback_pause"]


def test_frames_under_our_own_earcon_do_not_count_towards_confirming_a_pause() -> None:
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5)
    agent._quiet_until = agent.now + 0.035  # our own sound in the mic for the next 3 frames
    _frames(agent, [True] * 3, share=0.05)
    _frames(agent, [True], share=0.05)  # one frame of the user's after it: not yet a run
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True], share=0.05)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_a_long_room_s_tail_does_not_confirm_the_pause_before_the_gate_s_bound_is_in_the_noise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # RT60 500 ms (bench, echo only): 160 ms into the pause the reply's reverberant echo is still
    # 20 dB over the noise, loud, and the gate at its old fixed decay called it near-end. Now such
    # frames confirm the pause only once the gate's bound is down in the noise, or the pause is old
    # enough for the tail to have fallen from the bound at the pause (40 dB) at the room's decay.
    monkeypatch.setattr(LearntGate, "tail_db", 1.2)
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, echo_left_db=40.0)
    _frames(agent, [True] * 22, echo_left_db=20.0)  # to 220 ms into the pause
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 3, echo_left_db=3.0)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_a_vad_start_in_the_pause_needs_near_end_frames_the_echo_path_does_not_explain() -> None:
    # Just after the pause, the echo of what was played still arrives; in a long room it can beat the
    # gate's bound, but the echo path predicts all of it (share 1.0): it confirms nothing.
    agent, timeline, vad = _speaking_agent()
    _frames(agent, [True] * 5)
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    _frames(agent, [True] * 3, share=1.0, echo_left_db=20.0)
    assert _events(timeline) == ["playback_pause"]
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    _frames(agent, [True] * 3, share=0.6, echo_left_db=20.0)  # the user: more than the path explains
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_in_a_room_measured_fast_a_voice_confirms_the_pause_once_the_tail_has_fallen_whatever_the_bound_says(
        ) -> None:
    # The bound holds the loudest reference of 160 ms when the canceller has no delay estimate; at
    # the room's measured 2.5 dB per frame, 40 dB of echo over the noise at the pause are down to
    # 5 dB 140 ms in.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, echo_left_db=40.0)
    _frames(agent, [True] * 12, echo_left_db=20.0)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 4, echo_left_db=20.0)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_in_a_pause_frames_the_echo_path_no_longer_predicts_but_the_room_s_tail_still_holds_do_not_confirm_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Bench, RT60 500 ms (human_talk_117, codec2 f, gain 1.0): 250 ms into the pause the path's
    # prediction, 320 ms long, had fallen to 0.14 of the mic while the room's tail was still what the
    # mic held; 3 near-end frames then confirmed a false barge-in. Held at the room's decay, the
    # prediction still explains them; the user, louder than it, confirms.
    monkeypatch.setattr(LearntGate, "tail_db", 1.2)
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, echo_left_db=40.0)
    _frames(agent, [True] * 20, share=0.14, tail_share=1.0, echo_left_db=20.0)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 3, share=0.14, tail_share=0.2, echo_left_db=20.0)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_echo_that_rises_after_the_pause_times_the_tail_for_the_gate_s_runs_from_its_peak() -> None:
    # Bench, warm, RT60 500 ms (human_silent_023, codec2 m, gain 0.5): the mic held 55 dB at the
    # pause and 71 dB 70 ms later, what the speaker had already played still arriving. Timed from the
    # pause, the tail counted as gone 0.25 s in, and the gate's near-end run in it confirmed a false
    # barge-in. Here: 20 dB over the noise at the pause (60 ms to fall to 5 dB at 2.5 dB per frame),
    # then 45 dB (160 ms).
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, echo_left_db=20.0)
    _frames(agent, [False] * 2, echo_left_db=20.0)
    _frames(agent, [False], echo_left_db=45.0)  # 30 ms into the pause
    _frames(agent, [True] * 12, echo_left_db=45.0)  # to 150 ms: past the pause's timing and CONFIRM_AFTER_S
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 8, echo_left_db=45.0)  # past 190 ms: the tail from the peak has fallen too
    assert _events(timeline) == ["playback_pause", "barge_in"]



def test_the_gate_s_bound_rising_on_the_user_s_voice_in_the_pause_does_not_retime_the_tail() -> None:
    # In near-end frames the gate's bound rises with its gain learning the user (0.5 dB per frame):
    # not echo in flight. Bench, no echo in the mic (talk_005): re-timed on it, a word caught 170 ms
    # after its onset was caught only after a second pause, 480 ms.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, echo_left_db=20.0)  # the pause: 60 ms for the tail to fall to 5 dB
    _frames(agent, [True] * 3, echo_left_db=20.0)
    _frames(agent, [True] * 8, echo_left_db=45.0)  # the bound up with the user, to 110 ms (CONFIRM_AFTER_S)
    assert _events(timeline) == ["playback_pause", "barge_in"]

def test_a_vad_start_on_frames_the_echo_path_explains_whole_does_not_pause_the_reply() -> None:
    # Bench, cold: AEC3 leaks the reply for 50-150 ms at a time in a reverberant room, and the VAD
    # took the leaks for speech: 57 of 113 false pauses (50 of the fast stage's 69, all 7 of the
    # VAD start's) came with the echo path predicting all of the mic (share 1.0) for 150 ms.
    agent, timeline, vad = _speaking_agent()
    _frames(agent, [False] * 16, share=1.0)
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    resets = len(vad.resets)
    _frames(agent, [True, True, False], share=1.0)  # the gate's near-end frames open the gate
    assert _events(timeline) == []
    assert len(vad.resets) > resets  # the segment is forgotten: a voice that goes on starts a new one
    # The fast stage too: a chunk over the suspicion threshold on such frames pauses nothing.
    vad.last_probability = 0.99
    _frames(agent, [True, True, False] * 3, share=1.0)
    assert _events(timeline) == []
    # A voice the path does not explain (the mic over the prediction by more than its margin) pauses.
    vad.last_probability = 0.0
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    _frames(agent, [True, True, False], share=0.3)
    assert _events(timeline) == ["playback_pause"]


def test_once_the_tail_is_timed_out_near_end_frames_the_held_echo_prediction_explains_still_do_not_confirm() -> None:
    # Bench, warm, earcons on, RT60 500 ms (human_silent_022, june, gain 0.5): the tail meter's first
    # two gaps read the room at 2.0 and 2.5 dB per frame (its later ones 1.0-1.7). Timed at that rate
    # the tail was gone 170 ms into a pause while the mic still held it at 53-57 dB, the echo path's
    # held prediction all of it (share 1.0): the gate's near-end run confirmed a false barge-in.
    agent, timeline, _ = _speaking_agent()  # the room measured at 2.5 dB per frame
    agent.barge.convergence = ConvergedCanceller()  # type: ignore[assignment]
    _frames(agent, [True] * 5, echo_left_db=20.0)  # the pause: the tail timed out 60 ms in
    _frames(agent, [True] * 15, share=1.0, echo_left_db=20.0)  # to 150 ms, past CONFIRM_AFTER_S
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 3, share=0.6, echo_left_db=20.0)  # a voice over the prediction
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_with_no_echo_reaching_the_mic_the_echo_path_s_prediction_does_not_hold_back_the_confirmation() -> None:
    # A speaker the mics barely hear (bench, no echo in the mic: talk_005): the canceller removes
    # nothing (not converged), the echo path has learnt the noise and the user's first frames, and
    # "explains" the voice (share 1.0). The user, 60 dB, confirms once the tail is timed out.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [True] * 5, echo_left_db=20.0)
    _frames(agent, [True] * 12, share=1.0, echo_left_db=20.0)  # to 120 ms
    assert _events(timeline) == ["playback_pause", "barge_in"]


class PairedResidual:
    """A residual gate beside the echo gate (its verdicts and excess come per frame through _frames)."""

    coherent_share = 0.15

    def echo_like(self, bands: np.ndarray, envelope: np.ndarray) -> bool:
        return False


def test_a_tail_the_echo_path_no_longer_matches_does_not_confirm_where_the_linear_residual_holds_no_voice() -> None:
    # Harness, the echo path changed (x1.4, +8 ms) 3 s into a first reply, RT60 500 ms
    # (human_silent_031, carlo, gain 0.7): the echo gate paused the reply on the changed echo; AEC3
    # no longer converged, so its tail, timed out at the room's decay, confirmed a false barge-in at
    # 50 dB (the gate's bound 28 dB over the floor). The linear canceller's residual held nothing
    # over its prediction (excess 0.00-0.02); a user's word in such a pause did (human_talk_057:
    # 0.27-0.70).
    agent, timeline, _ = _speaking_agent()
    agent.frontend.residual_gate = PairedResidual()  # type: ignore[assignment]
    _frames(agent, [True] * 5, echo_left_db=20.0)  # the pause
    _frames(agent, [True] * 15, share=1.0, echo_left_db=20.0, excess=0.02)  # to 150 ms, the tail timed out
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 3, share=1.0, echo_left_db=20.0, excess=0.5)  # a voice over the residual's prediction
    assert _events(timeline) == ["playback_pause", "barge_in"]


def _uplink_levels(agent: Agent, near: list[bool], share: float, out_db: float = 58.0, **kw: Any) -> list[float]:
    """Frames of a 60 dB tone (the canceller's output; the post-filter expects no echo in it) through
    the agent with the echo gate's verdicts `near`, the echo path's `share` and the canceller's
    levels (mic 60 dB, its output `out_db`), and the rest of _frames' keywords; returns the level of
    each 40 ms append the agent sent uplink meanwhile (dB re 1 LSB RMS)."""
    sent: list[bytes] = []
    agent.link.send_audio = sent.append  # type: ignore[method-assign]
    tone = (np.sin(np.arange(160) * 2 * np.pi * 500 / 16000) * 1414).astype(np.int16)[None, :]
    _frames(agent, near, share=share, frame=tone, out_db=out_db, **kw)
    return [10 * np.log10(np.mean(np.square(np.frombuffer(c, "<i2").astype(float))) + 1e-9) for c in sent]


def test_in_server_mode_near_end_frames_the_echo_path_explains_whole_keep_the_uplink_suppressed() -> None:
    # Bench, server mode, cold, RT60 500 ms (human_silent_038, codec2 f, gain 1.0): AEC3 leaked the
    # reply at the mic's level for 70 ms, the gate called it near-end, the uplink opened and the
    # server's VAD heard the device's own voice; the echo path predicted all of it (share 1.0). Over
    # the bench's 240 runs, earcons off, keeping such frames from opening it took the server-VAD
    # starts on echo from 22 to 5 (but missed words under the reply: below).
    agent, timeline, _ = _speaking_agent("server")
    assert agent.uplink_open  # server barge-in mode: the uplink stays open while the device speaks
    _uplink_levels(agent, [False] * 20, share=1.0)  # the uplink's gain ramps down from 1
    quiet = _uplink_levels(agent, [False] * 20, share=1.0)
    assert quiet and max(quiet) < 30.0, quiet  # the tone at 60 dB, 40 dB down
    explained = _uplink_levels(agent, [True] * 7 + [False] * 13, share=1.0)
    assert explained and max(explained) < 30.0, explained
    # Near-end frames the path does not explain (the mic over its prediction) open it at once ...
    heard = _uplink_levels(agent, [True] * 3 + [False] * 17, share=0.6)
    assert heard and max(heard) > 55.0, heard
    # ... and so do near-end frames the path explains where the canceller was converged as they
    # began and its output rises to within its converged ERLE of the mic: the user over the echo it
    # removes (bench, quick set: "shoe" 6 dB under a reply at gain 1.0 reads share 1.0 all through).
    _uplink_levels(agent, [False] * 60, share=1.0)  # its hold (0.5 s) runs out
    assert not agent.barge.convergence.converged  # a canceller not converged leaks the reply
    leak = _uplink_levels(agent, [False] * 8 + [True] * 12 + [False] * 8, share=1.0)
    assert max(leak) < 30.0, leak
    agent.barge.convergence = ConvergedCanceller()  # type: ignore[assignment]
    # Its output still 35 dB under the mic: the gate's bound was loose, nothing got through it
    # (bench, RT60 250 ms: silent_019, the leak that followed such an opening reached the server's VAD).
    floor = _uplink_levels(agent, [False] * 8 + [True] * 12 + [False] * 8, share=1.0, out_db=25.0)
    assert max(floor) < 30.0, floor
    # Where the cancellers show nothing more than the echo, it is AEC3's fast meter reading converged
    # between leaks of a long room (bench, server mode, cold, RT60 500 ms: talk_057 and talk_106, the
    # server's VAD started on the echo uplinked): it stays shut ...
    between = _uplink_levels(agent, [False] * 8 + [True] * 4 + [False] * 8, share=1.0)
    assert max(between) < 30.0, between
    # ... and with the residual gate's verdict on the frames, it is the user.
    _uplink_levels(agent, [False] * 8, share=1.0)
    word = _uplink_levels(agent, [True] * 4, share=1.0, residual=True)
    word += _uplink_levels(agent, [False] * 8, share=1.0)
    assert max(word[-3:]) > 55.0, word
    assert _events(timeline) == []  # the server decides: no pause of its own


def test_in_server_mode_the_closed_uplink_carries_silence_where_the_canceller_leaks_the_reply_loud() -> None:
    # Bench, server mode, cold, RT60 500 ms (human_silent_031, carlo, gain 0.7): 1-2 s into the first
    # reply AEC3 leaked the reply at 60-72 dB. At -40 dB the closed uplink still carried it at 20-32 dB,
    # and the server's VAD (Silero) started on it at 1.73 s, the uplink never open.
    agent, timeline, _ = _speaking_agent("server")
    sent: list[bytes] = []
    agent.link.send_audio = sent.append  # type: ignore[method-assign]
    leak = (np.sin(np.arange(160) * 2 * np.pi * 500 / 16000) * 5600).astype(np.int16)[None, :]  # 72 dB
    _frames(agent, [False] * 8, share=1.0, frame=leak, level_db=75.0, out_db=72.0)  # the gain ramps down
    sent.clear()
    _frames(agent, [False] * 40, share=1.0, frame=leak, level_db=75.0, out_db=72.0)
    pcm = np.frombuffer(b"".join(sent), "<i2")
    # 24 kHz: all of it silence (the uplink resampler's +-1 LSB dither)
    assert len(pcm) >= 30 * 240 and np.abs(pcm).max() <= 1, np.abs(pcm).max()
    # The user, the path leaving most of the mic unexplained, opens it at once, unsuppressed.
    heard = _uplink_levels(agent, [True] * 3 + [False] * 17, share=0.3)
    assert heard and max(heard) > 55.0, heard
    assert _events(timeline) == []


def test_in_server_mode_a_young_gate_opens_the_uplink_where_the_echo_path_explains_at_most_half_the_mic() -> None:
    # Bench, server mode, cold, RT60 500 ms (talk_119, gain 1.0): 0.36 s into the first reply, the
    # gate having learnt 34 frames, a run of near-end frames the echo path predicted 0.9 of opened
    # the uplink; the reply's echo went through it and the server's VAD started on it at 1.57 s.
    agent, timeline, _ = _speaking_agent("server")
    _uplink_levels(agent, [False] * 20, share=1.0, learnt=34)  # the uplink's gain ramps down from 1
    leak = _uplink_levels(agent, [True] * 12 + [False] * 8, share=0.9, learnt=34)
    assert leak and max(leak) < 30.0, leak
    # A word the path predicts a third of opens it at once, young gate or not.
    heard = _uplink_levels(agent, [True] * 3 + [False] * 17, share=0.3, learnt=34)
    assert heard and max(heard) > 55.0, heard
    _uplink_levels(agent, [False] * 60, share=1.0, learnt=34)  # its hold (0.5 s) runs out
    # Once the path is learnt, share 0.9 is the user (as before).
    word = _uplink_levels(agent, [True] * 3 + [False] * 17, share=0.9, learnt=200)
    assert word and max(word) > 55.0, word
    assert _events(timeline) == []


def test_in_server_mode_a_word_a_local_detector_hears_opens_the_uplink_the_reply_playing_on() -> None:
    # Bench, server mode, cold: words the local detectors catch (human_talk_107, carlo, gain 1.0,
    # RT60 500 ms: Silero's fast stage, 0.31 s after the onset; talk_088: the echo gate's run) left the
    # uplink silent, and the server never heard the user. Local mode pauses the reply on such a
    # decision (here the residual gate's run, echo_residual); in server mode the server decides, so
    # the decision opens the uplink to it instead, and the reply plays on.
    agent, timeline, _ = _speaking_agent("server")
    agent.barge.linear = ConvergedCanceller()  # type: ignore[assignment]
    _uplink_levels(agent, [False] * 20, share=1.0)  # the uplink's gain ramps down from 1
    before = _uplink_levels(agent, [False] * 7, share=1.0, residual=True)
    assert before and max(before) < 30.0, before  # 7 frames: not yet
    word = _uplink_levels(agent, [False] * 13, share=1.0, residual=True)
    assert word and max(word[-2:]) > 55.0, word
    assert _events(timeline) == [] and agent.machine.paused_until is None
    # ... and it stays open for UPLINK_HOLD_S after the run, then closes.
    after = _uplink_levels(agent, [False] * 80, share=1.0)
    assert max(after[:10]) > 55.0 and max(after[-4:]) < 30.0, after


def test_a_word_the_echo_path_does_not_explain_leaves_the_canceller_s_measured_erle_alone() -> None:
    # Bench, warm (human_talk_049, june, gain 0.3, no room): a word 12 dB down passed AEC3 at 55-60 dB
    # under a 65 dB mic, the echo path explaining a fifth of it (share 0.17-0.32). The ERLE meter took
    # the word for the canceller leaking the reply, read it unconverged, and closed the gate: Silero's
    # chunk at 0.94 paused nothing and the word was missed.
    agent, timeline, vad = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, out_db=30.0)  # echo only: 40 dB taken off
    assert agent.barge.convergence.converged
    _frames(agent, [False] * 5, share=0.3, level_db=70.0, out_db=64.0)  # the user over the echo
    assert agent.barge.convergence.converged
    vad.last_probability = 0.94
    _frames(agent, [False] * 4, share=0.3, level_db=70.0, out_db=64.0)
    assert _events(timeline) == ["playback_pause"]


def test_a_leak_the_echo_path_explains_whole_reads_as_the_canceller_unconverged() -> None:
    # The same levels with the echo path predicting all of the mic (share 1.0): the canceller leaking
    # the reply, not the user. The meter falls (and, the path explaining the mic whole, the fast
    # stage's chunk pauses nothing).
    agent, timeline, vad = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, out_db=30.0)
    _frames(agent, [False] * 5, share=1.0, level_db=70.0, out_db=64.0)
    assert not agent.barge.convergence.converged
    vad.last_probability = 0.94
    _frames(agent, [False] * 4, share=1.0, level_db=70.0, out_db=64.0)
    assert _events(timeline) == []


def test_a_word_only_the_residual_gate_hears_pauses_the_reply_and_confirms_in_the_pause() -> None:
    # Bench, warm (human_talk_081, june, 12 dB down, gain 0.5, RT60 500 ms): missed on 6dece99, where
    # only the echo gate and the VAD on AEC3's output could pause. The residual gate paused the reply
    # at 15.60 s and confirmed it at 15.65 s, 108 ms from the word's onset to a silent speaker.
    agent, timeline, _ = _speaking_agent()
    agent.barge.linear = ConvergedCanceller()  # type: ignore[assignment]
    _frames(agent, [False] * 5, share=1.0, residual=True, residual_db=60.0)
    assert _events(timeline) == []  # 5 frames: not yet (single frames and short runs come from the echo)
    _frames(agent, [False], share=1.0, residual=True, residual_db=60.0)
    assert _events(timeline) == ["playback_pause"]
    assert timeline.records[-1].get("detector") == "echo_residual"
    # The frames that paused do not confirm it; a run of 5 heard in the pause does (a short word is
    # often nearly over by the pause).
    _frames(agent, [False] * 4, share=1.0, residual=True, residual_db=60.0)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [False], share=1.0, residual=True, residual_db=60.0)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_in_the_pause_a_residual_run_under_50_db_confirms_nothing() -> None:
    # Once warm the residual gate counts a residual from 45 dB (a word's soft start). On the echo
    # alone in a long room (harness, warm, talk_106: RT60 500 ms, gain 1.0) it paused the reply there
    # and its run at 45-50 dB in the pause confirmed it: a barge-in on the device's own voice.
    agent, timeline, _ = _speaking_agent()
    agent.barge.linear = ConvergedCanceller()  # type: ignore[assignment]
    _frames(agent, [False] * 8, share=1.0, residual=True, residual_db=47.0, learnt=1000)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [False] * 10, share=1.0, residual=True, residual_db=47.0, learnt=1000)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [False] * 5, share=1.0, residual=True, residual_db=55.0, learnt=1000)  # the user
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_residual_runs_broken_by_a_frame_of_echo_pause_nothing() -> None:
    agent, timeline, _ = _speaking_agent()
    agent.barge.linear = ConvergedCanceller()  # type: ignore[assignment]
    for _ in range(5):
        _frames(agent, [False] * 5, share=1.0, residual=True)
        _frames(agent, [False], share=1.0, residual=False)
    assert _events(timeline) == []


def test_before_warm_a_residual_run_pauses_the_reply_whatever_the_cancellers_convergence() -> None:
    # Harness, cold (240 runs, earcons on): a first reply's residual gate heard words the other
    # detectors missed in runs of 5-8, the linear canceller unconverged or the gate young (human_talk_102:
    # 7 frames 0.2 s into june's reply, the gate learnt 65 frames); caught 64 -> 67 and 47 -> 50 of 72.
    agent, timeline, _ = _speaking_agent()  # the linear canceller: nothing measured, not converged
    assert not agent.barge.linear.converged
    for _ in range(3):  # on the echo alone a first reply's runs of 5 were 0.55 over the prediction
        _frames(agent, [False] * 5, share=1.0, residual=True, learnt=50, excess=0.55)
        _frames(agent, [False], share=1.0, residual=False, learnt=50)
    assert _events(timeline) == []
    _frames(agent, [False] * 6, share=1.0, residual=True, learnt=50, residual_db=60.0)
    assert _events(timeline) == ["playback_pause"]
    assert timeline.records[-1].get("detector") == "echo_residual"
    # ... but the run in the pause confirms nothing while the canceller has not converged: the
    # reply's tail stands over the residual's prediction there (human_talk_105's first reply).
    _frames(agent, [False] * 12, share=1.0, residual=True, learnt=50, residual_db=60.0)
    assert _events(timeline) == ["playback_pause"]
    # A voice that fills the residual pauses it at 5 frames.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 4, share=1.0, residual=True, learnt=50, excess=0.9)
    assert _events(timeline) == []
    _frames(agent, [False], share=1.0, residual=True, learnt=50, excess=0.9)
    assert _events(timeline) == ["playback_pause"]
    # Not a run with the echo's spectral shape: the linear canceller leaking a changed echo path (harness,
    # the path changed 3 s into a first reply: runs of 6, 70 ms after it, 0.84 on average; users' words
    # 0.80 at most).
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 12, share=1.0, residual=True, learnt=50, shape=0.84)
    assert _events(timeline) == []
    _frames(agent, [False], share=1.0, learnt=50)
    _frames(agent, [False] * 6, share=1.0, residual=True, learnt=50, shape=0.74)
    assert _events(timeline) == ["playback_pause"]


def test_once_warm_a_residual_run_pauses_the_reply_only_with_the_linear_canceller_converged() -> None:
    # Harness, second turns (240 runs, earcons on): with runs of 6 there (against 8 before), onset ->
    # silent p50 85 -> 66 ms (espeak) and 150 -> 137 ms (human), and 2 + 1 more words caught. Once
    # warm, a canceller that stopped cancelling has met a changed echo path: its leak fills the
    # residual (the path changed 3 s into a second turn).
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 10, share=1.0, residual=True, learnt=1000, excess=0.9)
    assert _events(timeline) == []
    agent.barge.linear = ConvergedCanceller()  # type: ignore[assignment]
    _frames(agent, [False], share=1.0, residual=False, learnt=1000)
    for _ in range(3):
        _frames(agent, [False] * 5, share=1.0, residual=True, learnt=1000)
        _frames(agent, [False], share=1.0, residual=False, learnt=1000)
    assert _events(timeline) == []
    _frames(agent, [False] * 6, share=1.0, residual=True, learnt=1000)
    assert _events(timeline) == ["playback_pause"]
    assert timeline.records[-1].get("detector") == "echo_residual"


def test_once_warm_a_residual_run_a_voice_fills_pauses_the_reply_a_frame_sooner() -> None:
    # Harness, second turns (240 runs, earcons on): 83 words sooner, none later; onset -> silent
    # p50/p95 63/158 -> 54/141 ms (espeak) and 131/268 -> 125/268 ms (human); caught and false pauses
    # unchanged. Runs of 5 at any excess: 3 false pauses more on human replies, at 0.47-0.65 on average.
    agent, timeline, _ = _speaking_agent()
    agent.barge.linear = ConvergedCanceller()  # type: ignore[assignment]
    for _ in range(3):
        _frames(agent, [False] * 5, share=1.0, residual=True, learnt=1000, excess=0.6)
        _frames(agent, [False], share=1.0, residual=False, learnt=1000)
    assert _events(timeline) == []  # the reply's own residual leaves runs just over the gate's share
    # The canceller leaking a changed echo path can fill its residual too, but the reference
    # explains it: the coherence test's run (6 frames) decides that (harness, the path changed 3 s
    # into a second turn: 2 false pauses at 5 frames without this, excess 0.97, coherence 0.31).
    _frames(agent, [False] * 5, share=1.0, residual=True, learnt=1000, excess=0.97, coherence=0.31)
    _frames(agent, [False], share=1.0, residual=False, learnt=1000)
    assert _events(timeline) == []
    _frames(agent, [False] * 4, share=1.0, residual=True, learnt=1000, excess=0.95, coherence=0.05)
    assert _events(timeline) == []
    _frames(agent, [False], share=1.0, residual=True, learnt=1000, excess=0.95, coherence=0.05)
    assert _events(timeline) == ["playback_pause"]
    assert timeline.records[-1].get("detector") == "echo_residual"


def test_the_residual_gate_confirms_nothing_until_the_linear_canceller_has_converged() -> None:
    # Bench, the first reply of human_talk_105 (carlo, RT60 500 ms, gain 1.0): 0.8 s in, the linear
    # canceller took 3-9 dB off the echo; in the pause the reply's tail stood over the residual's
    # prediction for 8 frames and confirmed a false barge-in.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=61.0)  # 9 dB off the echo
    _frames(agent, [False] * 30, share=1.0, level_db=70.0, residual_db=61.0, residual=True)
    assert _events(timeline) == ["playback_pause"]  # before warm, its run pauses the reply ...
    # ... and once it takes 25 dB off, the same run confirms the pause.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=45.0)
    _frames(agent, [False] * 11, share=1.0, level_db=70.0, residual_db=61.0, residual=True)
    assert _events(timeline) == ["playback_pause", "barge_in"]


def test_a_word_s_first_frames_read_as_the_linear_canceller_leaking_leaves_its_residual_gate_deciding() -> None:
    # Bench, warm (human_talk_058: codec2_f 6 dB under a reply at gain 0.3, RT60 500 ms): the word's
    # first loud frames were within the echo path's margin and not over the residual's prediction,
    # but the linear canceller's output stood at or over the mic (-1.5 dB off). Read as a leak, they
    # made the canceller unconverged at once, and the residual gate's run in the pause confirmed nothing.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, out_db=40.0, residual_db=45.0)  # 25 dB off
    assert agent.barge.linear.converged
    _frames(agent, [False] * 2, share=1.0, level_db=62.0, out_db=40.0, residual_db=63.5)
    assert agent.barge.linear.converged
    _frames(agent, [False] * 8, share=1.0, level_db=70.0, out_db=40.0, residual_db=61.0, residual=True)
    assert _events(timeline) == ["playback_pause"]
    assert timeline.records[-1].get("detector") == "echo_residual"
    _frames(agent, [False] * 5, share=1.0, level_db=70.0, out_db=40.0, residual_db=61.0, residual=True)
    assert _events(timeline) == ["playback_pause", "barge_in"]
    # ... but a canceller that takes only 9 dB off the echo for 0.3 s has stopped cancelling it.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, out_db=40.0, residual_db=45.0)
    _frames(agent, [False] * 30, share=1.0, level_db=70.0, out_db=40.0, residual_db=61.0)
    assert not agent.barge.linear.converged
    _frames(agent, [False] * 13, share=1.0, level_db=70.0, out_db=40.0, residual_db=61.0, residual=True)
    assert _events(timeline) == ["playback_pause"]  # paused (before warm), never confirmed


def test_a_frame_the_residual_gate_did_not_look_at_leaves_its_convergence_alone() -> None:
    # The frontend marks such frames -inf. Read as a level, the ERLE would be infinite and the meter's
    # average NaN: the residual gate deaf for the session. (Today those frames also carry the echo
    # gate's share 0.0, which keeps them out; the meter must not depend on that.)
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=45.0)
    _frames(agent, [False] * 2, share=1.0, level_db=70.0, residual_db=-np.inf)
    assert agent.barge.linear.converged
    _frames(agent, [False] * 8, share=1.0, level_db=70.0, residual_db=61.0, residual=True)
    assert _events(timeline) == ["playback_pause"]


class ScriptedSuspect:
    """The fast stage (SuspectGate): fires on the given calls, one call per frame (from 1)."""

    def __init__(self, fire: set[int]) -> None:
        self.fire, self.calls = fire, 0

    def check(self) -> bool:
        self.calls += 1
        return self.calls in self.fire


@pytest.mark.parametrize("converged,learnt", [(False, 500), (True, 60), (True, 500)])
@pytest.mark.parametrize("detector", ["vad_chunk", "local_vad"])
def test_early_in_a_reply_a_silero_decision_needs_a_few_near_end_frames_not_one(
        monkeypatch: pytest.MonkeyPatch, converged: bool, learnt: int, detector: str) -> None:
    # Bench, cold, rooms, 0.6-1.0 s into the first reply: AEC3 not converged leaks the reply at the
    # mic's level, Silero hears a voice in it, and the room's tail beat the gate's bound in one
    # frame (human_silent_030: share 0.97, then a Silero chunk 50 ms later paused the reply). The
    # canceller's ERLE meter can read converged there too, a frame at a time (human_silent_039).
    monkeypatch.setattr(LearntGate, "learnt", learnt)
    agent, timeline, vad = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
    if converged:
        agent.barge.convergence = ConvergedCanceller()  # type: ignore[assignment]

    def silero_on_frame(n: int) -> None:
        if detector == "vad_chunk":
            agent.barge.suspect = ScriptedSuspect({n})  # type: ignore[assignment]
        else:
            vad.script = {vad.frames + n: [VadEvent("start", 0.0)]}

    silero_on_frame(5)
    _frames(agent, [True, False, False, False, False], share=0.97)
    # Converged, with the echo path learnt, the canceller's output is the user's: one near-end frame
    # opens it.
    settled = converged and learnt >= BargeIn.PAUSE_LEARNT_FRAMES
    assert _events(timeline) == (["playback_pause"] if settled else [])
    if settled:
        return
    # A voice the gate hears in three frames of 150 ms opens it then too.
    silero_on_frame(5)
    _frames(agent, [True, False, True, True, False], share=0.97)
    assert _events(timeline) == ["playback_pause"]


def test_what_the_gate_heard_in_a_pause_that_did_not_confirm_opens_nothing_after_the_resume() -> None:
    # The same kind as the run above: the pause's tail frames also held the gate open (150 ms) and
    # counted as near-end frames for a Silero decision; a chunk on the resumed reply's first frame
    # would have paused it again.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
    _frames(agent, [True] * 5, share=0.9, echo_left_db=90.0)
    # the room's tail to the pause's end, more than the path predicts, its bound still high
    _frames(agent, [True] * 29, share=0.9, echo_left_db=90.0)
    assert _events(timeline) == ["playback_pause"]
    _resume(agent)
    agent.barge.suspect = ScriptedSuspect({1})  # type: ignore[assignment]
    _frames(agent, [False], share=1.0)
    assert _events(timeline) == ["playback_pause"]


def test_a_word_within_the_gates_margins_that_both_cancellers_let_through_pauses_the_reply() -> None:
    # Bench, warm (human_talk_068, carlo, a word 6 dB under a reply at gain 0.5, no room): the word
    # stayed within the echo path's margin and the gate's bound (share 1.0, never near-end), but AEC3's
    # output rose from 28 to 50 dB under a 72 dB mic and the linear canceller's from 40 to 60. Both
    # ERLE meters read it as a leak, the residual gate's 13 frames over its prediction in the pause
    # then counted for nothing, and the word was missed.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 60, share=1.0, level_db=70.0, out_db=35.0, residual_db=45.0)
    assert agent.barge.convergence.converged and agent.barge.linear.converged
    # AEC3 alone leaking is not the user (the linear canceller keeps its 25 dB)
    _frames(agent, [False] * 10, share=1.0, level_db=70.0, out_db=66.0, residual_db=45.0)
    assert _events(timeline) == []
    _frames(agent, [False] * 40, share=1.0, level_db=70.0, out_db=35.0, residual_db=45.0)
    assert agent.barge.convergence.converged
    _frames(agent, [False] * 2, share=1.0, level_db=71.0, out_db=66.0, residual_db=65.0)
    assert _events(timeline) == []
    _frames(agent, [False], share=1.0, level_db=71.0, out_db=66.0, residual_db=65.0)
    assert _events(timeline) == ["playback_pause"]
    pause = [r for r in timeline.records if r["event"] == "playback_pause"][-1]
    assert pause["detector"] == "echo_erle"
    # ... and the word did not read as the cancellers leaking: the gates stay open for what confirms it
    assert agent.barge.convergence.converged and agent.barge.linear.converged


def test_in_server_mode_double_talk_in_both_cancellers_opens_the_uplink() -> None:
    # Bench, second turns in server mode, human voices: a word within the echo path's margin never
    # opened the uplink, and the server heard the user in 39 of 72; with both cancellers' ERLE falling
    # at once opening it, in 46, with not a dB more echo sent up.
    agent, timeline, _ = _speaking_agent("server")
    echo = dict(level_db=70.0, residual_db=45.0)  # AEC3 takes 35 dB off, the linear canceller 25
    quiet = _uplink_levels(agent, [False] * 60, share=1.0, out_db=35.0, **echo)
    assert max(quiet[5:]) < 30.0, quiet
    leak = _uplink_levels(agent, [False] * 12, share=1.0, out_db=66.0, **echo)  # AEC3 alone leaks
    assert max(leak) < 30.0, leak
    _uplink_levels(agent, [False] * 60, share=1.0, out_db=35.0, **echo)  # the hold runs out
    word = _uplink_levels(agent, [False] * 12, share=1.0, out_db=66.0, level_db=71.0, residual_db=65.0)
    assert max(word[-2:]) > 55.0, word
    assert _events(timeline) == []  # the server decides: no pause of its own


def test_in_server_mode_both_cancellers_leaking_a_changed_echo_path_keep_the_uplink_shut() -> None:
    # Quick set, second turn, server mode (human_silent_002, allison at gain 1.0, RT60 500 ms): the
    # echo path changed (x1.4, +8 ms) 3 s into the reply. The linear canceller's output rose over the
    # mic (7.7 dB on one frame), and 110 ms after the change AEC3 leaked too: both ERLEs fell as under
    # a word, the residual neither echo-shaped nor coherent enough with the reference to read as the
    # leak. The uplink opened, the server got the leak (-24.9 dB re the reply at the mic) and its VAD
    # started. A canceller that no longer matches the echo adds power, a voice does not.
    agent, timeline, _ = _speaking_agent("server")
    agent.frontend.residual_gate = PairedResidual()  # type: ignore[assignment]
    echo = dict(level_db=70.0, residual_db=45.0)  # AEC3 takes 35 dB off, the linear canceller 25
    _uplink_levels(agent, [False] * 60, share=1.0, out_db=35.0, **echo)
    leak = _uplink_levels(agent, [False] * 12, share=1.0, out_db=66.0, level_db=71.0, residual_db=65.0,
                          adding=True)
    assert max(leak) < 30.0, leak
    # The same levels without the residual over the mic earlier in its run are the user (above).
    _uplink_levels(agent, [False] * 60, share=1.0, out_db=35.0, **echo)
    word = _uplink_levels(agent, [False] * 12, share=1.0, out_db=66.0, level_db=71.0, residual_db=65.0)
    assert max(word[-2:]) > 55.0, word


def test_in_server_mode_the_reply_s_room_tail_after_it_played_out_stays_off_the_uplink() -> None:
    # Bench, server mode, second turn (human_silent_022, RT60 500 ms, the echo path changed 3 s into
    # the reply): AEC3 let the reply's tail through at 37-50 dB for 300 ms after the reply played out,
    # and the server's VAD started on it: the model would have answered its own voice. The echo gate
    # called none of it near-end; the echo path's prediction, held at the room's decay, explained
    # over 0.72 of every frame of it.
    pytest.importorskip("livekit.rtc")  # AEC3
    room = np.exp(-np.arange(4000) / 16000 / 0.07) * np.random.default_rng(0).standard_normal(4000) * 0.1
    sim = SimAudio(np.zeros((16000 * 3, 1), np.int16), 16000, Player(24000), speed=1e9,
                   echo_gain=0.5, echo_delay_ms=30, room_ir=room)  # RT60 ~500 ms: the tail outlasts the reply
    # a 0.2 s reply played out, 0.3 s of its tail heard
    agent, _, _ = _speaking_agent("server", sim=sim, real_aec=True, reply_samples=4800, done=True, blocks=50)
    assert agent.machine.phase == "listening" and agent.uplink_open
    assert agent.barge.tail_gate.active  # the reply's tail is in the mic
    # The echo path's prediction, held at the room's decay, explains the mic: the tail.
    tail = _uplink_levels(agent, [False] * 16, share=1.0, echo_left_db=20.0)
    assert tail and max(tail) < 30.0, tail
    # ... as it does where the echo gate's bound, its gain grown on the tail, calls frames near-end.
    tail = _uplink_levels(agent, [True] * 16, share=1.0, echo_left_db=20.0)
    assert tail and max(tail) < 30.0, tail
    # A user answering over it is heard from the frames that prediction explains at most half of ...
    answer = _uplink_levels(agent, [False] * 16, share=0.2, echo_left_db=20.0)
    assert max(answer[1:]) > 55.0, answer
    # ... and once the gate's bound is down at the noise floor, everything goes up again.
    _uplink_levels(agent, [False] * 60, share=1.0, echo_left_db=20.0)
    after = _uplink_levels(agent, [False] * 16, share=1.0, echo_left_db=-5.0)
    assert min(after[2:]) > 55.0, after


def test_in_a_pause_a_soft_voice_well_over_the_mic_s_noise_floor_confirms() -> None:
    # Bench, warm (human_talk_055, allison at gain 0.3, no room): a word 12 dB under the reply paused
    # it; in the pause the gate called 11 frames in a row near-end at 34-49 dB re 1 LSB, the noise
    # floor at 27 dB. Under the absolute 50 dB (vad.dtd_level_db) none counted: the word was missed.
    for floor_db, confirmed in ((np.inf, False), (34.0, False), (27.0, True)):
        agent, timeline, _ = _speaking_agent()
        _frames(agent, [True] * 5, share=0.5)  # the reply pauses
        assert _events(timeline) == ["playback_pause"]
        _frames(agent, [False] * 12, share=0.2, level_db=35.0, floor_db=floor_db)  # its echo dies away
        _frames(agent, [True] * 4, share=0.2, level_db=45.0, floor_db=floor_db)  # 11 or 18 dB over the floor
        assert (_events(timeline) == ["playback_pause", "barge_in"]) == confirmed, (floor_db, _events(timeline))


def test_in_server_mode_a_local_vad_start_on_the_user_opens_the_uplink() -> None:
    # The same for Silero's VAD start: frames the uplink's own run does not count (near-end to the
    # gate's fast bound only), the echo path explaining little of them.
    agent, timeline, vad = _speaking_agent("server")
    _uplink_levels(agent, [False] * 20, share=1.0)  # the uplink's gain ramps down from 1
    kw: dict[str, Any] = {"share": 0.3, "near_tail": [False] * 12, "near_onset": [True] * 3 + [False] * 9}
    shut = _uplink_levels(agent, [True] * 3 + [False] * 9, **kw)
    assert max(shut) < 30.0, shut  # no decision: it stays shut
    _uplink_levels(agent, [False] * 20, share=1.0)
    vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}
    heard = _uplink_levels(agent, [True] * 3 + [False] * 9, **kw)
    assert max(heard[-2:]) > 55.0, heard
    assert [r["event"] for r in timeline.records if r["event"] == "speech_start"] == ["speech_start"]
    assert _events(timeline) == [] and agent.machine.phase == "speaking"


def test_a_double_talk_run_pauses_only_with_the_residual_gate_s_verdict_or_the_path_explaining_little() -> None:
    # Bench, cold, RT60 500 ms (human_silent_022, june, gain 0.5): 4.07 s into the first reply the mic
    # fell from 73 to 57 dB, the reply's reverberation; AEC3's output stayed at 55-57 dB (and the linear
    # canceller's at 51-56), the gate called the frame near-end, the echo path explained all of it
    # (share 1.0), and the double-talk test paused the reply.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0)  # the reply's echo, explained: no sign of the user lately
    agent.barge.dtd = ScriptedDtd({3})  # type: ignore[assignment]
    _frames(agent, [False, False, True], share=1.0, level_db=57.0, out_db=55.0)
    assert _events(timeline) == []
    # The user (human_talk_074, june, 0.14 s after the onset): the residual gate called the word
    # 6 frames before the double-talk run completed.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0)
    agent.barge.dtd = ScriptedDtd({4})  # type: ignore[assignment]
    _frames(agent, [False], share=1.0, residual=True)
    _frames(agent, [False, False, True], share=1.0, level_db=66.0, out_db=65.0)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_dtd"]
    # ... and so it pauses on frames the echo path explains under 0.4 of.
    agent, timeline, _ = _speaking_agent()
    _frames(agent, [False] * 20, share=1.0)
    agent.barge.dtd = ScriptedDtd({3})  # type: ignore[assignment]
    _frames(agent, [False, False, True], share=0.3, level_db=66.0, out_db=65.0)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_dtd"]


def test_before_the_room_is_measured_its_tail_beating_the_gate_s_fast_bound_pauses_nothing() -> None:
    # Bench, cold, RT60 500 ms (silent_015, 7.07 s into the first reply, no gap measured yet): 6 of 7
    # frames of the room's tail in a gap near-end against the bound at decay_db, none against the
    # bound at the room's decay; they paused the reply (echo_gate), as did a double-talk test on such
    # a frame (echo_dtd, talk_095 and 4 more).
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd({3})  # type: ignore[assignment]
    _frames(agent, [True] * 8, share=0.9, near_tail=[False] * 8)
    assert _events(timeline) == []
    # The same frames near-end against both bounds are the user: the double-talk test pauses on its
    # frame (with the residual gate's verdict: see the test above).
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd({3})  # type: ignore[assignment]
    _frames(agent, [True] * 3, share=1.0, residual=True)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_dtd"]
    # ... and so does the gate's run of them.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
    _frames(agent, [True] * 4 + [True] * 5, share=0.9, near_tail=[False] * 4 + [True] * 5)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_gate"]


def test_a_gate_run_the_echo_path_and_the_linear_canceller_both_explain_pauses_nothing() -> None:
    # Bench, cold (human_silent_011, 014 and 034, carlo's reply in a room): where AEC3's delay estimate
    # settles, 2.5 s into the first reply, the gate's bound fell short of the echo for 5 frames and
    # paused the reply, with the echo path predicting all of the mic and the linear canceller taking
    # as much off it as ever. So did a long room's reverberation building up over the bound.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gate's runs alone
    _frames(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=45.0)  # 25 dB off the reply's echo
    _frames(agent, [True] * 10, share=1.0, level_db=70.0, residual_db=48.0)  # 22 dB off: the echo
    assert _events(timeline) == []
    # On quiet frames the linear canceller's ERLE is no measure (a long room's tail it cannot model).
    _frames(agent, [False], share=1.0, level_db=70.0, residual_db=45.0)
    _frames(agent, [True] * 10, share=1.0, level_db=55.0, residual_db=45.0)
    assert _events(timeline) == []
    # A word under the reply: the linear canceller takes 6 dB less than its average off a loud frame.
    _frames(agent, [False], share=1.0, level_db=70.0, residual_db=45.0)
    _frames(agent, [True] * 4, share=1.0, level_db=70.0, residual_db=48.0)
    _frames(agent, [True], share=1.0, level_db=70.0, residual_db=51.0)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_gate"]


def test_the_linear_canceller_leaking_a_changed_echo_path_is_not_its_sign_of_the_user() -> None:
    # Full set, second turn, server mode (human_silent_032, june at gain 0.7): the echo path changed
    # (x1.4, +8 ms) 3 s into the reply. The gate's bound fell short of the louder echo, and the linear
    # canceller's output rose to the mic's level (its ERLE 22-45 dB under its average), read as its
    # sign of the user: the gate's run opened the uplink to the leak (-27.2 dB re the reply at the
    # mic). The reference explained 53-77 % of that output (RefCoherence): the canceller's leak.
    def run(coherence: float, barge_in: cfg.BargeInMode = "local") -> tuple[list[str], list[float]]:
        agent, timeline, _ = _speaking_agent(barge_in)
        agent.frontend.residual_gate = PairedResidual()  # type: ignore[assignment]
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gate's runs alone
        _uplink_levels(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=45.0)
        sent = _uplink_levels(agent, [True] * 8, share=1.0, level_db=70.0, residual_db=60.0, coherence=coherence)
        sent += _uplink_levels(agent, [False] * 8, share=1.0, level_db=70.0, residual_db=45.0)
        return _events(timeline), sent

    assert run(0.05)[0] == ["playback_pause"]  # a word: the linear canceller lets it through
    assert run(0.6)[0] == []  # the leak
    events, sent = run(0.6, "server")
    assert events == [] and max(sent) < 30.0, sent
    events, sent = run(0.05, "server")
    assert events == [] and max(sent) > 55.0, sent


def test_within_the_linear_canceller_s_mismatch_the_echo_path_falling_short_does_not_pause_the_reply() -> None:
    # Harness, the echo path changed (x1.4, +8 ms) 3 s into a first reply: the gate's bound fell short
    # of the louder echo, and so did the path's prediction (share 0.83-0.96; human_silent_022, _029, _039),
    # 5 frames of it paused the reply. The linear canceller's output had gone over the loud mic just
    # before (ResidualGate.adding, held for mismatch_frames): the echo path changed, not a user came.
    def run(adding: bool) -> list[str]:
        agent, timeline, _ = _speaking_agent()
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gate's runs alone
        _frames(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=45.0)
        _frames(agent, [True] * 6, share=0.85, level_db=70.0, residual_db=45.0, excess=0.5, adding=adding)
        return _events(timeline)

    assert run(False) == ["playback_pause"]  # a word the echo path does not explain
    assert run(True) == []


def test_the_echo_path_falling_short_where_the_converged_linear_canceller_passes_nothing_pauses_nothing() -> None:
    # Harness, the echo path changed (x1.4, +8 ms) 3 s into a first reply; 3.7 s later (human_silent_030,
    # RT60 500 ms) the gate's bound and the path's prediction fell short of the echo on 5 frames
    # (share 0.77-0.84) and paused the reply, the converged linear canceller's residual within its
    # predicted residual throughout. That canceller passes a user whole: where nothing rose in its
    # residual, the mic's excess over the prediction is the echo's.
    def run(excess: float) -> list[str]:
        agent, timeline, _ = _speaking_agent()
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gate's runs alone
        _frames(agent, [False] * 20, share=1.0, level_db=70.0, residual_db=45.0)  # converged: 25 dB off
        assert agent.barge.linear.converged
        _frames(agent, [True] * 6, share=0.8, level_db=70.0, residual_db=45.0, excess=excess)
        return _events(timeline)

    assert run(0.0) == []
    assert run(0.5) == ["playback_pause"]  # half the residual over its prediction: a voice in it


def test_before_the_gate_has_learnt_the_echo_path_a_run_the_path_explains_under_half_of_pauses_the_reply() -> None:
    # Harness, cold (earcons off): a word 0.4-0.6 s into the first reply, before the gate has learnt
    # PAUSE_LEARNT_FRAMES, made 10 near-end frames the echo path predicted 9-42 % of (human_talk_098,
    # missed); with such runs pausing, it was caught at 223 ms and talk_102 at 103 ms (was 723).
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gate's runs alone
    _frames(agent, [True] * 8, share=0.6, learnt=50)
    assert _events(timeline) == []  # the echo path explains more than half: a young bound's verdicts
    _frames(agent, [False], learnt=50)
    _frames(agent, [True] * 4, share=0.4, learnt=50)
    assert _events(timeline) == []
    _frames(agent, [True], share=0.4, learnt=50)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_gate"]


def test_before_the_room_is_measured_a_word_rising_in_a_dip_of_the_reply_pauses_it() -> None:
    # Quick set ("shoe" 6 dB under a reply in allison's voice at gain 1.0, no room, 1.5 s in): 5
    # near-end frames in a dip of the reply, the first 2 under the bound at a long room's decay but
    # rising over the fast bound (EchoGate.near_onset), the echo path explaining them whole but the
    # residual gate not (its verdict near-end; the linear canceller not converged, so that alone
    # pauses nothing). The gate's run pauses on them; double talk on such a frame alone does not (a
    # leak of the canceller rises too).
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd({1, 2})  # type: ignore[assignment]
    _frames(agent, [True] * 5, share=1.0, near_tail=[False] * 2 + [True] * 3, near_onset=[True] * 5,
            residual=True)
    pauses = [(r["t"], r.get("detector")) for r in timeline.records if r["event"] == "playback_pause"]
    assert [d for _, d in pauses] == ["echo_gate"], pauses
    # ... while a run with a frame falling (the room's tail swinging) pauses nothing.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
    _frames(agent, [True] * 8, share=0.9, near_tail=[False] * 8, near_onset=[True, True, False] * 2 + [True] * 2)
    assert _events(timeline) == []


def test_in_server_mode_a_long_room_s_tail_the_gate_s_fast_bound_misses_keeps_the_uplink_suppressed() -> None:
    # Bench, server mode, cold, RT60 500 ms (silent_039, gain 1.0): the room not yet measured, its tail
    # in a gap near-end against the bound at decay_db and unexplained by the echo path (share < 1),
    # opened the uplink and the server's VAD heard it; near-end against the bound at the room's decay
    # too, the user opens it as before.
    agent, timeline, _ = _speaking_agent("server")
    _uplink_levels(agent, [False] * 40, share=1.0)  # the uplink's gain ramps down from 1
    tail = _uplink_levels(agent, [True] * 12 + [False] * 8, share=0.6, near_tail=[False] * 20)
    assert tail and max(tail) < 30.0, tail
    heard = _uplink_levels(agent, [True] * 3 + [False] * 17, share=0.6)
    assert heard and max(heard) > 55.0, heard
    assert _events(timeline) == []


def test_before_the_room_is_measured_its_tail_does_not_open_the_gate_for_a_vad_decision() -> None:
    # Bench, cold, RT60 500 ms (human_silent_047, 7.82 s into the first reply): frames of the room's
    # tail in a gap, near-end against the gate's fast bound only (not EchoGate.near_onset), let a
    # decision of Silero's through and it paused the reply.
    agent, timeline, vad = _speaking_agent()
    _frames(agent, [False] * 16, share=1.0)
    vad.script = {vad.frames + 4: [VadEvent("start", 0.0)]}
    _frames(agent, [True] * 3 + [False], share=0.3, near_tail=[False] * 4, near_onset=[False] * 4)
    assert _events(timeline) == []
    # A word rising over the bound opens the gate as before.
    vad.script = {vad.frames + 4: [VadEvent("start", 0.0)]}
    _frames(agent, [True] * 3 + [False], share=0.3, near_tail=[False] * 4, near_onset=[True] * 3 + [False])
    assert _events(timeline) == ["playback_pause"]


@pytest.mark.parametrize("detector", ["vad_chunk", "local_vad"])
def test_a_silero_decision_needs_a_second_sign_of_the_user_beyond_the_gate_s_verdict(detector: str) -> None:
    # Bench, cold, 0.5-0.8 s into the first reply (silent_009, 035, 047, talk_100): AEC3 leaking the
    # reply, Silero heard a voice in it, with the gate near-end and the echo path predicting 45-72 %
    # of the mic; the residual gate called nothing and the linear canceller took as much off as ever.
    def decide(agent: Agent, vad: ScriptedVad) -> None:
        if detector == "vad_chunk":
            agent.barge.suspect = ScriptedSuspect({3})  # type: ignore[assignment]
        else:
            vad.script = {vad.frames + 3: [VadEvent("start", 0.0)]}

    agent, timeline, vad = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
    _frames(agent, [False] * 16, share=1.0)
    decide(agent, vad)
    _frames(agent, [True, True, True], share=0.6)
    assert _events(timeline) == []
    # ... while the residual gate's verdict, or a share under SILERO_SIGN_SHARE, lets it through.
    for sign in ({"residual": True}, {"share": 0.3}):
        agent, timeline, vad = _speaking_agent()
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
        _frames(agent, [False] * 16, share=1.0)
        decide(agent, vad)
        _frames(agent, [True, True, True], **{"share": 0.6, **sign})  # type: ignore[arg-type]
        assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == [detector], sign


def test_before_the_echo_path_is_learnt_a_run_both_gates_call_near_end_pauses_the_reply() -> None:
    # Bench, cold (human_talk_060, carlo's "no" 6 dB under a reply at gain 0.3, 0.47 s into it): the
    # echo gate and the residual gate both called 3, then 5 frames in a row near-end, the echo path
    # explaining all of the mic (share 1.0) and the linear canceller not converged: nothing paused.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gates' runs alone
    # Either gate alone pauses nothing there: a young gate's bound, an unconverged linear canceller's
    # run short of RESIDUAL_COLD_FRAMES.
    _frames(agent, [True] * 8, share=1.0, learnt=50)
    _frames(agent, [False] * 5, share=1.0, residual=True, learnt=50)
    _frames(agent, [False], share=1.0, learnt=50)
    # ... nor both, where the echo gate's verdict is only against its fast bound (a long room's tail).
    _frames(agent, [True] * 5, share=1.0, residual=True, near_tail=[False] * 5, learnt=50)
    _frames(agent, [False], share=1.0, learnt=50)
    _frames(agent, [True] * 4, share=1.0, residual=True, learnt=50)
    assert _events(timeline) == []
    _frames(agent, [True], share=1.0, residual=True, learnt=50)
    assert [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"] == ["echo_agree"]


@pytest.mark.parametrize("detector", ["vad_chunk", "local_vad"])
def test_a_silero_decision_the_echo_path_explains_goes_through_where_both_gates_called_a_frame_near_end(
        detector: str) -> None:
    # Bench, cold (talk_108, a phrase 12 dB under a reply at gain 1.0, 0.53 s in; human_talk_113): the
    # echo gate and the residual gate both called frames near-end, the echo path explaining all of the
    # mic (share 1.0); Silero heard the voice 100 ms later, held back as a leak of the canceller
    # (_explained): both missed. The residual gate's verdict alone does not let it through (bench,
    # cold, human_silent_015, RT60 500 ms: a false pause 2.19 s into a first reply).
    def pauses(agree: bool) -> list[str | None]:
        agent, timeline, vad = _speaking_agent()
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
        _frames(agent, [False] * 16, share=1.0)
        if agree:
            _frames(agent, [True] * 3, share=1.0, residual=True)
        else:
            _frames(agent, [False], share=1.0, residual=True)  # the residual gate's verdict alone
            _frames(agent, [True] * 3, share=1.0)  # ... and the echo gate's on other frames
        if detector == "vad_chunk":
            agent.barge.suspect = ScriptedSuspect({1})  # type: ignore[assignment]
        else:
            vad.script = {vad.frames + 1: [VadEvent("start", 0.0)]}
        _frames(agent, [False], share=1.0)
        return [r.get("detector") for r in timeline.records if r["event"] == "playback_pause"]

    assert pauses(agree=False) == []
    assert pauses(agree=True) == [detector]


def test_in_a_young_pause_a_run_both_gates_call_near_end_confirms_it_before_the_room_s_tail_is_timed_out() -> None:
    # Bench, cold (human_talk_060, no room, the pause 0.7 s into the first reply; talk_106): the word
    # went on in the pause, but the gate's bound held an unmeasured room's tail (RT60 500 ms assumed)
    # and the linear canceller had not converged: the pause resumed unconfirmed 300 ms later.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]  # the gates' runs alone
    young: dict[str, Any] = {"share": 1.0, "learnt": 50, "echo_left_db": 60.0}  # the tail timed out 220 ms on
    _frames(agent, [True] * 5, residual=True, **young)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True] * 3, residual=True, **young)  # frames of the pause's first 100 ms do not count
    _frames(agent, [False] * 7, **young)
    _frames(agent, [True] * 3, **young)  # ... nor the echo gate's verdict alone (the room's tail, maybe)
    _frames(agent, [False], **young)
    _frames(agent, [True] * 2, residual=True, **young)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [True], residual=True, **young)
    assert _events(timeline) == ["playback_pause", "barge_in"]
    starts = [r.get("detector") for r in timeline.records if r["event"] == "speech_start"]
    assert starts == ["echo_agree"]


def test_a_long_room_s_tail_under_a_falling_mic_is_not_the_linear_canceller_s_sign_of_the_user() -> None:
    # Bench, warm (silent_031: an espeak reply at gain 0.7, RT60 500 ms, no user): at a phrase's end
    # the mic fell 66 -> 53 dB in 10 frames while the linear canceller's output, the room's tail past
    # its filter, held at 41-43 dB. Its ERLE fell 10 dB under its average, read as the canceller's
    # drop, the sign of the user (_linear_drop), and Silero's fast stage paused the reply on the tail.
    # Near-end frames of the echo gate shown by that sign alone pause a reply (_onset_shown).
    def run(mic_db: list[float]) -> list[str]:
        agent, timeline, _ = _speaking_agent()
        _frames(agent, [False] * 20, share=1.0, level_db=70.0, out_db=40.0, residual_db=45.0)  # 25 dB off
        for level in mic_db:
            _frames(agent, [True], share=1.0, level_db=level, out_db=40.0, residual_db=46.0)
        return _events(timeline)

    assert run([66.0 - 1.5 * k for k in range(8)]) == []  # the mic falling: the reply's tail
    # ... in steps, a frame of it falling under 1 dB (bench, cold, talk_094: RT60 500 ms, the mic
    # 69.5 -> 68.6 -> 65.8 -> 65.2 dB at a phrase's end, 2.9 s after a missed word; the sign on the
    # 0.6 dB step let Silero's fast stage pause the reply on AEC3 passing the tail)
    assert run([68.0, 67.5, 65.0, 64.5, 62.0, 61.5, 59.0, 58.5]) == []
    assert run([64.0] * 8) == ["playback_pause"]  # the mic holding: the output rose over the echo's


def test_in_a_pause_a_voice_holding_its_level_where_the_room_s_tail_must_fall_confirms_it() -> None:
    # Harness, cold: the pause waits out an unmeasured room's tail as a long room's (~0.3 s from a
    # loud reply); a short word said as the reply paused was over by then (human_talk_115: held 48-50
    # dB 0.15 s into the pause; talk_054, _097, human_talk_103, _119 the same), and the pause
    # resumed. Now confirmed 0.14-0.27 s into the pause: caught 67 -> 69 and 50 -> 53 of 72.
    agent, timeline, _ = _speaking_agent()
    agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
    _frames(agent, [False] * 5, share=1.0, residual=True, excess=0.9)  # a voice fills the residual
    assert _events(timeline) == ["playback_pause"]
    # The reply's tail falls at the room's decay (2.5 dB per frame here); loud, it confirms nothing,
    # the echo still arriving or not.
    for k in range(10):
        _frames(agent, [False], share=1.0, level_db=70.0 - 2.5 * k, floor_db=20.0, settled=k >= 3)
    assert _events(timeline) == ["playback_pause"]
    # ... a voice at 50 dB over it does, on its third frame over the ceiling: its fifth (its first is
    # averaged with the tail's last, and the ceiling starts at the tail's last 4 frames' mean, 4.6 dB
    # over its last frame here, so a one-frame dip of a tail cannot pull it down: TailCeiling).
    _frames(agent, [False] * 4, share=1.0, level_db=50.0, floor_db=20.0, settled=True)
    assert _events(timeline) == ["playback_pause"]
    _frames(agent, [False], share=1.0, level_db=50.0, floor_db=20.0, settled=True)
    assert _events(timeline) == ["playback_pause", "barge_in"]
    assert [r.get("detector") for r in timeline.records if r["event"] == "speech_start"] == ["echo_tail"]
    # Not before the echo has all arrived (TailMeter.settled), nor on a mic near its noise floor.
    for settled, floor in ((False, 20.0), (True, 40.0)):
        agent, timeline, _ = _speaking_agent()
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
        _frames(agent, [False] * 5, share=1.0, residual=True, excess=0.9)
        for k in range(10):
            _frames(agent, [False], share=1.0, level_db=70.0 - 2.5 * k, floor_db=floor, settled=settled)
        _frames(agent, [False] * 6, share=1.0, level_db=50.0 if settled is False else 49.0, floor_db=floor,
                settled=settled)
        assert _events(timeline) == ["playback_pause"]


def test_in_a_pause_a_voice_aec3_lets_through_whole_confirms_it_where_its_falling_level_reads_as_a_tail(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Harness, cold, human_talk_098: paused 220 ms into a 0.46 s word 4 dB over the echo, the word's
    # vowel falling ~1 dB per frame in the pause (a tail to the ceiling: the room not measured yet, a
    # long room's decay assumed), AEC3's output within 2 dB of the mic at 55-64 dB for 160 ms once the
    # echo had all arrived; the pause resumed, the word missed.
    monkeypatch.setattr(LearntGate, "tail_db", 1.2)  # RT60 500 ms
    def run(levels: list[tuple[float, float]], settled: bool = True) -> tuple[list[str], list[str]]:
        agent, timeline, _ = _speaking_agent()
        agent.barge.dtd = ScriptedDtd(set())  # type: ignore[assignment]
        _frames(agent, [False] * 5, share=1.0, residual=True, excess=0.9)  # a voice fills the residual
        assert _events(timeline) == ["playback_pause"]
        _frames(agent, [False] * 5, share=1.0, level_db=72.0, out_db=40.0, floor_db=20.0)  # 50 ms, echo in flight
        for mic, out in levels:
            _frames(agent, [False], share=1.0, level_db=mic, out_db=out, floor_db=20.0, settled=settled)
        return _events(timeline), [str(r.get("detector")) for r in timeline.records if r["event"] == "speech_start"]

    falling = [64.0 - 1.0 * k for k in range(8)]
    # AEC3 passes it whole (its output within 3 dB of the mic, over 55 dB): confirmed on the 6th frame
    assert run([(m, m - 1.0) for m in falling[:5]]) == (["playback_pause"], [])
    assert run([(m, m - 1.0) for m in falling[:6]]) == (["playback_pause", "barge_in"], ["echo_passed"])
    # ... not where its suppressor takes the tail down (4 dB and more), nor under 55 dB, nor with the
    # reply's echo still arriving (TailMeter.settled)
    assert run([(m, m - 4.0) for m in falling]) == (["playback_pause"], [])
    assert run([(m - 10.0, m - 11.0) for m in falling]) == (["playback_pause"], [])
    assert run([(m, m - 1.0) for m in falling], settled=False) == (["playback_pause"], [])
    # ... and a frame suppressed breaks the run
    assert run([(m, m - (6.0 if k == 3 else 1.0)) for k, m in enumerate(falling)]) == (["playback_pause"], [])
