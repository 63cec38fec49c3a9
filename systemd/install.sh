#!/usr/bin/env bash
# Install voxbox as a systemd service on a Raspberry Pi (Raspberry Pi OS 64-bit / Debian), as root:
#     sudo systemd/install.sh [--profile NAME] [--no-start]
# What it does (idempotent: safe to run again to upgrade, and again after the first reboot):
#   - installs the Debian packages voxbox needs: PortAudio, ALSA tools, the compiler and headers
#     PyAudio and pyalsaaudio build with (no Linux wheels), python3-lgpio (gpiozero on a Pi 5),
#   - creates the system user `voxbox` in the groups gpio, spi, i2c and audio,
#   - writes the firmware config (/boot/firmware/config.txt, /boot/config.txt before Bookworm):
#     the profile's overlay (dtoverlay=...) and dtparam=spi=on for APA102 LEDs; a reboot applies them,
#   - sets the sound card's mixer controls the profile lists (once the card is there) and stores them,
#   - copies this source tree to /opt/voxbox and builds /opt/voxbox/.venv with `pip install -e '.[hw]'`,
#   - writes /etc/voxbox/voxbox.toml from systemd/voxbox.toml.example (kept if it exists),
#   - writes /etc/voxbox/voxbox.env (mode 0600, kept if it exists) for OPENAI_API_KEY,
#   - installs and enables voxbox.service, and starts it unless --no-start.
# ROOT=DIR: a dry run into DIR (a fake root): files are written under DIR, commands that would
# change the machine (apt-get, useradd, pip, systemctl, amixer) are printed as "would run: ...".
set -euo pipefail

PROFILE=""
START=1
ROOT="${ROOT:-}"
ROOT="${ROOT%/}"
PREFIX=/opt/voxbox
ETC=/etc/voxbox
UNIT_DIR=/etc/systemd/system

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="${2:?--profile needs a name}"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

# run CMD...: run it, or under ROOT= only say it.
run() {
  if [ -n "$ROOT" ]; then echo "would run:$(printf ' %q' "$@")"; else "$@"; fi
}

[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 2; }
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PROFILE_FILE=""
if [ -n "$PROFILE" ]; then
  if [ -f "$SRC/hw/$PROFILE.toml" ]; then PROFILE_FILE="$SRC/hw/$PROFILE.toml"
  elif [ -f "$PROFILE" ]; then PROFILE_FILE="$PROFILE"
  else
    echo "install.sh: unknown profile '$PROFILE' (known: $(cd "$SRC/hw" && ls ./*.toml | sed 's|^\./||; s|\.toml$||' | tr '\n' ' '))" >&2
    exit 2
  fi
fi
case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  armhf|armel|i386) echo "install.sh: voxbox needs 64-bit Raspberry Pi OS (arm64): no 32-bit wheels of numpy, soxr, livekit, LiteRT" >&2
                    exit 2 ;;
esac

# What the profile asks of the system, one "kind<TAB>value" per line (tomllib: Python 3.11+, as on Bookworm).
profile_facts() {
  [ -n "$PROFILE_FILE" ] || return 0
  python3 - "$PROFILE_FILE" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    data = tomllib.load(f)
meta = data.get("profile", {})
lines = list(meta.get("overlays", []))
if data.get("gpio", {}).get("led_driver") == "apa102":
    lines.append("dtparam=spi=on")  # the APA102 LEDs are on SPI0
for line in dict.fromkeys(lines):
    print(f"config\t{line}")
print(f"card\t{meta.get('alsa_capture', '')}")
for line in str(meta.get("wiring", "")).strip().splitlines():
    print(f"wiring\t{line}")
for entry in meta.get("mixer", []):
    control, _, value = entry.partition("=")
    print(f"mixer\t{control.strip()}\t{value.strip()}")
PY
}
FACTS="$(profile_facts)"

