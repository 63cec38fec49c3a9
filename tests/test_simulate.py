"""The whole agent on file audio against the local realtime server (`voxbox simulate` / `demo`).

These run the real detectors, the real WebSocket client and server on loopback,
and check what a user would notice: it wakes, answers, stops when interrupted,
tells the server what was really heard, goes back to idle, and sends nothing
before the wake word or while muted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.appliance.earcons import Earcons
from device.audio import wavio
from device.config import SoundsSettings
from device.dev.demo_report import barge_in_facts, sounding_runs
from device.dev.simulate import DEMO_INFO, DEMO_WAV

SPEED = "8"


def voxbox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device", *args], capture_output=True, text=True,
                          timeout=240, env=env)


def sim(tmp: Path, mic: Path, *extra: str) -> tuple[list[dict], np.ndarray]:
    out, tl = tmp / "out.wav", tmp / "t.jsonl"
    r = voxbox("simulate", "--mic", str(mic), "--speaker-out", str(out), "--timeline", str(tl),
               "--speed", SPEED, *extra)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in tl.read_text().splitlines()]
    speaker, rate = wavio.read_wav(out)
    assert rate == 24000
    return recs, speaker[:, 0]


def events(recs: list[dict], name: str, **match: object) -> list[dict]:
    return [r for r in recs if r["event"] == name and all(r.get(k) == v for k, v in match.items())]


def earcon_spans(recs: list[dict], tail_s: float = 0.0) -> list[tuple[float, float]]:
    """(start_s, end_s) of each earcon the timeline says was played (they start at their `t`)."""
    sounds = Earcons(SoundsSettings(), 24000)
    spans = []
    for r in events(recs, "earcon"):
        pcm = sounds.get(r["name"])
        spans.append((r["t"], r["t"] + (0 if pcm is None else len(pcm)) / 24000 + 0.011 + tail_s))
    return spans


def without_earcons(recs: list[dict], x: np.ndarray, rate: int, tail_s: float = 0.0) -> np.ndarray:
    """x with the earcons' spans (plus tail_s of echo) zeroed: what is left is the replies."""
    x = x.copy()
    for a, b in earcon_spans(recs, tail_s):
        x[int(a * rate):int(b * rate)] = 0
    return x


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], np.ndarray, Path]:
    tmp = tmp_path_factory.mktemp("demo")
    # The wake chime plays (earcons under echo must not barge in); the `done` one is off because
    # it starts 10 ms before the reply, and the alignment tests below measure the reply's onset.
    conf = tmp / "voxbox.toml"
    conf.write_text("[sounds]\ndone = false\n")
    recs, speaker = sim(tmp, DEMO_WAV, "--echo-gain", "0.5", "--echo-delay-ms", "30", "--room",
                        "--mic-out", str(tmp / "heard.wav"), "--config", str(conf))
    return recs, speaker, tmp


def test_demo_scenario_wakes_answers_and_is_interrupted(demo_run: tuple[list[dict], np.ndarray, Path]) -> None:
    recs, speaker, _ = demo_run
    info = json.loads(DEMO_INFO.read_text())
    wake = events(recs, "wake")
    assert len(wake) == 1 and wake[0]["wake_word"] == "hey_jarvis"
    assert info["wake_end"] - 0.2 <= wake[0]["t"] <= info["wake_end"] + 0.8
    states = [r["state"] for r in events(recs, "state")]
    i = states.index("listening")
    assert states[i:i + 3] == ["listening", "thinking", "speaking"]
    assert states[-1] == "idle"
    assert events(recs, "playback_start")
    barge = events(recs, "barge_in", source="local_vad")
    assert len(barge) == 1
    # The interruption, not the question or the echo of the reply, triggered it.
    assert info["interrupt"][0] <= barge[0]["t"] <= info["interrupt"][1]
    assert recs[-1]["event"] == "summary" and recs[-1]["errors"] == 0


def test_truncate_matches_what_the_speaker_really_played(demo_run: tuple[list[dict], np.ndarray, Path]) -> None:
    recs, speaker, _ = demo_run
    info = json.loads(DEMO_INFO.read_text())
    trunc = events(recs, "send", type="conversation.item.truncate")
    assert len(trunc) == 1
    facts = barge_in_facts(recs, speaker, 24000, info["interrupt"][0])
    assert facts is not None and abs(facts["audio_end_ms"] - facts["played_ms"]) <= 20, facts
    # ... and the speaker went quiet within one 10 ms frame of the barge-in decision.
    assert facts["silent_t"] <= facts["decision_t"] + 0.011
    stop = events(recs, "playback_stop", reason="barge_in")[0]
    assert stop["played_ms"] == trunc[0]["audio_end_ms"]


