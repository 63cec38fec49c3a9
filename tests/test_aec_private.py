"""The one place that reaches into livekit (device/audio/_apm_ffi.py) still finds what it needs, and
its prebuilt requests give AEC3 exactly what livekit's public calls give it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from device.audio.aec import erle_db

pytestmark = pytest.mark.skipif(importlib.util.find_spec("livekit") is None, reason="livekit not installed")

FRAME = 160


def test_livekit_internals_are_where_we_expect() -> None:
    from device.audio import _apm_ffi

    moved = _apm_ffi.internals_moved()
    assert not moved, "livekit internals moved: " + "; ".join(moved)


def _port(fast: bool):  # type: ignore[no-untyped-def]
    from livekit import rtc

    from device.audio._apm_ffi import ApmPort

    near, far = bytearray(FRAME * 2), bytearray(FRAME * 2)
    apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
    port = ApmPort(apm, near, far, rtc.AudioFrame(near, 16000, 1, FRAME), rtc.AudioFrame(far, 16000, 1, FRAME),
                   prebuilt=fast)  # False: livekit's public methods, as the fallback uses them
    return port, np.frombuffer(near, dtype=np.int16), np.frombuffer(far, dtype=np.int16)


def test_prebuilt_requests_cancel_echo_bit_for_bit_as_livekits_calls() -> None:
    rng = np.random.default_rng(3)
    speech = (rng.standard_normal(FRAME * 300) * 3000).astype(np.int16)
    echo = (np.roll(speech, 480) // 3).astype(np.int16)  # 30 ms later, 10 dB down
    fast, fnear, ffar = _port(True)
    slow, snear, sfar = _port(False)
    assert fast.fast and not slow.fast
    outs = []
    for port, near, far in ((fast, fnear, ffar), (slow, snear, sfar)):
        port.set_stream_delay_ms(30)
        out = []
        for i in range(300):
            far[:] = speech[i * FRAME:(i + 1) * FRAME]
            port.render()
            near[:] = echo[i * FRAME:(i + 1) * FRAME]
            port.capture()
            out.append(near.copy())
        outs.append(np.concatenate(out))
    assert np.array_equal(outs[0], outs[1])
    # and it did cancel: after 2 s the echo is 20+ dB down (a request that missed the buffer would not)
    assert erle_db(echo, outs[0], converge_s=2.0) > 20


def test_an_error_in_the_answer_is_raised_with_livekits_message() -> None:
    from livekit.rtc._proto import ffi_pb2

    port, _, _ = _port(True)
    answer = ffi_pb2.FfiResponse()
    answer.apm_process_stream.error = "apm: bad frame"
    with pytest.raises(RuntimeError, match="apm: bad frame"):
        port._capture.check(answer.SerializeToString())
    fine = ffi_pb2.FfiResponse()
    fine.apm_process_stream.SetInParent()
    port._capture.check(fine.SerializeToString())  # no error: nothing raised
