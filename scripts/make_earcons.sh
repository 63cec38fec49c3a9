#!/usr/bin/env bash
# Regenerate the earcons: device/appliance/sounds/*.wav, 24 kHz mono PCM16, each well under 1 s.
#
# Synthesised here from sine tones with sox (no samples from anywhere else), so they are the
# project's own work under its licence (Apache-2.0). Peak -6 dBFS; 5 ms fades so no click.
# Deterministic: sox -R (no random dither). Needs sox.
#   wake    two rising notes: "I'm listening"
#   done    two falling notes: end of listening, the turn went to the model
#   error   two low notes: offline or a fault
#   mute    one falling glide      unmute  one rising glide
#   timer   three quick beeps and a rest: one period of the ring, looped while it rings
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-device/appliance/sounds}
command -v sox >/dev/null || { echo "make_earcons: sox not found" >&2; exit 1; }
mkdir -p "$OUT_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

FMT=(-R -r 24000 -c 1 -b 16 -e signed-integer)

# note NAME SECONDS SYNTH-ARGS...: one shaped tone into $tmp/NAME.wav
note() {
    local name=$1 secs=$2; shift 2
    sox "${FMT[@]}" -n "$tmp/$name.wav" synth "$secs" "$@" vol 0.4 fade h 0.005 "$secs" 0.03
}
gap() { sox "${FMT[@]}" -n "$tmp/$1.wav" trim 0 "$2"; }
out() { local name=$1; shift; sox "${FMT[@]}" "$@" "${FMT[@]}" "$OUT_DIR/$name.wav" gain -n -6; }

note w1 0.09 sine 880;  note w2 0.12 sine 1318.5
out wake "$tmp/w1.wav" "$tmp/w2.wav"
note d1 0.08 sine 1318.5; note d2 0.10 sine 880
out done "$tmp/d1.wav" "$tmp/d2.wav"
note e1 0.14 sine 392; gap e_gap 0.05; note e2 0.20 sine 311.1
out error "$tmp/e1.wav" "$tmp/e_gap.wav" "$tmp/e2.wav"
note m1 0.18 sine 660-440
out mute "$tmp/m1.wav"
note u1 0.18 sine 440-660
out unmute "$tmp/u1.wav"
note b 0.10 sine 1046.5; gap b_gap 0.07; gap rest 0.45
out timer "$tmp/b.wav" "$tmp/b_gap.wav" "$tmp/b.wav" "$tmp/b_gap.wav" "$tmp/b.wav" "$tmp/rest.wav"
ls -l "$OUT_DIR"
