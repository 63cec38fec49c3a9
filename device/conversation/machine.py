"""The conversation state machine: pure, no I/O, no clocks of its own.

Events go in (each carries `t`, seconds on the mic sample clock); a list of
actions comes out. The agent performs the actions (sockets, speaker, LEDs) and
feeds back what happened. Because nothing here touches the world, every
transition is testable with plain function calls.

States shown to the user: idle, listening, thinking, speaking, muted, offline,
error. `offline` is shown whenever the link is down (muted wins over it); the
conversation itself may go on offline, its audio buffered by the link.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from device.config import ConversationSettings

# The names the machine speaks in (timeline values, LED pattern names): plain strings, checked by mypy.
Phase = Literal["idle", "listening", "thinking", "speaking"]
Shown = Literal[Phase, "muted", "offline", "error"]  # what the user sees (timeline `state`, LEDs)
SpeechSource = Literal["local_vad", "server_vad"]
BargeInSource = Literal[SpeechSource, "button"]
StopReason = Literal["barge_in", "button", "error"]
ButtonAction = Literal["press", "release", "hold"]

STATES: tuple[Shown, ...] = typing.get_args(Shown)
ERROR_SHOW_S = 2.0  # a failed response shows `error` this long, then the conversation state


# ---------------------------------------------------------------- events in
@dataclass(frozen=True)
class Wake:
    t: float
    wake_word: str
    score: float


@dataclass(frozen=True)
class Button:
    t: float
    action: ButtonAction


@dataclass(frozen=True)
class SpeechStart:
    t: float
    source: SpeechSource


@dataclass(frozen=True)
class SuspectSpeech:
    """The barge-in detector's fast stage: maybe the user talks over the reply (not yet sure)."""

    t: float


@dataclass(frozen=True)
class SpeechEnd:
    t: float
    source: SpeechSource


@dataclass(frozen=True)
class Committed:
    """The server committed the user's turn (server VAD ended it)."""

    t: float


@dataclass(frozen=True)
class ResponseCreated:
    t: float
    response_id: str


@dataclass(frozen=True)
class AudioDelta:
    t: float
    item_id: str
    response_id: str
    pcm: bytes


@dataclass(frozen=True)
class ResponseDone:
    t: float
    response_id: str
    status: str


@dataclass(frozen=True)
class CreateFailed:
    """The server refused a `response.create` (an `error` naming it, or any error while the
    device waits for a response that was never created). `code`: the error's code ("" if none);
    `conversation_already_has_active_response` is retried once after the next response.done."""

    t: float
    code: str


@dataclass(frozen=True)
class PlaybackIdle:
    """The player has played everything it was given."""

    t: float


@dataclass(frozen=True)
class ToolDone:
    """A function call of `response_id` ran and its output was sent (function_call_output).

    The model answers once asked again: `response.create` goes out when that response is done
    (at once if it already is). `stop`: the `stop` tool — the reply stops, nothing more is
    asked of the model, the conversation ends.
    """

    t: float
    response_id: str
    stop: bool = False


@dataclass(frozen=True)
class Tick:
    t: float


@dataclass(frozen=True)
class Connected:
    t: float


@dataclass(frozen=True)
class Disconnected:
    t: float
    reason: str


@dataclass(frozen=True)
class SessionStarted:
    """Session per conversation (GPT-Live): the session asked for by OpenSession is ready."""

    t: float


@dataclass(frozen=True)
class SessionEnded:
    """Session per conversation: the session ended without our asking or because we asked.

    reason: a `session.closed` reason (close_requested, expired, content, remote_hangup,
    connection_lost)."""

    t: float
    reason: str


@dataclass(frozen=True)
class Fault:
    """A hardware or runtime fault (e.g. audio device lost); cleared by FaultCleared."""

    t: float
    reason: str


@dataclass(frozen=True)
class FaultCleared:
    t: float


Event = (Wake | Button | SpeechStart | SuspectSpeech | SpeechEnd | Committed | ResponseCreated | AudioDelta
         | ResponseDone | CreateFailed | PlaybackIdle | ToolDone | Tick | Connected | Disconnected | Fault
         | FaultCleared
         | SessionStarted | SessionEnded)


# ---------------------------------------------------------------- actions out
@dataclass(frozen=True)
class Show:
    """The displayed state changed (timeline `state`, LEDs)."""

    state: Shown


@dataclass(frozen=True)
class OpenUplink:
    preroll: bool = False  # also send the last few hundred ms (the start of a barge-in)


