"""What the demo proves, measured from its own outputs (timeline + speaker.wav + scenario onsets).

The numbers come from the files, not from the agent's opinion of itself: the
speaker going quiet is read off OUT.wav (exact zeros = nothing played), and
the user's onset from the scenario's measured segment times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from device.audio import wavio


def sounding_runs(x: np.ndarray, rate: int, gap_ms: int = 20) -> list[tuple[float, float]]:
    """(start_s, end_s) spans where the speaker played anything; gaps shorter than gap_ms are bridged."""
    nz = np.flatnonzero(x != 0)
    if len(nz) == 0:
        return []
    breaks = np.flatnonzero(np.diff(nz) > rate * gap_ms // 1000)
    starts = np.concatenate(([nz[0]], nz[breaks + 1]))
    ends = np.concatenate((nz[breaks], [nz[-1]]))
    return [(s / rate, (e + 1) / rate) for s, e in zip(starts, ends, strict=True)]


def played_samples(x: np.ndarray, start: int, end: int, rate: int) -> int:
    """Samples the speaker really played in x[start:end]: runs of exact zeros of 2 ms or more are
    pauses (a reply's own noise floor never has them; the player outputs exact zeros when paused)."""
    nz = np.flatnonzero(x[start:end] != 0)
    if len(nz) == 0:
        return 0
    gaps = np.diff(nz) - 1
    paused = int(gaps[gaps >= rate // 500].sum())
    return int(nz[-1] + 1 - nz[0]) - paused


def barge_in_facts(records: list[dict[str, Any]], speaker: np.ndarray, rate: int,
                   onset_s: float | None) -> dict[str, Any] | None:
    """Latency (user onset → speaker silent) and truncate accuracy of the first barge-in; None if none.

    "Silent" is the instant after which speaker.wav stays exactly zero until the next reply
    starts (or the next earcon sounds: an earcon is not the reply); "played" runs from the
    item's first speaker sample (playback_start's speaker_s).
    """
    barge = next((r for r in records if r["event"] == "barge_in"), None)
    if barge is None:
        return None
    trunc = next((r for r in records if r["event"] == "send" and r.get("type") == "conversation.item.truncate"
                  and r["t"] >= barge["t"]), None)
    nxt = next((r for r in records if r["event"] == "playback_start" and r["t"] > barge["t"]), None)
    end = len(speaker) if nxt is None else int(nxt.get("speaker_s", nxt["t"]) * rate)
    sound = next((r for r in records if r["event"] == "earcon" and r["t"] > barge["t"]), None)
    if sound is not None:
        end = min(end, int(sound["t"] * rate))
    nz = np.flatnonzero(speaker[:end] != 0)
    silent_at = (nz[-1] + 1) / rate if len(nz) else 0.0
    facts: dict[str, Any] = {"source": barge["source"], "decision_t": barge["t"], "silent_t": silent_at}
    if onset_s is not None:
        facts["onset_t"] = onset_s
        facts["latency_ms"] = round((silent_at - onset_s) * 1000)
    start = None if trunc is None else next(
        (r for r in records if r["event"] == "playback_start" and r.get("item_id") == trunc["item_id"]), None)
    if trunc is not None and start is not None:
        facts["audio_end_ms"] = trunc["audio_end_ms"]
        first = int(round(start.get("speaker_s", start["t"]) * rate))
        facts["played_ms"] = round(played_samples(speaker, first, int(round(silent_at * rate)), rate) * 1000 / rate)
    return facts


RING_WAV = Path(__file__).resolve().parents[1] / "appliance" / "sounds" / "timer.wav"


def ring_onset(speaker: np.ndarray, rate: int, due_s: float, window_s: float = 0.1) -> int | None:
    """The sample within window_s of due_s where the ring's first 50 ms match speaker.wav best
    (normalized cross-correlation, so a reply under it does not decide); None if it matches nowhere
    (correlation below 0.5) or the ring's sound cannot be read."""
    try:
        ring = wavio.read_mono(RING_WAV, rate).astype(np.float64)
    except Exception:  # no sound to match: no onset claimed
        return None
    tpl = ring[np.argmax(np.abs(ring) > 0):][: rate // 20]
    lo = max(0, int((due_s - window_s) * rate))
    seg = speaker[lo:int((due_s + window_s) * rate) + len(tpl)].astype(np.float64)
    if len(tpl) == 0 or len(seg) < len(tpl):
        return None
    dots = np.correlate(seg, tpl, "valid")
    energy = np.sqrt(np.convolve(seg * seg, np.ones(len(tpl)), "valid")) * np.sqrt(np.dot(tpl, tpl))
    score = dots / np.maximum(energy, 1e-9)
    k = int(np.argmax(score))
    lead = int(np.argmax(np.abs(ring) > 0))  # silence at the head of the file plays too
    return lo + k - lead if score[k] >= 0.5 else None


def timer_facts(records: list[dict[str, Any]], speaker: np.ndarray, rate: int) -> dict[str, Any] | None:
    """The first timer: when it was due, when its sound really started in speaker.wav, how it stopped.

    The ring's onset is the first sample at or after 0.1 s before the due moment that rises out of
    at least 20 ms of exact silence, unless the ring's own sound starts elsewhere (a reply rising
    out of silence just then, or playing under the ring): then the moment within 0.1 s of due where
    speaker.wav best matches the ring's sound (`ring_onset`). None without a timer.
    """
    set_ = next((r for r in records if r["event"] == "timer" and r.get("action") == "set"), None)
    if set_ is None:
        return None
    tid, due = set_["id"], float(set_["due_t"])
    facts: dict[str, Any] = {"id": tid, "set_t": set_["t"], "due_t": due}
    call = next((r for r in records if r["event"] == "tool_result" and r["t"] <= set_["t"] + 1e-9), None)
    if call is not None:
        facts["tool"], facts["tool_ok"] = call["name"], call["ok"]
    ring = next((r for r in records if r["event"] == "timer" and r.get("action") == "ring" and r["id"] == tid), None)
    if ring is not None:
        facts["ring_t"] = ring["t"]
        lo, quiet = max(0, int((due - 0.1) * rate)), int(0.02 * rate)
        loud = np.flatnonzero(speaker[lo:] != 0)
        i = lo + int(loud[0]) if len(loud) else -1
        if i >= 0 and (i - quiet < 0 or speaker[i - quiet:i].any()):
            i = -1  # something else was playing: not this rule's to say
        matched = ring_onset(speaker, rate, due)
        if matched is not None and (i < 0 or abs(matched - i) > rate // 200):
            i = matched  # what rose out of silence was not the ring (a reply starting just then)
        if i >= 0:
            facts["onset_t"] = i / rate
            facts["onset_error_ms"] = round((i / rate - due) * 1000, 1)
    stop = next((r for r in records if r["event"] == "timer" and r.get("action") in ("stop", "cancel")
                 and r["id"] == tid), None)
    if stop is not None:
        facts["stop_t"], facts["stop_reason"] = stop["t"], stop.get("reason", stop["action"])
        after = speaker[int((stop["t"] + 0.05) * rate):]
        facts["silent_after_stop"] = not after.any()
    return facts


def summary_lines(records: list[dict[str, Any]], speaker: np.ndarray, rate: int,
                  info: dict[str, Any] | None) -> list[str]:
    lines: list[str] = []
    wake = next((r for r in records if r["event"] == "wake"), None)
    if wake:
        lines.append(f"wake word      {wake['wake_word']} at {wake['t']:.2f} s (score {wake['score']:.2f})")
    else:
        lines.append("wake word      not detected")
    states = [r["state"] for r in records if r["event"] == "state"]
    lines.append("states         " + " → ".join(s for i, s in enumerate(states) if i == 0 or states[i - 1] != s))
    onset = info["interrupt"][0] if info and "interrupt" in info else None
    facts = barge_in_facts(records, speaker, rate, onset)
    if facts is None:
        lines.append("barge-in       none")
    else:
        if "latency_ms" in facts:
            pause = next((r for r in records if r["event"] == "playback_pause"
                          and (onset or 0) - 0.05 <= r["t"] <= facts["decision_t"]), None)
            how = (f"reply paused at {pause['t']:.2f} s, barge-in confirmed ({facts['source']}) at "
                   f"{facts['decision_t']:.2f} s" if pause
                   else f"{facts['source']} decides at {facts['decision_t']:.2f} s")
            lines.append(f"barge-in       user starts at {facts['onset_t']:.2f} s, {how}, speaker silent at "
                         f"{facts['silent_t']:.2f} s: {facts['latency_ms']} ms onset → silence")
        if "played_ms" in facts:
            lines.append(f"truncate       audio_end_ms {facts['audio_end_ms']} vs {facts['played_ms']} ms really "
                         f"played (speaker.wav): off by {abs(facts['audio_end_ms'] - facts['played_ms'])} ms")
    tf = timer_facts(records, speaker, rate)
    if tf is not None:
        tool = f"{tf.get('tool', '?')} ({'ok' if tf.get('tool_ok') else 'failed'}) at {tf['set_t']:.2f} s, " \
            if "tool" in tf else ""
        rang = (f"its sound starts at {tf['onset_t']:.3f} s in speaker.wav ({tf['onset_error_ms']:+.1f} ms)"
                if "onset_t" in tf else "rang" if "ring_t" in tf else "did not ring")
        stopped = f", stopped by {tf['stop_reason']} at {tf['stop_t']:.2f} s" if "stop_t" in tf else ""
        lines.append(f"timer          {tool}due at {tf['due_t']:.3f} s: {rang}{stopped}")
    summ = records[-1] if records and records[-1]["event"] == "summary" else None
    if summ:
        lines.append(f"uplink         {summ['uplink_audio_ms'] / 1000:.1f} s of audio, {summ['uplink_bytes']} bytes; "
                     f"reconnects {summ['reconnects']}, errors {summ['errors']}")
    return lines
