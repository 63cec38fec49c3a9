#!/usr/bin/env bash
# Generate the small speech fixtures the tests use (espeak-ng + sox), into
# tests/fixtures/generated/ (or the directory given as $1).
#
# Every file is 16 kHz mono 16-bit PCM unless its name says otherwise. Speech is
# trimmed of espeak's own leading/trailing silence and padded with known
# amounts of digital silence, so fixtures.json can state where the speech is.
# fixtures.json is written last: its presence means the set is complete.
set -euo pipefail
# Repeatable: no random dither (-D) and a fixed seed for synth noise (-R), so the same
# espeak-ng and sox give the same files and borderline scores do not flip between runs.
sox() { command sox -R -D "$@"; }

out=${1:-"$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/generated"}
for tool in espeak-ng sox soxi; do
  command -v "$tool" >/dev/null || { echo "make_fixtures.sh: $tool is not installed" >&2; exit 1; }
done
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

FMT=(-r 16000 -c 1 -b 16 -e signed-integer)

# say NAME VOICE SPEED TEXT: trimmed speech, 16 kHz mono, in $tmp/NAME.wav
say() {
  espeak-ng -v "$2" -s "$3" -w "$tmp/$1.raw.wav" "$4"
  sox "$tmp/$1.raw.wav" "${FMT[@]}" "$tmp/$1.wav" \
    silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse
}
dur() { soxi -D "$1"; }
# padded NAME LEAD TAIL: $out/NAME.wav = LEAD s silence + speech + TAIL s silence
padded() { sox "$tmp/$1.wav" "${FMT[@]}" "$tmp/$1.out.wav" pad "$2" "$3"; mv "$tmp/$1.out.wav" "$out/$1.wav"; }

json_files=()
segment() { # NAME START DURATION -> a fixtures.json entry with one speech segment
  json_files+=("$(printf '"%s.wav": {"speech": [[%.4f, %.4f]]}' "$1" "$2" "$(echo "$2 + $3" | bc -l)")")
}

# Wake word (openWakeWord's hey_jarvis fires on these voices at 150 wpm; 1 s of
# lead silence gives the model the context it needs).
for voice in en-us en-gb en+f2; do
  name="hey_jarvis_${voice//+/_}"
  say "$name" "$voice" 150 "hey jarvis, what time is it?"
  segment "$name" 1.0 "$(dur "$tmp/$name.wav")"
  padded "$name" 1.0 1.0
done

# Other words the builtin models know, to check several wake words at once.
say alexa en-us 150 "alexa, play some music"
segment alexa 1.0 "$(dur "$tmp/alexa.wav")"
padded alexa 1.0 1.0

# Negatives, including near misses ("jar", "harvest", "hey marvin").
# ("hey travis" is deliberately absent: hey_jarvis fires on it with espeak.)
i=0
for text in "the weather is nice today" "I went to the jar store" \
            "we will harvest the garden" "hey marvin, turn on the lights"; do
  name="negative_$i"; i=$((i + 1))
  say "$name" en-us 150 "$text"
  segment "$name" 1.0 "$(dur "$tmp/$name.wav")"
  padded "$name" 1.0 1.0
done

# Two utterances with a 2 s gap: VAD segment timing.
say utt_a en-gb 160 "please turn the kitchen lights off"
say utt_b en-us 160 "and set a timer for ten minutes"
da=$(dur "$tmp/utt_a.wav"); db=$(dur "$tmp/utt_b.wav")
sox -n "${FMT[@]}" "$tmp/gap.wav" trim 0 2.0
sox "$tmp/utt_a.wav" "$tmp/gap.wav" "$tmp/utt_b.wav" "${FMT[@]}" "$out/two_utterances.wav" pad 1.0 1.0
b_start=$(echo "1.0 + $da + 2.0" | bc -l)
json_files+=("$(printf '"two_utterances.wav": {"speech": [[1.0, %.4f], [%.4f, %.4f]]}' \
  "$(echo "1.0 + $da" | bc -l)" "$b_start" "$(echo "$b_start + $db" | bc -l)")")

# Silence.
sox -n "${FMT[@]}" "$out/silence.wav" trim 0 3.0
json_files+=('"silence.wav": {"speech": []}')

# The first positive at 48 kHz stereo (the same speech on both channels).
sox "$out/hey_jarvis_en-us.wav" -r 48000 -c 2 -b 16 "$out/hey_jarvis_48k_stereo.wav"
first=$(printf '%s\n' "${json_files[0]}" | sed 's/^"hey_jarvis_en-us.wav"/"hey_jarvis_48k_stereo.wav"/')
json_files+=("$first")

{
  echo "{"
  last=$((${#json_files[@]} - 1))
  for idx in "${!json_files[@]}"; do
    sep=","; [ "$idx" -eq "$last" ] && sep=""
    echo "  ${json_files[$idx]}$sep"
  done
  echo "}"
} > "$tmp/fixtures.json"
mv "$tmp/fixtures.json" "$out/fixtures.json"
echo "fixtures written to $out"
