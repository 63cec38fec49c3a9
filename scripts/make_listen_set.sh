#!/usr/bin/env bash
# The labelled listening set for `voxbox bench` (device/bench_listen.py), made with
# espeak-ng + sox into a cache directory (never committed).
#
#   scripts/make_listen_set.sh OUT_DIR [quick|full]
#
# OUT_DIR/
#   pos/<phrase>__<voice>__<speed>__<snr>.wav   wake phrase + a short request; snr = clean | 20 | 10 | 5 (dB)
#   neg/<voice>__<speed>.wav                    ordinary sentences (incl. near misses) one after another
#   labels.json                                 written last (its presence = complete set):
#     {"files": {"pos/...wav": {"kind": "positive", "phrase": "hey_jarvis", "voice", "speed", "snr",
#                               "speech": [[start_s, end_s], ...]}, "neg/...": {"kind": "negative", ...}},
#      "phrases": [...], "snrs": [...]}
# Speech is espeak's output trimmed of its own silence and put at known offsets, so
# "speech" is exact for the clean signal; noisy copies keep the clean labels.
# Noise: sox-synthesised pink / brown / white noise (one colour per voice), scaled to the SNR
# against the RMS of the whole utterance file's speech part.
set -euo pipefail
# Repeatable: no random dither (-D) and a fixed seed for synth noise (-R), so the same
# espeak-ng and sox give the same files and borderline scores do not flip between runs.
sox() { command sox -R -D "$@"; }

out=${1:?usage: make_listen_set.sh OUT_DIR [quick|full]}
size=${2:-full}
for tool in espeak-ng sox soxi bc; do
  command -v "$tool" >/dev/null || { echo "make_listen_set.sh: $tool is not installed" >&2; exit 1; }
done

phrases=("hey jarvis" "okay nabu" "alexa" "hey mycroft")
requests=("what time is it" "turn on the lights" "play some music" "set a timer for five minutes")
if [ "$size" = quick ]; then
  voices=(en-us en+f2)
  speeds=(150)
  snrs=(clean 10)
  n_neg=8
else
  voices=(en-us en-gb en+f2 en+m3)
  speeds=(130 165)
  snrs=(clean 20 10 5)
  n_neg=16
fi
# Near misses first, then ordinary speech a speaker hears in a living room.
negatives=(
  "hand me the jar please" "we will harvest the garden this week" "she opened a lexicon of old words"
  "okay now let us begin" "hey marvin, how are you" "the jarring noise woke the baby"
  "a lexical analysis of the text" "okay, now what do you want" "my crafty friend came over"
  "he bought a new car in march" "the weather is nice today" "please pass the salt"
  "I think we should leave at nine" "the meeting has been moved to thursday" "can you read me that story again"
  "dinner will be ready in ten minutes" "the children are playing outside" "do not forget to water the plants"
  "the train was late again this morning" "I like my coffee with a little milk" "turn left at the next corner"
  "let us watch a movie tonight" "the dog needs a walk" "where did I put my keys"
  "it might rain later this afternoon" "the library closes at six" "we need more bread and eggs"
  "that song reminds me of summer" "how was your day at school" "the phone battery is almost empty"
  "my sister lives in another city" "the soup is too hot to eat" "he is reading the newspaper"
  "the windows need cleaning" "I will call you back later" "we painted the kitchen yellow"
  "the bus stop is around the corner" "a cup of tea would be lovely" "the garden looks beautiful in spring"
  "she plays the piano every evening"
)
noises=(pinknoise brownnoise whitenoise)
mkdir -p "$out/pos" "$out/neg"
rm -f "$out/labels.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
FMT=(-r 16000 -c 1 -b 16 -e signed-integer)
LEAD=1.0
TAIL=0.8

# say FILE VOICE SPEED TEXT: trimmed speech, 16 kHz mono
say() {
  espeak-ng -v "$2" -s "$3" -w "$tmp/raw.wav" "$4"
  sox -V1 "$tmp/raw.wav" "${FMT[@]}" "$1" silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse
}
rms() { sox "$1" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}'; }
entries=()

