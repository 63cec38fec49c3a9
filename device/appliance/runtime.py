"""The appliance as the agent runs it: tools, timers, volume and earcons on the player.

The agent owns one `Appliance` and calls it from its loop: `tick(t)` once per mic block,
`call(...)` for a function call from the model, `earcon(name, t)` on state changes,
`stop_ring(t, reason)` on a button press or speech, `duck(on)` while the user talks.
`t` is the mic sample clock. Nothing here blocks: sounds are player overlays (mixed into what
the speaker plays, so the echo canceller has them as reference), the state files are written
by one background thread.

Timeline events (DESIGN.md contract): `tool_call {name, call_id, arguments}`,
`tool_result {name, call_id, ok}`, `timer {action, id, due_t on set, reason on stop}`,
`earcon {name}`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from device.appliance.earcons import Earcons
from device.appliance.state import restore, write_json
from device.appliance.timers import TimerEvent, Timers
from device.appliance.tools import ToolBox, ToolResult
from device.appliance.volume import AlsaMixer, Mixer, Volume, VolumeError
from device.audio.player import Player
from device.audio.room import RoomMemory
from device.config import Settings

log = logging.getLogger("voxbox.appliance")

RING = "timer"  # the overlay (and earcon) name of a ringing timer
LOOKAHEAD_S = 0.1  # a timer due this soon is put on the speaker now, to start at its exact sample
TIMERS_FILE = "timers.json"
VOLUME_FILE = "volume.json"
ROOM_FILE = "room.json"  # the room's echo path (device/audio/room.py), written by keep_room

Log = Callable[..., Any]  # timeline.log(t, event, **fields)


class Appliance:
    def __init__(self, settings: Settings, player: Player, log_event: Log, *, state_dir: Path | None = None,
                 mixer: Mixer | None = None, origin_wall: float | None = None) -> None:
        self.player = player
        self._log = log_event
        self.state_dir = state_dir
        self.ring_max_s = settings.tools.ring_max_s
        self.timers = Timers(time.time() if origin_wall is None else origin_wall, max_s=settings.tools.timer_max_s,
                             ring_max_s=settings.tools.ring_max_s, max_timers=settings.tools.max_timers)
        v = settings.volume
        if mixer is None and v.mixer:
            try:
                mixer = AlsaMixer(v.mixer, v.mixer_card)
            except VolumeError as exc:
                log.warning("%s; software volume instead", exc)
        self.volume = Volume(v.level, step=v.step, mixer=mixer, duck_db=v.duck_db)
        self.earcons = Earcons(settings.sounds, player.rate)
        self.tools = ToolBox(settings.tools, self.timers, self.volume)
        self.room = RoomMemory()  # restored here, rehearsed by the agent at start, learnt by keep_room
        self.problems: list[str] = []  # state files set aside at start (one line each)
        self._saver: ThreadPoolExecutor | None = None
        self._kept: tuple[tuple[Any, str], ...] = ((self.timers, TIMERS_FILE), (self.volume, VOLUME_FILE))
        if state_dir is not None:
            for obj, name in (*self._kept, (self.room, ROOM_FILE)):
                problem = restore(obj, state_dir / name)
                if problem:
                    log.warning("%s; starting afresh", problem)
                    self.problems.append(problem)
            self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxbox-state")
        self.player.gain = self.volume.gain()
        self._rings_to_log: list[TimerEvent] = []  # on the speaker already, logged once their moment has come

    # ------------------------------------------------------------ per block
    def tick(self, t: float) -> None:
        """Start the timers due within LOOKAHEAD_S at their exact speaker sample; end over-long rings."""
        for ev in self.timers.due(t + LOOKAHEAD_S):
            pcm = self.earcons.get(RING)
            if pcm is not None:
                at = self.player.clock + round((ev.t - t) * self.player.rate)
                self.player.overlay(RING, pcm, at=at, loop_until=at + int(self.ring_max_s * self.player.rate))
            self._rings_to_log.append(ev)
        while self._rings_to_log and self._rings_to_log[0].t <= t:
            ev = self._rings_to_log.pop(0)
            self._log(t, "timer", action="ring", id=ev.timer.id, kind=ev.timer.kind, label=ev.timer.label,
                      ring_t=round(ev.t, 4))
            if self.earcons.get(RING) is not None:
                self._log(t, "earcon", name=RING)
        for ev in self.timers.expired(t):
            self._timer_event(t, ev)
        if not self.timers.ringing:
            self.player.stop_overlay(RING)
        self._save()

    @property
    def ringing(self) -> bool:
        return bool(self.timers.ringing)

    def stop_ring(self, t: float, reason: str) -> bool:
        """Stop every ringing timer (reason: button | tool | speech); True if one rang."""
        events = self.timers.stop(t, reason)
        self._rings_to_log.clear()
        self.player.stop_overlay(RING)
        for ev in events:
            self._timer_event(t, ev)
        return bool(events)

    # ------------------------------------------------------------ tools
    def call(self, t: float, name: str, call_id: str, arguments: str) -> ToolResult:
        """Run one function call; logs tool_call, tool_result and what it did. Never raises."""
        try:
            args: Any = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            args = {"_unparsed": arguments[:200]}
        self._log(t, "tool_call", name=name, call_id=call_id, arguments=args if isinstance(args, dict) else {"_": args})
        try:
            result = self.tools.run(name, arguments, t)
        except Exception as exc:  # a tool bug must not take the conversation down: the model hears why
            log.exception("tool %s failed", name)
            result = ToolResult(False, json.dumps({"error": f"the tool failed ({exc.__class__.__name__})"}))
        if not result.ok:
            log.warning("tool %s (%s): %s", name, call_id, result.output[:200])
        self._log(t, "tool_result", name=name, call_id=call_id, ok=result.ok)
        for ev in result.timer_events:
            self._timer_event(t, ev)
        if result.stop:
            self.player.stop_overlay(RING)
            self._rings_to_log.clear()
        if result.volume_changed:
            self.player.gain = self.volume.gain()
            self._log(t, "volume", level=self.volume.level)
        self._save()
        return result

    def _timer_event(self, t: float, ev: TimerEvent) -> None:
        fields: dict[str, Any] = {"action": ev.action, "id": ev.timer.id}
        if ev.action == "set":
            fields.update(due_t=round(self.timers.due_t(ev.timer), 4), kind=ev.timer.kind, label=ev.timer.label)
        elif ev.action == "stop":
            fields["reason"] = ev.reason
        self._log(t, "timer", **fields)

    # ------------------------------------------------------------ volume, sounds
    def volume_step(self, t: float, direction: int) -> int:
        """A volume button: one step up (+1) or down (-1); the new level."""
        level = self.volume.up() if direction > 0 else self.volume.down()
        self.player.gain = self.volume.gain()
        self._log(t, "volume", level=level)
        return level

    def duck(self, on: bool) -> None:
        """Quieter while the user talks (the ring, a reply, a sound)."""
        self.player.duck = self.volume.duck if on else 1.0

    def earcon(self, name: str, t: float) -> bool:
        """Play a short sound now (if it is switched on); True if it plays."""
        pcm = self.earcons.get(name)
        if pcm is None:
            return False
        # At the speaker sample of mic time t, not "whenever the next pull is": a state change that
        # arrives from the link between two pulls would otherwise start it a block early or late,
        # and `simulate` would not be a function of its inputs. Never more than 50 ms ahead (in
        # `run` the speaker's clock is its own); overlay() clamps a moment already past to now.
        clock = self.player.clock
        at = min(round(t * self.player.rate), clock + self.player.rate // 20)
        self.player.overlay(f"earcon:{name}", pcm, at=at)
        self._log(t, "earcon", name=name)
        return True

    # ------------------------------------------------------------ state
    def _save(self) -> None:
        if self._saver is None or self.state_dir is None:
            return
        for obj, name in self._kept:
            if obj.dirty:
                obj.dirty = False
                self._saver.submit(self._write, self.state_dir / name, obj.to_json())

    def keep_room(self, record: tuple[np.ndarray, np.ndarray], floor_db: float,
                  setup: dict[str, Any] | None = None) -> bool:
        """Estimate the room's echo path from a reply's record (EchoRecord.take, handed over) and write
        it to ROOM_FILE with the audio set-up it was recorded with (RoomMemory.learn), on the writer
        thread: RoomMemory.learn is tens of ms of FFTs, too long for the audio loop. False when there
        is no state directory to keep it in."""
        if self._saver is None or self.state_dir is None:
            return False
        self._saver.submit(self._learn_room, self.state_dir / ROOM_FILE, record, floor_db, setup)
        return True

    def remember_room(self, room: RoomMemory) -> None:
        """Keep a room learnt on the agent's loop (the start-up sound's, Agent._probe_room): it is this
        run's room, written to ROOM_FILE on the writer thread (nothing without a state directory)."""
        self.room = room
        if self._saver is not None and self.state_dir is not None:
            self._saver.submit(self._write, self.state_dir / ROOM_FILE, room.to_json())

    def _learn_room(self, path: Path, record: tuple[np.ndarray, np.ndarray], floor_db: float,
                    setup: dict[str, Any] | None) -> None:
        if self.room.learn(record, floor_db, setup):  # self.room is only read at start (the rehearsal)
            self._write(path, self.room.to_json())

    @staticmethod
    def _write(path: Path, data: Any) -> None:
        try:
            write_json(path, data)
        except OSError as exc:
            log.warning("cannot save %s (%s); kept in memory only", path, exc.strerror or exc)

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        self._save()
        if self._saver is not None:
            self._saver.shutdown(wait=True)
            self._saver = None
