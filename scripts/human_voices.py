"""Recorded human speech for the barge-in set (scripts/make_barge_in_set.py): where it comes
from, under which license, and how one clip is read.

Every clip ships inside a Debian package (Makefile APT_PACKAGES); nothing is downloaded at
run time. The sources and their licenses (each package's /usr/share/doc/PKG/copyright):

  package                          speaker(s)                          license
  asterisk-core-sounds-en-g722     Allison Smith (en-US, female)       CC-BY-SA-3.0
  asterisk-core-sounds-fr-g722     June Wallack (fr-CA, female)        CC-BY-SA-3.0
  asterisk-core-sounds-it-g722     "Carlo" (it-IT, male)               CC-BY-SA-3.0
  codec2-examples                  codec2's test speech (en, several)  LGPL-2.1 (David Rowe)
  ktuberling-data                  KDE's word recordings (several)     GPL-2+ (KDE)

The Asterisk prompts are G.722 (16 kHz, 7 kHz audio band), decoded with the `G722` PyPI
package (public domain); codec2's clips are 8 kHz (a 4 kHz band) except speech_orig_16k;
ktuberling's words are 44.1 kHz Ogg Vorbis, read through sox. The speaker's sex is what
the package names say (Asterisk) or the median F0 measured here (codec2, ktuberling: < 160 Hz
male, > 180 Hz female); none of the texts matter, only that real people said them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

ASTERISK = Path("/usr/share/asterisk/sounds")
CODEC2 = Path("/usr/share/codec2")
KTUBERLING = Path("/usr/share/ktuberling/sounds")

# name -> (sex, language, package, files: concatenated with 150 ms gaps, cut near MAX_REPLY_S)
REPLIES: dict[str, tuple[str, str, str, list[str]]] = {
    "allison": ("f", "en", "asterisk-core-sounds-en-g722",
                ["en_US_f_Allison/demo-abouttotry.g722", "en_US_f_Allison/vm-options.g722"]),
    "june": ("f", "fr", "asterisk-core-sounds-fr-g722", ["fr_CA_f_June/vm-options.g722"]),
    "carlo": ("m", "it", "asterisk-core-sounds-it-g722", ["it_IT_m_Carlo/vm-options.g722"]),
    "codec2_m": ("m", "en", "codec2-examples", ["wav/morig.wav", "wav/mmt1.wav", "wav/big_dog.wav", "wav/cross.wav",
                                               "wav/morig.wav"]),
    "codec2_f": ("f", "en", "codec2-examples", ["raw/speech_orig_16k.wav"]),
}
# name -> (sex, package, file, kind): single short words and one phrase
USERS: dict[str, tuple[str, str, str, str]] = {
    "allison_no": ("f", "asterisk-core-sounds-en-g722", "en_US_f_Allison/vm-no.g722", "word"),
    "allison_cancelled": ("f", "asterisk-core-sounds-en-g722", "en_US_f_Allison/cancelled.g722", "word"),
    "allison_moment": ("f", "asterisk-core-sounds-en-g722", "en_US_f_Allison/one-moment-please.g722", "phrase"),
    "carlo_no": ("m", "asterisk-core-sounds-it-g722", "it_IT_m_Carlo/vm-no.g722", "word"),
    "kt_en_m_shoe": ("m", "ktuberling-data", "en/shoe.ogg", "word"),
    "kt_en_m_tie": ("m", "ktuberling-data", "en/tie.ogg", "word"),
    "kt_en_f_stick": ("f", "ktuberling-data", "en/stick.ogg", "word"),
    "kt_en_f_hat": ("f", "ktuberling-data", "en/hat.ogg", "word"),
    "kt_ru_m_stick": ("m", "ktuberling-data", "ru/stick.ogg", "word"),
    "kt_wa_m_sofri": ("m", "ktuberling-data", "wa/sofri.ogg", "word"),
    "kt_uk_f_shoe": ("f", "ktuberling-data", "uk/shoe.ogg", "word"),
}
MAX_REPLY_S = 12.0
PACKAGES = sorted({v[2] for v in REPLIES.values()} | {v[1] for v in USERS.values()})


class MissingVoices(RuntimeError):
    """A Debian package with the recordings (or the G722 decoder) is not installed."""


def _path(rel: str) -> Path:
    if rel.endswith(".g722"):
        return ASTERISK / rel
    if rel.endswith(".ogg"):
        return KTUBERLING / rel
    return CODEC2 / rel


def read(rel: str, rate: int) -> np.ndarray:
    """One clip as float64 samples at `rate` (int16 scale), with no changes but resampling."""
    p = _path(rel)
    if not p.is_file():
        raise MissingVoices(f"{p} is missing: apt-get install {' '.join(PACKAGES)}")
    if p.suffix == ".g722":
        try:
            import G722
        except ImportError:
            raise MissingVoices("the G722 decoder is missing: pip install G722") from None
        x = np.asarray(G722.G722(16000, 64000).decode(p.read_bytes()), dtype=np.float64)
        src = 16000
    else:
        # -R -D: no dither (sox dithers a 16-bit decode of Vorbis at random by default: every set made
        # had its own ktuberling words, so two machines never measured the same input)
        raw = subprocess.run(["sox", "-R", "-D", str(p), "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-"],
                             check=True, capture_output=True).stdout
        x = np.frombuffer(raw, dtype="<i2").astype(np.float64)
        src = int(subprocess.run(["soxi", "-r", str(p)], check=True, capture_output=True, text=True).stdout)
    import soxr

    return soxr.resample(x, src, rate) if src != rate else x


def trim(x: np.ndarray, rate: int, rel_db: float = -40.0) -> np.ndarray:
    """Leading/trailing silence off: 10 ms frames more than `rel_db` below the loudest."""
    fr = rate // 100
    n = len(x) // fr
    e = np.sqrt(np.mean(x[: n * fr].reshape(n, fr) ** 2, axis=1))
    loud = np.flatnonzero(e > e.max() * 10 ** (rel_db / 20))
    return x[loud[0] * fr : (loud[-1] + 1) * fr]


def reply(name: str, rate: int) -> np.ndarray:
    """A reply: the clips trimmed and joined with 150 ms of silence, cut at the quietest
    50 ms after MAX_REPLY_S - 1.5 s (a pause between words), float64 at `rate`."""
    parts: list[np.ndarray] = []
    for rel in REPLIES[name][3]:
        parts += [trim(read(rel, rate), rate), np.zeros(int(0.15 * rate))]
    x = np.concatenate(parts[:-1])
    if len(x) > MAX_REPLY_S * rate:
        w = int(0.05 * rate)
        lo, hi = int((MAX_REPLY_S - 1.5) * rate), int(MAX_REPLY_S * rate)
        e = np.convolve(x[lo:hi] ** 2, np.ones(w), mode="valid")
        x = x[: lo + int(np.argmin(e)) + w // 2]
    return x


def user(name: str, rate: int) -> np.ndarray:
    """An interruption: the clip trimmed, float64 at `rate`."""
    return trim(read(USERS[name][2], rate), rate)
