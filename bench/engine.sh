#!/usr/bin/env bash
# bench/engine.sh — the scheduler against sequential decoding (issue 13): every file of the shared
# sets through `tolk bench` once file by file (--batch 1: one tolk_state) and once per engine batch
# size (--batch N: N requests decoding at once, sharing each decoder step), for greedy decoding and
# for beam search 5 with the temperature fallback.
#
#   bench/engine.sh [--model base] [--batches 4,8,16] [--decodings greedy,beam5] [--threads 2]
#                   [--sets asr,translate] [--limit N] [--kv_cache float32|float16]
#                   [--tolk build/tolk] [--out DIR]
#
# Per (set, decoding): one row per batch size —
#
#   batch  files  identical  wall s  RTFx  speed-up  decoder ms/token by batch size  p50 / p90 latency  peak RSS
#
# "identical": files whose hypothesis text equals the sequential run's (the float32 CPU engine is
# bit-exact, so this must be all of them; a file that sampled at T > 0 counts too: the seed is per
# request). "speed-up": sequential wall / engine wall. The decoder columns come from the engine's
# own counters (tolk bench --batch N summary: decoder_by_batch). Results: DIR/report.md and the
# raw JSON lines (DIR defaults to bench/results/DATE-engine). One run each, measures only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data=${TOLK_DATA:-$root/data}
model=base batches=4,8,16 decodings=greedy,beam5 threads=2 sets=asr,translate limit=0 kv=float32
tolk=$root/build/tolk out=
while [ $# -gt 0 ]; do
    case $1 in
    --model) model=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --decodings) decodings=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --sets) sets=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --kv_cache) kv=$2; shift 2 ;;
    --tolk) tolk=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "engine.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$tolk" ] || { echo "engine.sh: $tolk: not built (scripts/build)" >&2; exit 2; }
out=${out:-$root/bench/results/$(date +%Y-%m-%d)-engine}
mkdir -p "$out"
lim=()
[ "$limit" != 0 ] && lim=(--limit "$limit")

for set in ${sets//,/ }; do
    manifest=$data/speech/$set.tsv
    [ -f "$manifest" ] || { echo "engine.sh: $manifest: missing" >&2; exit 2; }
    for dec in ${decodings//,/ }; do
        case $dec in
        greedy) opts=(--beam_size None) ;;
        beam5) opts=(--beam_size 5 --best_of 5) ;;
        *) echo "engine.sh: unknown decoding $dec" >&2; exit 2 ;;
        esac
        for b in 1 ${batches//,/ }; do
            tag=$set-$dec-b$b
            echo "engine.sh: $tag" >&2
            /usr/bin/time -f '%M' -o "$out/$tag.rss" \
                "$tolk" bench "$manifest" --model "$model" --threads "$threads" --batch "$b" \
                --kv_cache "$kv" "${opts[@]}" "${lim[@]}" --quiet -o "$out/$tag.jsonl" || true
        done
    done
done

python3 - "$out" "$sets" "$decodings" "$batches" "$model" "$threads" "$kv" <<'EOF'
import json, os, sys
out, sets, decs, batches, model, threads, kv = sys.argv[1:]
batches = [1] + [int(b) for b in batches.split(",")]

def load(path):
    files, summary = {}, None
    if not os.path.exists(path):
        return files, summary
    for line in open(path):
        o = json.loads(line)
        if o.get("type") == "file" and o.get("rep", 0) == 0:
            files[o["index"]] = o
        elif o.get("type") == "summary":
            summary = o
    return files, summary

lines = [f"# Engine vs sequential ({model}, {threads} threads, {kv} cross-attention K/V, one run each)", "",
         "Sequential = `tolk bench --batch 1` (one tolk_state, file after file); batch N = "
         "`tolk bench --batch N` (one engine, N requests decoding at once, every decoder step "
         "shared). Identical = hypothesis text equal to the sequential run's.", ""]
for s in sets.split(","):
    for d in decs.split(","):
        seq, seqs = load(f"{out}/{s}-{d}-b1.jsonl")
        if not seqs:
            continue
        lines += [f"## {s}.tsv, {d}", "",
                  "| batch | files | identical | wall s | RTFx | speed-up | decoder ms/token by step size | "
                  "latency p50 / p90 s | peak RSS MiB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for b in batches:
            f, sm = load(f"{out}/{s}-{d}-b{b}.jsonl")
            if not sm:
                lines.append(f"| {b} | failed | | | | | | | |")
                continue
            same = sum(1 for i, o in f.items() if i in seq and o.get("hypothesis") == seq[i].get("hypothesis"))
            rss = open(f"{out}/{s}-{d}-b{b}.rss").read().strip().splitlines()[-1]
            rss = f"{int(rss) / 1024:.0f}" if rss.isdigit() else "?"
            speed = seqs["wall_s"] / sm["wall_s"] if sm["wall_s"] else float("nan")
            if b == 1:
                dec = f"{1e3 * seqs['stages']['decoder_s'] / max(1, seqs['decoder_steps']):.2f} ms/step (batch 1 path)"
                lat = ""
            else:
                dec = ", ".join(f"{x['batch_min']}-{x['batch_max'] if x['batch_max'] > 0 else '∞'}: "
                                f"{x['ms_per_token']:.2f}" for x in sm.get("decoder_by_batch", []))
                lat = f"{sm['latency_p50_s']:.1f} / {sm['latency_p90_s']:.1f}"
            lines.append(f"| {b} | {sm['files']} | {same}/{len(seq)} | {sm['wall_s']:.1f} | {sm['rtfx']:.2f} | "
                         f"{speed:.2f}x | {dec} | {lat} | {rss} |")
        lines.append("")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
