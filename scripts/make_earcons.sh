#!/usr/bin/env bash
# Regenerate the earcons: device/appliance/sounds/*.wav, 24 kHz mono PCM16, each well under 1 s
# (but the start-up sweep).
#
# Synthesised here with sox (no samples from anywhere else), so they are the project's own work
# under its licence (Apache-2.0). Peak -6 dBFS; 5 ms fades so no click.
# Plucked strings (Karplus-Strong: a noise burst through a tuned delay), not pure sines: the echo
# canceller estimates the speaker-to-mic delay by correlation, and a pure tone correlates with
# itself at every period. A wake chime of two sines made AEC3 mis-estimate the delay and the
# reply that followed tripped false barge-ins in the demo; broadband plucks do not.
# Deterministic: sox -R (no random dither). Needs sox.
#   wake    two rising notes: "I'm listening"
#   done    two falling notes: end of listening, the turn went to the model
#   error   two low notes: offline or a fault
#   mute    two falling notes (a fifth)    unmute  the same, rising
#   timer   three quick beeps and a rest: one period of the ring, looped while it rings
#   startup a rising sweep, 50 Hz to 9.5 kHz in 2.6 s: played at every start; its echo checks the
#           room's echo path or measures it anew (device/audio/room.py), so it must cover the
#           voice's band evenly (an exponential sweep: as much time per octave) and past both ends
#           of the canceller's 16 kHz band (100 Hz-7.5 kHz left the path 3.4 dB low at 50-100 Hz)
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
    sox "${FMT[@]}" -n "$tmp/$name.wav" synth "$secs" "$@" vol 0.4 fade h 0.002 "$secs" 0.03
}
gap() { sox "${FMT[@]}" -n "$tmp/$1.wav" trim 0 "$2"; }
out() { local name=$1; shift; sox "${FMT[@]}" "$@" "${FMT[@]}" "$OUT_DIR/$name.wav" gain -n -6; }

note w1 0.09 pluck 880;  note w2 0.14 pluck 1318.5
out wake "$tmp/w1.wav" "$tmp/w2.wav"
note d1 0.08 pluck 1318.5; note d2 0.12 pluck 880
out done "$tmp/d1.wav" "$tmp/d2.wav"
note e1 0.14 pluck 392; gap e_gap 0.05; note e2 0.22 pluck 311.1
out error "$tmp/e1.wav" "$tmp/e_gap.wav" "$tmp/e2.wav"
note m1 0.09 pluck 660; note m2 0.12 pluck 440
out mute "$tmp/m1.wav" "$tmp/m2.wav"
note u1 0.09 pluck 440; note u2 0.12 pluck 660
out unmute "$tmp/u1.wav" "$tmp/u2.wav"
note b 0.10 pluck 1046.5; gap b_gap 0.07; gap rest 0.45
out timer "$tmp/b.wav" "$tmp/b_gap.wav" "$tmp/b.wav" "$tmp/b_gap.wav" "$tmp/b.wav" "$tmp/rest.wav"
sox "${FMT[@]}" -n "$tmp/sweep.wav" synth 2.6 sine 50/9500 fade h 0.03 2.6 0.05
out startup "$tmp/sweep.wav"
ls -l "$OUT_DIR"
