#!/bin/bash
# Runs inside the arm64 userland (scripts/arm64/chroot.sh), in the copied checkout, the way a Pi user
# would: install make, `make setup` (apt packages, venv, pip: PyAudio and webrtcvad compile here), then
# the test files given as arguments and `voxbox demo`.
# Writes one line per step to $RESULTS: "step rc seconds [detail]"; its exit status is 0 only when all
# steps passed.
set -uo pipefail
RESULTS=${RESULTS:-arm64-results.txt}
: > "$RESULTS"
failed=0

# step NAME CMD...: runs CMD with its output on stdout, records its exit status and wall time.
step() {
  local name=$1; shift
  local t0=$SECONDS rc
  echo "=== [$name] $*"
  "$@"; rc=$?
  echo "$name $rc $((SECONDS - t0))" >> "$RESULTS"
  echo "=== [$name] exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}

echo "=== $(uname -m), $(. /etc/os-release && echo "$PRETTY_NAME"), $(python3 --version 2>/dev/null || echo "no python3 yet")," \
     "CPU: $(grep -m1 'CPU part' /proc/cpuinfo) (QEMU_CPU=${QEMU_CPU:-})"
# A bare Debian has no make: the first thing the README tells a Pi user to install.
step apt-make bash -c 'command -v make >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends make; }' || exit 1
step setup make setup || exit 1

# pytest's own closing line carries the counts; kept for the summary.
step tests bash -c 'set -o pipefail; .venv/bin/python -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee arm64-pytest.txt' _ "$@"
tail -n 1 arm64-pytest.txt | sed 's/^=* *//; s/ *=*$//' > arm64-pytest-summary.txt

step demo bash -c 'set -o pipefail; .venv/bin/voxbox demo --out demo-out 2>&1 | tee arm64-demo.txt'
exit "$failed"
