#!/usr/bin/env bash
# Install voxbox as a systemd service on a Raspberry Pi (Raspberry Pi OS / Debian), as root:
#     sudo systemd/install.sh [--profile NAME] [--no-start]
# What it does (idempotent: safe to run again to upgrade):
#   - installs the Debian packages voxbox needs (PortAudio, ALSA tools),
#   - creates the system user `voxbox` (groups audio, gpio, spi; created if missing),
#   - copies this source tree to /opt/voxbox and builds /opt/voxbox/.venv with `pip install -e '.[hw]'`,
#   - writes /etc/voxbox/voxbox.toml from systemd/voxbox.toml.example (kept if it exists),
#   - writes /etc/voxbox/voxbox.env (mode 0600, kept if it exists) for OPENAI_API_KEY,
#   - installs and enables voxbox.service, and starts it unless --no-start.
set -euo pipefail

PROFILE=""
START=1
PREFIX=/opt/voxbox
ETC=/etc/voxbox
UNIT_DIR=/etc/systemd/system

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="${2:?--profile needs a name}"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 2; }
SRC="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "$PROFILE" ] && [ ! -f "$SRC/hw/$PROFILE.toml" ] && [ ! -f "$PROFILE" ]; then
  echo "install.sh: unknown profile '$PROFILE' (known: $(cd "$SRC/hw" && ls ./*.toml | sed 's|^\./||; s|\.toml$||' | tr '\n' ' '))" >&2
  exit 2
fi

echo "== Debian packages"
PKGS="python3 python3-venv python3-dev portaudio19-dev alsa-utils libasound2-plugins"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi

echo "== user and groups"
for g in audio gpio spi; do getent group "$g" >/dev/null || groupadd --system "$g"; done
if ! id voxbox >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/voxbox --no-create-home --shell /usr/sbin/nologin \
    --user-group --groups audio,gpio,spi --comment "voxbox smart speaker" voxbox
else
  usermod -a -G audio,gpio,spi voxbox
fi
# Raspberry Pi OS gives /dev/gpiochip* and /dev/spidev* to the gpio and spi groups; elsewhere, add rules.
if ! grep -qs 'gpiochip' /etc/udev/rules.d/*.rules /lib/udev/rules.d/*.rules /usr/lib/udev/rules.d/*.rules; then
  cat > /etc/udev/rules.d/60-voxbox-gpio.rules <<'RULES'
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
SUBSYSTEM=="spidev", KERNEL=="spidev*", GROUP="spi", MODE="0660"
RULES
  udevadm control --reload-rules 2>/dev/null && udevadm trigger 2>/dev/null || true
fi

echo "== code and venv in $PREFIX"
mkdir -p "$PREFIX"
if [ "$SRC" != "$PREFIX" ]; then
  tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=./demo-out --exclude='*.egg-info' \
      --exclude=__pycache__ -cf - . | tar -C "$PREFIX" -xf -
fi
# --system-site-packages: Raspberry Pi OS ships python3-lgpio (gpiozero's pin factory) as a Debian package.
[ -x "$PREFIX/.venv/bin/python" ] || python3 -m venv --system-site-packages "$PREFIX/.venv"
"$PREFIX/.venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/.venv/bin/pip" install --quiet -e "$PREFIX[hw]"
"$PREFIX/.venv/bin/python" -m compileall -q "$PREFIX/device" >/dev/null || true
chown -R root:root "$PREFIX"
chmod -R go-w "$PREFIX"

echo "== configuration in $ETC"
install -d -m 0755 "$ETC"
if [ ! -f "$ETC/voxbox.toml" ]; then
  sed "s|@PROFILE@|$PROFILE|" "$SRC/systemd/voxbox.toml.example" > "$ETC/voxbox.toml"
  chmod 0644 "$ETC/voxbox.toml"
  echo "wrote $ETC/voxbox.toml (profile: ${PROFILE:-none})"
else
  echo "kept $ETC/voxbox.toml"
fi
if [ ! -f "$ETC/voxbox.env" ]; then
  install -m 0600 -o root -g root "$SRC/systemd/voxbox.env.example" "$ETC/voxbox.env"
  echo "wrote $ETC/voxbox.env (0600): put OPENAI_API_KEY there"
else
  chmod 0600 "$ETC/voxbox.env"
  chown root:root "$ETC/voxbox.env"
fi

echo "== service"
install -m 0644 "$SRC/systemd/voxbox.service" "$UNIT_DIR/voxbox.service"
systemctl daemon-reload
systemctl enable voxbox.service
if [ "$START" -eq 1 ]; then
  systemctl restart voxbox.service
  echo "started: journalctl -u voxbox -f   to follow it"
fi
echo "check the setup with: sudo -u voxbox $PREFIX/.venv/bin/voxbox check --config $ETC/voxbox.toml"
