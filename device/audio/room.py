"""What the device learnt of its room's echo, kept across restarts, and the rehearsal built from it.

A restarted daemon used to meet its next reply with every echo canceller cold: in the first
seconds of a first reply neither canceller takes more than a few dB off the echo, and the user's
word under it goes unheard (bench barge_in: a first reply catches fewer words than a second turn).
A smart speaker restarts (updates, power cuts, the watchdog) far more often than it is moved, so
what it learnt of the room is kept:

- `EchoRecord` keeps the last RECORD_S of the reply as the canceller met it: the reference frames
  and the raw mic frames, in the frontend's own alignment of the two (its resampler and framing
  included). In memory only, and only while a reply plays.
- `RoomMemory.learn` turns a record into the room's echo path: a least-squares estimate (Welch's
  cross- over auto-spectrum) of the impulse response from reference to mic at 16 kHz, with the
  reference's long-term spectrum (what the model's voice excites) and the mic's noise floor. It is a
  small JSON state file (`room.json` in the state directory, written atomically off the audio path,
  device/appliance/runtime.py) and holds nothing of what was said or played: no audio, only a
  response, a band spectrum, the floor's level and the audio set-up it was learnt with.
- `rehearsal` turns it into a few seconds of reference and the mic it would make: noise with the
  stored spectrum, in syllables and pauses (so the gates also see the room's tail in gaps), through
  the stored path, over the stored floor. The frontend runs it through the cancellers and gates at
  start (`Frontend.rehearse`), faster than real time, before the mic opens: they start from the
  room as it was.
- The start-up sound (a 2.6 s sweep at every start, Agent._probe_room) is recorded as a reply is.
  If the stored path explains its echo (`explained_db`, 10 dB in the bands the voice measured), the
  room rehearsed at start holds. Else (another audio set-up, the device was moved, or its very first
  start) the path is estimated from the sweep whole (estimate_path(whole=True)) and kept with the
  voice's spectrum known from before, or with the long-term average speech spectrum
  (`speech_spectrum`) where no reply has played yet, then rehearsed. A voice is not a room: a
  rehearsal in the sweep's own spectrum trains the cancellers where no voice will be (bench harness,
  a first start: 8 of 120 human-voice runs paused on echo, with a reply's spectrum 2); in the
  average voice's, a first start caught 67 of 72 human-voice words where, rehearsing nothing, it
  caught 52.
- The wake chime checks the rehearsed room before the first reply (`Frontend.EARCON_*`: the stored
  path must explain the chime's echo to 10 dB; without the start-up sound this is the first check),
  or else the reply's first loud frames (`Frontend.VERIFY_*`:
  the linear canceller must take 10 dB off them). If the device was moved, the agent forgets it
  (`Agent._room_checked`): fresh gates, a fresh AEC3 and delay estimate, as on a first start. A
  wrong room found out only in the reply was worse than none (bench, a restart in a moved room,
  checked and forgotten 150 ms into the reply: false pauses in 13 of 120 human-voice runs, a false
  barge-in, 107 of 144 words caught where a first start caught 123).

The path holds only for the set-up it was learnt with: the cards (their names and rates), the
buffers and the output latency place the echo in the frontend's frames, and a hardware mixer's level
is its gain. A start whose set-up differs (`RoomMemory.changes`) does not rehearse it: the check
would find it wrong only on the chime or, with no chime before the reply, 150 ms into the reply,
where forgetting is worse than a first start (above). The start-up sound measures the room anew in
the new set-up; the voice's spectrum carries over.

Why not SpeexDSP's own filter (SPEEX_ECHO_GET_IMPULSE_RESPONSE): it returns the first half of each
block's weights only, and its AUMDF variant leaves part of a block's response in the second half
between constraint updates, so a tap at a block's start reads at half its height (measured: a
30 ms delay of gain 0.5 read 0.236; the rebuilt echo 14-16 dB off the real one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from device.audio.dsp import convolve, round_int16

RATE = 16000
FRAME = 160
VERSION = 1
# The path kept: 512 ms at 16 kHz, twice the linear canceller's span, so that a long room's tail
# beyond that span is rehearsed too, and the residual gate learns the residual it leaves (kept at
# 256 ms, a restarted device's linear residual stood over its prediction 300 ms before a word, in
# RT60 500 ms: a false barge-in, bench talk_118).
TAPS = 8192
# ... and this many taps before the echo's lag 0 as well: a voice with nothing above 4 kHz (a codec's)
# makes the estimate a band-limited pulse, as much before its lag as after it, and where the echo
# reaches the frontend's mic frames with the reference's own (lag 0: the bench's 10 ms speaker) the part
# before was cut off. The rehearsal's echo was then a quarter of its energy short and the chime's check
# read 11.2 dB in the device's own room (bench, codec2_f, restart, 3 runs); with 64 taps before: 38.6 dB.
LEAD = 64
MAX_TAPS = 16384  # a stored path longer than this is not one of ours
RECORD_S = 6.0  # EchoRecord's length (s)
RECORD_MIN_S = 3.0  # ... and the least of it a path is estimated from (s)
SEGMENT = 32768  # the estimate's FFT length: 4 times TAPS, so the window hardly bends the room's tail
SPECTRUM_BANDS = 32  # the reference's long-term spectrum: log-spaced bands from 50 Hz to 8 kHz
REHEARSAL_S = 6.0  # the rehearsal's length (s); the bench's first replies are 3-9 s
REF_DBFS = -20.0  # its reference's level while a syllable sounds (dBFS RMS, a reply's loudness)


class EchoRecord:
    """The last `frames` (reference, raw mic) frame pairs of the reply, int16[160] each, contiguous:
    a frame without a reference (the speaker idle, an earcon) starts it afresh."""

    def __init__(self, frames: int = int(RECORD_S * 100)) -> None:
        self._ref = np.zeros((frames, FRAME), dtype=np.int16)
        self._mic = np.zeros((frames, FRAME), dtype=np.int16)
        self._n = 0  # frames pushed since the last break

    def push(self, ref: np.ndarray | None, mic: np.ndarray) -> None:
        if ref is None:
            self._n = 0
            return
        i = self._n % len(self._ref)
        self._ref[i] = ref
        self._mic[i] = mic
        self._n += 1

    def take(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(ref, mic) int16[n] each in time order, the last min(pushed, frames) frames since the last
        break; None while that is under RECORD_MIN_S."""
        k = len(self._ref)
        if self._n < RECORD_MIN_S * 100:
            return None
        order = np.arange(self._n - min(self._n, k), self._n) % k
        return self._ref[order].reshape(-1), self._mic[order].reshape(-1)


