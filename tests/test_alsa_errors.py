"""alsa-lib's own error lines go to the log (debug) and the xrun count, never raw to stderr."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap

import pytest

from device.audio.alsa_errors import AlsaErrors

pytestmark = pytest.mark.skipif(ctypes.util.find_library("asound") is None, reason="no libasound here")


def test_an_alsa_error_line_is_logged_and_counted_not_printed() -> None:
    # A real alsa-lib error (an unknown PCM name) in a fresh process, with and without the handler.
    code = textwrap.dedent("""
        import ctypes, ctypes.util, logging, sys
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
        from device.audio.alsa_errors import ALSA
        if sys.argv[1] == "on":
            assert ALSA.install()
        lib = ctypes.CDLL(ctypes.util.find_library("asound"))
        pcm = ctypes.c_void_p()
        rc = lib.snd_pcm_open(ctypes.byref(pcm), b"voxbox_no_such_pcm", 0, 0)
        print("rc", rc, "xruns", ALSA.xruns, "other", ALSA.other)
    """)
    off = subprocess.run([sys.executable, "-c", code, "off"], capture_output=True, text=True, timeout=60)
    on = subprocess.run([sys.executable, "-c", code, "on"], capture_output=True, text=True, timeout=60)
    assert "ALSA lib" in off.stderr  # what a user saw in the journal before
    assert on.stderr == "", on.stderr
    assert "device.audio.alsa ALSA lib (snd_pcm_open_noupdate)" in on.stdout
    assert "xruns 0 other 1" in on.stdout


def test_underruns_count_as_xruns() -> None:
    errors = AlsaErrors()
    errors.report("snd_pcm_recover", "underrun occurred")
    errors.report("snd_pcm_recover", "overrun occurred")
    errors.report("snd_pcm_open_noupdate", "Unknown PCM %s")
    assert (errors.xruns, errors.other) == (2, 1)
