#!/usr/bin/env bash
# Regenerate the bundled `voxbox demo` scenario:
#   device/dev/data/demo_scenario.wav   16 kHz mono PCM16, ~22 s
#   device/dev/data/demo_scenario.json  segment onsets measured from the WAV's energy envelope
#
# Layout: 1.0 s silence, "hey jarvis", 0.7 s pause, a question (~2 s), a gap long
# enough for the parrot model's reply to start (end of turn ~0.8 s after the question)
# and play ~1 s, then the user interrupts ("stop, tell me a joke instead"), then
# silence so the parrot answers the interruption and the 6 s follow-up window
# elapses. Everything sits on -60 dBFS pink noise so it is not digital silence.
#
# Deterministic: same espeak-ng + sox => byte-identical outputs (sox -R seeds its
# noise and dither generators with a fixed value). Needs espeak-ng, sox, python3
# (standard library only, for the onset measurement).
#
# The wake word was checked with the reference openWakeWord engine
# (pyopen_wakeword, hey_jarvis): en-us at 150 wpm scores ~0.99.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-device/dev/data}   # override to regenerate elsewhere (the tests do)
OUT_WAV=$OUT_DIR/demo_scenario.wav
OUT_JSON=$OUT_DIR/demo_scenario.json
PYTHON=${PYTHON:-python3}

RATE=16000
LEAD_S=1.0          # silence before the wake word
PAUSE_S=0.7         # wake word -> question
GAP_S=1.9           # question end -> interruption (~0.8 s end of turn + ~1.1 s of reply)
TOTAL_S=22.0        # whole file; the tail after the interruption is ~12 s

for tool in espeak-ng sox "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "make_demo_scenario: $tool not found" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say NAME SPEED TEXT: espeak-ng -> 16 kHz mono int16, leading/trailing silence trimmed,
# peak-normalised to -3 dBFS.
say() {
    local name=$1 speed=$2 text=$3
    espeak-ng -v en-us -s "$speed" -w "$tmp/$name.raw.wav" "$text"
    sox -R -D "$tmp/$name.raw.wav" -r $RATE -c 1 -b 16 "$tmp/$name.wav" \
        silence 1 0.005 0.3% reverse silence 1 0.005 0.3% reverse norm -3
}

silence() {  # silence NAME SECONDS
    sox -R -D -n -r $RATE -c 1 -b 16 "$tmp/$1.wav" trim 0 "$2"
}

say wake 150 "hey jarvis"
say question 165 "what is the weather like in Paris today"
say interrupt 190 "stop, tell me a joke instead"

silence lead $LEAD_S
silence pause $PAUSE_S
silence gap $GAP_S

sox -R -D "$tmp/lead.wav" "$tmp/wake.wav" "$tmp/pause.wav" "$tmp/question.wav" \
    "$tmp/gap.wav" "$tmp/interrupt.wav" "$tmp/speech.wav"
speech_s=$(soxi -D "$tmp/speech.wav")
tail_s=$(awk -v t=$TOTAL_S -v s="$speech_s" 'BEGIN { printf "%.4f", t - s }')
silence tail "$tail_s"
sox -R -D "$tmp/speech.wav" "$tmp/tail.wav" "$tmp/dry.wav"

# -60 dBFS (peak-normalised) pink noise, same length.
sox -R -D -n -r $RATE -c 1 -b 16 "$tmp/noise.wav" synth "$TOTAL_S" pinknoise norm -60

mkdir -p "$OUT_DIR"
sox -R -D -m -v 1 "$tmp/dry.wav" -v 1 "$tmp/noise.wav" -r $RATE -c 1 -b 16 "$OUT_WAV" trim 0 "$TOTAL_S"

# Onsets from the energy envelope of the final file: 10 ms frames above -40 dBFS RMS,
# gaps shorter than 0.35 s merged (word gaps), so there must be exactly three segments.
made_with="$(espeak-ng --version | awk '{print "espeak-ng " $4}'), $(sox --version | awk '{print "sox " $3}')"
"$PYTHON" - "$OUT_WAV" "$OUT_JSON" "$made_with" <<'PY'
import array, json, math, sys, wave

wav_path, json_path, made_with = sys.argv[1], sys.argv[2], sys.argv[3]
with wave.open(wav_path, "rb") as w:
    rate, n = w.getframerate(), w.getnframes()
    samples = array.array("h", w.readframes(n))
if sys.byteorder != "little":
    samples.byteswap()
hop = rate // 100
thresh = 32768 * 10 ** (-40 / 20)
active = []
for i in range(0, len(samples) - hop + 1, hop):
    frame = samples[i:i + hop]
    active.append(math.sqrt(sum(x * x for x in frame) / hop) > thresh)
segs = []
for k, a in enumerate(active):
    if not a:
        continue
    if segs and k - segs[-1][1] <= 35:
        segs[-1][1] = k + 1
    else:
        segs.append([k, k + 1])
segs = [s for s in segs if s[1] - s[0] >= 10]  # drop blips shorter than 100 ms
if len(segs) != 3:
    sys.exit(f"make_demo_scenario: expected 3 speech segments, found {len(segs)}: {segs}")
sec = lambda k: round(k * hop / rate, 2)
(w0, w1), (q0, q1), (i0, i1) = segs
out = {
    "wake": sec(w0),
    "wake_end": sec(w1),
    "wake_word": "hey_jarvis",
    "question": [sec(q0), sec(q1)],
    "interrupt": [sec(i0), sec(i1)],
    "duration": round(len(samples) / rate, 2),
    "made_with": made_with,
}
with open(json_path, "w", encoding="utf-8") as fh:
    json.dump(out, fh, indent=2)
    fh.write("\n")
print(json.dumps(out))
PY
