"""The command line (a contract checked from outside the repo): `voxbox` == `python -m device`.

Exit codes: 0 success, 2 bad usage or config (one line on stderr), 1 runtime failure.
Heavy imports happen inside each command so `voxbox --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device import __version__
from device.errors import ConfigError, VoxboxError

log = logging.getLogger("voxbox")


API_CHOICES = ("realtime", "live")
API_HELP = "which OpenAI voice API the agent speaks (default: realtime.api, itself realtime unless configured)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one clear line, exit 2
        sys.stderr.write(f"voxbox: {message}\n")
        raise SystemExit(2)


def _settings(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Any:
    """The settings (file, environment, then the command line's `overrides`), validated as one."""
    from device.service.hw import load_settings

    return load_settings(getattr(args, "config", None), overrides=overrides)


def _print_jsonl(objs: Any) -> int:
    """One JSON line per file; a file that could not be read is said on stderr too, and exits 2."""
    rc = 0
    for obj in objs:
        print(json.dumps(obj), flush=True)
        if "error" in obj:
            sys.stderr.write(f"voxbox: {obj['error']}\n")
            rc = 2
    return rc


def cmd_simulate(args: argparse.Namespace) -> int:
    from device.dev.simulate import SimOptions, parse_press, simulate

    # --url and --api are this run's realtime.url and realtime.api: checked like them (the default
    # URL is a local server); a combination of the two APIs' settings is one line, exit 2.
    realtime = {k: v for k, v in (("url", args.url), ("api", args.api)) if v}
    settings = _settings(args, {"realtime": realtime} if realtime else None)
    opts = SimOptions(mic=Path(args.mic), url=args.url, speaker_out=_path(args.speaker_out),
                      timeline=_path(args.timeline), plot=_path(args.plot), mic_out=_path(args.mic_out),
                      echo_gain=args.echo_gain,
                      echo_delay_ms=args.echo_delay_ms, room=args.room,
                      presses=[parse_press(p) for p in args.press], speed=args.speed, script=_path(args.script),
                      api=args.api)
    if opts.script is not None and opts.url is not None:
        raise ConfigError("--script is for the local server: not with --url")
    echo = None
    if args.verbose:
        from device.dev.timeline_view import format_record

        echo = lambda rec: print(format_record(rec), flush=True)  # noqa: E731
    simulate(settings, opts, echo=echo)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from device.dev.simulate import demo
    from device.dev.timeline_view import format_record

    settings = _settings(args, {"realtime": {"api": args.api}} if args.api else None)
    out = Path(args.out)
    print(f"voxbox demo ({args.scenario}): a spoken scenario played into the full agent (local server, no hardware)\n"
          f"  writing {out}/timeline.jsonl, {out}/speaker.wav, {out}/mic.wav (as heard, echo included), "
          f"{out}/timeline.png\n", flush=True)
    records = demo(settings, out, speed=args.speed, api=args.api, scenario=args.scenario,
                   echo=lambda rec: rec["event"] != "led" and print(format_record(rec), flush=True))
    from device.audio import wavio
    from device.dev.demo_report import summary_lines
    from device.dev.simulate import DEMO_INFO

    speaker, rate = wavio.read_wav(out / "speaker.wav")
    info = json.loads(DEMO_INFO.read_text()) if DEMO_INFO.is_file() and args.scenario == "conversation" else None
    print("\nwhat happened (measured from the outputs):")
    for line in summary_lines(records, speaker[:, 0], rate, info):
        print("  " + line)
    print(f"\ndone: {out}/timeline.jsonl  {out}/speaker.wav  {out}/timeline.png")
    # What the scenario must show (the timer's events are those of DESIGN.md's timeline contract).
    needed = ("wake", "tool_call", "timer", "earcon") if args.scenario == "timer" else ("wake", "playback_start",
                                                                                      "barge_in")
    missing = [e for e in needed if not any(r["event"] == e for r in records)]
    if missing:  # the scenario did not play out: that is a broken product, not a demo
        raise VoxboxError(f"demo: the scenario did not play out (no {', '.join(missing)} in the timeline)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import ssl

    from device.dev.server import serve, tls_context
    from device.dev.server_model import load_script

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("serve: --tls-cert and --tls-key go together")
    if args.max_session_s <= 0:
        raise ConfigError("serve: --max-session-s must be > 0")
    ctx = None
    if args.tls_cert:
        try:
            ctx = tls_context(args.tls_cert, args.tls_key)
        except ssl.SSLError as exc:
            raise ConfigError(f"serve: cannot use {args.tls_cert} / {args.tls_key}: {exc.reason or exc}") from None
        except OSError as exc:
            raise ConfigError(f"serve: cannot read {args.tls_cert} / {args.tls_key}: {exc.strerror or exc}") from None
    script = load_script(args.script) if args.script else None
    try:
        asyncio.run(serve(args.host, args.port, max_session_s=args.max_session_s, ssl=ctx, script=script,
                          api=args.api))
    except OSError as exc:
        raise VoxboxError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from device.listen.commands import detect_files

    wake: dict[str, Any] = {}
    if args.wake_word or args.model:
        wake.update(words=list(args.wake_word), models=list(args.model))
    if args.threshold is not None:
        wake["threshold"] = args.threshold
    settings = _settings(args, {"wake": wake})
    return _print_jsonl(detect_files(args.files, settings))


def cmd_vad(args: argparse.Namespace) -> int:
    from device.listen.commands import vad_files

    settings = _settings(args, {"vad": {"engine": args.engine}} if args.engine else None)
    return _print_jsonl(vad_files(args.files, settings))


def cmd_run(args: argparse.Namespace) -> int:
    from device.service.run import run_daemon

    return run_daemon(_settings(args))


def cmd_devices(args: argparse.Namespace) -> int:
    from device.audio.pyaudio_port import list_devices

    for dev in list_devices():
        print(f"{dev.index:3d}  {dev.name}  in={dev.max_input_channels} out={dev.max_output_channels} "
              f"rate={dev.default_rate:g}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from device.service.check import run_checks

    return run_checks(_settings(args))


def cmd_bench(args: argparse.Namespace) -> int:
    from device.bench.report import run_bench

    return run_bench(_settings(args), json_out=_path(args.json), sections=args.section, quick=args.quick)


def _path(p: str | None) -> Path | None:
    return Path(p) if p else None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="voxbox", description="Smart-speaker daemon: wake word and VAD on the device, "
                                            "realtime speech-to-speech over one WebSocket.")
    p.add_argument("--version", action="version", version=f"voxbox {__version__}")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str,
            config: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        if config:
            sp.add_argument("--config", help="TOML config file (default /etc/voxbox/voxbox.toml if present)")
        sp.set_defaults(fn=fn)
        return sp

    add("run", cmd_run, "the daemon on real hardware (PyAudio, gpiozero)")
    sp = add("demo", cmd_demo, "offline demo: a bundled scenario through the whole agent")
    sp.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    sp.add_argument("--scenario", default="conversation", choices=["conversation", "timer"],
                    help="conversation: wake, question, answer, barge-in (default); timer: 'set a timer for three "
                         "seconds', the scripted model calls set_timer, it rings, a button press stops it")
    sp.add_argument("--speed", type=float, default=1.0, help="× real time (default 1)")
    sp.add_argument("--api", choices=API_CHOICES, help=API_HELP)

    sp = add("simulate", cmd_simulate, "the whole agent with file audio")
    sp.add_argument("--mic", required=True, help="IN.wav: the microphone (any rate, any channels)")
    sp.add_argument("--url", help="realtime server (default: a local one on a free loopback port)")
    sp.add_argument("--speaker-out", help="OUT.wav: what the speaker played, aligned with IN.wav")
    sp.add_argument("--timeline", help="timeline JSON Lines output")
    sp.add_argument("--plot", help="timeline plot PNG output")
    sp.add_argument("--mic-out", help="the mic as the agent heard it (IN.wav + echo), WAV output")
    sp.add_argument("--echo-gain", type=float, default=0.0, help="speaker-to-mic echo gain (default 0)")
    sp.add_argument("--echo-delay-ms", type=float, default=0.0, help="speaker-to-mic delay in ms")
    sp.add_argument("--room", action="store_true", help="add a decaying room response to the echo")
    sp.add_argument("--press", action="append", default=[], metavar="T[:HOLD_S]",
                    help="press the talk button at second T, held HOLD_S (default 0.1; >= 2 toggles mute)")
    sp.add_argument("--speed", type=float, default=1.0, help="× real time (default 1)")
    sp.add_argument("--script", metavar="FILE", help="the local server's scripted model (as voxbox serve --script)")
    sp.add_argument("-v", "--verbose", action="store_true", help="print the timeline as it happens")
    sp.add_argument("--api", choices=API_CHOICES, help=API_HELP)

    sp = add("serve", cmd_serve, "the local realtime server (OpenAI Realtime protocol, parrot model)", config=False)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--max-session-s", type=float, default=3600.0, metavar="S",
                    help="each session's maximum length: then error session_expired and close 1001; GPT-Live: "
                    "session.closed expired after this many seconds of input (default 3600)")
    sp.add_argument("--tls-cert", metavar="F", help="PEM certificate: serve wss: (with --tls-key)")
    sp.add_argument("--tls-key", metavar="F", help="PEM private key of --tls-cert")
    sp.add_argument("--script", metavar="FILE", help="scripted model (JSON or TOML): per user turn, a tool call "
                    "and/or what to say; later turns are the parrot's")
    sp.add_argument("--api", choices=API_CHOICES, help="serve only this API (default: both, "
                    "Realtime on /v1/realtime and GPT-Live on /v1/live/sessions)")

    sp = add("detect", cmd_detect, "wake-word detection on WAV files (one JSON line per file)")
    sp.add_argument("--wake-word", action="append", default=[], help="builtin wake word (repeatable)")
    sp.add_argument("--model", action="append", default=[], help="custom .tflite or manifest (repeatable)")
    sp.add_argument("--threshold", type=float, default=None)
    sp.add_argument("files", nargs="+", metavar="WAV")

    sp = add("vad", cmd_vad, "voice activity on WAV files (one JSON line per file)")
    sp.add_argument("--engine", default=None, help="VAD engine (silero, micro)")
    sp.add_argument("files", nargs="+", metavar="WAV")

    add("devices", cmd_devices, "list audio devices", config=False)
    add("check", cmd_check, "validate config, models, audio devices, GPIO and the server")
    sp = add("bench", cmd_bench, "benchmarks")
    sp.add_argument("--json", help="also write the report as JSON")
    sp.add_argument("--section", action="append", default=[],
                    help="only these sections (repeatable): listen, barge_in, link, daemon, live")
    sp.add_argument("--quick", action="store_true", help="small data sets (seconds, not minutes)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or "warning"
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as exc:
        sys.stderr.write(f"voxbox: {exc}\n")
        return exc.exit_code
    except VoxboxError as exc:
        sys.stderr.write(f"voxbox: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, not a traceback
        log.debug("unexpected failure", exc_info=True)
        sys.stderr.write(f"voxbox: unexpected error: {type(exc).__name__}: {exc}\n")
        return 1