def estimate_path(ref: np.ndarray, mic: np.ndarray, taps: int = TAPS, lead: int = LEAD,
                  whole: bool = False) -> np.ndarray | None:
    """The echo path from ref to mic (int16 or float [n] each, 16 kHz, in step): float64[lead + taps],
    lag 0 at index `lead` (the `lead` taps before it: LEAD), the least-squares estimate over
    Hann-windowed SEGMENT halves (cross- over auto-spectrum, regularised at 1e-3 of the mean
    auto-spectrum where the reference has nothing): for a reply, whose voice is much the same all
    through. whole: over the record as one unwindowed block instead (a sweep, which is each frequency
    once: a window would lose the ones at its edges; the record must hold the room's tail after it).
    None if n < SEGMENT or the reference is silent."""
    x, y = np.asarray(ref, dtype=np.float64), np.asarray(mic, dtype=np.float64)
    n = min(len(x), len(y))
    if n < SEGMENT or not np.any(x[:n]):
        return None
    if whole:
        size = 1 << int(np.ceil(np.log2(n + taps + lead)))  # no wrap-around of the room's response
        spec_x, spec_y = np.fft.rfft(x[:n], size)[None, :], np.fft.rfft(y[:n], size)[None, :]
    else:
        size = SEGMENT
        starts = np.arange(0, n - SEGMENT + 1, SEGMENT // 2)
        win = np.hanning(SEGMENT)
        idx = starts[:, None] + np.arange(SEGMENT)
        spec_x = np.fft.rfft(x[idx] * win, axis=1)
        spec_y = np.fft.rfft(y[idx] * win, axis=1)
    sxy = np.sum(np.conj(spec_x) * spec_y, axis=0)
    sxx = np.sum(np.abs(spec_x) ** 2, axis=0)
    h = sxy / (sxx + 1e-3 * np.mean(sxx))
    full = np.fft.irfft(h, size)  # circular: the taps before lag 0 are at its end
    return np.concatenate((full[size - lead :], full[:taps])) if lead else full[:taps]


# The mic's noise floor in a record is its quietest this many frames in a row (noise_floor_db): 50 ms
# read a start-up sound's record 0.25-0.4 dB under the white floor it was played over (45 dB re 1 LSB,
# RT60 500 and 250 ms); one frame alone reads a chance dip of the noise.
FLOOR_FRAMES = 5


def noise_floor_db(mic: np.ndarray) -> float:
    """The mic's noise floor in a record (int16 or float [n] at 16 kHz): the RMS level of its quietest
    FLOOR_FRAMES frames in a row, dB re 1 LSB RMS (inf: a record shorter than that). Read off the start-up
    sound's record, whose last PROBE_TAIL_S (device/conversation/agent.py) hold the echo dying away into
    the floor. Where the echo never dies down to it, this reads high: the gates' floors then fall to the
    real one at its first frame, where a floor read low holds them under it for seconds."""
    power = _frame_power(mic)
    if len(power) < FLOOR_FRAMES:
        return math.inf
    quietest = float(np.min(np.convolve(power, np.full(FLOOR_FRAMES, 1.0 / FLOOR_FRAMES), mode="valid")))
    return 10 * math.log10(quietest + 1e-9)


def _frame_power(x: np.ndarray) -> np.ndarray:
    """float64[k]: the mean square of each of x's (int16 or float [n]) whole 10 ms frames, k = n // FRAME."""
    k = len(x) // FRAME
    return np.mean(np.square(np.asarray(x[: k * FRAME], dtype=np.float64)).reshape(k, FRAME), axis=1)


def _band_of(f: np.ndarray) -> np.ndarray:
    """int[len(f)]: each frequency's (Hz) band of the long-term spectrum (band_spectrum)."""
    edges = np.geomspace(50.0, RATE / 2, SPECTRUM_BANDS + 1)
    return np.clip(np.searchsorted(edges, f, side="right") - 1, 0, SPECTRUM_BANDS - 1)


def band_spectrum(x: np.ndarray) -> np.ndarray:
    """float64[SPECTRUM_BANDS]: x's (int16 [n] at 16 kHz) mean power per log-spaced band, 50 Hz-8 kHz."""
    f = np.fft.rfftfreq(SEGMENT, 1 / RATE)
    k = len(x) // SEGMENT * SEGMENT
    p = np.mean(np.abs(np.fft.rfft(np.asarray(x[:k], dtype=np.float64).reshape(-1, SEGMENT), axis=1)) ** 2,
                axis=0)
    band = _band_of(f)
    return np.bincount(band, weights=p, minlength=SPECTRUM_BANDS) / np.maximum(
        np.bincount(band, minlength=SPECTRUM_BANDS), 1)


# A band of the voice's long-term spectrum this far under its strongest band holds too little of it
# for the path to be measured there (estimate_path regularises it towards zero).
MEASURED_DB = 30.0


def measured_bins(spectrum: np.ndarray | None, n: int) -> np.ndarray:
    """bool[n // 2 + 1]: the rfft bins of n samples at 16 kHz that lie in bands of `spectrum`
    (band_spectrum, float[32]) within MEASURED_DB of its strongest: where a path learnt from that voice
    was measured (a 4 kHz voice says nothing of the path above 4 kHz). None: every bin."""
    f = np.fft.rfftfreq(n, 1 / RATE)
    if spectrum is None or not np.any(spectrum):
        return np.ones(len(f), dtype=bool)
    held = np.asarray(spectrum, dtype=np.float64) >= float(np.max(spectrum)) * 10 ** (-MEASURED_DB / 10)
    return held[_band_of(f)]


# The "universal" long-term average speech spectrum of Byrne et al. (1994, J. Acoust. Soc. Am. 96(4),
# 2108-2120: 12 languages, male and female talkers combined): 1/3-octave band levels, dB SPL at 0.45 m
# for 70 dB overall, at their centre frequencies (Hz), up to 8 kHz.
LTASS_HZ = (63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500, 3150,
            4000, 5000, 6300, 8000)
LTASS_DB = (38.6, 43.5, 54.4, 57.7, 56.8, 60.2, 60.3, 59.0, 62.1, 62.1, 60.5, 56.8, 53.7, 53.0, 52.0, 48.7,
            48.1, 46.8, 45.6, 44.5, 44.3, 43.7)


def speech_spectrum() -> np.ndarray:
    """float32[SPECTRUM_BANDS]: the long-term band spectrum (band_spectrum's power per bin, up to scale;
    its strongest band 1.0) of an average voice, for a room measured before any reply was heard:
    LTASS_DB interpolated in log frequency at each band's centre, less 10 log10(f) (a 1/3-octave band
    is f/4.3 Hz wide, so its level over its width is power per Hz)."""
    edges = np.geomspace(50.0, RATE / 2, SPECTRUM_BANDS + 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    db = np.interp(np.log(centres), np.log(LTASS_HZ), LTASS_DB) - 10 * np.log10(centres)
    return (10 ** ((db - db.max()) / 10)).astype(np.float32)


class RoomMemory:
    """The echo path learnt in this room, or nothing yet (`known` False).

    ir: float32[n], the echo at the mic per unit of reference, at 16 kHz, lag included (n at most
    MAX_TAPS), in the frontend's alignment of reference and mic frames, lag 0 at index `lead` (echo);
    spectrum: float32[32], the reference's long-term band spectrum (band_spectrum), the replies' voice's
    if `voice`, else an average voice's (speech_spectrum: a start-up sound's path with no reply heard
    yet; a voice is not a room);
    floor_db: the mic's noise floor (dB re 1 LSB RMS); setup: the audio set-up it was learnt with, {name: JSON value}
    (Agent.audio_setup; None: not known, a file from before it was kept). Kept by the Appliance
    (keep_room: learnt and written on its writer thread)."""

    def __init__(self) -> None:
        self.ir: np.ndarray | None = None
        self.lead = 0  # ir's taps before lag 0 (LEAD once learnt; 0 in a file from before they were kept)
        self.spectrum: np.ndarray | None = None
        self.voice = False  # spectrum is the replies' voice's (learnt from a reply), not speech_spectrum
        self.floor_db = 30.0
        self.setup: dict[str, Any] | None = None

    @property
    def known(self) -> bool:
        return self.ir is not None

    def changes(self, setup: dict[str, Any]) -> list[str]:
        """The names whose values differ between the set-up the path was learnt with and `setup` (sorted;
        [] when they match or the learnt one is not known)."""
        if self.setup is None:
            return []
        return sorted(k for k in self.setup.keys() | setup.keys() if self.setup.get(k) != setup.get(k))

    def learn(self, record: tuple[np.ndarray, np.ndarray], floor_db: float,
              setup: dict[str, Any] | None = None, sweep: bool = False,
              voice: np.ndarray | None = None) -> bool:
        """Take the room's path from a reply's record (EchoRecord.take), the mic's floor (dB re 1 LSB
        RMS; inf: not measured, the last one kept) and the set-up it was recorded with (JSON values, see
        the class doc); sweep: the record is the start-up sound's (estimate_path whole), and `voice` the
        replies' long-term spectrum known from before (band_spectrum, float[32]; None: not known,
        speech_spectrum is kept and `voice` is False). False, nothing changed, if no path came of it."""
        ref, mic = record
        ir = estimate_path(ref, mic, whole=sweep)
        if ir is None or not np.all(np.isfinite(ir)):
            return False
        self.ir, self.lead = ir.astype(np.float32), LEAD
        if not sweep:
            self.spectrum, self.voice = band_spectrum(ref).astype(np.float32), True
        elif voice is not None:
            self.spectrum, self.voice = np.asarray(voice, dtype=np.float32).copy(), True
        else:
            self.spectrum, self.voice = speech_spectrum(), False
        if math.isfinite(floor_db):
            self.floor_db = float(floor_db)
        self.setup = None if setup is None else dict(setup)
        return True

    def to_json(self) -> dict[str, Any]:
        """{"version", "rate", "floor_db", "spectrum": [float] * 32, "voice": bool, "ir": [float, ...],
        "lead": int, and "setup": {...} when known} (a few tens of kB)."""
        # rounded in one numpy call: 1e-7 of a unit path is -140 dB
        ir = [] if self.ir is None else self.ir.astype(np.float64).round(7).tolist()
        spectrum = [] if self.spectrum is None else [float(f"{v:.4g}") for v in self.spectrum.tolist()]
        data: dict[str, Any] = {"version": VERSION, "rate": RATE, "floor_db": round(self.floor_db, 2),
                                "spectrum": spectrum, "voice": self.voice, "ir": ir, "lead": self.lead}
        if self.setup is not None:
            data["setup"] = self.setup
        return data

    def load_json(self, data: Any) -> str | None:
        """Restore from to_json's dict; a problem (one line) if it is not one, nothing changed."""
        if not isinstance(data, dict) or data.get("version") != VERSION or data.get("rate") != RATE:
            return "not a room file of this version"
        ir, floor, spectrum = data.get("ir"), data.get("floor_db"), data.get("spectrum")
        if not isinstance(ir, list) or not 0 < len(ir) <= MAX_TAPS or not isinstance(floor, (int, float)) \
                or not isinstance(spectrum, list) or len(spectrum) != SPECTRUM_BANDS:
            return "no echo path in it"
        lead = data.get("lead", 0)
        if not isinstance(lead, int) or isinstance(lead, bool) or not 0 <= lead < len(ir):
            return "its echo path's lead is not a tap of it"
        setup = data.get("setup")
        if setup is not None and not isinstance(setup, dict):
            return "its audio set-up is not a table"
        voice = data.get("voice", True)  # a file from before the start-up sound: learnt from a reply
        if not isinstance(voice, bool):
            return "its spectrum's source is not true or false"
        try:
            arr = np.asarray(ir, dtype=np.float32)
            spec = np.asarray(spectrum, dtype=np.float32)
        except (TypeError, ValueError):
            return "its echo path is not numbers"
        if arr.ndim != 1 or spec.ndim != 1 or not np.all(np.isfinite(arr)) or not np.any(arr) \
                or not math.isfinite(floor) or not np.all(np.isfinite(spec)) or np.any(spec < 0) \
                or not np.any(spec):
            return "its echo path is not numbers"
        self.ir, self.spectrum, self.floor_db, self.setup, self.lead = arr, spec, float(floor), setup, lead
        self.voice = voice
        return None

    def echo(self, ref: np.ndarray) -> np.ndarray:
        """ref's echo at the mic through the kept path: float64[len(ref)] (ref float or int16 at 16 kHz,
        in the frontend's alignment). ValueError if nothing is known."""
        if self.ir is None:
            raise ValueError("RoomMemory.echo: no echo path known")
        return convolve(np.asarray(ref, dtype=np.float64), self.ir.astype(np.float64))[self.lead : self.lead + len(ref)]

    def explained_db(self, ref: np.ndarray, mic: np.ndarray, loud_db: float, min_loud: int) -> float | None:
        """How much of a record's echo the path explains (dB): mic's power over what is left of it once
        echo(ref) is taken off, both over mic's loud 10 ms frames (loud_db or more, dB re 1 LSB RMS) and
        in the bins where the path was measured (measured_bins of spectrum). ref, mic: int16 or float
        [n] at 16 kHz, in the frontend's alignment. None if fewer than min_loud frames are loud.
        ValueError if nothing is known."""
        power = self._loud_power(ref, mic, loud_db, min_loud, residual=True)
        if power is None:
            return None
        held = measured_bins(self.spectrum, power.shape[1] * 2 - 2)
        return 10 * float(np.log10(power[0, held].sum() / max(float(power[1, held].sum()), 1e-9)))

    # A band of the reference this far under its strongest band holds none of its echo (foreign_db).
    REF_SUPPORT_DB = 40.0

    def foreign_db(self, ref: np.ndarray, mic: np.ndarray, loud_db: float, min_loud: int) -> float | None:
        """How far under the mic's power (dB) lies its power in bands where the reference played nothing
        (REF_SUPPORT_DB under its strongest band, of band_spectrum's 32): over mic's loud frames, in the
        bins where the path was measured, as explained_db. No echo path puts power where the reference
        has none, so explained_db of a path, however right, is at most about this: a record of the
        echo alone reads high (the noise floor), one with a voice over a chime low (a voice is mostly
        under 1 kHz, the wake chime at 1.3-2.5 kHz). ref, mic as explained_db; None if fewer than
        min_loud frames are loud."""
        power = self._loud_power(ref, mic, loud_db, min_loud, residual=False)
        if power is None:
            return None
        n = power.shape[1] * 2 - 2
        band = _band_of(np.fft.rfftfreq(n, 1 / RATE))
        ref_bands = np.bincount(band, weights=power[1], minlength=SPECTRUM_BANDS)
        silent = ref_bands < float(ref_bands.max()) * 10 ** (-self.REF_SUPPORT_DB / 10)
        held = measured_bins(self.spectrum, n)
        foreign = float(power[0, held & silent[band]].sum())
        return 10 * float(np.log10(float(power[0, held].sum()) / max(foreign, 1e-9)))

    def _loud_power(self, ref: np.ndarray, mic: np.ndarray, loud_db: float, min_loud: int,
                    residual: bool) -> np.ndarray | None:
        """Power spectra [2, k // 2 + 1] over mic's loud 10 ms frames (loud_db or more, dB re 1 LSB RMS;
        the others zeroed), k the whole frames in both: mic's, then (residual) mic's less echo(ref), or
        ref's. None if fewer than min_loud frames are loud."""
        k = min(len(ref), len(mic)) // FRAME * FRAME
        x, y = np.asarray(ref[:k], dtype=np.float64), np.asarray(mic[:k], dtype=np.float64)
        loud = _frame_power(y) >= 10 ** (loud_db / 10)
        if int(loud.sum()) < min_loud:
            return None
        sides = (np.stack((y, y - self.echo(x) if residual else x)).reshape(2, -1, FRAME) * loud[:, None])
        return np.abs(np.fft.rfft(sides.reshape(2, -1), axis=1)) ** 2  # both sides in one FFT

    def rehearsal(self, seconds: float = REHEARSAL_S, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ref, mic): int16[n] each at 16 kHz, n a whole number of frames. ref: noise with the stored
        spectrum (none stored: speech_spectrum) in syllables of 120-300 ms, 40-150 ms apart, with a
        400 ms pause every ~1.5 s, at REF_DBFS while it sounds, then 0.5 s of silence; mic: ref through
        `ir` over white noise at floor_db. ValueError if nothing is known."""
        if self.ir is None:
            raise ValueError("RoomMemory.rehearsal: no echo path known")
        rng = np.random.default_rng(seed)
        n = int(seconds * RATE) // FRAME * FRAME
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / RATE)
        # the voice's own spectrum, where the path was measured (none kept: an average voice's)
        voice = self.spectrum if self.spectrum is not None else speech_spectrum()
        spectrum *= np.sqrt(voice.astype(np.float64)[_band_of(f)])
        noise = np.fft.irfft(spectrum, n)
        noise *= 10 ** (REF_DBFS / 20) * 32767 / np.sqrt(np.mean(noise**2))
        ref = noise * _syllables(n, rng)
        ref[-RATE // 2 :] = 0.0  # the tail after the last syllable
        mic = self.echo(ref)
        mic += rng.standard_normal(n) * 10 ** (self.floor_db / 20)
        return round_int16(ref), round_int16(mic)


def _syllables(n: int, rng: np.random.Generator) -> np.ndarray:
    """float[n] on/off envelope in 5 ms ramps: syllables, gaps between them and longer pauses."""
    env = np.zeros(n)
    t, since_pause = int(0.05 * RATE), 0.0
    while t < n:
        on = int(rng.uniform(0.12, 0.30) * RATE)
        env[t : t + on] = 1.0
        gap = rng.uniform(0.04, 0.15)
        since_pause += (on / RATE) + gap
        if since_pause > 1.5:
            gap, since_pause = 0.4, 0.0
        t += on + int(gap * RATE)
    ramp = np.ones(RATE // 200) / (RATE // 200)
    return np.convolve(env, ramp)[:n]
