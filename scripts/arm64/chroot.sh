#!/bin/bash
# Runs CMD... inside the arm64 userland ROOT as a Raspberry Pi 4 would see it: qemu-user emulates a
# Cortex-A72 (QEMU_CPU), /proc/cpuinfo is a Pi 4's (under qemu-user it would show the host's x86 CPU,
# and LiteRT's XNNPACK crashes on that), pip trusts the host's certificate authorities.
# Usage (as root, in a private mount namespace so every mount here ends with it):
#   unshare --mount --propagation private scripts/arm64/chroot.sh ROOT CMD...
set -euo pipefail
root=$1; shift
here=$(cd "$(dirname "$0")" && pwd)

mount -t proc proc "$root/proc"
mount --bind "$here/cpuinfo-pi4.txt" "$root/proc/cpuinfo"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"

# Only what the session needs crosses into the chroot: no host paths (PATH, find-links), no secrets.
pass=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
      DEBIAN_FRONTEND=noninteractive QEMU_CPU="${QEMU_CPU:-cortex-a72}"
      PIP_CERT=/usr/local/share/voxbox-host-ca.crt SSL_CERT_FILE=/usr/local/share/voxbox-host-ca.crt)
for v in PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST \
         http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  val=${!v:-}
  # A file:// index or a local path is the host's disk, not a registry: it does not exist in there.
  if [ -n "$val" ] && [[ $val != *file://* ]]; then pass+=("$v=$val"); fi
done
exec chroot "$root" /usr/bin/env -i "${pass[@]}" "$@"
