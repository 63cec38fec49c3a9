#!/bin/bash
# `make test-arm64`: the closest thing to a Raspberry Pi these x86 machines have. Builds a Debian 12
# (bookworm) arm64 userland with debootstrap from the mirror apt uses here, runs it under qemu-user
# emulating a Cortex-A72 (a Pi 4) with a Pi 4 /proc/cpuinfo, copies this checkout's files in
# (as they are in the work tree), and runs there what a Pi user does: `make setup`, then a subset of
# the tests and `voxbox demo`. Prints a summary; exits non-zero with one line on failure.
#
# Usage (as root): scripts/arm64/run.sh [--fresh] [--rebuild] [TEST_FILE...]
#   --fresh    start again from the bare userland (drops the installed apt packages, .venv, pip cache)
#   --rebuild  debootstrap the bare userland again (implies --fresh)
#   TEST_FILE  test files (or pytest options) for inside (default: the pure and listening ones, DEFAULT_TESTS)
# Environment: VOXBOX_CACHE_DIR (default /var/cache/voxbox-arm64): the userlands and the .deb cache;
#   VOXBOX_ARM64_MIRROR / VOXBOX_ARM64_SECURITY_MIRROR: override the mirrors read from apt's sources;
#   QEMU_CPU (default cortex-a72). Logs go to arm64-out/ in the checkout.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SUITE=bookworm
CACHE=${VOXBOX_CACHE_DIR:-/var/cache/voxbox-arm64}
BASE=$CACHE/$SUITE-base          # debootstrap's result, never run in
WORK=$CACHE/$SUITE-work          # a copy of BASE where the runs happen (kept between runs: fast re-runs)
DEBS=$CACHE/apt-archives         # downloaded .debs, shared by every fresh userland
OUT=$REPO/arm64-out
IN_REPO=/root/voxbox             # where the checkout lives inside, as a Pi user's clone would
DEFAULT_TESTS=(tests/test_conversation.py tests/test_link_protocol.py tests/test_aec.py
               tests/test_listen_commands.py tests/test_listen_interpreter.py tests/test_listen_manifest.py
               tests/test_listen_micro.py tests/test_listen_tflite_runtime.py tests/test_listen_vad.py
               tests/test_listen_wakeword.py
               # qemu runs the reference engines 20-50x slower than a Pi: one test can pass pytest's
               # 300 s (pyproject) on a loaded host (run 4: the hey_jarvis reference comparison).
               --timeout=1800)
export QEMU_CPU=${QEMU_CPU:-cortex-a72}

fail() { echo "test-arm64: FAILED: $*" >&2; exit 1; }

fresh=0; rebuild=0; tests=()
for a in "$@"; do
  case $a in
    --fresh) fresh=1 ;;
    --rebuild) rebuild=1; fresh=1 ;;
    --*=*|-k|-x) tests+=("$a") ;;  # pytest's
    -*) fail "unknown option $a (see the top of $0)" ;;
    *) tests+=("$a") ;;
  esac
