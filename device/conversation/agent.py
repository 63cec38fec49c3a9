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
from device.audio.room import EchoRecord, RoomMemory, noise_floor_db
from device.config import Settings
from device.conversation import machine as cv
from device.conversation import speaking
from device.errors import VoxboxError
from device.link.base import Link, LinkFactory
from device.link.dialect import Dialect, json_object, json_text
from device.link.dialect import for_settings as dialect_for
from device.link.protocol import ProtocolError, ServerEvent
from device.listen.vad import VadEvent, VadSegmenter
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
        self.indicator: Indicator = indicator or NullIndicator()
        gate, residual = self._new_gates(aec is not None)
        # The reply's last seconds for the room's path (device/audio/room.py; _learn_room)
        record = EchoRecord() if residual is not None and settings.aec.remember_room else None
        self.frontend = Frontend(audio.in_rate, settings.audio.channels, aec=aec, out_rate=self.player.rate,
                                 echo_gate=gate, residual_gate=residual, record=record)
        self.res = ResidualEchoSuppressor() if gate is not None else None  # the uplink's post-filter
        self._res_idle = True  # the post-filter rested: it restarts from the preroll's last frame
        self.barge = speaking.BargeIn(self, settings)  # pauses, confirms and the uplink while the device speaks
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
        self._room_learnt_at: float | None = None  # mic time the room's path was last taken (_learn_room)
        self._probe_wanted = False  # the start-up sound is to measure the room (_rehearse_room, _probe_room)
        self._probe_until: float | None = None  # ... it plays, and its echo is recorded, until then (mic time s)
        self._rehearse_room()
        self._calls_done: deque[str] = deque(maxlen=64)  # call_ids run (args.done and response.done both carry them)
        self._call_started: dict[str, float] = {}  # call_id -> perf_counter at arguments done
        self.tool_round_trips_ms: deque[float] = deque(maxlen=256)  # arguments done -> output sent (last 256)
        self._mcp_labels: dict[str, str] = {}
        self._quiet_until = 0.0  # a short earcon sounds until then (+ margin): not a wake, not a barge-in
        self._earcon_quiet = 0.0  # ... of which the earcons but the start-up sound (earcon()) ask this much
        self._swallow_release = False  # the press stopped a ring: its release opens no conversation
        self._ring_shown = False
        self._shown = ""  # the state last shown (earcons follow its changes)
        self._private = not settings.privacy.transcripts_in_journal
        self._in_conversation = False  # a conversation was open at the last apply (see there)
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
        self.apply(self.machine.handle(cv.Fault(self.now, reason)))
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
                                 out_rate=self.player.rate, record=self.frontend.record)
        self.log("audio_reopened")
        if self._probe_until is not None:  # the start-up sound's record broke with the card: not measured
            self._end_probe("the sound card was reopened")
        self.apply(self.machine.handle(cv.FaultCleared(self.now)))
        return True

    def start(self) -> None:
        """Show the first state (idempotent; `run()` calls it)."""
        if not self._started:
            self._started = True
            self._booting = True  # a mute state restored at start-up is not a press: no chime
            try:
                self.apply(self.machine.start())
            finally:
                self._booting = False

    def handle(self, event: cv.Event) -> None:
        """Feed one event to the conversation machine and carry out its actions.

        For events the agent does not observe itself: a bench's scripted turn end, a test's wake.
        """
        self.apply(self.machine.handle(event))

    def keep_going(self) -> bool:
        """After the mic ends: keep the clock running while a reply is due or playing."""
        m = self.machine
        # A session per conversation runs on input: it goes on until the conversation closes it.
        return self.player.busy or m.phase in ("thinking", "speaking") or (m.session_open and m.phase != "idle")

    def press(self, action: cv.ButtonAction) -> None:
        """A live button event (gpiozero thread → queued, handled on the next block)."""
        self._live_buttons.append((action,))

    def process_block(self, block: np.ndarray) -> None:
        if self._probe_wanted or self._probe_until is not None:
            self._probe_room()
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
        self.apply(self.machine.handle(cv.Tick(self.now)))
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
                self.apply(m.handle(cv.Wake(self.now, d.wake_word, d.score)))
                if m.phase != "idle":
                    break
            if self.appliance.ringing and m.phase == "idle":
                self.vad_events(self.vad.process(pcm))  # "stop!" (any speech) ends the ring
        elif m.phase == "speaking":
            self.barge.frames(frames, levels)
        else:
            self.barge.reply_over()
            self.vad_events(self.vad.process(pcm))
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
                                  self.frontend.near | (m.phase == "speaking" and self.barge.uplink_passes))
            if skip:
                up = up[1:]
        elif self.res is not None:
            self._res_idle = True
        for f in up:
            self.preroll.append(f)
        if self.uplink_open and not m.muted:
            # While the device speaks the barge-in detectors open it; after a reply played out, its
            # room tail is held back (speaking.BargeIn.tail).
            sent = self.barge.suppress(up) if m.phase == "speaking" else self.barge.tail(up)
            self._send_audio(self.uplink.push(sent))

    def vad_events(self, events: list[VadEvent]) -> None:
        """The VAD's start/end events (device/listen/vad.VadEvent, times in s of audio fed to it) to
        the machine, on the mic clock; a start ducks the reply and stops a ring."""
        for ev in events:
            kind = "speech_start" if ev.kind == "start" else "speech_end"
            # The VAD counts its own time (it is fed only in conversations): map to the mic clock.
            onset = self.now - (self.vad.fed_s - ev.t)
            self.log(kind, source="local_vad", onset=round(onset, 3))
            start = ev.kind == "start"
            self.appliance.duck(start)
            masked = self.masked()  # before the ring stops: speech over a ring stops the ring, nothing more
            if start and self.appliance.ringing:
                self.appliance.stop_ring(self.now, "speech")
            if start and self.machine.phase == "speaking" and masked:
                continue  # our own sound in the mic, or the "stop" for a ring: no barge-in
            cls = cv.SpeechStart if start else cv.SpeechEnd
            self.apply(self.machine.handle(cls(self.now, "local_vad")))

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
            self.barge.reply_played_out()  # its room tail follows it into the mic
            self._learn_room()
        self.apply(self.machine.handle(cv.PlaybackIdle(self.now)))

    def _new_gates(self, aec: bool, residual: bool = True) -> tuple[EchoGate | None, ResidualGate | None]:
        """Fresh barge-in gates as configured (aec.echo_gate, aec.residual_gate; aec False: no canceller,
        no gates; residual False: no residual gate). No libspeexdsp: no residual gate, one warning line."""
        s = self.settings.aec
        if not aec or not s.echo_gate:
            return None, None
        if not (residual and s.residual_gate):
            return EchoGate(), None
        try:
            return EchoGate(), ResidualGate()
        except VoxboxError as e:  # no libspeexdsp: barge-in runs on the other detectors
            log.warning("aec.residual_gate off: %s", e)
            return EchoGate(), None

    # Keep the room's echo path at most this often (s): a write of tens of kB to the SD card.
    ROOM_KEEP_S = 600.0

    def _remembers_room(self) -> bool:
        return self.frontend.record is not None

    def audio_setup(self) -> dict[str, Any]:
        """What places the room's echo in the frontend's frames and sets its gain, as this run opened it:
        the cards' names, rates and channels, the channels mixed, the buffers, the output latency
        PortAudio reported (samples at the player's rate), the APM's delay setting, and the hardware
        mixer's control and level (the level is the echo's gain; with software volume the reference
        carries it, so None). JSON values, kept with the room's path (RoomMemory.setup)."""
        a, s = self.audio, self.settings
        mixer = self.appliance.volume.mixer is not None
        return {
            "input": str(getattr(a, "input_name", "")), "output": str(getattr(a, "output_name", "")),
            "in_rate": int(a.in_rate), "in_channels": int(a.in_channels),
            "out_rate": int(getattr(a, "out_rate", self.player.rate)), "player_rate": int(self.player.rate),
            "channels": [int(c) for c in s.audio.channels],
            "frames_per_buffer_ms": int(s.audio.frames_per_buffer_ms),
            "output_buffer_ms": int(s.audio.output_buffer_ms),
            "output_latency": int(self.player.latency_samples),
            "stream_delay_ms": int(s.aec.stream_delay_ms),
            "mixer": f"{s.volume.mixer}@{s.volume.mixer_card}" if mixer else "",
            "mixer_level": int(self.appliance.volume.level) if mixer else None,
        }

    def _rehearse_room(self) -> None:
        """Start from the room as the last run left it (device/audio/room.py): its stored echo path
        rehearsed through the canceller and gates, before the mic opens (the start-up sound, where it
        plays, then checks it: _probe_room). A timeline `room` event {action: "rehearsed", seconds,
        cpu_ms}; or, if it was learnt with another audio set-up (audio_setup), {action: "setup_changed",
        changed: [name, ...]} and nothing rehearsed: the start-up sound measures the room, or else it is
        a first start."""
        room = self.appliance.room
        if not self._remembers_room():
            return
        # The start-up sound plays where the device keeps state (a daemon; not `simulate`, whose
        # timeline is a function of its inputs alone).
        self._probe_wanted = self.settings.sounds.startup and self.appliance.state_dir is not None
        changed = room.changes(self.audio_setup()) if room.known else []
        if changed:
            log.info("the audio set-up changed since the room was learnt (%s): learning it anew", ", ".join(changed))
            self.log("room", action="setup_changed", changed=changed)
        elif room.known:
            self._rehearse(room)

    def _kept_room(self) -> RoomMemory | None:
        """The stored room if it holds for this run (known, learnt with this audio set-up), else None."""
        room = self.appliance.room
        return room if room.known and not room.changes(self.audio_setup()) else None

    def _rehearse(self, room: RoomMemory) -> None:
        t0 = time.perf_counter()
        ref, mic = room.rehearsal()
        self.frontend.rehearse(ref, mic, room)
        self.frontend.on_room_checked = self._room_checked  # its check on the next reply's echo
        cpu_ms = round((time.perf_counter() - t0) * 1000, 1)
        log.info("rehearsed the room's stored echo path (%.1f s of audio in %.0f ms)", len(ref) / 16000, cpu_ms)
        self.log("room", action="rehearsed", seconds=round(len(ref) / 16000, 2), cpu_ms=cpu_ms)

    # After the start-up sound, its echo (the room's tail) is recorded this long (s); under the
    # frontend's IDLE_AFTER_S, which would end the record.
    PROBE_TAIL_S = 0.6

    def _probe_room(self) -> None:
        """The start-up sound (sounds.startup) checks the rehearsed room or measures the room anew: played
        at the first block while idle and not muted (muted, the mic is not to be recorded, not even for
        this), as a lone earcon (its own APM cleans it; the replies' canceller and gates do not see it),
        its reference and echo recorded (Frontend.record, record_earcons). Once it and PROBE_TAIL_S of
        the room's tail are over, _probed judges the record. The wake word is masked while it plays."""
        if self._probe_until is None:
            self._probe_wanted = False
            pcm = self.appliance.earcons.get("startup")
            if self.machine.muted or self.machine.phase != "idle" or pcm is None \
                    or not self.appliance.earcon("startup", self.now):
                return
            seconds = len(pcm) / self.player.rate
            self._probe_until = self.now + seconds + self.PROBE_TAIL_S
            self._quiet_until = max(self._quiet_until, self._probe_until)
            if self.frontend.record is not None:
                self.frontend.record_earcons = True
            self.log("room", action="probing", seconds=round(seconds, 2))
            return
        if self.machine.muted or self.machine.phase != "idle" or self.appliance.ringing:
            self._end_probe("muted" if self.machine.muted else "a timer rang" if self.appliance.ringing
                            else "the user started a turn")
            return
        if self.now < self._probe_until:
            return
        self._probe_until = None
        self.frontend.record_earcons = False
        record = self.frontend.record
        self._probed(record.take() if record is not None else None)

    def _end_probe(self, why: str) -> None:
        """Stop the start-up sound before its end and leave the room unmeasured (_probed(None): a room
        rehearsed at start stays, for the wake chime or the first reply to check): the card was reopened
        (the record broke), the device was muted (its mic is not recorded, not even for this), a turn
        began (a button press: the user is heard, not the sweep's echo alone, and the sound would go on
        over the wake chime and into the turn) or a timer rang (one that fell due while the device was
        off rings at start: the sweep went on over it, and the record breaks under a ring anyway). The
        wake word's and the lone earcon's mask ends with the sound's echo (EARCON_MARGIN_S), or the
        chime's if that is later. A timeline `room` event {action: "probe_stopped", why}, then
        _probed's."""
        log.info("the start-up sound was stopped (%s): the room is not measured", why)
        self.log("room", action="probe_stopped", why=why)
        self._probe_until = None
        self._quiet_until = max(self._earcon_quiet, self.now + self.EARCON_MARGIN_S)
        self.frontend.record_earcons = False
        self.player.stop_overlay("earcon:startup")
        self._probed(None)

    def _probed(self, taken: tuple[np.ndarray, np.ndarray] | None) -> None:
        """The start-up sound's record (EchoRecord.take; None: not recorded whole) judged: a timeline
        `room` event {action: "probed", ok, explained_db, kept_db}. ok: the mic heard the sound and the
        path learnt from it explains VERIFY_DB of its echo (a speaker the mic does not hear, headphones
        or a card's loop not wired, leaves a path of nothing); kept_db: how much of it the stored room's
        path explains (None: none holds for this run). The room rehearsed at start stays if it explains
        VERIFY_DB, or if the sound was not measured (the wake chime checks it, as without the sound).
        Else (moved, or another audio set-up) it is `forgotten` (_forget_room), and the sound's room
        (as on the device's first start, when none is kept) is kept (Appliance.remember_room) with the
        voice's spectrum known from before, or with no reply heard yet an average voice's
        (RoomMemory.learn, speech_spectrum), and rehearsed. One learn (tens of ms) and at most one
        rehearsal (150-250 ms of CPU here) on this loop, once per start, while idle."""
        fe, kept, stored = self.frontend, self._kept_room(), self.appliance.room
        room = RoomMemory()
        voice = stored.spectrum if stored.known and stored.voice else None
        # The floor from the sound's own record: the gates have measured none yet at a first start, and
        # after a rehearsal theirs is the rehearsal's. Rehearsed over the default 30 dB in a room 15 dB
        # noisier, their floors stood at 26-29 dB (rising 1 dB/s) under a 45 dB mic, and the noise in the
        # reply's gaps read as near-end (dev harness, echo-only first starts over a 45 dB white floor:
        # false barge-ins in 26 of 48 espeak and 10 of 48 human-voice replies; with the record's floor,
        # none).
        learnt = taken is not None and room.learn(taken, noise_floor_db(taken[1]), self.audio_setup(), sweep=True,
                                                  voice=voice)
        heard_db = kept_db = None
        if taken is not None:
            if learnt:
                heard_db = room.explained_db(*taken, fe.VERIFY_MIC_DB, fe.EARCON_LOUD_FRAMES)
            if kept is not None:
                kept_db = kept.explained_db(*taken, fe.VERIFY_MIC_DB, fe.EARCON_LOUD_FRAMES)
        ok = heard_db is not None and heard_db >= fe.VERIFY_DB
        self.log("room", action="probed", ok=ok, explained_db=None if heard_db is None else round(heard_db, 1),
                 kept_db=None if kept_db is None else round(kept_db, 1))
        if kept is not None and not ok:
            return  # rehearsed at start, and the sound says nothing of it: the chime checks it
        if kept is not None and kept_db is not None and kept_db >= fe.VERIFY_DB:
            fe.room_measured(kept_db)  # rehearsed at start, and the room holds
            return
        if not ok:
            log.info("the start-up sound's echo was not measured (%s): the room is learnt from the first reply",
                     "not recorded whole" if heard_db is None else f"its path explains {heard_db:.1f} dB of the mic")
            return
        if kept is not None:
            log.info("the room is not the one kept (its echo path explains %.1f dB of the start-up sound's echo):"
                     " measured anew", kept_db if kept_db is not None else float("nan"))
            self._forget_room()
        if kept is None and fe.aec is not None:
            # The replies' delay estimate heard the sweep's echo with no reference of its own (a lone
            # earcon's is not the replies'): started afresh, it finds the delay in the rehearsal as at a
            # start (bench, human_silent_042: one frame off without it, AEC3 leaked the reply's echo
            # 0.3 s in and Silero heard it, a false barge-in; a first start, 240 runs: espeak p95 130 ms
            # with it, 160 ms without, for one false pause in silent_042 2.8 s into the reply).
            fe.aec.forget_echo_path()
        self.appliance.remember_room(room)
        self._rehearse(room)
        if heard_db is not None:  # (ok: it is) the room rehearsed is the one the sound just measured
            fe.room_measured(heard_db)

    def _room_checked(self, reduction_db: float) -> None:
        """The rehearsal's check (Frontend.EARCON_*: the kept path explained reduction_db of the wake
        chime's echo; or Frontend.VERIFY_*: the linear canceller took reduction_db off the next reply's
        echo); a timeline `room` event {action: "checked", reduction_db}. Under VERIFY_DB the rehearsed
        room is not this one: the gates, AEC3 and the VAD start afresh, as on a first start, and a
        `room` event {action: "forgotten"} follows."""
        self.log("room", action="checked", reduction_db=round(reduction_db, 1))
        if reduction_db >= self.frontend.VERIFY_DB:
            return
        log.info("the room is not the one kept (its echo path took %.1f dB off the echo): learning it anew",
                 reduction_db)
        self._forget_room()

    def _forget_room(self) -> None:
        """The rehearsed room is not this one: the gates, AEC3 and the VAD start afresh, as on a first
        start; a timeline `room` event {action: "forgotten"}."""
        old = self.frontend.echo_gate
        gate, residual = self._new_gates(True, self.frontend.residual_gate is not None)
        if gate is not None:
            self.frontend.replace_gates(gate, residual)
        if self.frontend.aec is not None:
            self.frontend.aec.forget_echo_path()
        if self.machine.phase == "speaking":  # found out in a reply (no earcon before it)
            if old is not None and gate is not None:
                gate.seed_floor(old)  # the reply's echo is not the floor
            self.vad.reset()  # it may have heard the old room's AEC3 leak the reply's echo
        # (on an earcon, before the reply, a first start has neither: the earcon went through its own
        # APM, and the silence after it gives the fresh gates their floor)
        self.log("room", action="forgotten")

    def _learn_room(self) -> None:
        """A reply played out: keep the room's echo path for the next start, estimated from the
        reply's last seconds (Appliance.keep_room, on its writer thread; at most every ROOM_KEEP_S), if
        the linear canceller converged on this echo (ERLE over 15 dB, BargeIn.linear: the path held
        still). A timeline `room` event {action: "learnt"} once handed over."""
        record = self.frontend.record
        if record is None or not self.barge.linear.converged:
            return
        if self._room_learnt_at is not None and self.now < self._room_learnt_at + self.ROOM_KEEP_S:
            return
        taken = record.take()
        if taken is None:  # a reply shorter than the record
            return
        echo_gate = self.frontend.echo_gate
        floor = echo_gate.floor_db if echo_gate is not None else float("inf")
        if self.appliance.keep_room(taken, floor, self.audio_setup()):
            self._room_learnt_at = self.now
            self.log("room", action="learnt")

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
        self.apply(self.machine.handle(cv.Button(self.now, action)))

    def volume_button(self, direction: int) -> None:
        """A volume up (+1) / down (-1) button (gpiozero thread → call_soon_threadsafe)."""
        self.appliance.volume_step(self.now, direction)

    def _lone_earcon(self) -> bool:
        """A short earcon plays with no reply under it (nor a ring): the canceller cleans it with an
        APM of its own (device/audio/aec.py: with the wake chime as the first reference of the
        replies' APM, the demo's reply tripped a false barge-in), so its echo leaves the uplink
        and the replies' canceller stays as the replies left it."""
        return self.now < self._quiet_until and not self.player.busy and not self.appliance.ringing

    def masked(self) -> bool:
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
            self._earcon_quiet = max(self._earcon_quiet, self.now + len(pcm) / self.player.rate + self.EARCON_MARGIN_S)
            self._quiet_until = max(self._quiet_until, self._earcon_quiet)

    EARCON_MARGIN_S = 0.2  # an earcon's mask outlasts it by this: its echo's tail in the room

    # ------------------------------------------------------------------ link callbacks
    def on_connect(self) -> None:
        self.log("connect")
        self._new_session()
        self.apply(self.machine.handle(cv.Connected(self.now)))

    def _new_session(self) -> None:
        """Item and event ids of the last session mean nothing to the next one."""
        self._received.clear()
        self._sent_types.clear()

    def on_disconnect(self, reason: str) -> None:
        self.log("disconnect", reason=reason)
        self._new_session()
        if not self._stopping:  # our own close at the end of a run is not "offline"
            self.apply(self.machine.handle(cv.Disconnected(self.now, reason)))

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
            self.apply(m.handle(e))
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
            self.apply(m.handle(cv.CreateFailed(self.now, code)))
        elif (not about and m.phase == "thinking" and m.response_id is None and code not in HARMLESS_ERRORS):
            self.apply(m.handle(cv.CreateFailed(self.now, code)))

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
            self.apply(self.machine.handle(cv.ToolDone(self.now, response_id, stop=stop)))

    # ------------------------------------------------------------------ actions
    def apply(self, actions: list[cv.Action]) -> None:
        """Carry out the conversation machine's actions (device/conversation/machine.py), in order."""
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
                self.log("playback_pause", reason=a.reason, detector=self.barge.pause_detector,
                         item_id=self._playing, played_ms=self.player.played_ms(self._playing) if self._playing else 0)
            elif isinstance(a, cv.ResumePlayback):
                self.player.resume()
                self.barge.resumed()  # the pause did not confirm: what made it opens nothing more
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
