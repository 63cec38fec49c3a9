"""Where the idle daemon's CPU goes: a probe run inside a child process on the PulseAudio rig.

    python -m device.bench.idle_parts daemon --config voxbox.toml --window 10   # `voxbox run`, metered
    python -m device.bench.idle_parts bare --input-ms 20 --window 10            # PortAudio alone

Prints one JSON object: CPU as % of one core over the window, per part.

`daemon` runs `voxbox run` (device.service.run) with meters around its parts: each wrapper adds
the CPU time of its own thread (CLOCK_THREAD_CPUTIME_ID, ns) spent inside the wrapped call, and
every thread's CPU clock is read by its TID (Linux's per-thread CPU clocks are readable within
the process), so the per-thread rows are exact, not sampled. A sampling profiler (py-spy) counts
a runnable-but-descheduled thread as busy, which on a loaded machine inflates the busy parts
several times over; CPU clocks do not. Parts on the main thread (inclusive of their callees):
wake word, frontend (soxr and the echo canceller inside it shown too), the rest of the agent's per-block work, the
watchdog; what is left of the main thread is the asyncio loop itself (waking for blocks, timers,
the link's task). Other threads: PortAudio's input and output callback threads (found by their
first callback), libpulse's mainloops (`threaded-ml`), the timeline writer, anything else.

`bare` opens PortAudio streams on the rig's default devices whose callbacks do nothing: the floor
any client of this sound stack pays for a given block size.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

NS = 1_000_000_000


def thread_cpu_ns(tid: int) -> int:
    """CPU time of thread `tid` of this process (Linux: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED))."""
    try:
        return time.clock_gettime_ns(((~tid) << 3) | 6)
    except OSError:  # the thread is gone
        return 0


def _threads() -> dict[int, str]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[int(tid)] = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
    return out


class Meters:
    """Inclusive CPU ns per named part, and the thread each callback-driven part ran on."""

    def __init__(self) -> None:
        self.ns: defaultdict[str, int] = defaultdict(int)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.tids: defaultdict[str, set[int]] = defaultdict(set)  # threads a part ran on

    def wrap(self, key: str, fn: Callable[..., Any], *, note_thread: bool = False) -> Callable[..., Any]:
        ns, calls, tids = self.ns, self.calls, self.tids

        @functools.wraps(fn)
        def metered(*args: Any, **kwargs: Any) -> Any:
            if note_thread:
                tids[key].add(threading.get_native_id())  # a reopened stream runs on new threads
            t0 = time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                ns[key] += time.thread_time_ns() - t0
                calls[key] += 1

        return metered

    def patch(self, owner: Any, name: str, key: str, **kw: Any) -> None:
        setattr(owner, name, self.wrap(key, getattr(owner, name), **kw))

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        return dict(self.ns), dict(self.calls)


def _install(meters: Meters, cancellers: list[Any]) -> None:
    from device.audio import aec, dsp, frontend, pyaudio_port
    from device.conversation import agent
    from device.listen import wakeword
    from device.service import systemd

    meters.patch(agent.Agent, "process_block", "block")
    meters.patch(frontend.Frontend, "process", "frontend")
    meters.patch(frontend.Frontend, "speaker", "frontend")
    meters.patch(dsp.StreamResampler, "__call__", "soxr")
    meters.patch(aec.WebRtcAec, "process", "aec")  # bypassed while idle; a sound played wakes it
    meters.patch(systemd.Watchdog, "frame", "watchdog")
    meters.patch(pyaudio_port.PyAudioPort, "_in_callback", "in_callback", note_thread=True)
    meters.patch(pyaudio_port.PyAudioPort, "_out_callback", "out_callback", note_thread=True)
    meters.patch(pyaudio_port.PyAudioPort, "_reopen_sync", "reopen")  # the rig starved: a lost device
    build = wakeword.build_wake_detector

    def build_metered(*args: Any, **kwargs: Any) -> Any:
        det = build(*args, **kwargs)
        det.process = meters.wrap("wake", det.process)
        return det

    wakeword.build_wake_detector = build_metered
    build_aec = aec.build_aec

    def build_aec_kept(*args: Any, **kwargs: Any) -> Any:
        canceller = build_aec(*args, **kwargs)
        cancellers.append(canceller)
        return canceller

    aec.build_aec = build_aec_kept


def _per_thread(main_tid: int, meters: Meters, before: dict[int, int], after: dict[int, int],
                names: dict[int, str]) -> dict[str, int]:
    roles = {main_tid: "main"}
    for key, role in (("in_callback", "portaudio_input"), ("out_callback", "portaudio_output")):
        roles.update(dict.fromkeys(meters.tids.get(key, ()), role))
    for t in threading.enumerate():
        if t.native_id is not None and t.native_id not in roles:
            roles[t.native_id] = {"idle-probe": "probe", "timeline-writer": "timeline_writer"}.get(
                t.name, "other_python")
    out: defaultdict[str, int] = defaultdict(int)
    for tid, ns in after.items():
        role = roles.get(tid) or ("libpulse_mainloop" if names.get(tid) == "threaded-ml" else "other_native")
        out[role] += ns - before.get(tid, 0)  # a thread born in the window counts from 0
    return dict(out)


def probe_daemon(config: str | None, settle_s: float, window_s: float, unbatched: bool = False) -> int:
    """Run `voxbox run` with meters; once the first blocks came and the echo canceller rests, plus
    settle_s, measure window_s, print the JSON line and stop the daemon (SIGTERM to itself).

    unbatched: the port ignores `set_idle` (every mic block wakes the loop, as before batching)."""
    from device.audio import pyaudio_port
    from device.service.hw import load_settings
    from device.service.run import run_daemon

    meters = Meters()
    cancellers: list[Any] = []
    _install(meters, cancellers)
    if unbatched:
        pyaudio_port.PyAudioPort.set_idle = lambda self, idle: None  # type: ignore[method-assign]
    main_tid = threading.get_native_id()
    result: dict[str, Any] = {}

    def measure() -> None:
        while not meters.calls.get("block"):
            time.sleep(0.1)
        # Idle means the echo canceller rests too: it does once the speaker has played 1 s of
        # silence, which a starved rig (a busy machine) may take a few seconds to play.
        end = time.monotonic() + 20
        while any(c is not None and not c.idle for c in cancellers) and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(settle_s)
        names = _threads()
        ns0, calls0 = meters.snapshot()
        cpu0 = {tid: thread_cpu_ns(tid) for tid in names}
        p0, w0 = time.process_time_ns(), time.monotonic_ns()
        time.sleep(window_s)
        ns1, calls1 = meters.snapshot()
        cpu1 = {tid: thread_cpu_ns(tid) for tid in _threads()}
        p1, w1 = time.process_time_ns(), time.monotonic_ns()
        wall = w1 - w0

        def pct(ns: int) -> float:
            return round(100.0 * ns / wall, 3)

        threads = _per_thread(main_tid, meters, cpu0, cpu1, names)
        parts = {k: ns1.get(k, 0) - ns0.get(k, 0) for k in ns1}
        result.update(window_s=wall / NS, total_pct=pct(p1 - p0 - threads.get("probe", 0)),
                      threads_pct={k: pct(v) for k, v in threads.items() if k != "probe"},
                      parts_pct={k: pct(v) for k, v in parts.items()},
                      per_s={k: round((calls1.get(k, 0) - calls0.get(k, 0)) * NS / wall, 1) for k in calls1})
        print(json.dumps(result), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=measure, name="idle-probe", daemon=True).start()
    return run_daemon(load_settings(config))


def probe_bare(input_ms: int, output_ms: int, window_s: float, in_rate: int = 16000,
               out_rate: int = 24000) -> int:
    """Open do-nothing PortAudio callback streams (0 ms = not opened); print the process's CPU."""
    import pyaudio

    from device.quiet import quiet_stderr

    with quiet_stderr():
        pa = pyaudio.PyAudio()
    silence = bytes(2 * out_rate * output_ms // 1000)
    streams = []

    def on_input(data: Any, frames: int, info: Any, status: int) -> tuple[None, int]:
        return None, pyaudio.paContinue

    def on_output(data: Any, frames: int, info: Any, status: int) -> tuple[bytes, int]:
        return silence, pyaudio.paContinue

    with quiet_stderr():
        if input_ms:
            streams.append(pa.open(format=pyaudio.paInt16, channels=1, rate=in_rate, input=True,
                                   frames_per_buffer=in_rate * input_ms // 1000, stream_callback=on_input))
        if output_ms:
            streams.append(pa.open(format=pyaudio.paInt16, channels=1, rate=out_rate, output=True,
                                   frames_per_buffer=out_rate * output_ms // 1000, stream_callback=on_output))
    time.sleep(1.0)
    p0, w0 = time.process_time_ns(), time.monotonic_ns()
    time.sleep(window_s)
    p1, w1 = time.process_time_ns(), time.monotonic_ns()
    pct = round(100.0 * (p1 - p0) / (w1 - w0), 3)
    print(json.dumps({"input_ms": input_ms, "output_ms": output_ms, "total_pct": pct}), flush=True)
    with quiet_stderr():
        for s in streams:
            s.close()
        pa.terminate()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.bench.idle_parts")
    sub = p.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("daemon")
    d.add_argument("--config")
    d.add_argument("--settle", type=float, default=2.0)
    d.add_argument("--window", type=float, default=10.0)
    d.add_argument("--unbatched", action="store_true", help="every mic block wakes the loop, idle or not")
    b = sub.add_parser("bare")
    b.add_argument("--input-ms", type=int, default=0)
    b.add_argument("--output-ms", type=int, default=0)
    b.add_argument("--window", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.mode == "daemon":
        return probe_daemon(args.config, args.settle, args.window, args.unbatched)
    return probe_bare(args.input_ms, args.output_ms, args.window)


if __name__ == "__main__":
    sys.exit(main())
