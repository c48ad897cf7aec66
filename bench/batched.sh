#!/usr/bin/env bash
# bench/batched.sh — batched long-form (issue 14): one long English file (the data/ clips of asr.tsv
# concatenated, with 1 s of silence between them, to --minutes) transcribed
#   tolk  sequential                       (the reference's transcribe(): one request, seek loop)
#   tolk  --vad_filter True                (speech only, one request)
#   tolk  --batched True --batch_size B    (speech packed into <= 30 s pieces decoded in parallel)
#   faster-whisper WhisperModel.transcribe (sequential, float32)
#   faster-whisper BatchedInferencePipeline, batch B, int8 and float32
# in one run, same model (a CTranslate2 directory) and threads; WER of each against the clips'
# concatenated references after Whisper's English normaliser, wall seconds and throughput.
#
#   bench/batched.sh --python VENV/bin/python [--model base] [--minutes 10] [--batch 8]
#                    [--threads 2] [--out DIR]
#
# VENV: faster-whisper, jiwer and whisper-normalizer installed. Writes DIR/report.md (default
# bench/results/DATE-batched). Measures only; one run each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data=${TOLK_DATA:-$root/data}
model=base minutes=10 batch=8 threads=2 py= out=
tolk=$root/build/tolk
while [ $# -gt 0 ]; do
    case $1 in
    --python) py=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "batched.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$py" ] || { echo "batched.sh: --python VENV/bin/python (with faster-whisper) is required" >&2; exit 2; }
[ -x "$tolk" ] || { echo "batched.sh: $tolk: not built" >&2; exit 2; }
models=${TOLK_MODELS:-$HOME/.cache/tolk/models}
mdir=$models/$model
out=${out:-$root/bench/results/$(date +%Y-%m-%d)-batched}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the long file and its reference: English 16 kHz mono clips in manifest order, repeated
"$py" - "$data/speech" "$minutes" "$work" <<'EOF'
import csv, os, subprocess, sys
speech, minutes, work = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows = [r for r in csv.DictReader(open(os.path.join(speech, "asr.tsv")), delimiter="\t")
        if r["language"] == "en"]
files, refs, total, i = [], [], 0.0, 0
silence = os.path.join(work, "silence.flac")
subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", silence, "trim", "0", "1"], check=True)
conv = {}  # every clip as 16 kHz mono once (the set mixes rates and channel counts)
while total < minutes * 60:
    r = rows[i % len(rows)]
    src = os.path.join(speech, r["file"])
    if src not in conv:
        conv[src] = os.path.join(work, f"clip{len(conv)}.flac")
        subprocess.run(["sox", src, "-r", "16000", "-c", "1", conv[src]], check=True)
    f = conv[src]
    d = float(subprocess.run(["soxi", "-D", f], capture_output=True, text=True).stdout)
    files += [f, silence]
    refs.append(r["reference"])
    total += d + 1.0
    i += 1
tmp = os.path.join(work, "parts.flac")
subprocess.run(["sox"] + [x for f in files for x in (f,)] + ["-r", "16000", "-c", "1", tmp], check=True)
os.replace(tmp, os.path.join(work, "long.flac"))
open(os.path.join(work, "long.ref"), "w").write(" ".join(refs) + "\n")
print(f"batched.sh: {total / 60:.1f} minutes of audio from {i} clips", file=sys.stderr)
EOF

run_tolk() { # name args...
    local name=$1
    shift
    /usr/bin/time -f '%e %M' -o "$work/$name.time" "$tolk" transcribe --model "$model" \
        --threads "$threads" --verbose False -f json -o "$work/$name" "$@" "$work/long.flac" \
        >"$work/$name.log" 2>&1 || { echo "batched.sh: tolk $name failed" >&2; cat "$work/$name.log" >&2; }
}
echo "batched.sh: load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run_tolk tolk-seq --beam_size None --language en
run_tolk tolk-vad --beam_size None --language en --vad_filter True
run_tolk tolk-batched --beam_size None --language en --batched True --batch_size "$batch"

"$py" - "$mdir" "$work" "$threads" "$batch" <<'EOF'
import json, sys, time, resource
from faster_whisper import WhisperModel, BatchedInferencePipeline
mdir, work, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
res = {}
for name, ct, batched in (("fw-seq-f32", "float32", False), ("fw-batched-int8", "int8", True),
                          ("fw-batched-f32", "float32", True)):
    m = WhisperModel(mdir, device="cpu", compute_type=ct, cpu_threads=threads)
    t0 = time.perf_counter()
    if batched:
        p = BatchedInferencePipeline(model=m)
        segs, info = p.transcribe(f"{work}/long.flac", batch_size=batch, language="en", beam_size=1)
    else:
        segs, info = m.transcribe(f"{work}/long.flac", language="en", beam_size=1)
    text = " ".join(s.text.strip() for s in segs)
    res[name] = {"text": text, "wall_s": time.perf_counter() - t0}
    print(f"batched.sh: {name} {res[name]['wall_s']:.1f} s", file=sys.stderr)
json.dump(res, open(f"{work}/fw.json", "w"))
EOF

"$py" - "$work" "$out" "$minutes" "$batch" "$model" "$threads" <<'EOF'
import json, os, sys
import jiwer
from whisper_normalizer.english import EnglishTextNormalizer
work, out, minutes, batch, model, threads = sys.argv[1:]
norm = EnglishTextNormalizer()
ref = norm(open(f"{work}/long.ref").read())
rows = []
audio = None
for name in ("tolk-seq", "tolk-vad", "tolk-batched"):
    try:
        j = json.load(open(f"{work}/{name}/long.json"))
        wall = float(open(f"{work}/{name}.time").read().split()[0])
        text = " ".join(s["text"].strip() for s in j["segments"])
        rows.append((name, text, wall))
    except Exception as e:  # a failed run shows as such
        rows.append((name, None, None))
fw = json.load(open(f"{work}/fw.json"))
for name in ("fw-seq-f32", "fw-batched-int8", "fw-batched-f32"):
    rows.append((name, fw[name]["text"], fw[name]["wall_s"]))
seconds = float(minutes) * 60
lines = [f"# Batched long-form: one {minutes}-minute English file ({model}, {threads} threads, batch {batch})", "",
         "| engine | WER % | wall s | audio s / wall s | speed-up vs tolk sequential |", "|---|---|---|---|---|"]
base = rows[0][2]
for name, text, wall in rows:
    if text is None:
        lines.append(f"| {name} | failed | | | |")
        continue
    w = 100 * jiwer.wer(ref, norm(text))
    lines.append(f"| {name} | {w:.2f} | {wall:.1f} | {seconds / wall:.2f} | {base / wall:.2f}x |")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/report.md"