done
[ ${#tests[@]} -gt 0 ] || tests=("${DEFAULT_TESTS[@]}")
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, mounts): run it as root"
mkdir -p "$OUT" "$CACHE" "$DEBS"
t_start=$SECONDS

# --- host tools: debootstrap, qemu-user-static registered through binfmt_misc -------------------------
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "missing ${need[*]} and no apt-get to install them"
  echo "== apt-get install ${need[*]} (host)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; } \
    > "$OUT/host-apt.log" 2>&1 || fail "apt-get install ${need[*]} on the host (see $OUT/host-apt.log)"
fi
BINFMT=/proc/sys/fs/binfmt_misc
[ -e $BINFMT/register ] || mount -t binfmt_misc binfmt_misc $BINFMT 2>/dev/null \
  || fail "binfmt_misc is not mounted and cannot be mounted (mount -t binfmt_misc binfmt_misc $BINFMT)"
if [ ! -e $BINFMT/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  if [ ! -e $BINFMT/qemu-aarch64 ]; then
    # By hand, as qemu-user-static registers it; F: the kernel opens the interpreter now, so the
    # chroot needs no copy of it.
    echo ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:PF' \
      > $BINFMT/register || fail "cannot register qemu-aarch64 with binfmt_misc"
  fi
fi
grep -q '^enabled' $BINFMT/qemu-aarch64 || fail "binfmt_misc's qemu-aarch64 entry is disabled (update-binfmts --enable qemu-aarch64)"

# --- the mirrors apt uses here (deb822 .sources or one-line sources.list) -----------------------------
apt_uris() {
  { cat /etc/apt/sources.list 2>/dev/null | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }'
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }'
    cat /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }'
  } | sed 's:/*$::'
}
MIRROR=${VOXBOX_ARM64_MIRROR:-$(apt_uris | grep -E '/debian$' | head -n 1 || true)}
SECURITY=${VOXBOX_ARM64_SECURITY_MIRROR:-$(apt_uris | grep -E '/debian-security$' | head -n 1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY:-${MIRROR%/debian}/debian-security}

# Runs CMD... in userland ROOT (see chroot.sh); the private mount namespace ends every mount with it.
in_root() { local root=$1; shift; unshare --mount --propagation private "$HERE/chroot.sh" "$root" "$@"; }

# --- the bare userland: debootstrap --foreign on the host, the second stage under emulation ------------
if [ "$rebuild" -eq 1 ] || [ ! -e "$BASE/.voxbox-base-ok" ]; then
  echo "== debootstrap $SUITE arm64 from $MIRROR (log: $OUT/debootstrap.log)"
  t0=$SECONDS
  rm -rf "$BASE" "$WORK"
  mkdir -p "$BASE"
  {
    debootstrap --arch=arm64 --variant=minbase --foreign --cache-dir="$DEBS" "$SUITE" "$BASE" "$MIRROR" &&
    cp /usr/bin/qemu-aarch64-static "$BASE/usr/bin/" &&  # for a binfmt entry without the F flag
    unshare --mount --propagation private chroot "$BASE" /usr/bin/env -i QEMU_CPU="$QEMU_CPU" \
      PATH=/usr/sbin:/usr/bin:/sbin:/bin /debootstrap/debootstrap --second-stage
  } > "$OUT/debootstrap.log" 2>&1 || fail "debootstrap (see $OUT/debootstrap.log)"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY" "$SUITE" > "$BASE/etc/apt/sources.list"
  # No service starts inside a chroot (pulseaudio, systemd units): there is no init to own them.
  printf '#!/bin/sh\nexit 101\n' > "$BASE/usr/sbin/policy-rc.d"; chmod +x "$BASE/usr/sbin/policy-rc.d"
  # dpkg's fsync after every file is most of an emulated install's time; a throw-away userland needs none.
  echo force-unsafe-io > "$BASE/etc/dpkg/dpkg.cfg.d/voxbox-unsafe-io"
  touch "$BASE/.voxbox-base-ok"
  echo "== userland built in $((SECONDS - t0)) s ($(du -sh "$BASE" | cut -f1))"
else
  echo "== cached bare userland: $BASE"
fi
t_userland=$((SECONDS - t_start))

if [ "$fresh" -eq 1 ] || [ ! -e "$WORK/.voxbox-base-ok" ]; then
  rm -rf "$WORK"; cp -a "$BASE" "$WORK"
  echo "== fresh work userland: $WORK"
else
  echo "== reusing work userland $WORK (--fresh starts from the bare one)"
fi

# --- what crosses over: the host's CA bundle and global pip config, the checkout --------------------
ca=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
ca=${ca:-/etc/ssl/certs/ca-certificates.crt}
[ -r "$ca" ] || fail "no CA bundle at $ca (set PIP_CERT)"
install -D -m 644 "$ca" "$WORK/usr/local/share/voxbox-host-ca.crt"
install -D -m 644 "$ca" "$WORK/etc/ssl/certs/ca-certificates.crt"
for f in /etc/pip.conf /etc/xdg/pip/*; do [ -f "$f" ] && install -D -m 644 "$f" "$WORK$f"; done
# apt inside keeps its .debs in the shared cache: a fresh userland does not download them again.
mkdir -p "$WORK/var/cache/apt/archives"

# The checkout as it is in the work tree (tracked and new files, not ignored ones) over the previous
# copy; .venv stays.
dest=$WORK$IN_REPO
mkdir -p "$dest"
find "$dest" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
( cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - ) | tar -xf - -C "$dest" \
  || fail "copying the checkout into $dest"

# --- the run ----------------------------------------------------------------------------------------
echo "== inside: make setup, pytest ${tests[*]}, voxbox demo (log: $OUT/run.log)"
t0=$SECONDS
set +e
unshare --mount --propagation private bash -c '
  set -e; mount --bind "$1" "$2/var/cache/apt/archives"; shift 2; exec "$@"' _ "$DEBS" "$WORK" \
  "$HERE/chroot.sh" "$WORK" /bin/bash -c 'cd "$1" && shift && exec bash scripts/arm64/inside.sh "$@"' _ "$IN_REPO" \
  "${tests[@]}" > "$OUT/run.log" 2>&1
rc=$?
set -e
t_inside=$((SECONDS - t0))

# --- summary ----------------------------------------------------------------------------------------
results=$dest/arm64-results.txt
cp -f "$results" "$dest/arm64-pytest.txt" "$dest/arm64-demo.txt" "$OUT/" 2>/dev/null || true
{
  echo "test-arm64 summary ($(date -u +%FT%TZ), Debian $SUITE arm64, QEMU_CPU=$QEMU_CPU, $(git -C "$REPO" rev-parse --short HEAD))"
  echo "  userland: $t_userland s   inside total: $t_inside s"
  if [ -f "$results" ]; then
    while read -r name code secs; do
      printf '  %-9s %-6s %5s s\n' "$name" "$([ "$code" -eq 0 ] && echo ok || echo "exit $code")" "$secs"
    done < "$results"
  fi
  [ -s "$dest/arm64-pytest-summary.txt" ] && echo "  pytest:   $(cat "$dest/arm64-pytest-summary.txt")"
  if [ -f "$dest/arm64-demo.txt" ]; then  # its own summary block, or its last lines when it did not get there
    { sed -n '/^what happened/,/^done:/p' "$dest/arm64-demo.txt" | grep . || tail -n 3 "$dest/arm64-demo.txt"; } | sed 's/^/  demo| /'
  fi
  echo "  total wall time: $((SECONDS - t_start)) s; full log: $OUT/run.log"
} | tee "$OUT/summary.txt"

if [ "$rc" -ne 0 ]; then
  last=$(awk '$2 != 0 { print $1 " (exit " $2 ")"; exit }' "$results" 2>/dev/null || true)
  fail "${last:-the run inside the userland} failed (see $OUT/run.log)"
fi
echo "test-arm64: passed"
