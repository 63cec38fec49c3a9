#!/usr/bin/env python3
"""Generate the barge-in scenario set (`voxbox bench`, section barge_in; tests/test_barge_in.py).

    python3 scripts/make_barge_in_set.py OUT_DIR [--quick]

Writes into OUT_DIR:
  replies/reply_K.wav   the device's reply (espeak-ng, several voices), 24 kHz mono PCM16,
                        silence trimmed, peak -3 dBFS, -78 dBFS noise floor (never a run
                        of digital zeros): what the scripted server sends
  replies/human_NAME.wav  the same from recorded human speech (scripts/human_voices.py:
                        Debian packages, licenses listed there): female and male speakers
  users/user_K.wav      an interruption (other espeak-ng voices), 16 kHz, peak -3 dBFS
  users/human_NAME.wav  an interruption by a real person: single short words and a phrase
  in/NAME.wav           IN.wav of each scenario: 16 kHz mono, -60 dBFS noise floor, plus
                        (family "talk") the user's interruption at a known instant and level
  scenarios.json        one object per scenario (below); written last, so its presence
                        means the set is complete

A scenario: {"name", "family": "silent" | "talk", "voices": "espeak" | "human", "reply",
"reply_sex": "f" | "m", "mic", "reply_start_s", "echo_gain", "echo_delay_ms", "room",
"room_rt60_ms" (the room's RT60, 250 or 500 ms; null without a room),
"onset_s" (talk: first sample of the user's speech in IN.wav, else null: speech_start()), "user",
"user_kind": "word" | "phrase", "user_level_db", "offset_s" (onset - reply start)}.
Two voice families, each with its own grid: "espeak" (the original set, names unchanged)
and "human" (names start with "human_"): the same echo conditions, with replies in real
voices and interruptions that are often one short word at -6 or -12 dB, early in the
reply (0.4-0.6 s) or later.
The echo itself is not in IN.wav: the simulated sound card adds it (gain, delay, room)
from what the speaker really plays, so a barge-in that stops the reply stops its echo.

Deterministic: the same espeak-ng gives the same files (numpy's seeded generator
for the noise and the scenario grid). Needs espeak-ng, sox, numpy and soxr, and for the
human family the Debian packages and the G722 decoder named in scripts/human_voices.py.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import human_voices
import numpy as np
import soxr

REPLY_RATE = 24000
MIC_RATE = 16000
REPLY_START_S = 0.5

REPLIES = [  # (voice, words per minute, text)
    ("en-us", 165, "The weather today is sunny with a light breeze from the west. Temperatures will reach "
                   "twenty two degrees in the afternoon, and the evening should stay dry and calm, with a "
                   "few clouds arriving after midnight."),
    ("en+f3", 175, "Here is a recipe for a simple tomato soup. Chop two onions and a clove of garlic, soften "
                   "them in olive oil, add a kilo of ripe tomatoes and a litre of stock, then simmer for "
                   "twenty minutes and blend until smooth."),
    ("en-gb", 160, "The train to Edinburgh leaves from platform four at half past nine. It stops at York and "
                   "Newcastle, and the journey takes about four hours, so you should arrive in time for a "
                   "late lunch near the castle."),
    ("en-gb-scotland+m3", 170, "Sure, I can tell you a story. Once upon a time a small robot lived in a "
                               "lighthouse by the sea. Every night it counted the ships that passed, and "
                               "every morning it polished the great lamp until it shone like the sun."),
]
USERS = [  # (voice, words per minute, text)
    ("en+m3", 180, "stop"),
    ("en-us+f2", 175, "wait, stop please"),
    ("en-029", 170, "hey, hold on a second"),
    ("en-gb-x-rp+f4", 185, "no, cancel that"),
    ("en+m7", 170, "okay, what about tomorrow"),
    ("en-us+f4", 190, "stop, tell me a joke instead"),
]

GAINS = [0.3, 0.5, 0.7, 1.0]
DELAYS = [10, 30, 60]
OFFSETS = [0.4, 0.7, 1.0, 1.5, 2.5, 4.0]  # user onset after the reply starts (s)
LEVELS = [0.0, -6.0, -12.0]  # user level vs the reply's (both peak -3 dBFS before this)
HUMAN_REPLIES = list(human_voices.REPLIES)
HUMAN_USERS = list(human_voices.USERS)
EARLY = (0.4, 0.6)  # human family: every other interruption starts this early in the reply (s)
LATE = [1.0, 1.5, 2.5, 4.0]
# The room's RT60 (ms) where a scenario has one: living rooms are 300-600 ms. The full grid
# alternates over its gain x delay cells, so each room meets every gain.
ROOMS = [250, 500]


def rt60(k: int, room: bool) -> int | None:
    """The RT60 of the k-th gain x delay x room cell of a full grid (None: no room)."""
    return ROOMS[(k // 2) % len(ROOMS)] if room else None


REPLY_SEX = ["m", "f", "m", "m"]  # of REPLIES (espeak's en+f3 is its female voice)


def peak(x: np.ndarray, db: float = -3.0) -> np.ndarray:
    """Scaled to a peak of `db` dBFS (float64, int16 scale)."""
    return x * (32767 * 10 ** (db / 20)) / np.max(np.abs(x))


def speak(text: str, voice: str, wpm: int, rate: int) -> np.ndarray:
    """espeak-ng → `rate` Hz int16, silence trimmed (|x| > 0.3 % FS), peak -3 dBFS."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(wpm), text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        src, x = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    y = soxr.resample(x.astype(np.float32), src, rate)
    loud = np.flatnonzero(np.abs(y) > 0.003 * 32768)
    y = y[loud[0] : loud[-1] + 1]
    y *= (32767 * 10 ** (-3 / 20)) / np.max(np.abs(y))
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype("<i2").tobytes())


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """-60 dBFS (RMS) noise floor: not digital silence, as a real mic."""
    return rng.standard_normal(n) * 32768 * 1e-3


