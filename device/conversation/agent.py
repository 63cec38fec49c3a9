"""The agent: the one place that owns the sound card, the socket and the LEDs.

It wires an audio port (PyAudio or the simulated twin), the frontend, the
wake-word and VAD detectors, the realtime link and the pure conversation
machine. Everything runs in one asyncio loop: mic blocks and server events are
turned into machine events, and the machine's actions are carried out here.
Timestamps are the mic sample clock (seconds of audio captured).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.audio.frontend import EchoCanceller, Frontend, Uplink
from device.audio.ports import AudioPort
from device.config import Settings
from device.conversation import machine as cv
from device.errors import VoxboxError
from device.link import protocol
from device.link.base import Link, LinkFactory
from device.link.protocol import ProtocolError, ServerEvent
from device.listen.bargein import EchoDoubleTalk, SuspectGate
from device.listen.vad import VadSegmenter
from device.listen.wakeword import WakeWordDetector
from device.timeline import Timeline

log = logging.getLogger("voxbox.agent")


class NullIndicator:
    def show(self, pattern: str) -> None:
        pass


@dataclass(frozen=True)
class ScheduledPress:
    """A talk-button press at mic time `t`, held `hold_s` (simulate --press)."""

    t: float
    hold_s: float = 0.1


class Agent:
    def __init__(self, settings: Settings, audio: AudioPort, timeline: Timeline, *,
                 wake: WakeWordDetector, vad: VadSegmenter, link: LinkFactory,
                 aec: EchoCanceller | None = None, indicator: Any = None,
                 presses: list[ScheduledPress] | None = None,
                 on_mute_changed: Callable[[bool], None] | None = None,
                 muted: bool = False, on_block: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.audio = audio
        self.player = audio.player
        self.timeline = timeline
        self.wake = wake
        self.vad = vad
        self.suspect = SuspectGate(vad, settings.vad.suspect_threshold)
        self.dtd = EchoDoubleTalk(settings.vad.dtd_ratio_db, settings.vad.dtd_level_db, settings.vad.dtd_frames)
        self.indicator = indicator or NullIndicator()
        self.frontend = Frontend(audio.in_rate, settings.audio.channels, aec=aec, out_rate=self.player.rate)
        self.uplink = Uplink()
        self.uplink_open = False
        self.preroll: deque[np.ndarray] = deque(maxlen=max(1, settings.conversation.preroll_ms // 10))
        self.machine = cv.Conversation(settings.conversation,
                                       local_turns=settings.realtime.turn_detection == "none",
                                       muted=muted)
        self.on_mute_changed = on_mute_changed
        self.on_block = on_block  # called after every mic block (the systemd watchdog)
        self.samples = 0  # mic samples processed: the clock of the timeline
        self.errors = 0
        self._stopping = False
        self._playing: str | None = None  # item whose audio is coming out of the speaker
        self._button_events: list[tuple[float, str]] = []
        for p in presses or []:
            self._button_events.append((p.t, "press"))
            if p.hold_s >= settings.gpio.hold_s:
                self._button_events.append((p.t + settings.gpio.hold_s, "hold"))
            self._button_events.append((p.t + p.hold_s, "release"))
        self._button_events.sort()
        self._live_buttons: deque[tuple[str]] = deque(maxlen=32)
        self._started = False
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
        self.frontend = Frontend(self.audio.in_rate, self.settings.audio.channels, aec=self.frontend.aec,
                                 out_rate=self.player.rate)
        self.log("audio_reopened")
        self._apply(self.machine.handle(cv.FaultCleared(self.now)))
        return True

    def start(self) -> None:
        """Show the first state (idempotent; `run()` calls it)."""
        if not self._started:
            self._started = True
            self._apply(self.machine.start())

    def handle(self, event: cv.Event) -> None:
        """Feed one event to the conversation machine and carry out its actions.

        For events the agent does not observe itself: a bench's scripted turn end, a test's wake.
        """
        self._apply(self.machine.handle(event))

    def keep_going(self) -> bool:
        """After the mic ends: keep the clock running while a reply is due or playing."""
        return self.player.busy or self.machine.phase in ("thinking", "speaking")

    def press(self, action: str) -> None:
        """A live button event (gpiozero thread → queued, handled on the next block)."""
        self._live_buttons.append((action,))

    def process_block(self, block: np.ndarray) -> None:
        self.frontend.speaker(self.audio.speaker_played())
        frames = self.frontend.mic(block)
        self.samples += len(block)
        self._player_notes()
        while self._button_events and self._button_events[0][0] <= self.now:
            _, action = self._button_events.pop(0)
            self._button(action)
        while self._live_buttons:
            self._button(self._live_buttons.popleft()[0])
        if len(frames):
            self._frames(frames)
        self._apply(self.machine.handle(cv.Tick(self.now)))

    def _frames(self, frames: np.ndarray) -> None:
        m = self.machine
        if m.muted:
            return  # privacy: muted audio reaches neither the detectors nor the uplink
        pcm = frames.reshape(-1)
        if m.phase == "idle":
            for d in self.wake.process(pcm):
                self.log("wake", wake_word=d.wake_word, score=round(float(d.score), 3))
                self._apply(m.handle(cv.Wake(self.now, d.wake_word, d.score)))
                if m.phase != "idle":
                    break
        elif m.phase == "speaking":
            # Frame by frame: the barge-in detector's fast stage looks at every VAD chunk, and
            # the double-talk test at the echo canceller's levels of the same frame.
            levels = self._aec_levels(len(frames))
            self.dtd.arm(self.now)
            for i, f in enumerate(frames):
                self._vad_events(self.vad.process(f))
                if m.phase == "speaking" and self.suspect.check():
                    self._apply(m.handle(cv.SuspectSpeech(self.now)))
                if m.phase == "speaking" and levels is not None and self.dtd.update(self.now, *levels[i]):
                    self.log("speech_start", source="local_vad", detector="echo_dtd")
                    self._apply(m.handle(cv.SpeechStart(self.now, "local_vad")))
        else:
            self.dtd.disarm()
            self._vad_events(self.vad.process(pcm))
        for f in frames:
            self.preroll.append(f)
        if self.uplink_open and not m.muted:
            self._send_audio(self.uplink.push(frames))

    def _aec_levels(self, n: int) -> list[tuple[float, float]] | None:
        """The canceller's (mic dB, cleaned dB) for the last n frames, if it measured all of them."""
        levels = getattr(self.frontend.aec, "levels", None)
        if levels is None:
            return None
        got = list(levels)
        levels.clear()
        return got[-n:] if len(got) >= n else None

    def _vad_events(self, events: list[Any]) -> None:
        for ev in events:
            kind = "speech_start" if ev.kind == "start" else "speech_end"
            # The VAD counts its own time (it is fed only in conversations): map to the mic clock.
            onset = self.now - (self.vad.fed_s - ev.t)
            self.log(kind, source="local_vad", onset=round(onset, 3))
            cls = cv.SpeechStart if ev.kind == "start" else cv.SpeechEnd
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
                    self._playing = note.item_id
                    # speaker_s: the exact speaker sample it started at (t is block-granular).
                    self.log("playback_start", item_id=note.item_id,
                             speaker_s=round(note.sample / self.player.rate, 4))
            elif note.kind == "idle":
                if self.machine.response_id is not None:
                    # The reply arrives slower than it plays: a gap, not the end.
                    self.log("playback_underrun", item_id=note.item_id)
                    continue
                self._playback_done()

    def _playback_done(self) -> None:
        """The reply is complete and fully played."""
        if self._playing is not None:
            self.log("playback_stop", reason="done", item_id=self._playing,
                     played_ms=self.player.played_ms(self._playing))
            self._playing = None
        self._apply(self.machine.handle(cv.PlaybackIdle(self.now)))

    def _button(self, action: str) -> None:
        self.log("button", action=action)
        self._apply(self.machine.handle(cv.Button(self.now, action)))

    # ------------------------------------------------------------------ link callbacks
    def on_connect(self) -> None:
        self.log("connect")
        self._apply(self.machine.handle(cv.Connected(self.now)))

    def on_disconnect(self, reason: str) -> None:
        self.log("disconnect", reason=reason)
        if not self._stopping:  # our own close at the end of a run is not "offline"
            self._apply(self.machine.handle(cv.Disconnected(self.now, reason)))

    def on_sent(self, event: dict[str, Any]) -> None:
        etype = event.get("type", "?")
        if etype == "input_audio_buffer.append":
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
        t = self.now
        d = ev.data
        if ev.type == "response.output_audio.delta":
            try:
                item_id, pcm = protocol.audio_delta(ev)
            except ProtocolError as exc:  # not seen by the client's parser: ours to count
                self.errors += 1
                self.on_link_error(str(exc))
                return
            self._apply(m.handle(cv.AudioDelta(t, item_id, str(d.get("response_id", "")), pcm)))
            return
        self.log("recv", type=ev.type)
        if ev.type == "input_audio_buffer.speech_started":
            self.log("speech_start", source="server_vad")
            self._apply(m.handle(cv.SpeechStart(t, "server_vad")))
        elif ev.type == "input_audio_buffer.speech_stopped":
            self.log("speech_end", source="server_vad")
            self._apply(m.handle(cv.SpeechEnd(t, "server_vad")))
        elif ev.type == "input_audio_buffer.committed":
            self._apply(m.handle(cv.Committed(t)))
        elif ev.type == "response.created":
            self._apply(m.handle(cv.ResponseCreated(t, str(d.get("response", {}).get("id", "")))))
        elif ev.type == "response.done":
            resp = d.get("response", {}) if isinstance(d.get("response"), dict) else {}
            self._apply(m.handle(cv.ResponseDone(t, str(resp.get("id", "")), str(resp.get("status", "")))))
            if m.phase == "speaking" and m.response_id is None and not self.player.busy:
                self._playback_done()  # everything already played before the response closed
        elif ev.type == "error":  # counted in the client's stats
            err = d.get("error", {}) if isinstance(d.get("error"), dict) else {}
            log.warning("server error: %s", err.get("message", d))
        elif ev.type == "response.output_audio_transcript.done":
            log.debug("assistant said: %s", d.get("transcript", ""))

    # ------------------------------------------------------------------ actions
    def _apply(self, actions: list[cv.Action]) -> None:
        for a in actions:
            if isinstance(a, cv.Show):
                self.log("state", state=a.state)
                self.log("led", pattern=a.state)
                self.indicator.show(a.state)
            elif isinstance(a, cv.OpenUplink):
                self._open_uplink(a.preroll)
            elif isinstance(a, cv.CloseUplink):
                if self.uplink_open:
                    self.uplink_open = False
                    self.log("uplink_stop")
            elif isinstance(a, cv.Play):
                self.player.enqueue(a.item_id, a.pcm)
            elif isinstance(a, cv.StopPlayback):
                self._stop_playback(a.reason)
            elif isinstance(a, cv.PausePlayback):
                self.player.pause()
                self.log("playback_pause", reason=a.reason, item_id=self._playing,
                         played_ms=self.player.played_ms(self._playing) if self._playing else 0)
            elif isinstance(a, cv.ResumePlayback):
                self.player.resume()
                self.log("playback_resume", reason=a.reason, item_id=self._playing,
                         played_ms=self.player.played_ms(self._playing) if self._playing else 0)
            elif isinstance(a, cv.BargeIn):
                self.log("barge_in", source=a.source)
            elif isinstance(a, cv.SendCancel):
                self.link.send(protocol.response_cancel())
            elif isinstance(a, cv.SendTruncate):
                self.link.send(protocol.item_truncate(a.item_id, self.player.played_ms(a.item_id)))
            elif isinstance(a, cv.SendCommit):
                self.link.send(protocol.input_audio_commit())
            elif isinstance(a, cv.SendResponseCreate):
                self.link.send(protocol.response_create())
            elif isinstance(a, cv.SendClear):
                self.link.send(protocol.input_audio_clear())
            elif isinstance(a, cv.StrictVad):
                self.vad.set_strict(a.strict)
            elif isinstance(a, cv.ResetWake):
                self.wake.reset()
            elif isinstance(a, cv.MuteChanged):
                self.log("mute", muted=a.muted)
                if self.on_mute_changed is not None:
                    self.on_mute_changed(a.muted)

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
        item = self._playing
        self.player.flush()
        if item is not None:
            self.log("playback_stop", reason=reason, item_id=item, played_ms=self.player.played_ms(item))
            self._playing = None
        self.player.notes.clear()

    def _finish(self) -> None:
        s = self.link.stats
        self.log("summary", uplink_audio_ms=int(s.uplink_audio_ms), uplink_bytes=int(s.uplink_bytes),
                 reconnects=int(s.reconnects), errors=int(s.errors + self.errors))
