"""The echo-aware double-talk test: the user's voice survives the echo canceller, the echo does not."""

from __future__ import annotations

from device.listen.bargein import EchoDoubleTalk


def feed(d: EchoDoubleTalk, frames: list[tuple[float, float]], t0: float = 1.0) -> list[int]:
    return [i for i, (mic, out) in enumerate(frames) if d.update(t0 + i * 0.01, mic, out)]


def test_echo_the_canceller_removes_never_fires() -> None:
    d = EchoDoubleTalk(ratio_db=-6, level_db=50, frames=3)
    d.arm(0.0)
    loud_echo = [(80.0, 80.0 - 30.0)] * 500  # 30 dB of echo taken off, 5 s of a loud reply
    assert feed(d, loud_echo) == []


def test_the_users_voice_fires_after_a_run_of_frames_and_then_disarms() -> None:
    d = EchoDoubleTalk(ratio_db=-6, level_db=50, frames=3)
    d.arm(0.0)
    frames = [(75.0, 45.0)] * 5 + [(78.0, 75.0)] * 2 + [(70.0, 40.0)] + [(79.0, 76.0)] * 4
    assert feed(d, frames) == [10]  # the 2-frame burst is too short; the 3rd frame of the next run fires
    assert feed(d, [(79.0, 76.0)] * 5) == []  # disarmed until armed again


def test_not_before_the_canceller_had_time_to_converge_nor_below_the_level() -> None:
    d = EchoDoubleTalk(ratio_db=-6, level_db=50, frames=3, warm_s=0.3)
    d.arm(1.0)
    assert feed(d, [(80.0, 79.0)] * 25, t0=1.0) == []  # reply started 0.25 s ago: echo still passes
    d2 = EchoDoubleTalk(ratio_db=-6, level_db=50, frames=3)
    d2.arm(0.0)
    assert feed(d2, [(45.0, 44.0)] * 20) == []  # quiet room noise passes the canceller too: not speech
    off = EchoDoubleTalk(ratio_db=-6, level_db=50, frames=0)
    off.arm(0.0)
    assert feed(off, [(80.0, 79.0)] * 20) == []