echo "== Debian packages"
# gcc + headers: PyAudio (portaudio19-dev) and pyalsaaudio (libasound2-dev) compile at pip time;
# on ARM so may spidev and others without a wheel for this Python. libspeexdsp1: the barge-in's
# linear echo canceller (device/audio/speex.py loads it through ctypes).
PKGS="python3 python3-venv python3-dev gcc libc6-dev portaudio19-dev libasound2-dev alsa-utils libasound2-plugins libspeexdsp1"
# gpiozero's pin factory on a Pi 5 (and its default on Bookworm) is lgpio: Raspberry Pi OS packages it.
LGPIO_FROM_APT=0
if apt-cache show python3-lgpio >/dev/null 2>&1; then PKGS="$PKGS python3-lgpio"; LGPIO_FROM_APT=1; fi
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$ROOT" ]; then
  echo "would run: apt-get install -y --no-install-recommends $PKGS"
elif [ -n "$missing" ]; then
  apt-get update
  # shellcheck disable=SC2086  # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi

echo "== user and groups"
GROUPS_WANTED="gpio spi i2c audio"
for g in $GROUPS_WANTED; do getent group "$g" >/dev/null || run groupadd --system "$g"; done
if ! id voxbox >/dev/null 2>&1; then
  run useradd --system --home-dir /var/lib/voxbox --no-create-home --shell /usr/sbin/nologin \
    --user-group --groups "${GROUPS_WANTED// /,}" --comment "voxbox smart speaker" voxbox
else
  run usermod -a -G "${GROUPS_WANTED// /,}" voxbox
