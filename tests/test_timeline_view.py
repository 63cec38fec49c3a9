"""Timeline views (terminal lines, PNG plot) and the bundled demo scenario."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from device.audio import wavio
from device.dev import timeline_view as tv
from device.errors import VoxboxError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "device" / "dev" / "data"
SCENARIO_WAV = DATA / "demo_scenario.wav"
SCENARIO_JSON = DATA / "demo_scenario.json"

STATES = ["offline", "idle", "listening", "thinking", "speaking", "muted", "error"]

# One record per contract event (DESIGN.md, "Timeline"), plus a couple of extras.
CONTRACT_RECORDS = [
    {"t": 0.0, "event": "state", "state": "offline"},
    {"t": 0.01, "event": "connect", "url": "ws://127.0.0.1:8765"},
    {"t": 0.02, "event": "send", "type": "session.update"},
    {"t": 0.03, "event": "recv", "type": "session.updated"},
    {"t": 0.04, "event": "state", "state": "idle"},
    {"t": 0.04, "event": "led", "pattern": "idle"},
    {"t": 0.5, "event": "wake", "wake_word": "hey_jarvis", "score": 0.9312},
    {"t": 0.5, "event": "state", "state": "listening"},
    {"t": 0.5, "event": "uplink_start"},
    {"t": 0.6, "event": "speech_start", "source": "local_vad"},
    {"t": 0.7, "event": "speech_start", "source": "server_vad"},
    {"t": 1.2, "event": "speech_end", "source": "local_vad"},
    {"t": 1.3, "event": "speech_end", "source": "server_vad"},
    {"t": 1.3, "event": "state", "state": "thinking"},
    {"t": 1.35, "event": "recv", "type": "response.created"},
    {"t": 1.5, "event": "playback_start", "item_id": "item_abc"},
    {"t": 1.5, "event": "state", "state": "speaking"},
    {"t": 2.0, "event": "barge_in", "source": "local_vad"},
    {"t": 2.0, "event": "playback_stop", "reason": "barge_in", "played_ms": 480},
    {"t": 2.0, "event": "send", "type": "response.cancel"},
    {"t": 2.0, "event": "send", "type": "conversation.item.truncate", "item_id": "item_abc", "audio_end_ms": 480},
    {"t": 2.0, "event": "state", "state": "listening"},
    {"t": 2.2, "event": "button", "action": "hold"},
    {"t": 2.2, "event": "state", "state": "muted"},
    {"t": 2.2, "event": "uplink_stop"},
    {"t": 2.5, "event": "disconnect", "reason": "server closed (1000)"},
    {"t": 2.5, "event": "state", "state": "offline"},
    {"t": 2.7, "event": "recv", "type": "error", "error": {"type": "invalid_request_error", "message": "x" * 200}},
    {"t": 2.7, "event": "state", "state": "error"},
    {"t": 2.9, "event": "button", "action": "press"},
    {"t": 2.9, "event": "button", "action": "release"},
    {"t": 3.0, "event": "summary", "uplink_audio_ms": 1700, "uplink_bytes": 81600, "reconnects": 1, "errors": 1},
]


# --------------------------------------------------------------------------- format_record


def test_format_record_covers_every_contract_event() -> None:
    lines = [tv.format_record(r) for r in CONTRACT_RECORDS]
    for rec, line in zip(CONTRACT_RECORDS, lines, strict=True):
        assert "\n" not in line
        assert f"{rec['t']:.3f}s" in line
        assert rec["event"] in line
    # The event column starts at the same place on every line, and so does the detail.
    starts = {line.index(rec["event"]) for rec, line in zip(CONTRACT_RECORDS, lines, strict=True)}
    assert len(starts) == 1
    by_event = dict(zip((r["event"] for r in CONTRACT_RECORDS), lines, strict=True))
    assert re.search(r"wake\s+hey_jarvis \(0\.93\)$", by_event["wake"])
    assert by_event["summary"].endswith("uplink_audio_ms=1700 uplink_bytes=81600 reconnects=1 errors=1")
    truncate = tv.format_record(CONTRACT_RECORDS[20])
    assert "conversation.item.truncate" in truncate and "item_abc" in truncate and "audio_end_ms=480" in truncate
    stop = tv.format_record(CONTRACT_RECORDS[18])
    assert "barge_in" in stop and "480" in stop
    assert tv.format_record({"t": 3.21, "event": "wake", "wake_word": "hey_jarvis", "score": 0.93}).startswith(
        "   3.210s  wake"
    )
    assert len(tv.format_record(CONTRACT_RECORDS[27])) < 160  # long nested values are shortened


@pytest.mark.parametrize(
    "rec",
    [{}, {"t": "soon"}, {"event": 5}, {"t": None, "event": "wake"}, {"t": 1, "event": "wake", "score": "high"},
     {"t": float("nan"), "event": "send", "type": "conversation.item.truncate"}, None, "text",
     {"t": 1, "event": "x", "v": object()}],
)
def test_format_record_never_raises(rec) -> None:
    assert isinstance(tv.format_record(rec), str)


# --------------------------------------------------------------------------- plot


def _tone_bursts(rate: int, seconds: float, bursts: list[tuple[float, float]], freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = rng.normal(0, 30, len(t))
    for a, b in bursts:
        m = (t >= a) & (t < b)
        x[m] += 12000 * np.sin(2 * np.pi * freq * t[m]) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t[m]))
    return np.clip(x, -32768, 32767).astype(np.int16)


@pytest.fixture()
def wavs(tmp_path: Path) -> tuple[Path, Path]:
    mic, spk = tmp_path / "mic.wav", tmp_path / "speaker.wav"
    wavio.write_wav(mic, _tone_bursts(16000, 3.2, [(0.3, 0.5), (0.6, 1.2), (1.9, 2.1)], 300, 1), 16000)
    wavio.write_wav(spk, _tone_bursts(24000, 3.2, [(1.5, 2.0)], 500, 2), 24000)
    return mic, spk


def _state_spans(fig) -> list:
    return [p for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("state:")]


def test_plot_renders_png_with_state_spans(tmp_path: Path, wavs: tuple[Path, Path]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "sub" / "timeline.png"
    tv.plot(CONTRACT_RECORDS, *wavs, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000

    fig = tv.figure(CONTRACT_RECORDS, *wavs)
    spans = _state_spans(fig)
    n_changes = sum(1 for r in CONTRACT_RECORDS if r["event"] == "state")
    # every state change opens a span, drawn on each of the three axes
    assert len(spans) == 3 * n_changes
    assert {p.get_gid().split(":", 1)[1] for p in spans} == set(STATES)
    # the last state runs to the end of the audio
    assert tv.state_spans(CONTRACT_RECORDS, 3.2)[-1] == (2.7, 3.2, "error")
    # markers are labelled in the event lane
    labels = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ("wake hey_jarvis 0.93", "barge-in", "truncate 480 ms", "uplink▶", "uplink■", "play▶", "play■",
                 "speech▶"):
        assert word in labels
    # shared time axis in seconds covering both files
    assert fig.axes[2].get_xlim() == pytest.approx((0, 3.2), abs=0.01)


def test_plot_accepts_a_jsonl_path_and_missing_speaker(tmp_path: Path, wavs: tuple[Path, Path]) -> None:
    pytest.importorskip("matplotlib")
    jsonl = tmp_path / "timeline.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in CONTRACT_RECORDS))
    tv.plot(jsonl, wavs[0], None, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_plot_is_fast_on_a_30_second_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    mic, spk = tmp_path / "mic.wav", tmp_path / "spk.wav"
    wavio.write_wav(mic, _tone_bursts(16000, 30, [(1, 3), (10, 12)], 200, 3), 16000)
    wavio.write_wav(spk, _tone_bursts(24000, 30, [(4, 8)], 400, 4), 24000)
    records = [dict(r, t=r["t"] * 9) for r in CONTRACT_RECORDS]
    tv.plot(records, mic, spk, tmp_path / "warm.png")  # first call pays for imports and fonts
    t0 = time.perf_counter()
    tv.plot(records, mic, spk, tmp_path / "t.png")
    assert time.perf_counter() - t0 < 3.0


def test_plot_without_matplotlib_is_a_clear_error(tmp_path: Path, wavs, monkeypatch) -> None:
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.patches"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(VoxboxError, match=r"pip install 'voxbox\[plot\]'"):
        tv.plot(CONTRACT_RECORDS, *wavs, tmp_path / "t.png")


def test_envelope_keeps_peaks() -> None:
    x = np.zeros(100_003, dtype=np.int16)
    x[54_321] = 30000
    x[777] = -20000
    times, low, high = tv.envelope(x, 16000, bins=500)
    assert len(times) <= 500
    assert high.max() == pytest.approx(30000 / 32768)
    assert low.min() == pytest.approx(-20000 / 32768)
    assert times[np.argmax(high)] == pytest.approx(54_321 / 16000, abs=len(x) / 500 / 16000)


# --------------------------------------------------------------------------- demo scenario


def _scenario() -> dict:
    return json.loads(SCENARIO_JSON.read_text())


def _frames_db(path: Path) -> np.ndarray:
    """10 ms RMS in dBFS."""
    x, rate = wavio.read_wav(path)
    assert rate == 16000 and x.shape[1] == 1
    x = x[: len(x) // 160 * 160, 0].astype(np.float64)
    rms = np.sqrt((x.reshape(-1, 160) ** 2).mean(axis=1))
    return 20 * np.log10(rms / 32768 + 1e-12)


def test_demo_scenario_format() -> None:
    with wave.open(str(SCENARIO_WAV), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        duration = w.getnframes() / 16000
    sc = _scenario()
    assert sc["duration"] == pytest.approx(duration, abs=0.01)
    assert 20 <= duration <= 24
    assert 0.8 <= sc["wake"] <= 1.2
    q0, q1 = sc["question"]
    i0, i1 = sc["interrupt"]
    assert sc["wake"] < sc["wake_end"] < q0 < q1 < i0 < i1 < duration
    assert 0.5 <= q0 - sc["wake_end"] <= 0.9  # pause after the wake word
    assert 1.5 <= q1 - q0 <= 3.0  # the question
    assert 1.5 <= i0 - q1 <= 2.3  # end of turn (~0.8 s) + ~1 s of the parrot's reply
    assert 1.0 <= i1 - i0 <= 2.2  # the interruption
    assert duration - i1 >= 12  # parrot answers it, then the 6 s follow-up window


def test_demo_scenario_onsets_match_the_energy_envelope() -> None:
    db = _frames_db(SCENARIO_WAV)
    sc = _scenario()
    speech = db > -40
    # not digital silence, but a very low noise floor
    assert np.all(db > -100)
    assert np.median(db[-1000:]) < -60
    segments = {"wake": (sc["wake"], sc["wake_end"]), "question": tuple(sc["question"]),
                "interrupt": tuple(sc["interrupt"])}
    for name, (a, b) in segments.items():
        ka, kb = round(a * 100), round(b * 100)
        assert not speech[max(0, ka - 30) : ka - 2].any(), f"{name}: energy before its onset {a}"
        assert speech[ka : ka + 5].any(), f"{name}: no energy at its onset {a}"
        assert speech[ka:kb].mean() > 0.6, f"{name}: mostly quiet between {a} and {b}"
        assert speech[kb - 5 : kb].any(), f"{name}: no energy just before its end {b}"
        assert not speech[kb + 2 : kb + 30].any(), f"{name}: energy after its end {b}"
    # and nothing else is loud
    mask = np.zeros_like(speech)
    for a, b in segments.values():
        mask[round(a * 100) - 2 : round(b * 100) + 2] = True
    assert not speech[~mask].any()


def test_demo_scenario_fires_hey_jarvis() -> None:
    oww_mod = pytest.importorskip("pyopen_wakeword")
    oww = oww_mod.OpenWakeWord.from_builtin(oww_mod.Model.HEY_JARVIS)
    feats = oww_mod.OpenWakeWordFeatures.from_builtin()
    with wave.open(str(SCENARIO_WAV), "rb") as w:
        audio = w.readframes(w.getnframes())
    best, best_t = 0.0, 0.0
    step = 1280 * 2
    for i in range(0, len(audio), step):
        for f in feats.process_streaming(audio[i : i + step]):
            for p in oww.process_streaming(f):
                if p > best:
                    best, best_t = p, (i + step) / 2 / 16000
    sc = _scenario()
    assert best > 0.9
    assert sc["wake_end"] <= best_t <= sc["question"][0] + 0.3


def test_demo_scenario_script_regenerates_identically(tmp_path: Path) -> None:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "make_demo_scenario.sh")],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "OUT_DIR": str(tmp_path), "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    made = json.loads((tmp_path / "demo_scenario.json").read_text())
    if made["made_with"] != _scenario()["made_with"]:
        pytest.skip(f"different tools ({made['made_with']}) than the committed files ({_scenario()['made_with']})")
    assert (tmp_path / "demo_scenario.json").read_bytes() == SCENARIO_JSON.read_bytes()
    assert (tmp_path / "demo_scenario.wav").read_bytes() == SCENARIO_WAV.read_bytes()
