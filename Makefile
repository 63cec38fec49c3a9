# voxbox — `make demo` and `make test` set everything up on a fresh Debian (as root) and run.
#   make demo     apt packages, .venv, pip install -e '.[hw,plot,test]', then `voxbox demo`
#   make test     the same set-up, then `pytest -q`
#   make setup    only the set-up;   make clean   remove .venv and generated files
# Set-up runs once: stamp files in .venv/ make later runs skip it (edit pyproject.toml to redo pip).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
APT_STAMP := $(VENV)/.stamp-apt
DEPS_STAMP := $(VENV)/.stamp-deps
# System packages: PortAudio headers (PyAudio), PulseAudio + ALSA plugins (the audio test rig),
# espeak-ng + sox + bc (speech fixtures: scripts/make_*.sh add times with bc), systemd
# (systemd-analyze for the unit's tests), and what a bare Debian lacks to build a venv with native wheels.
APT_PACKAGES := portaudio19-dev pulseaudio libasound2-plugins alsa-utils espeak-ng sox libsox-fmt-all bc systemd \
                python3 python3-venv python3-dev gcc libc6-dev

.PHONY: demo test test-tflite-runtime test-arm64 setup clean

demo: $(DEPS_STAMP)
	$(VENV)/bin/voxbox demo

# pytest's exit 5 (no test collected) is a failure, said in words.
test: $(DEPS_STAMP)
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

# Redone when the Makefile changes (a package added to APT_PACKAGES reaches existing checkouts); it
# only installs what is missing, and pip is not redone for it (order-only below).
$(APT_STAMP): Makefile
	@mkdir -p $(VENV)
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "make: missing system packages:$$missing (no apt-get here)" >&2; exit 1; fi; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  echo "== apt-get install$$missing"; \
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