fi
# Raspberry Pi OS gives /dev/gpiochip* and /dev/spidev* to the gpio and spi groups; elsewhere, add rules.
if ! grep -qs 'gpiochip' /etc/udev/rules.d/*.rules /lib/udev/rules.d/*.rules /usr/lib/udev/rules.d/*.rules; then
  mkdir -p "$ROOT/etc/udev/rules.d"
  cat > "$ROOT/etc/udev/rules.d/60-voxbox-gpio.rules" <<'RULES'
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
SUBSYSTEM=="spidev", KERNEL=="spidev*", GROUP="spi", MODE="0660"
RULES
  if [ -z "$ROOT" ]; then udevadm control --reload-rules 2>/dev/null || true; udevadm trigger 2>/dev/null || true; fi
fi

echo "== firmware config"
# Bookworm and later: /boot/firmware/config.txt; before: /boot/config.txt.
BOOT=""
for d in /boot/firmware /boot; do [ -f "$ROOT$d/config.txt" ] && { BOOT="$d"; break; }; done
REBOOT=0
if [ -z "$BOOT" ]; then
  echo "no config.txt in /boot/firmware or /boot (not a Raspberry Pi?): firmware settings left alone"
else
  CONFIG="$ROOT$BOOT/config.txt"
  while IFS=$'\t' read -r kind value; do
    [ "$kind" = config ] || continue
    if grep -qxF "$value" "$CONFIG"; then
      echo "kept $value in $BOOT/config.txt"
      continue
    fi
    # [all] applies it on every Pi model, whatever section the file ends in.
    grep -qx '\[all\]' "$CONFIG" && [ "$(grep -E '^\[' "$CONFIG" | tail -n 1)" = "[all]" ] || printf '\n[all]\n' >> "$CONFIG"
    printf '%s\n' "$value" >> "$CONFIG"
    echo "added $value to $BOOT/config.txt"
    REBOOT=1
    case "$value" in
      dtoverlay=*)
        name="${value#dtoverlay=}"; name="${name%%,*}"
        if [ ! -f "$ROOT$BOOT/overlays/$name.dtbo" ]; then
          echo "NOTE: $BOOT/overlays/$name.dtbo is not installed (not in this kernel); the profile says:"
          printf '%s\n' "$FACTS" | awk -F'\t' '$1 == "wiring" {print "    " $2}'
        fi ;;
    esac
  done <<< "$FACTS"
fi

echo "== sound card mixer"
CARD="$(printf '%s\n' "$FACTS" | awk -F'\t' '$1 == "card" {print $2}')"
if printf '%s\n' "$FACTS" | grep -q '^mixer'; then
  if [ -n "$ROOT" ] || grep -qs "\[$CARD *\]" /proc/asound/cards; then
    while IFS=$'\t' read -r kind control value; do
      [ "$kind" = mixer ] || continue
      run amixer -q -c "$CARD" sset "$control" "$value"
    done <<< "$FACTS"
    run alsactl store "$CARD"  # restored at every boot by alsa-utils' alsa-restore.service
  else
    echo "card $CARD is not there yet: reboot (for the overlay), then run this script again to set its mixer"
  fi
else
  echo "nothing to set"
fi

echo "== code and venv in $PREFIX"
mkdir -p "$ROOT$PREFIX"
if [ "$SRC" != "$ROOT$PREFIX" ]; then
  tar -C "$SRC" --exclude=./.venv --exclude=./.venv-tflite --exclude=./.git --exclude=./demo-out \
      --exclude='*.egg-info' --exclude=__pycache__ --exclude=./tests/fixtures/generated -cf - . | tar -C "$ROOT$PREFIX" -xf -
fi
# --system-site-packages: the venv sees Raspberry Pi OS's python3-lgpio (gpiozero's pin factory).
[ -x "$ROOT$PREFIX/.venv/bin/python" ] || run python3 -m venv --system-site-packages "$PREFIX/.venv"
run "$PREFIX/.venv/bin/pip" install --quiet --upgrade pip
run "$PREFIX/.venv/bin/pip" install --quiet -e "${PREFIX}[hw]"
# Elsewhere (no python3-lgpio in apt), lgpio from PyPI.
[ "$LGPIO_FROM_APT" -eq 1 ] || run "$PREFIX/.venv/bin/pip" install --quiet lgpio
[ -n "$ROOT" ] || "$PREFIX/.venv/bin/python" -m compileall -q "$PREFIX/device" >/dev/null || true
run chown -R root:root "$PREFIX"
chmod -R go-w "$ROOT$PREFIX"

echo "== configuration in $ETC"
install -d -m 0755 "$ROOT$ETC"
if [ ! -f "$ROOT$ETC/voxbox.toml" ]; then
  sed "s|@PROFILE@|$PROFILE|" "$SRC/systemd/voxbox.toml.example" > "$ROOT$ETC/voxbox.toml"
  chmod 0644 "$ROOT$ETC/voxbox.toml"
  echo "wrote $ETC/voxbox.toml (profile: ${PROFILE:-none})"
else
  echo "kept $ETC/voxbox.toml"
fi
if [ ! -f "$ROOT$ETC/voxbox.env" ]; then
  install -m 0600 "$SRC/systemd/voxbox.env.example" "$ROOT$ETC/voxbox.env"
  echo "wrote $ETC/voxbox.env (0600): put OPENAI_API_KEY there"
else
  chmod 0600 "$ROOT$ETC/voxbox.env"
fi
run chown root:root "$ETC/voxbox.env"

echo "== service"
install -d "$ROOT$UNIT_DIR"
install -m 0644 "$SRC/systemd/voxbox.service" "$ROOT$UNIT_DIR/voxbox.service"
run systemctl daemon-reload
run systemctl enable voxbox.service
if [ "$REBOOT" -eq 1 ]; then
  echo "the firmware config changed: reboot (sudo reboot) to load the overlay; the service starts at boot"
elif [ "$START" -eq 1 ]; then
  # --no-block: while the sound card is missing the daemon waits (and extends its start timeout).
  run systemctl restart --no-block voxbox.service
  echo "started: journalctl -u voxbox -f   to follow it"
fi
echo "check the setup with: sudo -u voxbox $PREFIX/.venv/bin/voxbox check --config $ETC/voxbox.toml"
