"""The agent: the one place that owns the sound card, the socket and the LEDs.

It wires an audio port (PyAudio or the simulated twin), the frontend, the
wake-word and VAD detectors, the realtime link and the pure conversation
machine. Everything runs in one asyncio loop: mic blocks and server events are
turned into machine events, and the machine's actions are carried out here.
Timestamps are the mic sample clock (seconds of audio captured).

The appliance (device/appliance/: tools, timers, volume, earcons) rides along: the model's
function calls are run here, in the loop, never in the sound card's callback (the audio path),
and their state files are written by a background thread. Earcons and the ring are player
overlays, so the echo canceller has them as reference (a lone one is cleaned apart from the
replies: Frontend.speaker(earcon=True)); short earcons are also masked: while one sounds (and
0.2 s after), wake detections and the local barge-in detectors are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device.appliance import events as appliance_events
from device.appliance.runtime import Appliance
from device.audio.counters import CounterWatch
from device.audio.echogate import EchoGate
from device.audio.frontend import EchoCanceller, Frontend, Uplink
from device.audio.ports import AudioPort
from device.audio.res import ResidualEchoSuppressor
from device.audio.residualgate import ResidualGate
from device.config import Settings
from device.conversation import machine as cv
from device.errors import VoxboxError
from device.link.base import Link, LinkFactory
from device.link.dialect import Dialect, json_object, json_text
from device.link.dialect import for_settings as dialect_for
from device.link.protocol import ProtocolError, ServerEvent
from device.listen.bargein import Convergence, EchoDoubleTalk, ErleDrop, SuspectGate
from device.listen.vad import VadSegmenter
from device.listen.wakeword import WakeDetector
from device.timeline import Timeline

log = logging.getLogger("voxbox.agent")


ITEMS_KEPT = 64  # item ids (and sent event ids) remembered per session
# Errors about something that was already gone (a cancel after the response ended, a truncate of an
# item already cut, an empty commit): nothing the device waits for ends with them.
HARMLESS_ERRORS = frozenset({"response_cancel_not_active", "item_truncate_invalid_item_id", "invalid_value",
                             "input_audio_buffer_commit_empty"})




def _constant(ms: int) -> Callable[[str], int]:
    """A played-ms lookup that answers `ms` for any item (the truncate's already chosen value)."""
    return lambda _item: ms


class Indicator(Protocol):
    """Where the agent shows its state: device.gpio's indicators (LEDs), or NullIndicator."""

    def show(self, pattern: str) -> None:
        """Switch to the named pattern (a cv.Shown state); must not block the audio loop."""
        ...


class NullIndicator:
    """No LEDs: shows nothing (simulate, benches, tests)."""

    def show(self, pattern: str) -> None:
        pass


@dataclass(frozen=True)
class ScheduledPress:
    """A talk-button press at mic time `t`, held `hold_s` (simulate --press)."""

    t: float
    hold_s: float = 0.1


class Agent:
    def __init__(self, settings: Settings, audio: AudioPort, timeline: Timeline, *,
                 wake: WakeDetector, vad: VadSegmenter, link: LinkFactory,
                 aec: EchoCanceller | None = None, indicator: Indicator | None = None,
                 presses: list[ScheduledPress] | None = None,
                 on_mute_changed: Callable[[bool], object] | None = None,
                 muted: bool = False, on_block: Callable[[], object] | None = None,
                 state_dir: Path | None = None) -> None:
        self.settings = settings
        self.audio = audio
        self.player = audio.player
        self.timeline = timeline
        self.wake = wake
        self.vad = vad
        self.suspect = SuspectGate(vad, settings.vad.suspect_threshold)
        self.dtd = EchoDoubleTalk(settings.vad.dtd_ratio_db, settings.vad.dtd_level_db, settings.vad.dtd_frames)
        self.indicator: Indicator = indicator or NullIndicator()
        gate = EchoGate() if aec is not None and settings.aec.echo_gate else None
        residual = None
        if gate is not None and settings.aec.residual_gate:
            try:
                residual = ResidualGate()
            except VoxboxError as e:  # no libspeexdsp: barge-in runs on the other detectors
                log.warning("aec.residual_gate off: %s", e)
        self.frontend = Frontend(audio.in_rate, settings.audio.channels, aec=aec, out_rate=self.player.rate,
                                 echo_gate=gate, residual_gate=residual)
        self.res = ResidualEchoSuppressor() if gate is not None else None  # the uplink's post-filter
        self._res_idle = True  # the post-filter rested: it restarts from the preroll's last frame
        self.convergence = Convergence()
        # ... and the linear canceller's (the residual gate's): its verdicts count once it takes this
        # much off the reply's echo (bench: 20-35 dB warm, 2-18 dB 1 s into the first reply; not
        # converged, the reply's tail in a pause stood over its predicted residual and confirmed a
        # false barge-in: human_talk_105's first reply, RT60 500 ms, gain 1.0).
        self.linear = Convergence(erle_db=15.0)
        self.erle_drop = ErleDrop()  # double talk: both cancellers' ERLE falls at once
        self._near_until = -1.0  # mic time until which the echo gate lets barge-in decisions through
        self._unexplained_until = -1.0  # ... and the echo path's prediction left part of the mic unexplained
        self._sign_until = -1.0  # ... and a frame showed the user for a Silero decision (_heard_enough)
        self._agree_until = -1.0  # ... and both gates called a frame near-end (_explained)
        self._residual_until = -1.0  # ... and the residual gate called one near-end, or share < 0.4 (double talk)
        self._near_run = 0  # consecutive frames the echo gate called near-end speech
        self._onset_run = 0  # ... of them EchoGate.near_onset: not a room's tail the gate's bound missed
        self._onset_shown = False  # ... and one of the onset run's frames showed the user by a second measure
        self._young_run = 0  # ... of them with the echo path predicting at most YOUNG_PAUSE_SHARE of the mic
        self._up_run = 0  # ... of those that count towards opening the uplink (see _frames)
        self._res_run = 0  # consecutive frames the residual gate called near-end speech
        self._agree_run = 0  # ... and the echo gate too, against its bound at the room's decay
        self._run_converged = False  # the canceller was converged as the near-end run began
        self._strong_run = 0  # ... of those in a pause, with the predicted echo under a tenth of the mic
        self._room_read_at = -np.inf  # mic time the room's decay was last read off the linear canceller
        self._paused_at = -1.0  # mic time of the last pause on a suspicion
        self._left_now = -np.inf  # EchoGate.echo_left_db of the frame being decided (dB)
        self._left_at_pause = -np.inf  # ... of the frame the last pause was made at
        self._left_peak = -np.inf  # ... or of a later frame of that pause it rose at (the echo in flight)
        self._peak_at = -1.0  # mic time of that frame
        self._near_times: deque[float] = deque(maxlen=8)  # mic times of the last near-end frames
        self._near_all: deque[float] = deque(maxlen=8)  # ... the same whatever the echo path predicted
        self._pause_detector = ""  # which detector asked for it (the timeline's playback_pause)
        self._uplink_until = -1.0  # mic time until which the uplink passes unsuppressed
        self._uplink_gain = 1.0
        self.uplink = Uplink()
        self.uplink_open = False
        self.preroll: deque[np.ndarray] = deque(maxlen=max(1, settings.conversation.preroll_ms // 10))
        # What the machine's actions and the server's events mean on the configured API.
        self.dialect: Dialect = dialect_for(settings)
        sessions = self.dialect.api == "live"  # a session per conversation, full duplex
        # The jitter buffer waits for prebuffer_ms or the response's end; GPT-Live's audio has no
        # end event (the model just stops), so there its tail would wait forever: no prebuffer.
        self.player.prebuffer_ms = 0 if sessions else settings.audio.prebuffer_ms
        self.machine = cv.Conversation(settings.conversation,
                                       local_turns=settings.realtime.turn_detection == "none" and not sessions,
                                       muted=muted, sessions=sessions,
                                       mute_close_s=settings.conversation.mute_close_s)
        self.on_mute_changed = on_mute_changed
        self.on_block = on_block  # called after every mic block (the systemd watchdog)
        self.samples = 0  # mic samples processed: the clock of the timeline
        self.errors = 0
        self.underruns = 0  # the reply ran dry while more of it was due
        self.counter_watch = CounterWatch()  # audio trouble -> a journal line, at most once a minute
        self._counters_checked = 0  # mic sample of the last check (once a second)
        self._stopping = False
        self._playing: str | None = None  # item whose audio is coming out of the speaker
        # This session's audio items: bytes received of each (a truncate never names another
        # session's item, nor more audio than came). Bounded: the latest ITEMS_KEPT.
        self._received: OrderedDict[str, int] = OrderedDict()
        self._stopped: tuple[str, int] | None = None  # (item, played ms) the last stop cut
        self._sent_types: OrderedDict[str, str] = OrderedDict()  # event_id -> type of what we sent
        self._dry = False  # the player ran dry while more of the reply was due (an underrun)
        self._button_events: list[tuple[float, cv.ButtonAction]] = []
        for p in presses or []:
            self._button_events.append((p.t, "press"))
            if p.hold_s >= settings.gpio.hold_s:
                self._button_events.append((p.t + settings.gpio.hold_s, "hold"))
            self._button_events.append((p.t + p.hold_s, "release"))
        self._button_events.sort()
        self._live_buttons: deque[tuple[cv.ButtonAction]] = deque(maxlen=32)
        self._started = False
        self._booting = False
        # Timers, volume and tool state persist in state_dir (None: in memory only, as in simulate).
        self.appliance = Appliance(settings, self.player, self.timeline.log, state_dir=state_dir)
        for problem in self.appliance.problems:
            self.log("error", source="state", message=problem)
        self._calls_done: deque[str] = deque(maxlen=64)  # call_ids run (args.done and response.done both carry them)
        self._call_started: dict[str, float] = {}  # call_id -> perf_counter at arguments done
        self.tool_round_trips_ms: deque[float] = deque(maxlen=256)  # arguments done -> output sent (last 256)
        self._mcp_labels: dict[str, str] = {}
        self._quiet_until = 0.0  # a short earcon sounds until then (+ margin): not a wake, not a barge-in
        self._swallow_release = False  # the press stopped a ring: its release opens no conversation
        self._ring_shown = False
        self._shown = ""  # the state last shown (earcons follow its changes)
        self._private = not settings.privacy.transcripts_in_journal
        self._in_conversation = False  # a conversation was open at the last _apply (see there)
        self._idle_reads = False  # the port was told only the wake word listens (see _idle_audio)
        # The link gets this agent's public callbacks (LinkListener); which protocol it speaks is
        # the factory's business, not the agent's.
        self.link: Link = link(self)

    # ------------------------------------------------------------------ clock
    @property
    def now(self) -> float:
        return self.samples / self.audio.in_rate

    def log(self, event: str, **fields: Any) -> None:
        self.timeline.log(self.now, event, **fields)

    # ------------------------------------------------------------------ main loop
    async def run(self, wait_connected_s: float = 0.0) -> None:
        link_task = asyncio.create_task(self.link.run(), name="realtime-link")
        try:
            self.start()
            if wait_connected_s > 0:
                await self.link.wait_connected(wait_connected_s)
            while True:
                try:
                    block = await self.audio.read()
                except VoxboxError as exc:  # the sound card went away (e.g. USB unplugged)
                    if not await self._recover_audio(str(exc)):
                        break
                    continue
                if block is None:
                    break
                self.process_block(block)
                if self.on_block is not None:
                    self.on_block()
        finally:
            self._stopping = True
            await self.link.close()
            link_task.cancel()
            try:
                await link_task
            except (asyncio.CancelledError, Exception):  # the link reports its own failures
                pass
            self._finish()

    async def _recover_audio(self, reason: str) -> bool:
        """Show `error`, stop the reply, reopen the device with backoff; False if it cannot."""
        reopen = getattr(self.audio, "reopen", None)
        log.error("%s", reason)
        self.log("error", source="audio", message=reason)
        self.errors += 1
        self._apply(self.machine.handle(cv.Fault(self.now, reason)))
        if reopen is None:
            return False
        try:
            await reopen()
        except VoxboxError:
            return False
        # What the detectors learnt carries over, the residual gate's too (dropped here, barge-in lost
        # the residual gate and the cancellers' double talk until the daemon restarted).
        self.frontend = Frontend(self.audio.in_rate, self.settings.audio.channels, aec=self.frontend.aec,
                                 echo_gate=self.frontend.echo_gate, residual_gate=self.frontend.residual_gate,
                                 out_rate=self.player.rate)
        self.log("audio_reopened")
        self._apply(self.machine.handle(cv.FaultCleared(self.now)))
        return True

    def start(self) -> None:
        """Show the first state (idempotent; `run()` calls it)."""
        if not self._started:
            self._started = True
            self._booting = True  # a mute state restored at start-up is not a press: no chime
            try:
                self._apply(self.machine.start())
            finally:
                self._booting = False

    def handle(self, event: cv.Event) -> None:
        """Feed one event to the conversation machine and carry out its actions.

        For events the agent does not observe itself: a bench's scripted turn end, a test's wake.
        """
        self._apply(self.machine.handle(event))

    def keep_going(self) -> bool:
        """After the mic ends: keep the clock running while a reply is due or playing."""
        m = self.machine
        # A session per conversation runs on input: it goes on until the conversation closes it.
        return self.player.busy or m.phase in ("thinking", "speaking") or (m.session_open and m.phase != "idle")

    def press(self, action: cv.ButtonAction) -> None:
        """A live button event (gpiozero thread → queued, handled on the next block)."""
        self._live_buttons.append((action,))

    def process_block(self, block: np.ndarray) -> None:
        self.frontend.speaker(self.audio.speaker_played(), earcon=self._lone_earcon())
        mic = self.frontend.process(block)
        self.samples += len(block)
        self._player_notes()
        self.appliance.tick(self.now)
        self._ring_led()
        while self._button_events and self._button_events[0][0] <= self.now:
            _, action = self._button_events.pop(0)
            self._button(action)
        while self._live_buttons:
            self._button(self._live_buttons.popleft()[0])
        if len(mic.frames):
            self._frames(mic.frames, mic.levels)
        self._apply(self.machine.handle(cv.Tick(self.now)))
        if self.samples - self._counters_checked >= self.audio.in_rate:
            self._counters_checked = self.samples
            line = self.counter_watch.check(self.audio_counters())
            if line is not None:
                log.warning("audio trouble: %s", line)
        self._idle_audio()

    def _idle_audio(self) -> None:
        """Tell the port when only the wake word listens (no conversation, nothing playing, no
        ring): it may then batch the mic into the wake word's 80 ms steps (fewer loop wake-ups)."""
        idle = self.machine.phase == "idle" and not self.player.busy and not self.appliance.ringing
        if idle != self._idle_reads:
            self._idle_reads = idle
            self.audio.set_idle(idle)

    def audio_counters(self) -> dict[str, int]:
        """The sound card's and the player's trouble counts so far (summary record, journal)."""
        st = self.audio.stats
        return {"xruns": st.xruns + st.library_xruns, "overflows": st.overflows, "underruns": self.underruns,
                "callback_errors": st.callback_errors}

    def _frames(self, frames: np.ndarray, levels: np.ndarray | None) -> None:
        m = self.machine
        if m.muted:
            return  # privacy: muted audio reaches neither the detectors nor the uplink
        pcm = frames.reshape(-1)
        if m.phase == "idle":
            for d in self.wake.process(pcm):
                if self.now < self._quiet_until:
                    continue  # an earcon of ours, not the user
                self.log("wake", wake_word=d.wake_word, score=round(float(d.score), 3))
                self._apply(m.handle(cv.Wake(self.now, d.wake_word, d.score)))
                if m.phase != "idle":
                    break
            if self.appliance.ringing and m.phase == "idle":
                self._vad_events(self.vad.process(pcm))  # "stop!" (any speech) ends the ring
        elif m.phase == "speaking":
            # Frame by frame: the barge-in detector's fast stage looks at every VAD chunk, and
            # the double-talk test at the echo canceller's levels of the same frame. Each needs the
            # echo gate open: the raw mic held more than the reply's predicted echo lately.
            self.dtd.arm(self.now)
            near = self.frontend.near
            gate = self.frontend.echo_gate
            masked = self._masked()  # our own earcon or ring in the mic: no barge-in from it
            residual_near = self.frontend.residual_near
            # The gate has learnt the echo path for its own pause (the same for every frame of the block).
            learnt = gate is not None and gate.learnt >= self.PAUSE_LEARNT_FRAMES
            if gate is not None and self.linear.converged and self.now >= self._room_read_at + self.ROOM_READ_S:
                # The room's decay, read off the linear canceller's converged filter, for the pause's
                # wait for its tail (EchoGate.pause_tail_db): with a recorded voice the reply's gaps
                # rarely measure it. Harness, second turns: human caught 65 -> 66 of 72
                # (human_talk_073: a word 12 dB down, no room, confirmed at 236 ms; the gate had
                # waited out RT60 500 ms); first replies and espeak unchanged.
                self._room_read_at = self.now
                gate.read_room()
            for i, f in enumerate(frames):
                res_near = i < len(residual_near) and bool(residual_near[i])  # the residual gate's verdict
                near_i = i < len(near) and bool(near[i])  # ... and the echo gate's (against its fast bound)
                # The echo path's predicted echo as a share of the mic (1.0: not known, or all of it).
                share = float(self.frontend.echo_share[i]) if i < len(self.frontend.echo_share) else 1.0
                if m.paused_until is not None and i < len(self.frontend.tail_share):
                    # In a pause the path's prediction dies with its last tap (320 ms), a long room's
                    # tail does not: the prediction held at the room's decay (bench: a tail 250 ms
                    # into a pause at RT60 500 ms read 0.14 and confirmed a false barge-in).
                    share = max(share, float(self.frontend.tail_share[i]))
                if share < 1.0:  # the mic holds more than the echo path predicts, with its margin
                    self._unexplained_until = self.now + self.NEAR_HOLD_S
                # A second measure than the gate's bound shows the user: the cancellers' (the residual
                # gate's verdict, the linear canceller's drop), for the gate's own pause, and with the
                # path's share lower, for Silero's decisions (_heard_enough).
                cancellers = res_near or self._linear_drop(i, levels)
                little = share < self.SILERO_SIGN_SHARE
                if cancellers or little:
                    self._sign_until = self.now + self.NEAR_HOLD_S
                # ... and the residual gate's verdict, or that share, for a double-talk pause (below).
                if res_near or little:
                    self._residual_until = self.now + self.NEAR_HOLD_S
                # Near-end against the gate's bound at the room's decay too (EchoGate.near_tail): until
                # the room is measured, a long room's tail beats the bound at decay_db in the reply's
                # gaps; double talk on such frames paused the reply (bench, cold, RT60 500 ms: talk_095
                # and 4 more) and they opened the server-mode uplink (its VAD heard the tail in 4 of 60
                # runs there). A frame that is rising only does not count for these (measured: the
                # false pauses came back, and the server VAD on echo 2 -> 3 runs).
                tail_near = i < len(self.frontend.near_tail) and bool(self.frontend.near_tail[i])  # implies near
                if near_i:
                    if self.frontend.near_onset[i]:
                        # ... and the gate lets Silero's decisions through (_gate_open): not on an
                        # unmeasured long room's tail in a gap (bench, cold, RT60 500 ms: a fast-stage
                        # chunk paused human_silent_047 7.82 s in; the only change in 480 runs)
                        self._near_until = self.now + self.NEAR_HOLD_S
                    self._near_all.append(self.now)
                    if share < 1.0:
                        # ... what a VAD start in a pause needs (_near_recent): just after a pause,
                        # the reverberant echo of the reply can still beat the gate's bound (bench,
                        # RT60 500 ms), but not the echo path's prediction as well. (A user within
                        # 6 dB of the echo reads 1.0 too: 70 ms into the pause, such frames still
                        # confirmed 1 of 24 echo-only runs in that room.)
                        self._near_times.append(self.now)
                    self._near_run += 1
                    # A run of them pauses the reply where each is near-end against the bound at the room's
                    # decay or the mic did not fall over the bound (EchoGate.near_onset): the tail of an
                    # unmeasured long room only falls (bench, cold, RT60 500 ms: 7 false pauses of 27
                    # were 5 frames of it), a word rises (quick set: "shoe" 6 dB down in a dip of a
                    # reply, a room not measured yet, was near_tail in 3 of the 5 frames that caught it).
                    self._onset_run = self._onset_run + 1 if bool(self.frontend.near_onset[i]) else 0
                    # ... and one frame of the run, at least, shows the user by a second measure: the echo
                    # path leaves part of the mic unexplained (share < 1), or the cancellers show it
                    # (`cancellers`). The bound alone fell short of the reply's echo in every one of the
                    # gate's 12 false pauses on the bench (first replies and second turns, earcons on),
                    # and a second measure was in 89 of the 93 runs that paused on a word within
                    # DETECT_WINDOW_S of its onset.
                    if self._onset_run:
                        shown = self._onset_shown and self._onset_run > 1
                        self._onset_shown = shown or share < 1.0 or cancellers
                    self._young_run = self._young_run + 1 if self._onset_run and share <= self.YOUNG_PAUSE_SHARE else 0
                    # The uplink opens on near-end frames (against the bound at the room's decay,
                    # tail_near) that the echo path does not explain whole, or, in a run begun with
                    # the canceller converged, where its output rose to within its converged ERLE of
                    # the mic and the cancellers show the user (`cancellers`): the echo it removes is
                    # there, and what it lets through over it is the user (a word 6 dB under the
                    # reply is within the path's margin: share 1.0). Bench, server mode, cold, each
                    # a run the server's VAD started on: a canceller not converged leaks the reply at
                    # the mic's level, near-end to the gate's bound but not to the prediction (RT60
                    # 500 ms, human_silent_038); with its output at the floor the bound was loose
                    # (RT60 250 ms, silent_019); in a long room AEC3's fast ERLE meter reads converged
                    # between leaks (RT60 500 ms, talk_057 and talk_106: echo uplinked at up to -11 dB
                    # re the reply at the mic, without the cancellers' sign). Before the gate has
                    # learnt the echo path (PAUSE_LEARNT_FRAMES) its prediction falls short of the
                    # echo: there, as for a young pause, the path must explain at most
                    # YOUNG_PAUSE_SHARE of the mic (0.3-0.7 s into a first reply, runs at share
                    # 0.53-0.95: silent_047 and talk_119). The local detectors open it for the
                    # words these miss (_open_for_user).
                    if self._near_run == 1:
                        self._run_converged = self.convergence.converged
                    young = gate is not None and not learnt
                    unexplained = share < 1.0 and (not young or share <= self.YOUNG_PAUSE_SHARE)
                    counts = tail_near and (unexplained or (
                        self._run_converged and levels is not None and cancellers
                        and float(levels[i, 0] - levels[i, 1]) < self.convergence.erle_db))
                    self._up_run = self._up_run + 1 if counts else 0
                    if counts and (self._up_run >= self.UPLINK_NEAR_FRAMES or self.now <= self._uplink_until):
                        self._uplink_until = self.now + self.UPLINK_HOLD_S
                else:
                    self._near_run = self._up_run = self._onset_run = self._young_run = 0
                erle_drop = False
                if levels is not None and gate is not None and gate.active:
                    # The ERLE is measured on echo alone: frames the gate's bound and the echo path's
                    # prediction both explain. A word the path does not explain, read as the canceller
                    # leaking, closed the gate on the word itself (bench, warm, human_talk_049: a word
                    # 12 dB down, share 0.17-0.32, Silero at 0.94, missed).
                    echo = not near_i and share >= 1.0
                    # (-inf where the residual gate did not look: the meters skip it.)
                    res_db = float(self.frontend.residual_db[i]) if i < len(self.frontend.residual_db) else -np.inf
                    if m.paused_until is None:  # in a pause the reply's echo is dying: no ERLE to fall
                        erle_drop = self.erle_drop.update(float(levels[i, 0]), float(levels[i, 1]), res_db,
                                                          echo=echo, converged=self.convergence.converged)
                    else:
                        self.erle_drop.end_run()
                    # ... and a frame both cancellers' ERLE fell in at once is double talk, not a leak: read
                    # as one, the user's word made both meters read unconverged and closed the residual
                    # gate on it (bench, warm, human_talk_068: 13 frames over the residual's prediction
                    # in the pause, none counted).
                    echo = echo and not self.erle_drop.double_talk
                    self.convergence.update(float(levels[i, 0]), float(levels[i, 1]), echo=echo)
                    self.linear.update(float(levels[i, 0]), res_db,
                                       echo=echo and not res_near)
                residual = res_near and self.linear.converged
                self._res_run = self._res_run + 1 if residual else 0
                self._agree_run = self._agree_run + 1 if res_near and tail_near else 0
                if res_near and near_i:
                    self._agree_until = self.now + self.NEAR_HOLD_S
                paused = m.paused_until is not None
                # Whether the mic is loud: with no echo left, the gate calls a room's quiet tail, or its
                # noise once its floor estimate is stale, near-end. In a pause, SOFT_OVER_FLOOR_DB over the
                # mic's own noise floor is loud too: a word 12 dB under a reply at gain 0.3 reaches 34-49 dB
                # re 1 LSB, never the absolute level (bench, warm, human_talk_055: 11 near-end frames in a
                # row in the pause, none loud, the word missed).
                level = float(levels[i, 0]) if levels is not None else -np.inf
                floor_db = float(self.frontend.floor_db[i]) if i < len(self.frontend.floor_db) else np.inf
                loud = (level >= self.settings.vad.dtd_level_db
                        or (paused and level >= floor_db + self.SOFT_OVER_FLOOR_DB))
                # ... and whether the gate's bound on the echo, the room's tail included, is down in the noise.
                left = float(self.frontend.echo_left[i]) if i < len(self.frontend.echo_left) else -np.inf
                if paused and left > self._left_now + 1.0 and not near_i:
                    # The echo rose after the pause: what the speaker had already played was still on
                    # its way (output buffer, echo lag). A rise of 1 dB or less is the noise floor's
                    # estimate moving, not echo; in a near-end frame, the bound's gain growing on the
                    # user's voice (bench, no echo in the mic: re-timed on it, a word caught 170 ms
                    # after its onset was caught only after a second pause, 480 ms).
                    self._left_peak, self._peak_at = left, self.now
                self._left_now = left  # for a pause made at this frame
                quiet = self._echo_gone(left, paused, self._paused_at, self._left_at_pause)
                # ... the same with the tail timed from the echo's peak in the pause, for what the tail
                # itself can make: near-end runs of the gate and double talk (bench, warm, RT60 500 ms:
                # the mic 55 dB at the pause and 71 dB 70 ms later; timed from the pause, the tail
                # counted as gone 0.25 s in and the gate's near-end run in it confirmed a false
                # barge-in). A VAD start keeps the pause's timing: the echo that rose is, as often,
                # the last of the reply under the user's first syllables (a warm 250 ms room run
                # caught at 83 ms is missed when its VAD start waits for the peak's tail).
                gone = self._echo_gone(left, paused, self._peak_at, self._left_peak)
                # A frame of the pause the reply's echo cannot be in: near-end by the gate's bound, loud,
                # and the prediction under a tenth of it (never in the bench's echo-only runs). A frame
                # not in a pause ends the run, so a new pause starts with none.
                strong = (paused and not masked and near_i
                          and share < self.PAUSE_ECHO_SHARE and loud)
                self._strong_run = self._strong_run + 1 if strong else 0
                if gate is not None and i < len(self.frontend.raw):
                    # AEC3's suppressor takes the user out with the reply's echo while it plays, and
                    # for 200-300 ms after it stops (bench, no echo in the mic at all: a 61 dB word
                    # left at the 27 dB floor). The VAD hears the raw mic instead where the learnt
                    # echo path predicts less than a tenth of it, and in a pause once the room's tail
                    # has died away.
                    if (paused and quiet) or share < self.PAUSE_ECHO_SHARE:
                        f = self.frontend.raw[i]
                # In a pause, a loud frame may confirm the barge-in once the reply's echo has died away.
                clear = (paused and self.now >= self._paused_at + self.CONFIRM_AFTER_S
                         and (gate is None  # no canceller, no echo gate: nothing to wait for
                              or (i < len(self.frontend.echo_share)
                                  and (share < self.CONFIRM_ECHO_SHARE or quiet) and loud)))
                # For the gate's runs and double talk: the tail timed from its peak, and, where the
                # canceller shows the echo is there (converged), the held prediction not explaining
                # all of the mic even then (the meter's first gaps in a long room read its decay
                # fast: bench, RT60 500 ms, 2.0-2.5 dB per frame where later gaps read 1.0-1.7; timed
                # so, the tail was "gone" with the mic still 53-57 dB of it). With no echo reaching
                # the mic, the path learns the noise and the user, and explains the user's voice.
                clear_tail = clear and (gate is None or share < self.CONFIRM_ECHO_SHARE
                                        or (gone and (share < 1.0 or not self.convergence.converged)))
                if near_i and not masked:
                    if not paused and gate is not None and (
                            (learnt and self._onset_run >= self.PAUSE_NEAR_FRAMES and self._onset_shown)
                            or (not learnt and self._young_run >= self.PAUSE_NEAR_FRAMES)):
                        self._pause_first("echo_gate")  # a run of frames the reply's echo cannot explain
                    elif not paused and gate is not None and self._agree_run >= self.AGREE_NEAR_FRAMES:
                        self._pause_first("echo_agree")  # ... or both gates call near-end (AGREE_NEAR_FRAMES)
                    elif ((gate_run := (clear_tail and self._near_run >= self.CONFIRM_NEAR_FRAMES)
                           or self._strong_run >= self.CONFIRM_STRONG_FRAMES)
                          or (paused and self.now >= self._paused_at + self.CONFIRM_AFTER_S
                              and self._agree_run >= self.AGREE_CONFIRM_FRAMES)):
                        # ... and another run in the pause, the reply's echo dying away: the user.
                        self.log("speech_start", source="local_vad", detector="echo_gate" if gate_run else "echo_agree")
                        self._apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
                if (self._res_run >= (self.RESIDUAL_CONFIRM_FRAMES if paused else self._residual_frames())
                        and not masked and gate is not None and gate.learnt >= self.PAUSE_LEARNT_FRAMES):
                    # The linear canceller's output holds more than the reply's predicted residual: the
                    # user, though the mic is within the echo path's margin (device/audio/residualgate.py).
                    # A run in the pause (the pause resets it) confirms: the canceller and the residual's
                    # prediction follow the reply's echo as it dies away.
                    if not paused:
                        self._pause_first("echo_residual")
                    else:
                        self.log("speech_start", source="local_vad", detector="echo_residual")
                        self._apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
                if erle_drop and not masked:
                    # Both cancellers take far less off the mic than they take off the reply: double
                    # talk, though the word is within the gates' margins (listen/bargein.ErleDrop).
                    if not paused and gate is not None and gate.learnt >= self.PAUSE_LEARNT_FRAMES:
                        self._pause_first("echo_erle")
                    # ... the user, for the uplink too (server mode, GPT-Live): bench, second turns, human
                    # voices, server mode: the server heard the user in 39 -> 46 of 72, its VAD on echo
                    # and the uplink's residual echo unchanged.
                    self._uplink_until = self.now + self.UPLINK_HOLD_S
                elif not masked and self.erle_drop.double_talk and self.now <= self._uplink_until:
                    self._uplink_until = self.now + self.UPLINK_HOLD_S  # ... open while the double talk goes on
                # A pause made just now counts for the rest of this frame: what confirms it comes after.
                paused = m.paused_until is not None
                events = self.vad.process(f)
                if (m.phase == "speaking" and any(e.kind == "start" for e in events)
                        and (not self._gate_open() or (not masked and self._explained())
                             or (not paused and not self._heard_enough()))):
                    # The VAD heard the reply's own voice leaking through the canceller: forget that
                    # segment, so the user, if it was them, starts a new one once the gate opens.
                    self.vad.reset()
                    events = [e for e in events if e.kind != "start"]
                if not masked and any(e.kind == "start" for e in events):
                    if self._pause_first("local_vad"):
                        # A new segment: a voice that goes on starts again in the pause and confirms it
                        # (kept, the VAD stays in this one until 500 ms of silence, past confirm_ms).
                        self.vad.reset()
                        events = [e for e in events if e.kind != "start"]
                    elif not (self._gate_open() if not paused else clear or self._near_recent(self._paused_at)):
                        self.vad.reset()
                        events = [e for e in events if e.kind != "start"]
                self._vad_events(events)
                # ... and so does one the VAD made just now: the double-talk test below must not
                # confirm it on the very frame that made it (bench: a leak of the canceller paused a
                # reply and confirmed a false barge-in in one frame, RT60 500 ms, gain 1.0).
                paused = m.paused_until is not None
                if masked:
                    continue
                if (m.phase == "speaking" and self.suspect.check() and self._gate_open() and not self._explained()
                        and self._heard_enough()):
                    self._suspect("vad_chunk")
                    paused = m.paused_until is not None
                # The double-talk test sees a leak of the canceller as well as the user: it needs the
                # gate's own verdict on this very frame (to pause: against the bound at the room's decay)
                # and, to pause, the residual gate's verdict or the echo path's share under
                # SILERO_SIGN_SHARE within NEAR_HOLD_S. In a long room early in a first reply AEC3 and
                # the linear canceller both leak the reverberation, on a loud frame too: recorded per
                # frame (bench, cold, earcons on), the 10 double-talk runs on echo alone that made a
                # reply's first pause had neither; 14 of the 16 on a user had the residual gate's
                # verdict in the run itself, and 15 within NEAR_HOLD_S.
                if (m.phase == "speaking" and levels is not None and self.dtd.update(self.now, *levels[i])
                        and (gate is None or (clear_tail and near_i if paused
                                              else tail_near and self.now <= self._residual_until))
                        and not self._pause_first("echo_dtd")):
                    self.log("speech_start", source="local_vad", detector="echo_dtd")
                    self._apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
        else:
            self.dtd.disarm()
            # the next reply's runs start afresh
            self._end_runs()
            self._up_run = 0
            self.erle_drop.end_run()
            self._near_times.clear()
            self._near_all.clear()
            self._vad_events(self.vad.process(pcm))
        # The uplink (and its preroll) carries the canceller's output less its predictable residual echo.
        up = frames
        if self.res is not None and m.phase != "idle":  # idle: no uplink, no preroll needed (and no cost)
            skip = False
            if self._res_idle and len(frames):
                # The post-filter runs one frame late: it takes over from the preroll's last (raw)
                # frame and the repeat of that frame is dropped: no hole, no repeat in the uplink.
                last = self.preroll[-1] if self.preroll else None
                self.res.restart(last)
                self._res_idle, skip = False, last is not None
            # The user is there: frames the echo gate calls near-end, and all while the uplink's gate is open.
            up = self.res.process(frames, self.frontend.echo,
                                  self.frontend.near | (m.phase == "speaking" and self.now <= self._uplink_until))
            if skip:
                up = up[1:]
        elif self.res is not None:
            self._res_idle = True
        for f in up:
            self.preroll.append(f)
        if self.uplink_open and not m.muted:
            self._send_audio(self.uplink.push(self._suppress(up) if m.phase == "speaking" else up))

    # After a frame the echo gate found near-end speech in, barge-in decisions may go through this
    # long: Silero's 32 ms chunks and the strict VAD's 64 ms come after the frames that made them.
    NEAR_HOLD_S = 0.15
    # The uplink while the device speaks and the gate is closed carries silence (gain 0), so the
    # server's VAD, or GPT-Live's model, does not hear the device; once open, the post-filter
    # (device/audio/res.py) still takes out the residual echo band by band. With the gate alone the
    # parrot heard itself on a human reply at gain 1.0 (bench live: allison, 2.8 s in). A closed
    # gate at -40 dB was not enough: Silero hears speech 40 dB down, and early in a cold first reply
    # AEC3 leaks the reply at 60-72 dB (bench, server mode, cold, RT60 500 ms: the server's VAD
    # started on echo in 3 of 120 human runs, the uplink never open).
    CLOSED_GAIN = 0.0
    # ... and opens after this many near-end frames in a row (single frames come from the echo too),
    # each unexplained by the echo path or, in a run begun with the canceller converged, with its
    # output within its converged ERLE of the mic and the cancellers' sign (see _frames for both),
    # or on a local barge-in decision (_open_for_user).
    UPLINK_NEAR_FRAMES = 3
    UPLINK_HOLD_S = 0.5  # then it stays open this long after each such frame: the rest of a word
    # The reply pauses after this many near-end frames in a row (the VAD on AEC3's output in double
    # talk often stays below vad.suspect_threshold through a short word).
    PAUSE_NEAR_FRAMES = 5
    # ... once the gate has learnt the echo path on this many frames of loud reference (measured:
    # with 30, 22 false pauses in 11 min of espeak replies came 0.4-0.5 s into the first one; with
    # 50, 12 in 9.3 min of echo-only espeak replies, 0.5-0.7 s in; with 80, 8).
    PAUSE_LEARNT_FRAMES = 80
    # ... and before that, a run whose every frame the echo path predicts at most this share of
    # (recorded per frame, first replies with earcons on: 0.5 adds no pause on the echo alone, 0.8
    # adds 3 in 120 espeak runs; a word 0.4-0.6 s into the first reply makes such runs, the echo
    # gate's own verdict alone may not pause before PAUSE_LEARNT_FRAMES). Harness, cold, earcons off:
    # no false pause more; 4 espeak words caught sooner (talk_102: 723 -> 103 ms), human_talk_098
    # caught, human_talk_058 missed (its young pause did not confirm).
    YOUNG_PAUSE_SHARE = 0.5
    # ... or after this many frames in a row the residual gate calls near-end (offline, warm, runs on
    # the reply's echo alone per 10 min of espeak and human replies: 0 and 7.6 with 5; none with 8).
    RESIDUAL_NEAR_FRAMES = 8
    # ... or this many, once the gate has learnt the echo path on RESIDUAL_WARM_LEARNT frames (10 s of
    # reply): the residual's predicted level is learnt by then. Recorded per frame over the bench set
    # (240 runs, earcons on), a run of 6 on echo alone came only in first replies, 3.5-8.1 s in (gate
    # learnt 294-760 frames); none at 1,083 frames or more (second turns, and first replies past 10 s).
    # Harness, second turns: caught 70 -> 72 (espeak) and 65 -> 66 (human) of 72, onset -> silent p50
    # 85 -> 66 and 150 -> 137 ms, false pauses unchanged (0 and 3); first replies unchanged.
    RESIDUAL_WARM_FRAMES = 6
    RESIDUAL_WARM_LEARNT = 1000
    # ... and a run of this many in the pause confirms the barge-in (harness, warm: with 8, a short
    # word was often over first, caught 66 and 59 of 72 espeak and human; with 5, 70 and 61, false
    # barge-ins 0 cold and warm either way).
    RESIDUAL_CONFIRM_FRAMES = 5
    # ... or after this many frames in a row both gates call near-end: the echo gate (against its bound
    # at the room's decay) and the residual gate, neither alone enough before the echo gate has learnt
    # the echo path (PAUSE_LEARNT_FRAMES) or the linear canceller converged (its own run needs that).
    # A word 0.5-0.9 s into a first reply makes such runs where the echo path explains all of the mic
    # (bench, cold, human_talk_060: a word 6 dB down at gain 0.3, runs of 3 and 5, share 1.0, missed).
    # Harness, cold, 240 runs: earcons off, human caught 35 -> 40 of 72, espeak unchanged; earcons on,
    # caught unchanged, 9 words sooner (talk_096 727 -> 177 ms); false pauses unchanged either way.
    # With 4, 3 false pauses more (espeak, 1.21 s into a first reply, RT60 250 ms). Second turns and
    # server mode: unchanged.
    AGREE_NEAR_FRAMES = 5
    # ... and a run of this many in the pause confirms it, once the pause is CONFIRM_AFTER_S old,
    # though the gate's bound still holds an unmeasured room's tail (RT60 500 ms assumed: ~350 ms
    # after a pause) and the linear canceller has not converged (the residual gate's own run needs
    # that). Harness, cold, 240 runs: caught 61 -> 62 and 45 -> 46 of 72 (talk_106, human_talk_060),
    # earcons off 40 -> 42 human; false barge-ins 0 and false pauses unchanged; second turns unchanged.
    AGREE_CONFIRM_FRAMES = 3
    ROOM_READ_S = 1.0  # how often the room's decay is read off the converged linear canceller's filter
    # In a pause, a run of CONFIRM_NEAR_FRAMES near-end frames confirms the barge-in, once the
    # pause is CONFIRM_AFTER_S old (frames before it were judged against the reply still playing).
    CONFIRM_NEAR_FRAMES = 3
    CONFIRM_AFTER_S = 0.1
    CONFIRM_ECHO_SHARE = 0.25  # ... in frames whose predicted echo is at most this share of the mic
    # ... or at once, however young the pause, on this many frames in a row the echo cannot be in
    # (a short word said at the pause is over before the echo dies away: bench, espeak "talk_080").
    CONFIRM_STRONG_FRAMES = 2
    # The VAD hears the raw mic in frames whose predicted echo is at most this share of it.
    PAUSE_ECHO_SHARE = 0.1
    # ... and in every frame of the pause once the gate's bound on the echo is at most this far over
    # the mic's noise floor, or the pause is old enough for the room's tail to have fallen from that
    # bound as it was at the pause (or at its peak after) to there, at the room's decay (_echo_gone).
    PAUSE_ECHO_LEFT_DB = 5.0
    # In a pause the mic is loud enough to confirm at this much over its noise floor (see _frames).
    # Harness, 240 runs each: caught cold 58 -> 59 and 36 -> 37, warm 70 -> 70 and 64 -> 65 (espeak,
    # human); false pauses and barge-ins unchanged.
    SOFT_OVER_FLOOR_DB = 15.0

    def _end_runs(self) -> None:
        """The runs that pause the reply start afresh (a pause made or ended, a reply over); the
        uplink's run goes on through a pause."""
        self._near_run = self._res_run = self._onset_run = self._young_run = self._agree_run = 0

    def _echo_gone(self, left: float, paused: bool, since: float, from_db: float) -> bool:
        """The reply's echo is down in the noise: the gate's bound on it this frame (`left`,
        EchoGate.echo_left_db) at most PAUSE_ECHO_LEFT_DB over the noise floor, or, in a pause, time
        enough since `since` (mic time) for it to fall from `from_db` (the bound at the pause, or at
        its peak after; inf: not known yet, never) to there, at the room's decay (EchoGate.pause_tail_db,
        dB per 10 ms frame: measured, a long room's until then). The frame's own bound can stay high
        longer: without a delay estimate the gate holds the loudest reference of 160 ms before it
        lets it decay."""
        gate = self.frontend.echo_gate
        if left <= self.PAUSE_ECHO_LEFT_DB:
            return True
        if not paused or gate is None:
            return False
        return self.now >= since + max(0.0, from_db - self.PAUSE_ECHO_LEFT_DB) / gate.pause_tail_db / 100

    def _suspect(self, detector: str) -> None:
        """Pause the reply on a suspicion; what confirms it must be heard after the pause (see _pause_first)."""
        m = self.machine
        was = m.paused_until
        self._pause_detector = detector
        self._apply(m.handle(cv.SuspectSpeech(self.now)))
        if was is not None:
            return
        if m.paused_until is None:
            self._open_for_user()  # server mode: the server decides, on what the uplink carries
        else:
            self._paused_at = self._peak_at = self.now
            self._left_at_pause = self._left_peak = self._left_now
            self._end_runs()

    def _open_for_user(self) -> None:
        """A barge-in detector heard the user while the reply plays and the uplink is open (server
        barge-in mode, GPT-Live), where it does not pause the reply: the uplink passes for
        UPLINK_HOLD_S, so the server hears them. Its own opening (near-end runs the echo path does
        not explain) missed most words under the reply that the local detectors catch (bench, server
        mode, cold: the server's VAD heard 54 and 41 of 72 users; its own runs had not opened it for
        13 and 28 of the others)."""
        if self.uplink_open and self.machine.phase == "speaking":
            self._uplink_until = max(self._uplink_until, self.now + self.UPLINK_HOLD_S)

    LINEAR_DROP_DB = 6.0

    def _linear_drop(self, i: int, levels: np.ndarray | None) -> bool:
        """On a loud frame i (ErleDrop.loud_db, where its average is learnt), the linear canceller
        takes LINEAR_DROP_DB less off the mic than it takes off the reply's echo (ErleDrop.linear_erle;
        its output, ResidualGate.level_db). With the residual gate's verdict, the cancellers' sign
        that frame i holds more than the reply's echo (`cancellers` in _frames). Recorded per frame
        over the bench set (earcons on, first replies and second turns): neither that sign nor a
        share under 1 was in the runs of the echo gate's 12 false pauses (the bound missing the
        reply's echo where the echo's lag settles, 2.5 s into a first reply, and a long room's
        reverberation building up over it). On quiet frames the linear canceller's ERLE is no
        measure: a long room's tail it cannot model stood 10 dB over the mic less its average
        (bench, warm, RT60 500 ms: a false pause)."""
        fe = self.frontend
        avg = self.erle_drop.linear_erle
        if avg is None or levels is None or i >= len(fe.residual_db):
            return False
        mic, lin = float(levels[i, 0]), float(fe.residual_db[i])
        return bool(mic >= self.erle_drop.loud_db and np.isfinite(lin) and lin >= mic - avg + self.LINEAR_DROP_DB)

    def _residual_frames(self) -> int:
        """How long a run of the residual gate's near-end frames pauses the reply (frames of 10 ms)."""
        gate = self.frontend.echo_gate
        warm = gate is not None and gate.learnt >= self.RESIDUAL_WARM_LEARNT
        return self.RESIDUAL_WARM_FRAMES if warm else self.RESIDUAL_NEAR_FRAMES

    def _near_recent(self, after: float) -> bool:
        """The echo gate found near-end speech in at least 3 frames within the last NEAR_HOLD_S,
        all later than `after` (mic time): in a pause, the frames that made it do not confirm it."""
        start = self.now - self.NEAR_HOLD_S
        return sum(1 for t in self._near_times if t >= start and t > after) >= 3

    def _pause_first(self, detector: str) -> bool:
        """A barge-in detector fired while the reply still plays: pause instead (True) when the
        two-stage barge-in is on, so only speech heard in the pause confirms it. Measured (bench
        barge_in, human voices): every false barge-in was a strict-VAD start on a leak of the
        canceller, or a double-talk run on one, with the reply playing."""
        m = self.machine
        if m.phase != "speaking" or m.paused_until is not None:
            return False
        self._suspect(detector)
        return m.paused_until is not None

    def _gate_open(self) -> bool:
        """Barge-in decisions may go through: no echo gate, no echo expected, the gate still
        learning the echo path (the first ~0.3 s of reply after start, while AEC3 suppresses
        everything anyway), the canceller converged (its output is the user's), or the gate
        found near-end speech just now (EchoGate.near_onset: not a room's tail it missed)."""
        gate = self.frontend.echo_gate
        return (gate is None or not gate.active or not gate.ready or self.convergence.converged
                or self.now <= self._near_until)

    YOUNG_NEAR_FRAMES = 3

    def _heard_enough(self) -> bool:
        """A Silero decision (a fast-stage chunk, a VAD start) may pause the reply: as _gate_open,
        except while the canceller has not converged, or the gate has learnt the echo path for less
        than its own pause needs (PAUSE_LEARNT_FRAMES): then a near-end frame or two of the gate do
        not open it, YOUNG_NEAR_FRAMES within NEAR_HOLD_S do. Early in a first reply AEC3 leaks the
        reply at up to the mic's level (its ERLE meter reads converged in one frame, leaking in the
        next), Silero hears a voice in it, and a room's tail beats the gate's young bound in a
        frame here and there; a user's voice makes more (bench, cold, rooms, 0.6-1.1 s into the
        first reply: 22 of 41 false pauses, 20 of them a Silero decision, 21 after at most two
        near-end frames in NEAR_HOLD_S). Either way a frame within NEAR_HOLD_S must show the user by
        a second measure: the cancellers' (the residual gate's verdict, _linear_drop), or the echo
        path's share under SILERO_SIGN_SHARE."""
        gate = self.frontend.echo_gate
        if gate is None or not gate.active or not gate.ready:
            return True
        if self.now > self._sign_until:
            return False
        if self.convergence.converged and gate.learnt >= self.PAUSE_LEARNT_FRAMES:
            return True
        start = self.now - self.NEAR_HOLD_S
        return sum(1 for t in self._near_all if t >= start) >= self.YOUNG_NEAR_FRAMES

    # Recorded per frame over the bench set (earcons on, first replies and second turns): of the 9
    # Silero decisions that made a reply's first false pause, 8 had none of the residual gate's
    # verdict, the linear canceller's drop or a share under 0.4 in NEAR_HOLD_S before them; of the 53
    # that paused on a user within DETECT_WINDOW_S, 1 had none (talk_063, cold: share 0.49 at least).
    SILERO_SIGN_SHARE = 0.4

    def _explained(self) -> bool:
        """While the reply plays, the echo path has predicted all of the mic (EchoGate.echo_share
        1.0: within path_margin_db) for NEAR_HOLD_S: a VAD start or a fast-stage chunk then heard
        the canceller leaking the reply, not the user, and pauses nothing. Measured (bench, cold,
        240 runs): 57 of the 113 false pauses came so (50 of the fast stage's 69, all 7 of the VAD
        start's), and 23 of the 76 pauses those two made after a user's onset, most of them users
        12 dB down under a loud reply, caught later by the gate or missed (caught: 95 -> 94 of 144).
        Not where both gates called a frame near-end within NEAR_HOLD_S (the residual gate, and the
        echo gate against its fast bound): the linear canceller's residual holds more than the
        reply's. Harness, cold, 240 runs: caught 60 -> 61 and 44 -> 45 of 72 (talk_108, human_talk_113,
        a voice 12 dB under a reply at gain 1.0), with earcons off 60 -> 61; false pauses unchanged,
        second turns unchanged. The residual gate's verdict alone added a false pause (human_silent_015,
        RT60 500 ms, a single frame of it 2.19 s into a first reply, the linear canceller unconverged)."""
        gate = self.frontend.echo_gate
        return (gate is not None and gate.active and gate.ready and self.machine.paused_until is None
                and self.now > self._unexplained_until and self.now > self._agree_until)

    def _suppress(self, frames: np.ndarray) -> np.ndarray:
        """Residual echo suppression on the uplink: [k, 160] int16 → [k, 160] int16, times a gain
        ramped over each frame from the last frame's: 1 while the echo gate hears near-end speech
        (or expects no echo), CLOSED_GAIN otherwise."""
        gate = self.frontend.echo_gate
        if gate is None:
            return frames
        # Only the gate's own verdict counts here: a converged canceller still leaves 25-45 dB of
        # echo, and its leaks are what the server's VAD takes for the user.
        passes = not gate.active or self.now <= self._uplink_until
        target = 1.0 if passes else self.CLOSED_GAIN
        n = frames.size
        ramp = np.linspace(self._uplink_gain, target, n, dtype=np.float32)
        self._uplink_gain = target
        return np.rint(frames.reshape(-1) * ramp).astype(np.int16).reshape(frames.shape)

    def _vad_events(self, events: list[Any]) -> None:
        for ev in events:
            kind = "speech_start" if ev.kind == "start" else "speech_end"
            # The VAD counts its own time (it is fed only in conversations): map to the mic clock.
            onset = self.now - (self.vad.fed_s - ev.t)
            self.log(kind, source="local_vad", onset=round(onset, 3))
            start = ev.kind == "start"
            self.appliance.duck(start)
            masked = self._masked()  # before the ring stops: speech over a ring stops the ring, nothing more
            if start and self.appliance.ringing:
                self.appliance.stop_ring(self.now, "speech")
            if start and self.machine.phase == "speaking" and masked:
                continue  # our own sound in the mic, or the "stop" for a ring: no barge-in
            cls = cv.SpeechStart if start else cv.SpeechEnd
            self._apply(self.machine.handle(cls(self.now, "local_vad")))

    def _send_audio(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.link.send_audio(chunk)

    def _player_notes(self) -> None:
        notes = self.player.notes
        while notes:
            note = notes.popleft()
            if note.kind == "start":
                if note.item_id != self._playing:
                    if self._playing is not None:
                        self.player.forget(self._playing)  # played to its end: never truncated
                    self._playing = note.item_id
                    # speaker_s: the exact speaker sample it started at (t is block-granular).
                    self.log("playback_start", item_id=note.item_id,
                             speaker_s=round(note.sample / self.player.rate, 4))
            elif note.kind == "idle":
                if self.machine.reply_pending(self.now):
                    # The reply arrives slower than it plays: a gap, not the end.
                    self.log("playback_underrun", item_id=note.item_id)
                    self._dry = True
                    self.underruns += 1
                    continue
                self._playback_done()
        if self._dry and (self.player.busy or not self.machine.reply_pending(self.now)):
            self._dry = False
            if not self.player.busy:  # no more came (a GPT-Live reply has no done event): it ended
                self._playback_done()

    def _playback_done(self) -> None:
        """The reply is complete and fully played."""
        self._dry = False
        if self._playing is not None:
            self.log("playback_stop", reason="done", item_id=self._playing,
                     played_ms=self.player.played_ms(self._playing))
            self.player.forget(self._playing)
            self._playing = None
        self._apply(self.machine.handle(cv.PlaybackIdle(self.now)))

    def _button(self, action: cv.ButtonAction) -> None:
        self.log("button", action=action)
        if action == "press" and self.appliance.ringing:
            # A press silences the ring and does nothing else (no conversation, no barge-in).
            self.appliance.stop_ring(self.now, "button")
            self._swallow_release = True
            return
        if action in ("release", "hold") and self._swallow_release:
            self._swallow_release = action != "release"
            return
        self._apply(self.machine.handle(cv.Button(self.now, action)))

    def volume_button(self, direction: int) -> None:
        """A volume up (+1) / down (-1) button (gpiozero thread → call_soon_threadsafe)."""
        self.appliance.volume_step(self.now, direction)

    def _lone_earcon(self) -> bool:
        """A short earcon plays with no reply under it (nor a ring): the canceller cleans it with an
        APM of its own (device/audio/aec.py: with the wake chime as the first reference of the
        replies' APM, the demo's reply tripped a false barge-in), so its echo leaves the uplink
        and the replies' canceller stays as the replies left it."""
        return self.now < self._quiet_until and not self.player.busy and not self.appliance.ringing

    def _masked(self) -> bool:
        """Our own sound is in the mic: a short earcon, or a ring over a reply (speech stops the ring only)."""
        return self.now < self._quiet_until or self.appliance.ringing

    def _ring_led(self) -> None:
        ringing = self.appliance.ringing
        if ringing != self._ring_shown:
            self._ring_shown = ringing
            pattern = "ringing" if ringing else self.machine.shown
            if pattern:
                self.log("led", pattern=pattern)
                self.indicator.show(pattern)

    def earcon(self, name: str) -> None:
        """Play a short sound and mask it from the wake word and barge-in detectors while it sounds."""
        pcm = self.appliance.earcons.get(name)
        if pcm is not None and self.appliance.earcon(name, self.now):
            self._quiet_until = max(self._quiet_until, self.now + len(pcm) / self.player.rate + 0.2)

    # ------------------------------------------------------------------ link callbacks
    def on_connect(self) -> None:
        self.log("connect")
        self._new_session()
        self._apply(self.machine.handle(cv.Connected(self.now)))

    def _new_session(self) -> None:
        """Item and event ids of the last session mean nothing to the next one."""
        self._received.clear()
        self._sent_types.clear()

    def on_disconnect(self, reason: str) -> None:
        self.log("disconnect", reason=reason)
        self._new_session()
        if not self._stopping:  # our own close at the end of a run is not "offline"
            self._apply(self.machine.handle(cv.Disconnected(self.now, reason)))

    def on_sent(self, event: dict[str, Any]) -> None:
        etype = event.get("type", "?")
        if etype == self.dialect.audio_event:
            return
        if isinstance(event.get("event_id"), str):  # an `error` may name it (error.event_id)
            self._sent_types[event["event_id"]] = str(etype)
            while len(self._sent_types) > ITEMS_KEPT:
                self._sent_types.popitem(last=False)
        item = event.get("item")
        if (etype in ("conversation.item.create", "response.item.create") and isinstance(item, dict)
                and item.get("type") == "function_call_output"):
            started = self._call_started.pop(str(item.get("call_id")), None)
            rt_ms = None if started is None else round((time.perf_counter() - started) * 1000, 3)
            if rt_ms is not None:
                self.tool_round_trips_ms.append(rt_ms)
            self.log("send", type=etype, item_type="function_call_output", call_id=item.get("call_id"),
                     round_trip_ms=rt_ms)
            return
        if etype == "conversation.item.truncate":
            self.log("send", type=etype, item_id=event.get("item_id"), audio_end_ms=event.get("audio_end_ms"))
        else:
            self.log("send", type=etype)

    def on_link_error(self, message: str) -> None:
        # Counted by the client's stats already (the summary adds those).
        log.warning("realtime link: %s", message)
        self.log("error", source="link", message=message)

    def on_server_event(self, ev: ServerEvent) -> None:
        m = self.machine
        try:
            events = self.dialect.machine_events(ev, self.now)
        except ProtocolError as exc:  # not seen by the client's parser: ours to count
            self.errors += 1
            self.on_link_error(str(exc))
            return
        view = self.dialect.appliance_event(ev)
        if ev.audio is None:  # audio deltas are not logged (contract)
            if view is not None and view[0] != ev.type:  # GPT-Live's response.event: say what it carries
                self.log("recv", type=ev.type, event_type=view[0])
            else:
                self.log("recv", type=ev.type)
        said = self.dialect.transcript(ev) or appliance_events.transcript(ev.type, ev.data)
        if said is not None:
            self._transcript(*said)
        self._appliance_event(ev, view)  # function calls first: a response.done's ToolDone precedes its ResponseDone
        for e in events:
            if isinstance(e, (cv.SpeechStart, cv.SpeechEnd)):
                self.log("speech_start" if isinstance(e, cv.SpeechStart) else "speech_end", source=e.source)
            elif isinstance(e, cv.SessionStarted):
                self.log("session", action="started", api=self.dialect.api)
            elif isinstance(e, cv.SessionEnded):
                self.log("session", action="expired" if e.reason == "expired" else "closed", api=self.dialect.api,
                         reason=e.reason)
            if isinstance(e, cv.AudioDelta):  # this session's items and how much came of each
                self._received[e.item_id] = self._received.pop(e.item_id, 0) + len(e.pcm)
                while len(self._received) > ITEMS_KEPT:
                    self._received.popitem(last=False)
            elif isinstance(e, cv.ResponseDone):
                self.player.mark_complete()  # the jitter buffer need not wait for more of it
                resp = json_object(ev.data.get("response"))
                self._response_outcome(e.response_id, e.status, json_object(resp.get("status_details")))
            self._apply(m.handle(e))
            if isinstance(e, cv.ResponseDone) and m.phase == "speaking" and m.response_id is None \
                    and not self.player.busy:
                self._playback_done()  # everything already played before the response closed
        if ev.type == "error":  # counted in the client's stats
            self._server_error(json_object(ev.data.get("error")))
        elif ev.type == "response.output_audio_transcript.done":
            log.debug("assistant said: %s", ev.data.get("transcript", ""))

    def _response_outcome(self, rid: str, status: str, details: dict[str, Any]) -> None:
        """Say how a response ended when it did not simply complete (journal + timeline).

        failed: the server could not answer (quota, server error): an error line, `error` shown
        briefly by the machine. incomplete: cut short (max_output_tokens, content_filter): what
        came is played, a warning. cancelled: by the device (barge-in, reopened turn) it is
        expected and only noted at debug level; by the server (turn_detected) an info line.
        Source: `response.done`, RealtimeResponse.status / status_details."""
        if status in ("completed", "in_progress", ""):
            return
        err = json_object(details.get("error"))
        reason = json_text(err.get("code")) or json_text(details.get("reason")) or json_text(err.get("type"))
        ours = rid in self.machine.dropped_responses
        if status == "failed":
            log.error("response %s failed: %s%s", rid, reason or "no reason given",
                      f" ({err['message']})" if isinstance(err.get("message"), str) else "")
            self.log("response_failed", response_id=rid, status=status, reason=reason)
        elif status == "incomplete":
            log.warning("response %s incomplete: %s", rid, reason or "no reason given")
            self.log("response_incomplete", response_id=rid, status=status, reason=reason)
        elif status == "cancelled":
            (log.debug if ours else log.info)("response %s cancelled (%s)", rid,
                                              "by the device" if ours else reason or "by the server")
            self.log("response_cancelled", response_id=rid, status=status, reason=reason,
                     by="device" if ours else "server")

    def _server_error(self, err: dict[str, Any]) -> None:
        """A server `error`: logged; one that ends the response the device waits for ends the wait.

        That is an error naming our response.create (error.event_id), or any error but the
        harmless ones while the device waits for a response that was never created."""
        code = json_text(err.get("code"))
        about = self._sent_types.get(json_text(err.get("event_id")), "")
        log.warning("server error%s%s: %s", f" {code}" if code else "", f" (on {about})" if about else "",
                    json_text(err.get("message")) or "(no message)")
        m = self.machine
        if code == "session_expired":  # the link starts a new session at once
            self.log("session", action="expired", api="realtime")
        if about == "response.create" or code == "conversation_already_has_active_response":
            self._apply(m.handle(cv.CreateFailed(self.now, code)))
        elif (not about and m.phase == "thinking" and m.response_id is None and code not in HARMLESS_ERRORS):
            self._apply(m.handle(cv.CreateFailed(self.now, code)))

    # ------------------------------------------------------------------ tools, transcripts, MCP
    def _appliance_event(self, ev: ServerEvent, view: tuple[str, dict[str, Any]] | None) -> None:
        calls = self.dialect.function_calls(ev)
        if calls:
            self._run_calls(calls)
            return
        if view is None:
            return
        etype, d = view
        appliance_events.learn_labels(etype, d, self._mcp_labels)
        note = appliance_events.mcp_note(etype, d, self._mcp_labels)
        if note is not None:
            fields, problem = note
            self.log("mcp", **fields)
            if problem:
                log.warning("%s", problem)
                self.log("error", source="mcp", message=problem)

    def _transcript(self, role: str, text: str) -> None:
        """A transcript event; the words only when [privacy] transcripts_in_journal allows (else their length)."""
        if self._private:
            self.log("transcript", role=role, chars=len(text))
        else:
            self.log("transcript", role=role, text=text)
            log.info("%s said: %s", role, text)

    def _run_calls(self, calls: list[appliance_events.FunctionCall]) -> None:
        """Run the model's function calls, send their outputs, then let the model answer."""
        stop = False
        response_id = ""
        for c in calls:
            if c.call_id in self._calls_done:
                continue  # seen in response.function_call_arguments.done already
            self._calls_done.append(c.call_id)
            if c.response_id in self.machine.dropped_responses:
                continue  # cancelled by a barge-in: the user moved on
            self._call_started[c.call_id] = time.perf_counter()
            result = self.appliance.call(self.now, c.name, c.call_id, c.arguments)
            self.link.send(self.dialect.tool_output(c.call_id, result.output))
            stop = stop or result.stop
            response_id = c.response_id
            if not self.link.connected:
                self._call_started.pop(c.call_id, None)  # not sent: no round trip to report
        if response_id or stop:
            self._apply(self.machine.handle(cv.ToolDone(self.now, response_id, stop=stop)))

    # ------------------------------------------------------------------ actions
    def _apply(self, actions: list[cv.Action]) -> None:
        for a in actions:
            if isinstance(a, cv.Show):
                was, self._shown = self._shown, a.state
                self.log("state", state=a.state)
                if not self._ring_shown:  # a ringing timer keeps its pattern until it stops
                    self.log("led", pattern=a.state)
                    self.indicator.show(a.state)
                self._state_earcon(was, a.state)
            elif isinstance(a, cv.OpenUplink):
                self._open_uplink(a.preroll)
            elif isinstance(a, cv.CloseUplink):
                if self.uplink_open:
                    self.uplink_open = False
                    self.log("uplink_stop")
            elif isinstance(a, cv.Play):
                self.player.enqueue(a.item_id, a.pcm)
                if self.machine.sessions:  # full duplex: the speaker keeps close behind the model
                    skipped = self.player.trim(self.settings.conversation.live_buffer_ms)
                    if skipped:
                        self.log("playback_skip", item_id=a.item_id, ms=skipped * 1000 // self.player.rate)
            elif isinstance(a, cv.StopPlayback):
                self._stop_playback(a.reason)
            elif isinstance(a, cv.PausePlayback):
                self.player.pause()
                self.log("playback_pause", reason=a.reason, detector=self._pause_detector,
                         item_id=self._playing, played_ms=self.player.played_ms(self._playing) if self._playing else 0)
            elif isinstance(a, cv.ResumePlayback):
                self.player.resume()
                # The pause did not confirm, so its near-end runs were the room's tail, not the user:
                # a new pause needs a new run (bench, cold, RT60 500 ms: a run of 14 tail frames
                # paused the resumed reply on its first frame, 3 times in a row, human_silent_007).
                self._end_runs()
                # ... and so was the rest of what the gate heard in it: it opens nothing after the resume.
                self._near_all.clear()
                self._near_times.clear()
                self._near_until = self._unexplained_until = self._sign_until = self._residual_until = self.now
                if self.frontend.echo_gate is not None:
                    self.frontend.echo_gate.pause_unconfirmed()
                self.log("playback_resume", reason=a.reason, item_id=self._playing,
                         played_ms=self.player.played_ms(self._playing) if self._playing else 0)
            elif isinstance(a, cv.BargeIn):
                self.log("barge_in", source=a.source)
            elif isinstance(a, cv.OpenSession):
                self.log("session", action="renew" if a.renew else "start", api=self.dialect.api)
            elif isinstance(a, cv.CloseSession):
                self.log("session", action="close", api=self.dialect.api)
            elif isinstance(a, cv.StrictVad):
                self.vad.set_strict(a.strict)
            elif isinstance(a, cv.ResetWake):
                self.wake.reset()
            elif isinstance(a, cv.MuteChanged):
                self.log("mute", muted=a.muted)
                if not self._booting:
                    self.earcon("mute" if a.muted else "unmute")
                if self.on_mute_changed is not None:
                    self.on_mute_changed(a.muted)
            played_ms: Callable[[str], int] = self.player.played_ms
            if isinstance(a, cv.SendTruncate):
                # The item the speaker was cutting (not the latest received), at most what came of
                # it, of this session only; else nothing to truncate.
                target = self._truncate_target()
                if target is None:
                    continue
                a, played_ms = cv.SendTruncate(target[0]), _constant(target[1])
            # The wire events of this action on the configured API (cancel, truncate, session.start...).
            for event in self.dialect.wire(a, played_ms):
                self.link.send(event)
        in_conversation = self.machine.phase != "idle"
        if self._in_conversation and not in_conversation:
            # The conversation is over and its truncates are sent (above): forget its items.
            self.player.forget_played()
        self._in_conversation = in_conversation

    def _state_earcon(self, was: str, now: str) -> None:
        """wake: a conversation opened; done: the turn went to the model; error: offline or a fault."""
        if now == "idle":
            self.appliance.duck(False)  # no one is talking to the device any more
        if was == "idle" and now == "listening":
            self.earcon("wake")
        elif was == "listening" and now == "thinking":
            self.earcon("done")
        elif now in ("offline", "error") and was not in ("", "offline", "error"):
            self.earcon("error")  # not at start-up, before the first connection

    def _open_uplink(self, preroll: bool) -> None:
        if self.machine.muted:
            return
        if not self.uplink_open:
            self.uplink_open = True
            self.uplink.reset()
            if not preroll:
                self.vad.reset()  # a fresh turn; on a barge-in the VAD is mid-speech and keeps its state
            self.log("uplink_start")
            if preroll and self.preroll:
                # The first syllables of a barge-in were heard before the decision: send them too.
                self._send_audio(self.uplink.push(np.stack(list(self.preroll))))

    def _stop_playback(self, reason: str) -> None:
        # The item coming out of the speaker now (one response may carry several items).
        item = self.player.current_item or self._playing
        self.player.flush()
        self._stopped = None
        if item is not None:
            played = self.player.played_ms(item)
            self._stopped = (item, played)
            self.log("playback_stop", reason=reason, item_id=item, played_ms=played)
            self.player.forget(item)
        self._playing = None
        self.player.notes.clear()

    def _truncate_target(self) -> tuple[str, int] | None:
        """(item, ms) for a truncate: the item the last stop cut, at what was played of it, never
        more than was received; None if nothing of this session was cut."""
        stopped, self._stopped = self._stopped, None
        if stopped is None or stopped[0] not in self._received:
            return None
        item, played = stopped
        received_ms = self._received[item] // 2 * 1000 // self.player.rate  # PCM16 as the player plays it
        return item, min(played, received_ms)

    def _finish(self) -> None:
        self.appliance.close()
        s = self.link.stats
        self.log("summary", uplink_audio_ms=int(s.uplink_audio_ms), uplink_bytes=int(s.uplink_bytes),
                 reconnects=int(s.reconnects), errors=int(s.errors + self.errors), **self.audio_counters())
