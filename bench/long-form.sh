#!/usr/bin/env bash
# bench/long-form.sh — long-form transcription at several lengths: peak memory must not grow with
# the length of the file (beyond the transcript itself), timestamps must stay sane.
#
#   bench/long-form.sh [--model tiny.en] [--minutes 2,5,10] [--tolk build/tolk] [--threads 2]
#                      [--out DIR] [-- extra tolk transcribe options]
#
# For each length it concatenates the 16 kHz mono clips of data/speech/asr.tsv (in
# manifest order, repeated when needed) with sox into one FLAC of that many minutes, runs
# `tolk transcribe FILE --output_format json` once under /usr/bin/time, and prints one row:
#
#   minutes  audio s  wall s  RTFx  peak RSS MiB  segments  last end s  timestamps
#
# "timestamps" is ok when every segment has 0 <= start <= end <= duration + 0.5 s and starts never
# go backwards; otherwise it names the first bad segment. It measures; it never fails on a number
# (exit 1 only when a run fails or the timestamps are not sane).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
speech=${TOLK_SPEECH:-$root/data/speech}
model=tiny.en minutes=2,5,10 tolk=$root/build/tolk threads=2 out=
extra=()
while [ $# -gt 0 ]; do
    case $1 in
    --model) model=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --tolk) tolk=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "long-form: unknown option $1" >&2; exit 2 ;;
    esac
done
for t in sox soxi python3 /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "long-form: needs $t (scripts/setup-deps installs it)" >&2; exit 2; }
done
[ -x "$tolk" ] || { echo "long-form: $tolk: not built (scripts/build)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "$out" ] && mkdir -p "$out"

# the 16 kHz mono clips, in manifest order
clips=()
while IFS=$'\t' read -r file _; do
    f=$speech/$file
    [ -f "$f" ] || continue
    if [ "$(soxi -r "$f")" = 16000 ] && [ "$(soxi -c "$f")" = 1 ]; then clips+=("$f"); fi
done < <(tail -n +2 "$speech/asr.tsv")
[ ${#clips[@]} -gt 0 ] || { echo "long-form: no 16 kHz mono clips under $speech" >&2; exit 2; }

make_file() { # minutes -> path
    local want=$(( $1 * 60 )) have=0 list=() i=0 d
    while [ "$(python3 -c "print(int($have < $want))")" = 1 ]; do
        d=$(soxi -D "${clips[$i]}")
        list+=("${clips[$i]}")
        have=$(python3 -c "print($have + $d)")
        i=$(( (i + 1) % ${#clips[@]} ))
    done
    sox "${list[@]}" "$work/long$1.flac" trim 0 "$want"
    echo "$work/long$1.flac"
}

printf '%-8s %8s %8s %7s %13s %9s %11s  %s\n' minutes "audio s" "wall s" RTFx "peak RSS MiB" segments "last end s" timestamps
status=0
IFS=, read -r -a mins <<<"$minutes"
for m in "${mins[@]}"; do
    f=$(make_file "$m")
    dir=$work/out$m
    mkdir -p "$dir"
    if ! /usr/bin/time -f '%e %M' -o "$work/time$m" "$tolk" transcribe --model "$model" \
        --threads "$threads" --output_format json --output_dir "$dir" --verbose False \
        ${extra[@]+"${extra[@]}"} "$f" >"$work/log$m" 2>&1; then
        echo "long-form: tolk failed on the $m-minute file:" >&2
        cat "$work/log$m" >&2
        status=1
        continue
    fi
    read -r wall rss <"$work/time$m"
    [ -n "$out" ] && cp "$dir/long$m.json" "$out/"
    python3 - "$dir/long$m.json" "$m" "$wall" "$rss" <<'EOF' || status=1
import json, sys
path, m, wall, rss = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
res = json.load(open(path))
segs = res["segments"]
dur = m * 60.0
verdict, prev = "ok", 0.0
for s in segs:
    if not (0 <= s["start"] <= s["end"] <= dur + 0.5) or s["start"] < prev:
        verdict = f"BAD at segment {s['id']} ({s['start']} -> {s['end']})"
        break
    prev = s["start"]
last = segs[-1]["end"] if segs else 0.0
print(f"{m:<8d} {dur:8.1f} {wall:8.1f} {dur / wall:7.1f} {rss / 1024:13.1f} {len(segs):9d} "
      f"{last:11.1f}  {verdict}")
sys.exit(0 if verdict == "ok" else 1)
EOF
done
exit $status
