"""Double talk from both echo cancellers' ERLE at once (listen/bargein.ErleDrop)."""

from __future__ import annotations

from device.listen.bargein import ErleDrop

# A warm canceller on a loud reply: AEC3 takes 35 dB off the mic, the linear canceller 25 dB.
ECHO = (70.0, 35.0, 45.0)
# A word 6 dB under the reply: both outputs rise to the word, ~5 dB under the mic.
WORD = (71.0, 66.0, 65.0)


def feed(d: ErleDrop, frames: list[tuple[float, float, float]], echo: bool = True,
         converged: bool = True, room_decay_db: float = 0.0) -> list[int]:
    return [i for i, (mic, out, lin) in enumerate(frames)
            if d.update(mic, out, lin, echo=echo, converged=converged, room_decay_db=room_decay_db)]


def test_a_word_both_cancellers_let_through_fires_on_the_third_frame() -> None:
    d = ErleDrop()
    assert feed(d, [ECHO] * 50) == []
    assert feed(d, [WORD] * 6) == [2]  # once per run
    assert d.double_talk


def test_the_reply_s_echo_alone_never_fires_however_long() -> None:
    d = ErleDrop()
    # ... swinging 10 dB in both outputs, as a voice's residual does
    frames = [ECHO, (70.0, 45.0, 55.0)] * 500
    assert feed(d, frames) == []


def test_one_canceller_leaking_is_not_double_talk() -> None:
    # AEC3 leaks the reply for a while (1-2 s into a first reply); the linear canceller does not.
    d = ErleDrop()
    feed(d, [ECHO] * 50)
    assert feed(d, [(70.0, 66.0, 45.0)] * 20) == []
    # ... nor the linear canceller alone
    assert feed(d, [(70.0, 35.0, 66.0)] * 20) == []


def test_a_run_begun_with_aec3_not_converged_does_not_fire() -> None:
    d = ErleDrop()
    feed(d, [ECHO] * 50)
    assert feed(d, [WORD] * 6, converged=False) == []
    feed(d, [ECHO])  # the run ends
    assert feed(d, [WORD] * 6) == [2]


def test_nothing_fires_before_the_averages_have_learnt_and_quiet_frames_end_a_run() -> None:
    d = ErleDrop()
    assert feed(d, [ECHO] * 5 + [WORD] * 6) == []  # 5 echo frames: too few to know the ERLEs
    feed(d, [ECHO] * 50)
    quiet = (50.0, 45.0, 45.0)  # the mic under loud_db: says nothing either way
    assert feed(d, [WORD, WORD, quiet, WORD, WORD]) == []
    feed(d, [ECHO])
    unseen = (71.0, 66.0, float("-inf"))  # the linear canceller did not look at this frame
    assert feed(d, [WORD, WORD, unseen, WORD, WORD]) == []


def test_double_talk_frames_teach_the_averages_nothing() -> None:
    d = ErleDrop()
    feed(d, [ECHO] * 50)
    before = (d.erle, d.linear_erle)
    feed(d, [WORD] * 40)
    assert (d.erle, d.linear_erle) == before
    d.end_run()
    assert not d.double_talk


def test_frames_whose_residual_has_the_echo_s_shape_are_a_leak_and_teach_the_averages() -> None:
    # After an echo path change (the device moved, a speaker's volume knob turned) both cancellers
    # take less off the mic at once, the same sign as a word; the linear canceller's residual is
    # then the echo itself, shaped as the echo (ResidualGate.echo_like), and the caller says so.
    d = ErleDrop()
    feed(d, [ECHO] * 50)
    before = d.erle
    asked: list[int] = []

    def leak() -> bool:
        asked.append(1)
        return True

    leaked = [i for i in range(6) if d.update(*WORD, echo=True, converged=True, leak=leak)]
    assert leaked == [] and not d.double_talk
    assert len(asked) == 6  # asked on each frame whose ERLEs both fell ...
    assert d.erle is not None and before is not None and d.erle < before  # ... and learnt from
    d.update(*ECHO, echo=True, converged=True, leak=leak)
    assert len(asked) == 6  # ... and only there (the shape test costs ~60 us a frame)
    # the user's word: its residual has a shape of its own
    feed(d, [ECHO] * 200)
    assert [i for i in range(6) if d.update(*WORD, echo=True, converged=True, leak=lambda: False)] == [2]


def test_in_a_short_room_a_smaller_fall_of_the_linear_canceller_s_erle_is_double_talk() -> None:
    # A word 6 dB under a reply at gain 1.0 (bench, human_talk_108): AEC3's ERLE falls ~25 dB, the
    # linear canceller's only ~9 dB. In a long room the reverberation past the linear canceller's
    # filter makes such falls on echo alone; in a short room its ERLE holds steady on the echo.
    soft = (71.0, 60.0, 55.0)  # ERLEs 11 and 16 dB, under the averages (35, 25) by 24 and 9
    for decay, fires in ((0.0, []), (1.2, []), (2.5, [2])):  # unknown, RT60 500 ms, no room
        d = ErleDrop()
        feed(d, [ECHO] * 50)
        assert [i for i in range(6) if d.update(*soft, echo=True, converged=True,
                                                room_decay_db=decay)] == fires, decay
    # ... nor at a phrase's end, the mic falling 3 dB or more a frame while the cancellers' outputs
    # hold the room's tail (bench, cold, RT60 250 ms: 71 -> 64 -> 66 -> 60 dB, falls of 11-16 dB)
    d = ErleDrop()
    feed(d, [ECHO] * 50)
    ending = [(75.0, 64.0, 59.0), (71.0, 60.0, 55.0), (74.0, 63.0, 58.0), (70.0, 59.0, 54.0)]
    assert [i for i, f in enumerate(ending * 2) if d.update(*f, echo=True, converged=True,
                                                             room_decay_db=2.5)] == []
    # ... and a fall of 5 dB is the echo's own swing, in any room
    d = ErleDrop()
    feed(d, [ECHO] * 50)
    assert [i for i in range(6) if d.update(71.0, 60.0, 51.0, echo=True, converged=True,
                                            room_decay_db=2.5)] == []


def test_aec3_leaking_over_the_linear_canceller_as_the_reply_falls_away_is_not_double_talk() -> None:
    # A first reply after the device moved (bench, human_talk_113: the new room measured and rehearsed,
    # RT60 250 ms, 0.5 s before the user's word): the mic falls 70 -> 62 dB at a phrase's
    # end, AEC3 passes the reply at 48-51 dB, the linear canceller's residual holds at 39-41 dB. AEC3's
    # ERLE falls 15 dB or more under its average (43 dB there), the linear canceller's 6 or more (32
    # dB; a short room's test), as under a word; this paused the reply.
    d = ErleDrop()
    assert feed(d, [(75.0, 32.0, 43.0)] * 400) == []
    assert d.erle is not None and d.linear_erle is not None
    assert abs(d.erle - 43.0) < 0.1 and abs(d.linear_erle - 32.0) < 0.1
    falling_away = [(66.1, 48.4, 39.9), (65.0, 50.7, 40.7), (64.1, 51.1, 38.9), (62.5, 51.0, 41.0)]
    assert feed(d, falling_away, room_decay_db=2.5) == []
    # ... while a user's word at those levels, in both outputs, is (AEC3's output at most 5.7 dB
    # over the linear canceller's on the 34 fires on a user the harness recorded)
    d.end_run()
    word = [(66.1, 48.4, 46.0), (65.0, 50.7, 46.5), (64.1, 51.1, 47.0), (62.5, 51.0, 46.5)]
    assert feed(d, word, room_decay_db=2.5) == [2]