def grid(quick: bool, rng: np.random.Generator) -> list[dict]:
    """The scenario grid (echo gain × delay × room for each family), espeak voices then human."""
    out = [dict(p, voices="espeak") for p in _espeak_grid(quick, rng)]
    # its own generator: the espeak family's files stay what they were before the human one existed
    return out + [dict(p, voices="human") for p in _human_grid(quick, np.random.default_rng(2026))]


def _human_grid(quick: bool, rng: np.random.Generator) -> list[dict]:
    """Replies and interruptions in recorded voices; the user is never the reply's speaker."""
    out: list[dict] = []
    if quick:
        out.append(dict(family="silent", reply="allison", gain=1.0, delay=30, room=True, rt60=250))
        out.append(dict(family="talk", reply="allison", gain=1.0, delay=30, room=False, rt60=None, offset=1.5,
                        user="kt_en_m_shoe", level=-6.0))
        out.append(dict(family="silent", reply="allison", gain=1.0, delay=60, room=True, rt60=500))  # a long room
        return out
    combos = [(g, d, room) for g in GAINS for d in DELAYS for room in (False, True)]
    for k, (g, d, room) in enumerate(combos):
        for r in (k % len(HUMAN_REPLIES), (k + 2) % len(HUMAN_REPLIES)):
            out.append(dict(family="silent", reply=HUMAN_REPLIES[r], gain=g, delay=d, room=room,
                            rt60=rt60(k, room)))
    for k, (g, d, room) in enumerate(combos):
        for j in range(3):
            reply = HUMAN_REPLIES[int(rng.integers(len(HUMAN_REPLIES)))]
            users = [u for u in HUMAN_USERS if not u.startswith(reply)]
            u = users[int(rng.integers(len(users)))]
            word = human_voices.USERS[u][3] == "word"
            early = (k * 3 + j) % 2 == 0
            off = rng.uniform(*EARLY) if early else LATE[(k * 3 + j) // 2 % len(LATE)] + rng.uniform(0, 0.2)
            level = [-6.0, -12.0][(k + j) % 2] if word else [0.0, -6.0][(k + j) % 2]
            out.append(dict(family="talk", reply=reply, gain=g, delay=d, room=room, rt60=rt60(k, room),
                            offset=float(off), user=u,
                            level=level))
    return out


def _espeak_grid(quick: bool, rng: np.random.Generator) -> list[dict]:
    out: list[dict] = []
    if quick:
        out.append(dict(family="silent", reply=0, gain=1.0, delay=30, room=True, rt60=250))
        out.append(dict(family="silent", reply=1, gain=1.0, delay=10, room=False, rt60=None))
        for k, (g, d, room, off, lvl) in enumerate([(1.0, 30, True, 1.0, -6.0), (0.5, 60, False, 1.5, 0.0),
                                                     (0.7, 10, True, 0.7, -6.0), (1.0, 30, False, 2.5, -12.0)]):
            out.append(dict(family="talk", reply=k % len(REPLIES), gain=g, delay=d, room=room,
                            rt60=250 if room else None, offset=off,
                            user=k % len(USERS), level=lvl))
        return out
    combos = [(g, d, room) for g in GAINS for d in DELAYS for room in (False, True)]
    for k, (g, d, room) in enumerate(combos):  # 24 combos × 2 replies: ~10 min of echo-only reply
        for r in (k % len(REPLIES), (k + 1) % len(REPLIES)):
            out.append(dict(family="silent", reply=r, gain=g, delay=d, room=room, rt60=rt60(k, room)))
    for k, (g, d, room) in enumerate(combos):  # 24 combos × 3 interruptions
        for j in range(3):
            out.append(dict(family="talk", reply=int(rng.integers(len(REPLIES))), gain=g, delay=d, room=room,
                            rt60=rt60(k, room),
                            offset=float(OFFSETS[(k * 3 + j) % len(OFFSETS)] + rng.uniform(0, 0.2)),
                            user=int(rng.integers(len(USERS))), level=float(LEVELS[(k + j) % len(LEVELS)])))
    return out


def speech_start(x: np.ndarray, rate: int, rel_db: float = -40.0, above_hz: float = 200.0) -> int:
    """Where the speech in a clip begins (samples): its first 10 ms frame whose power above `above_hz`
    is within `rel_db` of that power's loudest frame. human_voices.trim's rule, on the band speech is
    heard in: the ktuberling recordings hold 20-80 ms of hum under 200 Hz before their words (hat,
    stick, tie, sofri), within 40 dB of the word's peak in the whole band, 42-63 dB under it above
    200 Hz. An onset there would time a barge-in from a sound no listener hears as the user."""
    fr = rate // 100
    n = len(x) // fr
    frames = np.asarray(x[: n * fr], dtype=np.float64).reshape(n, fr) * np.hanning(fr)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    power = spec[:, int(np.ceil(above_hz * fr / rate)):].sum(axis=1)
    return int(np.flatnonzero(power >= power.max() * 10 ** (rel_db / 10))[0]) * fr


def room_tag(rt60_ms: int | None) -> str:
    """The name's room part: none, "_room" (250 ms, the names from before the second room) or "_roomN"."""
    return "" if rt60_ms is None else "_room" if rt60_ms == 250 else f"_room{rt60_ms}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--quick", action="store_true", help="a handful of scenarios (tests)")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    (out / "scenarios.json").unlink(missing_ok=True)
    rng = np.random.default_rng(2024)
    plan = grid(args.quick, rng)

    replies: dict[str, np.ndarray] = {}
    users: dict[str, np.ndarray] = {}
    for p in plan:
        human = p["voices"] == "human"
        p["reply_file"] = f"replies/human_{p['reply']}.wav" if human else f"replies/reply_{p['reply']}.wav"
        p["sex"] = human_voices.REPLIES[p["reply"]][0] if human else REPLY_SEX[p["reply"]]
        if p["reply_file"] not in replies:
            if human:
                x = peak(human_voices.reply(p["reply"], REPLY_RATE))
            else:
                voice, wpm, text = REPLIES[p["reply"]]
                x = speak(text, voice, wpm, REPLY_RATE).astype(np.float64)
            # A -78 dBFS floor, as real TTS: no run of digital zeros inside the reply, so
            # "OUT.wav stays zero from here" marks where the speaker was silenced.
            x = np.clip(np.rint(x + rng.standard_normal(len(x)) * 4), -32768, 32767).astype(np.int16)
            replies[p["reply_file"]] = x
            write_wav(out / p["reply_file"], x, REPLY_RATE)
        if p["family"] == "talk":
            p["user_file"] = f"users/human_{p['user']}.wav" if human else f"users/user_{p['user']}.wav"
            p["user_kind"] = human_voices.USERS[p["user"]][3] if human else "phrase"
            if p["user_file"] not in users:
                if human:
                    x = np.rint(peak(human_voices.user(p["user"], MIC_RATE))).astype(np.int16)
                else:
                    voice, wpm, text = USERS[p["user"]]
                    x = speak(text, voice, wpm, MIC_RATE)
                users[p["user_file"]] = x
                write_wav(out / p["user_file"], x, MIC_RATE)

    scenarios = []
    counts = {"espeak": 0, "human": 0}
    for p in plan:
        i = counts[p["voices"]]
        counts[p["voices"]] += 1
        reply_s = len(replies[p["reply_file"]]) / REPLY_RATE
        name = (f"{'human_' if p['voices'] == 'human' else ''}{p['family']}_{i:03d}"
                f"{'_' + p['reply'] if p['voices'] == 'human' else ''}"
                f"_g{p['gain']:.1f}_d{p['delay']}{room_tag(p['rt60'])}")
        sc = {"name": name, "family": p["family"], "voices": p["voices"], "reply": p["reply_file"],
              "reply_sex": p["sex"], "mic": f"in/{name}.wav", "reply_start_s": REPLY_START_S,
              "echo_gain": p["gain"], "echo_delay_ms": p["delay"], "room": p["room"],
              "room_rt60_ms": p["rt60"], "onset_s": None,
              "user": None, "user_kind": None, "user_level_db": None, "offset_s": None}
        if p["family"] == "silent":
            n = int((REPLY_START_S + reply_s + 0.5) * MIC_RATE)
            mic = noise(n, rng)
        else:
            user = users[p["user_file"]].astype(np.float64) * 10 ** (p["level"] / 20)
            at = int(round((REPLY_START_S + p["offset"]) * MIC_RATE))
            n = at + len(user) + int(1.0 * MIC_RATE)
            mic = noise(n, rng)
            mic[at : at + len(user)] += user
            onset = at + speech_start(user, MIC_RATE)
            sc.update(onset_s=round(onset / MIC_RATE, 4), user=p["user_file"], user_kind=p["user_kind"],
                      user_level_db=p["level"], offset_s=round(onset / MIC_RATE - REPLY_START_S, 3))
        write_wav(out / sc["mic"], np.clip(np.rint(mic), -32768, 32767).astype(np.int16), MIC_RATE)
        scenarios.append(sc)
    (out / "scenarios.json").write_text(json.dumps(scenarios, indent=1) + "\n")
    print(f"make_barge_in_set: {len(scenarios)} scenarios in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
