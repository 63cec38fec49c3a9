"""How loud a bench interruption is against the reply's echo: its signal-to-echo ratio at the mic.

The barge-in bench mixes a user's word (IN.wav) with the echo of the reply the device plays
(device/audio/sim.py: the reply at the speaker, times the echo gain, through the room, after the echo
delay). Whether any detector can hear the word depends first on how far it stands over that echo, so
the bench reports what it catches by this ratio (SER, signal-to-echo ratio, as in the AEC literature).

The echo taken is the reply's as if it played on, whatever the device did: a pause after the onset
would otherwise raise the ratio of the words it caught. It is rebuilt here as SimAudio makes it (its resampler
over the whole reply at once instead of block by block), so the ratio is the scenario's and the same
cold and warm.
"""

from __future__ import annotations

import numpy as np

WORD_WINDOW_S = 0.6  # the word's frames are looked for this long from its onset ...
WORD_RANGE_DB = 20.0  # ... and are those within this much of its loudest 10 ms frame
# The report's bands, loudest first: (lowest ratio in it, dB; its name).
BANDS = ((0.0, ">=0"), (-5.0, "-5..0"), (-10.0, "-10..-5"), (-np.inf, "<-10"))


def reply_echo(reply: np.ndarray, reply_rate: int, start_s: float, *, mic_rate: int, length: int,
               echo_gain: float, echo_delay_ms: float, room_ir: np.ndarray | None) -> np.ndarray:
    """The reply's echo at the mic had it played to its end: float64[length] at mic_rate (int16
    scale), the reply (int16 [n] at reply_rate, the speaker's rate) starting start_s into the mic's
    clock (the speaker plays the span of time each mic block covers: one clock for both)."""
    from device.audio.dsp import StreamResampler, convolve

    # SimAudio's own resampler and quality (its stream over blocks gives the same samples at once)
    e = StreamResampler(reply_rate, mic_rate, quality="QQ")(reply, last=True).astype(np.float64) * echo_gain
    if room_ir is not None:
        e = convolve(e, room_ir.astype(np.float64))
    out = np.zeros(length)
    at = int(round(start_s * mic_rate)) + int(mic_rate * echo_delay_ms / 1000)  # as SimAudio's delay line
    if at < length:
        seg = e[: length - at]
        out[at : at + len(seg)] = seg
    return out


def word_ser_db(user: np.ndarray, echo: np.ndarray, onset_s: float, rate: int) -> float | None:
    """The word's signal-to-echo ratio (dB): the user's power (user: IN.wav, [n] at rate) over the
    echo's (echo: reply_echo, on the same clock) on the word's 10 ms frames, those within WORD_RANGE_DB
    of its loudest in the WORD_WINDOW_S after onset_s. None if the window holds no whole frame or the
    word is silent."""
    n = rate // 100
    a = int(round(onset_s * rate))
    b = min(a + int(WORD_WINDOW_S * rate), len(user), len(echo))
    k = (b - a) // n
    if k <= 0:
        return None
    pu = np.mean(user[a : a + k * n].astype(np.float64).reshape(k, n) ** 2, axis=1)
    pe = np.mean(echo[a : a + k * n].reshape(k, n) ** 2, axis=1)
    if float(pu.max()) <= 0.0:
        return None
    word = pu >= pu.max() * 10 ** (-WORD_RANGE_DB / 10)
    return round(10 * float(np.log10(pu[word].mean() / max(float(pe[word].mean()), 1e-9))), 1)


def ser_band(ser_db: float) -> str:
    """The name of the report's band (BANDS) a ratio (dB) falls in."""
    return next(name for lo, name in BANDS if ser_db >= lo)