@dataclass(frozen=True)
class CloseUplink:
    pass


@dataclass(frozen=True)
class Play:
    item_id: str
    pcm: bytes


@dataclass(frozen=True)
class StopPlayback:
    reason: StopReason


@dataclass(frozen=True)
class PausePlayback:
    """Silence the speaker at once, keep the queued reply (a suspected barge-in awaits confirmation)."""

    reason: str  # "suspect"


@dataclass(frozen=True)
class ResumePlayback:
    """Play on from the pause point (the suspicion was not confirmed)."""

    reason: str  # "not_confirmed"


@dataclass(frozen=True)
class SendCommit:
    pass


@dataclass(frozen=True)
class SendResponseCreate:
    """Ask the model to answer. tool_outputs: after function outputs (the only create GPT-Live's
    Responses delegation takes: it goes on with the delegated response waiting for them)."""

    tool_outputs: bool = False


@dataclass(frozen=True)
class SendCancel:
    """`response.cancel` naming the response (of the current session) to cancel."""

    response_id: str = ""


@dataclass(frozen=True)
class SendClear:
    pass


@dataclass(frozen=True)
class SendTruncate:
    """Truncate the item that was playing at what was really played.

    `item_id` is the latest item received; one response may carry several audio items, so the
    agent truncates the item the player was actually playing (clamped to what was received of
    it, and only if it belongs to the current session)."""

    item_id: str


@dataclass(frozen=True)
class BargeIn:
    source: BargeInSource


@dataclass(frozen=True)
class StrictVad:
    strict: bool


@dataclass(frozen=True)
class ResetWake:
    pass


@dataclass(frozen=True)
class MuteChanged:
    muted: bool


@dataclass(frozen=True)
class OpenSession:
    """Session per conversation: open a model session (GPT-Live: connect + session.start).

    renew: it replaces one that ended mid-conversation (seed it with the conversation so far)."""

    renew: bool = False


@dataclass(frozen=True)
class CloseSession:
    """Session per conversation: close the session (GPT-Live: session.close)."""


Action = (Show | OpenUplink | CloseUplink | Play | StopPlayback | PausePlayback | ResumePlayback | SendCommit
          | SendResponseCreate | SendCancel | SendClear | SendTruncate | BargeIn | StrictVad | ResetWake | MuteChanged
          | OpenSession | CloseSession)

RENEW_REASONS = ("expired", "connection_lost")  # a session lost this way mid-conversation is replaced
MODEL_GAP_S = 0.3  # session mode: model audio after this much quiet is a new utterance