def test_out_wav_is_aligned_with_in_wav(demo_run: tuple[list[dict], np.ndarray, Path]) -> None:
    recs, speaker, _ = demo_run
    mic, rate = wavio.read_wav(DEMO_WAV)
    assert len(speaker) >= len(mic) * 24000 // rate
    # The first reply sound is at the moment the timeline says playback started.
    first = events(recs, "playback_start")[0]
    onset = sounding_runs(without_earcons(recs, speaker, 24000), 24000)[0][0]
    assert abs(onset - first["t"]) <= 0.011
    assert first["speaker_s"] <= onset < first["speaker_s"] + 0.2  # a reply may open with digital silence


def test_no_audio_leaves_without_the_wake_word(fixtures_dir: Path, tmp_path: Path) -> None:
    recs, speaker = sim(tmp_path, fixtures_dir / "negative_0.wav")
    assert not events(recs, "wake") and not events(recs, "uplink_start")
    assert recs[-1]["uplink_bytes"] == 0 and recs[-1]["uplink_audio_ms"] == 0
    assert not speaker.any()


def test_button_press_opens_a_conversation_without_a_wake_word(fixtures_dir: Path, tmp_path: Path) -> None:
    recs, speaker = sim(tmp_path, fixtures_dir / "two_utterances.wav", "--press", "0.5")
    assert events(recs, "button", action="press") and not events(recs, "wake")
    assert events(recs, "uplink_start")[0]["t"] == pytest.approx(0.6, abs=0.02)  # acts on release
    assert events(recs, "playback_start"), "the parrot should answer the first utterance"
    assert recs[-1]["uplink_bytes"] > 0


def test_holding_the_button_mutes_and_nothing_is_sent(fixtures_dir: Path, tmp_path: Path) -> None:
    phrase, rate = wavio.read_wav(fixtures_dir / "hey_jarvis_en-us.wav")
    mic = tmp_path / "muted_then_wake.wav"  # held from 0.1 s (mute at 2.1 s), then the wake phrase
    wavio.write_wav(mic, np.concatenate((np.zeros((rate * 2, phrase.shape[1]), np.int16), phrase)), rate)
    recs, speaker = sim(tmp_path, mic, "--press", "0.1:2.2")
    assert events(recs, "button", action="hold")
    assert [r["state"] for r in events(recs, "state")][-1] == "muted"
    assert not events(recs, "wake")  # the wake phrase is spoken while muted
    assert [r["name"] for r in events(recs, "earcon")] == ["mute"]
    assert recs[-1]["uplink_bytes"] == 0 and not without_earcons(recs, speaker, 24000).any()  # only the mute sound


def test_multichannel_48k_input_works_like_the_daemon(fixtures_dir: Path, tmp_path: Path) -> None:
    recs, _ = sim(tmp_path, fixtures_dir / "hey_jarvis_48k_stereo.wav")
    assert [r["wake_word"] for r in events(recs, "wake")] == ["hey_jarvis"]


def test_bad_inputs_give_one_line_and_the_contract_exit_code(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio" * 10)
    r = voxbox("simulate", "--mic", str(junk))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "junk.wav" in r.stderr
    r = voxbox("simulate", "--mic", str(DEMO_WAV), "--url", "ws://127.0.0.1:9/v1/realtime", "--speed", "50")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "cannot connect" in r.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text('[wake]\nwords = ["hey_nobody"]\n')
    r = voxbox("simulate", "--mic", str(DEMO_WAV), "--config", str(cfg))
    assert r.returncode == 2 and "hey_nobody" in r.stderr and "Traceback" not in r.stderr
    r = voxbox("simulate")
    assert r.returncode == 2


def test_the_mic_hears_the_speaker_echo_delayed(demo_run: tuple[list[dict], np.ndarray, Path]) -> None:
    recs, speaker, tmp = demo_run
    heard, rate = wavio.read_wav(tmp / "heard.wav")
    mic, _ = wavio.read_wav(DEMO_WAV)
    echo = heard[: len(mic), 0].astype(np.int32) - mic[:, 0]
    start = events(recs, "playback_start")[0]["speaker_s"]
    # Before the reply only the earcons played (the room's tail after them is ~0.25 s).
    before = without_earcons(recs, echo, rate, tail_s=0.3)[: int(start * rate)]
    assert np.abs(before).max() <= 2  # nothing else played yet: IN.wav (soxr's dither aside)
    echo = without_earcons(recs, echo, rate, tail_s=0.3)
    replies = without_earcons(recs, speaker, 24000)
    loud = np.flatnonzero(np.abs(replies.astype(np.int32)) > 1000)[0] / 24000  # first clear reply sound
    onset = np.flatnonzero(np.abs(echo) > 100)[0] / rate
    assert loud + 0.025 <= onset <= loud + 0.06  # it reaches the mic 30 ms later, through a room