vi=0
for voice in "${voices[@]}"; do
  noise=${noises[$((vi % ${#noises[@]}))]}; vi=$((vi + 1))
  vname=${voice//+/_}
  for speed in "${speeds[@]}"; do
    pi=0
    for phrase in "${phrases[@]}"; do
      pname=${phrase// /_}
      req=${requests[$pi]}; pi=$((pi + 1))
      say "$tmp/s.wav" "$voice" "$speed" "$phrase, $req"
      d=$(soxi -D "$tmp/s.wav")
      sox "$tmp/s.wav" "${FMT[@]}" "$tmp/clean.wav" pad "$LEAD" "$TAIL"
      total=$(soxi -D "$tmp/clean.wav")
      srms=$(rms "$tmp/s.wav")
      sox -n "${FMT[@]}" "$tmp/noise.wav" synth "$total" "$noise"
      nrms=$(rms "$tmp/noise.wav")
      for snr in "${snrs[@]}"; do
        f="pos/${pname}__${vname}__${speed}__${snr}.wav"
        if [ "$snr" = clean ]; then
          cp "$tmp/clean.wav" "$out/$f"
        else
          gain=$(echo "$srms / ($nrms * e(l(10) * $snr / 20))" | bc -l)
          sox -V1 -m "$tmp/clean.wav" -v "$gain" "$tmp/noise.wav" "${FMT[@]}" "$out/$f"
        fi
        entries+=("$(printf '"%s": {"kind": "positive", "phrase": "%s", "voice": "%s", "speed": %d, "snr": "%s", "speech": [[%.4f, %.4f]]}' \
          "$f" "$pname" "$vname" "$speed" "$snr" "$LEAD" "$(echo "$LEAD + $d" | bc -l)")")
      done
    done
  done
done

# Negatives: per voice and speed, n_neg sentences (rotating through the list) with 0.6-1.2 s gaps.
vi=0
for voice in "${voices[@]}"; do
  vname=${voice//+/_}
  for speed in "${speeds[@]}"; do
    parts=(); segs=(); t=$LEAD
    sox -n "${FMT[@]}" "$tmp/lead.wav" trim 0 "$LEAD"
    parts+=("$tmp/lead.wav")
    for ((k = 0; k < n_neg; k++)); do
      idx=$(((vi * 7 + k) % ${#negatives[@]}))
      say "$tmp/n$k.wav" "$voice" "$speed" "${negatives[$idx]}"
      d=$(soxi -D "$tmp/n$k.wav")
      gap=$(echo "0.6 + 0.1 * ($k % 7)" | bc -l)
      sox -n "${FMT[@]}" "$tmp/g$k.wav" trim 0 "$gap"
      parts+=("$tmp/n$k.wav" "$tmp/g$k.wav")
      segs+=("$(printf '[%.4f, %.4f]' "$t" "$(echo "$t + $d" | bc -l)")")
      t=$(echo "$t + $d + $gap" | bc -l)
    done
    f="neg/${vname}__${speed}.wav"
    sox "${parts[@]}" "${FMT[@]}" "$out/$f"
    joined=$(IFS=,; echo "${segs[*]}")
    entries+=("$(printf '"%s": {"kind": "negative", "voice": "%s", "speed": %d, "snr": "clean", "speech": [%s]}' \
      "$f" "$vname" "$speed" "$joined")")
    vi=$((vi + 1))
  done
done

{
  echo '{"size": "'"$size"'",'
  printf '"phrases": ['; first=1
  for p in "${phrases[@]}"; do [ $first = 1 ] || printf ', '; first=0; printf '"%s"' "${p// /_}"; done
  printf '],\n"snrs": ['; first=1
  for s in "${snrs[@]}"; do [ $first = 1 ] || printf ', '; first=0; printf '"%s"' "$s"; done
  echo '],'
  echo '"files": {'
  last=$((${#entries[@]} - 1))
  for idx in "${!entries[@]}"; do
    sep=","; [ "$idx" -eq "$last" ] && sep=""
    echo "  ${entries[$idx]}$sep"
  done
  echo "}}"
} > "$tmp/labels.json"
mv "$tmp/labels.json" "$out/labels.json"
echo "listen set ($size) written to $out"