@dataclass
class Conversation:
    settings: ConversationSettings
    local_turns: bool = False  # turn_detection "none": the device's VAD ends the turn
    muted: bool = False
    connected: bool = False
    fault: bool = False
    phase: Phase = "idle"
    shown: Shown | Literal[""] = ""  # "" until start()
    deadline: float | None = None
    user_speaking: bool = False
    heard_speech: bool = False  # the user spoke in the turn now open (a commit would not be empty)
    response_id: str | None = None  # response in progress (created, not yet done)
    playing_item: str | None = None
    dropped_responses: set[str] = field(default_factory=set)  # cancelled, their response.done not yet seen
    creates_pending: int = 0  # response.create sent, response.created not yet seen
    creates_stale: int = 0  # of those, how many belong to a turn the user reopened (cancel when created)
    create_deferred: bool = False  # a response.create waits for the server's previous response to end
    create_retried: bool = False  # the deferred create is the one retry after "active response"
    error_until: float | None = None  # show `error` until then (a failed response, briefly)
    # Server turns: the user spoke and the server has not shown it heard (no speech_started,
    # committed or response since). The link may be dead without knowing it yet (a half-open
    # socket takes up to ping interval + timeout to notice): the window is not closed on it.
    unheard_turn: bool = False
    waited_unheard: bool = False  # the window was already extended once for it
    turn_started: float | None = None  # when the user began talking in this listening turn (max_turn_s)
    held: bool = False  # the button is down past the hold time: its release is not a short press
    paused_until: float | None = None  # playback paused on a suspicion; resumed at this t unless confirmed
    tool_followup: set[str] = field(default_factory=set)  # responses whose function calls await response.create
    # Session per conversation (GPT-Live): a model session only while a conversation is open, a
    # full-duplex uplink (it stays open while the model speaks), no responses to cancel: after a
    # local barge-in the model's audio is dropped until it pauses (it stops by itself on hearing
    # the user). False: one persistent Realtime session (none of this applies).
    sessions: bool = False
    session_open: bool = False  # asked for (OpenSession) and not closed or lost since
    mute_close_s: float = 5.0  # session mode: a mute this long closes the session
    mute_deadline: float | None = None
    drop_model_audio: bool = False
    last_model_audio_t: float = -1.0

    @property
    def thinking_timeout_s(self) -> float:
        return self.settings.thinking_timeout_s

    # ------------------------------------------------------------ helpers
    def _display(self) -> Shown:
        if self.muted:
            return "muted"
        if self.fault or self.error_until is not None:
            return "error"
        if not self.connected:
            return "offline"
        return self.phase

    def _show(self, out: list[Action]) -> None:
        state = self._display()
        if state != self.shown:
            self.shown = state
            out.append(Show(state))

    def start(self) -> list[Action]:
        """Initial actions (the first state shown)."""
        out: list[Action] = []
        if self.muted:
            out.append(MuteChanged(True))
        self._show(out)
        return out

    def _go(self, phase: Phase, out: list[Action]) -> None:
        if phase == self.phase:
            return
        was = self.phase
        self.phase = phase
        self.turn_started = None
        if was == "speaking":
            self.paused_until = None  # leaving speaking flushes or ends the reply: no resume due
            out.append(StrictVad(False))
        if phase == "speaking":
            out.append(StrictVad(True))
        if phase != "listening":
            self.unheard_turn = self.waited_unheard = False
        if phase == "idle":
            self.create_deferred = False
            self.deadline = None
            self.user_speaking = False
            self.heard_speech = False
            self.playing_item = None
            out.append(CloseUplink())
            out.append(ResetWake())
            if self.session_open:
                self.session_open = False
                self.mute_deadline = None
                out.append(CloseSession())

    def _listen(self, t: float, window: float, out: list[Action], preroll: bool = False) -> None:
        if self.sessions and not self.session_open:
            self.session_open = True
            out.append(OpenSession())
        self._go("listening", out)
        self.deadline = t + window
        self.user_speaking = False
        self.turn_started = None
        out.append(OpenUplink(preroll=preroll))

    def _barge_in(self, t: float, source: BargeInSource, out: list[Action]) -> None:
        self.paused_until = None
        out.append(BargeIn(source))
        out.append(StopPlayback("button" if source == "button" else "barge_in"))
        if self.sessions:  # the model goes on until it hears the user: not played
            self.drop_model_audio = True
            self.last_model_audio_t = max(self.last_model_audio_t, t)
        self._drop_response(out)
        if self.playing_item is not None:
            out.append(SendTruncate(self.playing_item))
            self.playing_item = None

    def _drop_response(self, out: list[Action]) -> None:
        """Cancel the response in progress, if any; its late audio will not be played. A response
        asked for but not yet created belongs to the same superseded turn: it is cancelled when
        its response.created arrives."""
        if self.response_id is not None:
            out.append(SendCancel(self.response_id))
            self.dropped_responses.add(self.response_id)
            self.response_id = None
        self.creates_stale = self.creates_pending
        self.create_deferred = False

    def _server_busy(self) -> bool:
        """The server may still have a response in progress (a response.create now would be
        refused with conversation_already_has_active_response)."""
        return self.response_id is not None or bool(self.dropped_responses) or self.creates_pending > 0

    def _end_turn(self, t: float, out: list[Action]) -> None:
        """Local turn end: commit the user's audio and ask for a response, once the server is free."""
        out.append(SendCommit())
        self.heard_speech = False  # committed: the next turn starts empty
        self.create_retried = False
        if self._server_busy():
            self.create_deferred = True  # sent on the response.done of the cancelled response
        else:
            self._send_create(out)
        self._go("thinking", out)
        self.deadline = t + self.thinking_timeout_s

    def _send_create(self, out: list[Action], tool_outputs: bool = False) -> None:
        out.append(SendResponseCreate(tool_outputs))
        self.creates_pending += 1
        self.create_deferred = False

    def _forget_responses(self) -> None:
        """Nothing the server had in progress matters any more (new session, or gave up waiting)."""
        self.response_id = None
        self.dropped_responses.clear()
        self.creates_pending = self.creates_stale = 0
        self.create_deferred = False

    def _end_conversation(self, out: list[Action]) -> None:
        self._drop_response(out)
        out.append(SendClear())
        self._go("idle", out)

    def _barge_in_allowed(self, source: BargeInSource) -> bool:
        mode = self.settings.barge_in
        if mode == "off":
            return False
        if source == "local_vad":
            return mode in ("local", "both")
        return mode in ("server", "both")

    def reply_pending(self, t: float) -> bool:
        """More of the reply is due: a response in progress, or (session mode, where no event says a
        reply is over) model audio less than MODEL_GAP_S ago."""
        return self.response_id is not None or (self.sessions and t - self.last_model_audio_t < MODEL_GAP_S)

    # ------------------------------------------------------------ the machine
    def handle(self, ev: Event) -> list[Action]:
        out: list[Action] = []
        if isinstance(ev, Connected):
            self.connected = True
            if self.phase == "listening" and self.unheard_turn:
                # The new session gets the turn again (the link re-sends it): a window to answer.
                self.deadline = ev.t + self.settings.follow_up_s
        elif isinstance(ev, Disconnected):
            self.connected = False
            # A response cannot finish without the link; stop waiting for it. The next session
            # knows none of this one's items and responses: nothing may name them.
            self._forget_responses()
            self.playing_item = None
            if self.phase == "thinking":
                self._listen(ev.t, self.settings.follow_up_s, out)
            if self.sessions and self.session_open:
                self._session_ended(SessionEnded(ev.t, "connection_lost"), out)
        elif isinstance(ev, SessionStarted):
            pass  # the link sends the audio kept since the wake word; nothing changes here
        elif isinstance(ev, SessionEnded):
            self._session_ended(ev, out)
        elif isinstance(ev, Tick) and self.muted:
            if self.mute_deadline is not None and ev.t >= self.mute_deadline:
                self.mute_deadline = None
                self._end_conversation(out)
        elif isinstance(ev, Fault):
            self.fault = True
        elif isinstance(ev, FaultCleared):
            self.fault = False
        elif isinstance(ev, Button):
            self._button(ev, out)
        elif isinstance(ev, ResponseCreated):  # the server's side is kept track of even while muted
            self._response_created(ev, out)
        elif isinstance(ev, ResponseDone):
            self._response_done(ev, out)
        elif isinstance(ev, CreateFailed):
            self._create_failed(ev, out)
        elif self.muted:
            pass  # muted: no wake word, no speech, no reply
        elif isinstance(ev, Wake):
            if self.phase == "idle":
                out.append(ResetWake())
                self._listen(ev.t, self.settings.first_turn_s, out)
        elif isinstance(ev, SpeechStart):
            self._speech_start(ev, out)
        elif isinstance(ev, SuspectSpeech):
            if (self.phase == "speaking" and self.paused_until is None and self.settings.confirm_ms > 0
                    and self._barge_in_allowed("local_vad")):
                self.paused_until = ev.t + self.settings.confirm_ms / 1000.0
                out.append(PausePlayback("suspect"))
        elif isinstance(ev, SpeechEnd):
            if ev.source == "server_vad":
                self.unheard_turn = False
            if self.phase == "listening":
                self.user_speaking = False
                self.turn_started = None
                self.deadline = ev.t + self.settings.follow_up_s
                if self.local_turns and ev.source == "local_vad" and self.heard_speech:
                    self._end_turn(ev.t, out)
        elif isinstance(ev, Committed):
            self.unheard_turn = False
            self.heard_speech = self.user_speaking  # the server took the turn (speech after it is the next)
            if self.phase == "listening":
                self._go("thinking", out)
                self.deadline = ev.t + self.thinking_timeout_s
        elif isinstance(ev, AudioDelta):
            self._audio(ev, out)
        elif isinstance(ev, ToolDone):
            self._tool_done(ev, out)
        elif isinstance(ev, PlaybackIdle):
            if self.phase == "speaking" and self.response_id is None:
                self.playing_item = None
                self._listen(ev.t, self.settings.follow_up_s, out)
        elif isinstance(ev, Tick):
            self._tick(ev, out)
        self._show(out)
        return out

    def _tool_done(self, ev: ToolDone, out: list[Action]) -> None:
        if ev.stop:
            self.tool_followup.discard(ev.response_id)
            if self.phase == "speaking":
                # The user said "stop" (the model's reading of it): like a barge-in, spoken.
                out.append(StopPlayback("barge_in"))
                if self.playing_item is not None:
                    out.append(SendTruncate(self.playing_item))
            if self.phase != "idle":
                self._end_conversation(out)
            return
        if ev.response_id and ev.response_id == self.response_id:
            self.tool_followup.add(ev.response_id)  # asked again at its response.done
        else:
            self._ask_again(ev.t, out)

    def _ask_again(self, t: float, out: list[Action]) -> None:
        """The model has its function outputs: let it answer."""
        if self.phase == "idle":
            return  # the conversation closed meanwhile: its answer would be cancelled on arrival
        if self.sessions:  # GPT-Live: no response.created will come to count it
            out.append(SendResponseCreate(tool_outputs=True))
        else:
            self._send_create(out, tool_outputs=True)
        if self.phase in ("listening", "thinking"):
            self._go("thinking", out)
            self.deadline = t + self.thinking_timeout_s

    def _session_ended(self, ev: SessionEnded, out: list[Action]) -> None:
        if not self.session_open:
            return  # ours (close_requested after CloseSession), or already handled
        if self.phase != "idle" and ev.reason in RENEW_REASONS:
            out.append(OpenSession(renew=True))  # the conversation goes on in a new session
            return
        self.session_open = False
        if self.phase != "idle":
            self._end_conversation(out)

    def _button(self, ev: Button, out: list[Action]) -> None:
        if ev.action == "hold" and self.sessions and self.phase != "idle":
            self._live_mute(ev, out)
            return
        if ev.action == "hold":
            self.muted = not self.muted
            if self.muted:
                if self.phase == "speaking":
                    out.append(StopPlayback("button"))
                    if self.playing_item is not None:
                        out.append(SendTruncate(self.playing_item))
                if self.phase != "idle":
                    self._end_conversation(out)
            out.append(MuteChanged(self.muted))
            self.held = True
            return
        if ev.action == "press":
            self.held = False
            return
        # release: a short press acts now; the release that ends a hold does nothing more
        if self.held or self.muted:
            self.held = False
            return
        if self.phase == "idle":
            out.append(ResetWake())
            self._listen(ev.t, self.settings.first_turn_s, out)
        elif self.phase == "speaking":
            self._barge_in(ev.t, "button", out)
            self._listen(ev.t, self.settings.follow_up_s, out)
        elif self.phase == "thinking":
            self._drop_response(out)
            self._listen(ev.t, self.settings.follow_up_s, out)
        elif self.phase == "listening":
            if self.heard_speech:
                self._end_turn(ev.t, out)  # the user ends the turn by hand
            else:
                self._end_conversation(out)

    def _live_mute(self, ev: Button, out: list[Action]) -> None:
        """Session mode, mid-conversation: mute keeps the session for mute_close_s (the model is told
        and nothing leaves the device); unmuting in time goes on listening, else the session closes."""
        self.held = True
        self.muted = not self.muted
        if self.muted:
            if self.phase == "speaking":
                self._barge_in(ev.t, "button", out)
            self._go("listening", out)
            self.deadline = None
            self.user_speaking = False
            out.append(CloseUplink())
            self.mute_deadline = ev.t + self.mute_close_s
            out.append(MuteChanged(True))
            return
        self.mute_deadline = None
        out.append(MuteChanged(False))
        self._listen(ev.t, self.settings.follow_up_s, out)

    def _speech_start(self, ev: SpeechStart, out: list[Action]) -> None:
        if ev.source == "server_vad":
            self.unheard_turn = False
        elif not self.local_turns and self.phase in ("listening", "speaking"):
            self.unheard_turn = True  # until the server shows it heard it
        if self.phase == "speaking":
            if self._barge_in_allowed(ev.source):
                self._barge_in(ev.t, ev.source, out)
                self._go("listening", out)
                self.user_speaking = True
                self.heard_speech = True
                self.turn_started = ev.t
                self.deadline = None
                out.append(OpenUplink(preroll=ev.source == "local_vad"))
            return
        if self.phase in ("listening", "thinking"):
            self.user_speaking = True
            self.heard_speech = True
            self.deadline = None
            # The user goes on talking after the turn was closed (by the server's VAD, or by ours
            # with local turns): the answer to half a sentence is dropped; the next commit
            # carries the rest and gets the answer.
            owner = "local_vad" if self.local_turns else "server_vad"
            if self.phase == "thinking" and ev.source == owner:
                self._drop_response(out)
                self._go("listening", out)
            if self.turn_started is None:
                self.turn_started = ev.t

    def _response_created(self, ev: ResponseCreated, out: list[Action]) -> None:
        self.unheard_turn = False
        asked = self.creates_pending > 0
        self.creates_pending = max(0, self.creates_pending - 1)
        if self.creates_stale > 0:
            # Asked for a turn the user has since reopened: never played, the whole turn gets one.
            self.creates_stale -= 1
            self._cancel_unwanted(ev.response_id, out)
        elif self.phase == "idle" or (not asked and self.phase == "listening" and self.user_speaking):
            # Not asked for: after the conversation closed, or the server's answer to a turn
            # the user is still speaking (it would play over them).
            self._cancel_unwanted(ev.response_id, out)
        else:
            self.response_id = ev.response_id

    def _cancel_unwanted(self, response_id: str, out: list[Action]) -> None:
        out.append(SendCancel(response_id))
        self.dropped_responses.add(response_id)

    def _response_done(self, ev: ResponseDone, out: list[Action]) -> None:
        current = ev.response_id == self.response_id
        dropped = ev.response_id in self.dropped_responses
        if current:
            self.response_id = None
        self.dropped_responses.discard(ev.response_id)
        if current and (ev.status == "failed" or (ev.status == "incomplete" and self.phase == "thinking")):
            self.error_until = ev.t + ERROR_SHOW_S  # the answer failed, or none came: say so, briefly
        if self.create_deferred and not self._server_busy():
            self._send_create(out)  # the server is free now: the whole turn gets its answer
            return
        if ev.response_id in self.tool_followup:  # the model's turn that called a tool is over
            self.tool_followup.discard(ev.response_id)
            self._ask_again(ev.t, out)
            return
        if self.phase == "thinking" and not dropped and (current or not self._server_busy()):
            # Finished without audio (cancelled, failed, text only): back to listening.
            self._listen(ev.t, self.settings.follow_up_s, out)

    def _create_failed(self, ev: CreateFailed, out: list[Action]) -> None:
        self.creates_pending = max(0, self.creates_pending - 1)
        self.creates_stale = min(self.creates_stale, self.creates_pending)
        if self.phase != "thinking" or self.response_id is not None:
            return
        if ev.code == "conversation_already_has_active_response" and not self.create_retried:
            # The server still runs an earlier response (a late cancel): ask again once it is done.
            self.create_retried = True
            self.create_deferred = True
            return
        self.create_deferred = False
        self.error_until = ev.t + ERROR_SHOW_S
        self._listen(ev.t, self.settings.follow_up_s, out)

    def _audio(self, ev: AudioDelta, out: list[Action]) -> None:
        if ev.response_id in self.dropped_responses or self.phase == "idle":
            return  # late audio of a cancelled response, or after the conversation ended
        if self.sessions:
            gap = ev.t - self.last_model_audio_t
            self.last_model_audio_t = ev.t
            if self.drop_model_audio and gap < MODEL_GAP_S:
                return  # the rest of an utterance the user interrupted
            self.drop_model_audio = False
        if self.phase in ("listening", "thinking"):
            if self.settings.barge_in in ("local", "off") and not self.sessions:
                # Local barge-in: the device's own reply must not feed the server's VAD.
                out.append(CloseUplink())
            self._go("speaking", out)
            self.deadline = None
        if self.phase == "speaking":
            self.playing_item = ev.item_id
            out.append(Play(ev.item_id, ev.pcm))

    def _tick(self, ev: Tick, out: list[Action]) -> None:
        if self.error_until is not None and ev.t >= self.error_until:
            self.error_until = None
        if self.paused_until is not None and ev.t >= self.paused_until:
            self.paused_until = None
            out.append(ResumePlayback("not_confirmed"))
        if (self.phase == "listening" and self.user_speaking and self.turn_started is not None
                and ev.t - self.turn_started >= self.settings.max_turn_s):
            # The user has talked max_turn_s without a pause: close the turn and ask for the answer.
            self._end_turn(ev.t, out)
            return
        if self.deadline is None or ev.t < self.deadline:
            return
        if self.phase == "listening" and not self.user_speaking:
            if self.unheard_turn and not self.waited_unheard:
                # The server never showed it heard the user's last words: maybe the link is dead
                # and not yet known to be. Wait once more before closing on an unanswered turn.
                self.waited_unheard = True
                self.deadline = ev.t + self.settings.follow_up_s
                return
            self._end_conversation(out)
        elif self.phase == "thinking":
            # No answer in time: give the user the floor again rather than hang.
            self._forget_responses()
            self._listen(ev.t, self.settings.follow_up_s, out)
