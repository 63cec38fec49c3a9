"""Human views of a timeline: one terminal line per record, and a PNG plot.

`format_record` turns a timeline record (contract in DESIGN.md) into one compact,
aligned line, e.g. ``"  3.210s  wake          hey_jarvis (0.93)"``. It never raises,
whatever the record holds.

`plot` draws one figure on a shared time axis in seconds: the timeline's `t` is the
position in the mic WAV, and the speaker WAV starts at the same instant (at its own
rate). Mic waveform on top, speaker waveform below, conversation states as coloured
spans across both, and labelled vertical markers for the events that matter when
reading a conversation (wake, barge-in, speech start/end, playback start/stop,
uplink start/stop, the truncate sent on barge-in). matplotlib is imported lazily
(the `plot` extra) and used through the Agg canvas only: no pyplot, no global
backend switch, safe from any thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from device.errors import VoxboxError

# ---------------------------------------------------------------------------
# Terminal lines

EVENT_WIDTH = 15

# The field shown first (bare, without "name=") for each contract event.
_MAIN_FIELD = {
    "state": "state",
    "button": "action",
    "speech_start": "source",
    "speech_end": "source",
    "send": "type",
    "recv": "type",
    "playback_start": "item_id",
    "playback_stop": "reason",
    "barge_in": "source",
    "led": "pattern",
    "disconnect": "reason",
}

_SUMMARY_ORDER = ("uplink_audio_ms", "uplink_bytes", "reconnects", "errors")
_MAX_VALUE_CHARS = 60


def _value(v: Any) -> str:
    if isinstance(v, float):
        s = f"{v:.3f}".rstrip("0").rstrip(".") if v == v else "nan"
    elif isinstance(v, (str, int, bool)) or v is None:
        s = str(v)
    else:
        try:
            s = json.dumps(v, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            s = repr(v)
    return s if len(s) <= _MAX_VALUE_CHARS else s[: _MAX_VALUE_CHARS - 1] + "…"


def _time(rec: Mapping[str, Any]) -> str:
    t: Any = rec.get("t")
    try:
        return f"{float(t):8.3f}s"
    except (TypeError, ValueError):
        return f"{'?':>8} "


def format_record(rec: Mapping[str, Any]) -> str:
    """One readable, aligned terminal line for a timeline record; never raises."""
    try:
        return _format(rec)
    except Exception:  # noqa: BLE001 - a display helper must not take the daemon down
        return f"{'?':>8}   {_value(rec)}"


def _format(rec: Mapping[str, Any]) -> str:
    if not isinstance(rec, Mapping):
        return f"{'?':>8}   {_value(rec)}"
    event = str(rec.get("event", "?"))
    rest = {k: v for k, v in rec.items() if k not in ("t", "event")}
    parts: list[str] = []

    if event == "wake":
        name = rest.pop("wake_word", "?")
        score = rest.pop("score", None)
        try:
            parts.append(f"{name} ({float(score):.2f})")
        except (TypeError, ValueError):
            parts.append(f"{name} ({_value(score)})")
    elif event == "send" and rest.get("type") == "conversation.item.truncate":
        parts.append(str(rest.pop("type")))
        parts.append(f"item={_value(rest.pop('item_id', '?'))}")
        parts.append(f"audio_end_ms={_value(rest.pop('audio_end_ms', '?'))}")
    elif event == "playback_stop":
        parts.append(_value(rest.pop("reason", "?")))
        if "played_ms" in rest:
            parts.append(f"played={_value(rest.pop('played_ms'))}ms")
    elif event == "summary":
        for key in _SUMMARY_ORDER:
            if key in rest:
                parts.append(f"{key}={_value(rest.pop(key))}")
    elif event in _MAIN_FIELD and _MAIN_FIELD[event] in rest:
        parts.append(_value(rest.pop(_MAIN_FIELD[event])))

    parts.extend(f"{k}={_value(v)}" for k, v in rest.items())
    line = f"{_time(rec)}  {event:<{EVENT_WIDTH}}"
    return (line + " " + " ".join(parts)).rstrip()


# ---------------------------------------------------------------------------
# Plot

STATE_COLORS = {
    "idle": "#d9d9d9",
    "listening": "#7fc97f",
    "thinking": "#fdc086",
    "speaking": "#80b1d3",
    "muted": "#bc80bd",
    "offline": "#969696",
    "error": "#fb8072",
}

# event -> (colour, linestyle, short label)
_MARKERS = {
    "wake": ("#d62728", "-", "wake"),
    "barge_in": ("#9400d3", "-", "barge-in"),
    "speech_start": ("#2ca02c", "--", "speech▶"),
    "speech_end": ("#2ca02c", ":", "speech■"),
    "playback_start": ("#1f77b4", "--", "play▶"),
    "playback_stop": ("#1f77b4", ":", "play■"),
    "uplink_start": ("#ff7f0e", "--", "uplink▶"),
    "uplink_stop": ("#ff7f0e", ":", "uplink■"),
    "truncate": ("#8c564b", "-", "truncate"),
}

_ENVELOPE_BINS = 3000  # min/max pairs per waveform: plenty for a 14-inch figure
_LABEL_ROWS = 6


def _load_wave(path: str | Path | None) -> tuple[np.ndarray, int] | None:
    if path is None:
        return None
    from device.audio import dsp, wavio

    samples, rate = wavio.read_wav(path)
    return dsp.select_channels(samples), rate


def envelope(samples: np.ndarray, rate: int, bins: int = _ENVELOPE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times_s, low, high) of int16 mono samples, as floats in [-1, 1], ≤ `bins` points.

    Vectorised: the samples are cut into equal blocks and each block keeps its min and max,
    so a peak is never lost, whatever the decimation.
    """
    x = np.asarray(samples, dtype=np.int16).reshape(-1)
    n = len(x)
    if n == 0:
        z = np.zeros(0)
        return z, z, z
    block = max(1, -(-n // bins))
    m = -(-n // block)
    padded = np.empty(m * block, dtype=np.int16)
    padded[:n] = x
    padded[n:] = x[-1]
    blocks = padded.reshape(m, block)
    low = blocks.min(axis=1).astype(np.float32) / 32768.0
    high = blocks.max(axis=1).astype(np.float32) / 32768.0
    times = (np.arange(m) * block + block / 2) / float(rate)
    return times, low, high


def state_spans(records: Iterable[Mapping[str, Any]], end: float) -> list[tuple[float, float, str]]:
    """[(start_s, end_s, state)] from the `state` records; the last span runs to `end`."""
    changes: list[tuple[float, str]] = []
    for rec in records:
        if rec.get("event") == "state" and isinstance(rec.get("t"), (int, float)):
            changes.append((float(rec["t"]), str(rec.get("state", "?"))))
    changes.sort(key=lambda c: c[0])
    spans = []
    for i, (t0, state) in enumerate(changes):
        t1 = changes[i + 1][0] if i + 1 < len(changes) else max(end, t0)
        if t1 > t0:
            spans.append((t0, t1, state))
    return spans


def _marker(rec: Mapping[str, Any]) -> tuple[float, str, str, str] | None:
    """(t, colour, linestyle, label) for a record worth a vertical line, else None."""
    event = rec.get("event")
    t = rec.get("t")
    if not isinstance(t, (int, float)):
        return None
    if event == "send":
        if rec.get("type") != "conversation.item.truncate":
            return None
        color, style, label = _MARKERS["truncate"]
        return float(t), color, style, f"{label} {_value(rec.get('audio_end_ms', '?'))} ms"
    if event not in _MARKERS:
        return None
    color, style, label = _MARKERS[event]
    if event == "wake":
        try:
            score: Any = rec.get('score')
            label = f"wake {rec.get('wake_word', '')} {float(score):.2f}"
        except (TypeError, ValueError):
            label = f"wake {rec.get('wake_word', '')}"
    elif event in ("speech_start", "speech_end", "barge_in"):
        src = str(rec.get("source", ""))
        label = f"{label} {src.replace('_vad', '')}".strip()
        if src == "server_vad":
            color = "#17becf" if event != "barge_in" else color
    elif event == "playback_stop":
        label = f"{label} {rec.get('reason', '')} {_value(rec.get('played_ms', ''))}ms"
    return float(t), color, style, label


def _import_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise VoxboxError("plot needs matplotlib: pip install 'voxbox[plot]'") from None
    return Figure, FigureCanvasAgg, Patch


def figure(
    records: Iterable[Mapping[str, Any]],
    mic_wav: str | Path | None,
    speaker_wav: str | Path | None,
):
    """Build the timeline figure (a matplotlib Figure on an Agg canvas) without saving it.

    The figure's axes are [events, mic, speaker]; state spans are the patches labelled
    ``state:<name>`` (gid) on the mic and speaker axes.
    """
    Figure, FigureCanvasAgg, Patch = _import_matplotlib()
    records = [r for r in records if isinstance(r, Mapping)]
    mic = _load_wave(mic_wav)
    spk = _load_wave(speaker_wav)

    ends = [0.0]
    if mic is not None:
        ends.append(len(mic[0]) / mic[1])
    if spk is not None:
        ends.append(len(spk[0]) / spk[1])
    ends.extend(float(r["t"]) for r in records if isinstance(r.get("t"), (int, float)))
    t_end = max(ends) or 1.0

    fig = Figure(figsize=(14, 7.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_ev, ax_mic, ax_spk = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.1, 2, 2]})

    # Waveforms (min/max envelope).
    for ax, wav, name, color in ((ax_mic, mic, "mic", "#333333"), (ax_spk, spk, "speaker", "#1f4e79")):
        if wav is None:
            ax.text(0.5, 0.5, f"no {name} audio", transform=ax.transAxes, ha="center", va="center", color="grey")
        else:
            times, low, high = envelope(*wav)
            ax.fill_between(times, low, high, color=color, linewidth=0.4, zorder=2)
            ax.set_ylabel(f"{name}\n{wav[1] / 1000:g} kHz")
            peak = float(max(np.abs(low).max(initial=0), np.abs(high).max(initial=0)))
            lim = min(1.0, max(0.05, peak * 1.1))
            ax.set_ylim(-lim, lim)
        ax.grid(axis="x", color="white", linewidth=0.6, zorder=1)

    # State spans across both waveforms (and, faintly, the event lane).
    seen_states: list[str] = []
    for t0, t1, state in state_spans(records, t_end):
        color = STATE_COLORS.get(state, "#ffffb3")
        for ax, alpha in ((ax_mic, 0.45), (ax_spk, 0.45), (ax_ev, 0.25)):
            span = ax.axvspan(t0, t1, color=color, alpha=alpha, linewidth=0, zorder=0)
            span.set_gid(f"state:{state}")
        if state not in seen_states:
            seen_states.append(state)

    # Event markers: lines through all three axes, labels in the event lane, stacked
    # in rows so that neighbours do not overlap.
    markers = sorted(filter(None, (_marker(r) for r in records)), key=lambda m: m[0])
    min_gap = t_end * 0.075
    row_last = [-np.inf] * _LABEL_ROWS
    for t, color, style, label in markers:
        for ax in (ax_ev, ax_mic, ax_spk):
            ax.axvline(t, color=color, linestyle=style, linewidth=1.0, alpha=0.9, zorder=3)
        free = [i for i in range(_LABEL_ROWS) if t - row_last[i] >= min_gap]
        row = free[0] if free else int(np.argmin(row_last))
        row_last[row] = t
        y = 1.0 - (row + 0.6) / _LABEL_ROWS
        ax_ev.text(
            t, y, " " + label, color=color, fontsize=7, ha="left", va="center", zorder=4,
            transform=ax_ev.get_xaxis_transform(), clip_on=True,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5},
        )
    ax_ev.set_ylim(0, 1)
    ax_ev.set_yticks([])
    ax_ev.set_ylabel("events")

    ax_spk.set_xlim(0, t_end)
    ax_spk.set_xlabel("seconds (mic sample clock)")
    handles = [Patch(color=STATE_COLORS.get(s, "#ffffb3"), alpha=0.6, label=s) for s in seen_states]
    if handles:
        ax_ev.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=len(handles),
                     fontsize=8, frameon=False, borderaxespad=0)

    title = "voxbox timeline"
    summary = next((r for r in reversed(records) if r.get("event") == "summary"), None)
    if summary is not None:
        ms = summary.get("uplink_audio_ms")
        bits = []
        if isinstance(ms, (int, float)):
            bits.append(f"uplink {ms / 1000:.1f} s")
        if isinstance(summary.get("uplink_bytes"), (int, float)):
            bits.append(f"{summary['uplink_bytes'] / 1000:.0f} kB")
        bits += [f"{k} {summary[k]}" for k in ("reconnects", "errors") if k in summary]
        title += "  —  " + ", ".join(bits)
    fig.suptitle(title, fontsize=10, x=0.99, ha="right")
    return fig


def plot(
    records: Iterable[Mapping[str, Any]] | str | Path,
    mic_wav: str | Path | None,
    speaker_wav: str | Path | None,
    out_png: str | Path,
) -> None:
    """Render the timeline (records, or a timeline.jsonl path) with both waveforms to a PNG."""
    if isinstance(records, (str, Path)):
        from device import timeline

        records = timeline.read(records)
    fig = figure(records, mic_wav, speaker_wav)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
