#!/usr/bin/env bash
# Prints, space-separated on one line, those of the Debian packages named as arguments that this
# system lacks; prints nothing when all are there. Used by the Makefile's set-up before apt-get.
#
# A package counts as there when dpkg has it installed (held or not: `apt-mark hold` turns
# "install ok installed" into "hold ok installed"), when an installed package Provides it, or, for
# the packages we want only for a command (nodejs, npm), when that command is on PATH: a machine
# with NodeSource's nodejs, or node from nvm or a tarball, must not be asked to take Debian's npm,
# which conflicts with it and fails the whole apt-get run.
set -euo pipefail

declare -A command_of=([nodejs]=node [npm]=npm)

# "Status-Abbrev Provides" of every package; installed ones have a second letter "i" (ii, hi).
# (No dpkg-query, not a Debian system: nothing counts as there, and the Makefile says so.)
provided=$({ dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null || true; } \
  | sed -n 's/^[a-z]i[^|]*|//p' | tr ',' '\n' | sed 's/ *(.*//; s/^ *//; /^$/d' | sort -u)

missing=()
for p in "$@"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -Eq '^(install|hold) ok installed$'; then continue; fi
  if printf '%s\n' "$provided" | grep -qxF "$p"; then continue; fi
  cmd=${command_of[$p]:-}
  if [[ -n $cmd ]] && command -v "$cmd" >/dev/null; then continue; fi
  missing+=("$p")
done
echo "${missing[*]}"
