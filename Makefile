# voxbox — `make demo` and `make test` set everything up on a fresh Debian (as root) and run.
#   make demo     apt packages, .venv, pip install -e '.[hw,plot,test]', then `voxbox demo`
#   make test     the same set-up, then the lint and type gate (make lint), then `pytest -q`
#   make lint     ruff check device tests, and mypy (both configured in pyproject.toml)
#   make setup    only the set-up;   make clean   remove .venv and generated files
# Set-up runs once: stamp files in .venv/ make later runs skip it (edit pyproject.toml to redo pip).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
APT_STAMP := $(VENV)/.stamp-apt
DEPS_STAMP := $(VENV)/.stamp-deps
# System packages: PulseAudio + ALSA plugins (the audio test rig), espeak-ng + sox + bc (speech
# fixtures: scripts/make_fixtures.sh does its sums with bc), recorded human speech for the barge-in
# bench (codec2-examples, asterisk-core-sounds-*-g722, ktuberling-data: scripts/human_voices.py),
# systemd (systemd-analyze) and shellcheck (the unit's and install script's tests), nodejs + npm
# (the npm openai client against `voxbox serve`), openssl (test certificates for wss:), and what pip
# needs where a package has no wheel and compiles (always PyAudio; on ARM also spidev and friends):
# gcc, the Python headers, PortAudio's (PyAudio) and ALSA's (pyalsaaudio); and libspeexdsp1, the
# linear echo canceller the barge-in's residual gate runs (device/audio/speex.py, through ctypes).
APT_PACKAGES := libspeexdsp1 portaudio19-dev libasound2-dev pulseaudio libasound2-plugins alsa-utils espeak-ng sox libsox-fmt-all \
                bc systemd shellcheck nodejs npm openssl python3 python3-venv python3-dev gcc libc6-dev \
                codec2-examples asterisk-core-sounds-en-g722 asterisk-core-sounds-fr-g722 \
                asterisk-core-sounds-it-g722 ktuberling-data

.PHONY: demo test lint test-tflite-runtime test-arm64 setup clean check-system

demo: $(DEPS_STAMP)
	$(VENV)/bin/voxbox demo

# The gate first: zero ruff findings and zero mypy errors, or no tests are run.
lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check device tests
	$(VENV)/bin/mypy

# pytest's exit 5 (no test collected) is a failure, said in words.
test: $(DEPS_STAMP) lint
	@$(VENV)/bin/python -m pytest -q || { rc=$$?; [ $$rc -ne 5 ] || echo "make: pytest collected no test" >&2; exit $$rc; }

# The listening tests again on tflite-runtime (what Raspberry Pi OS Bookworm's Python 3.11 gets):
# its 2.14 wheels need numpy 1.x, so they live in a venv of their own.
TFL_VENV := .venv-tflite
test-tflite-runtime: $(APT_STAMP)
	@if ! $(PYTHON) -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 11) else 1)'; then \
	  echo "== tflite-runtime has no wheel for this Python: listening tests on LiteRT only"; exit 0; fi; \
	[ -x $(TFL_VENV)/bin/python ] || $(PYTHON) -m venv $(TFL_VENV); \
	[ -f $(TFL_VENV)/.stamp ] || { $(TFL_VENV)/bin/python -m pip install -q --upgrade pip && \
	  $(TFL_VENV)/bin/python -m pip install -q "numpy<2" "tflite-runtime==2.14.0" -e '.[test]' && touch $(TFL_VENV)/.stamp; }; \
	VOXBOX_TFLITE_RUNTIME=tflite_runtime $(TFL_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  tests/test_listen_tflite_runtime.py tests/test_listen_interpreter.py tests/test_listen_wakeword.py \
	  tests/test_listen_micro.py tests/test_listen_manifest.py tests/test_listen_commands.py tests/test_listen_vad.py

# The install and a subset of the tests plus `voxbox demo` in a Debian 12 arm64 userland under qemu-user
# (Cortex-A72, a Pi 4's /proc/cpuinfo), as root; slow (tens of minutes the first time), not in CI.
# ARM64_ARGS: --fresh (start from the bare userland), --rebuild (debootstrap again), test files.
test-arm64:
	@bash scripts/arm64/run.sh $(ARM64_ARGS)

setup: $(DEPS_STAMP)

# 64-bit only, said at once: on a 32-bit userland (armhf/armel: 32-bit Raspberry Pi OS, even on a
# 64-bit Pi) numpy, soxr, livekit, LiteRT and pyopen-wakeword have no wheels, and pip would spend
# an hour compiling before failing on LiteRT and livekit, which cannot be built there at all.
check-system:
	@arch=$$(dpkg --print-architecture 2>/dev/null || uname -m); \
	case "$$arch:$$(uname -m)" in \
	  armhf:*|armel:*|i386:*|*:armv6l|*:armv7l|*:armv8l|*:i686) \
	    echo "make: voxbox needs a 64-bit system (64-bit Raspberry Pi OS: arm64); this one is 32-bit ($$arch, $$(uname -m)) and numpy, soxr, livekit, LiteRT and pyopen-wakeword publish no 32-bit wheels" >&2; \
	    exit 1 ;; \
	esac

# Redone when the Makefile changes (a package added to APT_PACKAGES reaches existing checkouts); it
# only installs what is missing (scripts/apt_missing.sh: held packages and a node already on PATH
# count as there), and pip is not redone for it (order-only below).
$(APT_STAMP): Makefile | check-system
	@mkdir -p $(VENV)
	@missing=$$(bash scripts/apt_missing.sh $(APT_PACKAGES)); \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "make: missing system packages: $$missing (no apt-get here)" >&2; exit 1; fi; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  echo "== apt-get install $$missing"; \
	  $$SUDO apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	else echo "== system packages present"; fi
	@touch $@

$(DEPS_STAMP): pyproject.toml | $(APT_STAMP)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "make: $(PYTHON) is Python %d.%d; voxbox needs 3.10 or newer" % sys.version_info[:2])'
	@[ -x $(VENV)/bin/python ] || { echo "== $(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[hw,plot,test]'
	@touch $@

clean:
	rm -rf $(VENV) $(TFL_VENV) demo-out bench-out arm64-out tests/fixtures/generated *.egg-info .pytest_cache .hypothesis
