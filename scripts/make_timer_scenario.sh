#!/usr/bin/env bash
# Regenerate the bundled `voxbox demo --scenario timer`:
#   device/dev/data/timer_scenario.wav    16 kHz mono PCM16, 14 s: 1.0 s silence, "hey jarvis",
#                                         0.7 s pause, "set a timer for three seconds", silence
#   device/dev/data/timer_scenario.toml   the local server's script (voxbox serve --script): the
#                                         model calls set_timer {duration_s: 3}, then speaks
#                                         (the parrot's audio of the turn)
# The press that stops the ring is the demo's (--press), not in the file. Everything sits on
# -60 dBFS pink noise. Deterministic (sox -R). Needs espeak-ng and sox.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-device/dev/data}
RATE=16000
TOTAL_S=14.0
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make_timer_scenario: $tool not found" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() {  # say NAME SPEED TEXT: trimmed, -3 dBFS peak
    espeak-ng -v en-us -s "$2" -w "$tmp/$1.raw.wav" "$3"
    sox -R -D "$tmp/$1.raw.wav" -r $RATE -c 1 -b 16 "$tmp/$1.wav" \
        silence 1 0.005 0.3% reverse silence 1 0.005 0.3% reverse norm -3
}
silence() { sox -R -D -n -r $RATE -c 1 -b 16 "$tmp/$1.wav" trim 0 "$2"; }

say wake 150 "hey jarvis"
say ask 165 "set a timer for three seconds"
silence lead 1.0
silence pause 0.7
sox -R -D "$tmp/lead.wav" "$tmp/wake.wav" "$tmp/pause.wav" "$tmp/ask.wav" "$tmp/speech.wav"
tail_s=$(awk -v t=$TOTAL_S -v s="$(soxi -D "$tmp/speech.wav")" 'BEGIN { printf "%.4f", t - s }')
silence tail "$tail_s"
sox -R -D "$tmp/speech.wav" "$tmp/tail.wav" "$tmp/dry.wav"
sox -R -D -n -r $RATE -c 1 -b 16 "$tmp/noise.wav" synth "$TOTAL_S" pinknoise norm -60
mkdir -p "$OUT_DIR"
sox -R -D -m -v 1 "$tmp/dry.wav" -v 1 "$tmp/noise.wav" -r $RATE -c 1 -b 16 "$OUT_DIR/timer_scenario.wav" \
    trim 0 "$TOTAL_S"
cat > "$OUT_DIR/timer_scenario.toml" <<'TOML'
# The local server's script for `voxbox demo --scenario timer` (made by scripts/make_timer_scenario.sh).
[[turns]]
call = {name = "set_timer", arguments = {duration_s = 3}}
say = "Timer set for three seconds."
TOML
echo "speech ends at $(soxi -D "$tmp/speech.wav") s of $TOTAL_S s"
