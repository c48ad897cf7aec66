#!/usr/bin/env bash
# bench_manifest.sh TOLK — `tolk bench` manifest checking and output.
#   1. Bad manifests (missing, a directory, empty, header only, no `file`
#      column, a duplicated or unnamed column, wrong column counts, missing
#      or directory audio files, unknown languages, bad durations, invalid
#      UTF-8) fail before any model is loaded: exit 1, every problem printed
#      as "MANIFEST:LINE: problem", nothing on stdout, no output file.
#   2. Bad options are usage errors (exit 2).
#   3. Good manifests pass --check (CRLF line ends, blank lines, relative
#      paths from another working directory, absolute paths, extra columns).
#   4. With a real model (tiny.en or base; skipped when none is installed
#      unless TOLK_REQUIRE_MODELS=1): one good file and one corrupt file give
#      a config line, two file lines (ok, error), a summary line, valid JSON
#      each, and exit status 1 for the failed file.
set -u
TOLK=${1:?usage: bench_manifest.sh /path/to/tolk}
TOLK=$(cd "$(dirname "$TOLK")" && pwd)/$(basename "$TOLK")
SHARED=${TOLK_SHARED_DATA:-$(dirname "$0")/../../shared/data}
[ -d "$SHARED" ] || SHARED=$(dirname "$0")/../../../shared/data
SHARED=$(cd "$SHARED" 2>/dev/null && pwd) || { echo "FAIL: no shared data"; exit 1; }
JFK=$SHARED/speech/jfk.flac
[ -f "$JFK" ] || { echo "FAIL: $JFK not found (TOLK_SHARED_DATA)"; exit 1; }
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
mkdir -p data/sub other
cp "$JFK" data/a.flac
printf 'this is not audio\n' >data/bad.flac
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect RC 'PATTERN' ARGS...: run tolk bench ARGS (-o out.jsonl); check the
# exit status, that stderr matches every line of PATTERN (grep -F, one
# fixed string per line), that stdout is empty and out.jsonl not written.
expect() {
    local want=$1 pats=$2
    shift 2
    rm -f out.jsonl
    TOLK_MODELS=$work/nomodels "$TOLK" bench "$@" -o out.jsonl >stdout 2>stderr
    local rc=$?
    local bad=""
    if [ "$rc" != "$want" ]; then
        bad="exit $rc, expected $want"
    elif [ -s stdout ]; then
        bad="wrote to stdout"
    elif [ -e out.jsonl ]; then
        bad="wrote out.jsonl"
    else
        while IFS= read -r p; do
            [ -z "$p" ] && continue
            grep -Fq -- "$p" stderr || bad="stderr lacks '$p'"
        done <<<"$pats"
    fi
    if [ -n "$bad" ]; then
        fail "tolk bench $*: $bad"
        sed 's/^/    /' stderr
    else
        echo "ok: tolk bench $* -> $rc: $(head -n 1 stderr)"
    fi
}

H=$'file\tlanguage\tduration_s\treference'
row() { printf '%s\t%s\t%s\t%s\n' "$@"; }

# --- 1. bad manifests ------------------------------------------------------
expect 1 "nope.tsv: cannot open: No such file or directory" nope.tsv
expect 1 "data: is a directory, not a manifest" data
: >data/empty.tsv
expect 1 "data/empty.tsv:1: empty manifest" data/empty.tsv
printf '%s\n' "$H" >data/header.tsv
expect 1 "data/header.tsv:2: no rows after the header" data/header.tsv
{ printf 'path\tlanguage\n'; printf 'a.flac\ten\n'; } >data/nofile.tsv
expect 1 "data/nofile.tsv:1: no 'file' column" data/nofile.tsv
{ printf 'file\tlanguage\tfile\n'; printf 'a.flac\ten\ta.flac\n'; } >data/dup.tsv
expect 1 "data/dup.tsv:1: column 'file' appears twice" data/dup.tsv
{ printf 'file\t\treference\n'; printf 'a.flac\tx\ty\n'; } >data/unnamed.tsv
expect 1 "data/unnamed.tsv:1: column 2 has no name" data/unnamed.tsv
{ printf 'file language reference\n'; printf 'a.flac en hello\n'; } >data/spaces.tsv
expect 1 "data/spaces.tsv:1: no 'file' column" data/spaces.tsv
printf '\n' >data/blankhead.tsv
expect 1 "data/blankhead.tsv:1: empty header line" data/blankhead.tsv
{
    printf '%s\n' "$H"
    row a.flac en 11.0 "ok"
    printf 'a.flac\ten\n'
    row a.flac en 11.0 "ok"
    printf 'a.flac\ten\t11\tx\textra\n'
} >data/cols.tsv
expect 1 "data/cols.tsv:3: 2 columns, the header has 4
data/cols.tsv:5: 5 columns, the header has 4" data/cols.tsv
{ printf '%s\n' "$H"; row a.flac en 11 x; row missing.flac en 3 y; } >data/missing.tsv
expect 1 "data/missing.tsv:3: missing.flac: no such file" data/missing.tsv
{ printf '%s\n' "$H"; row sub en 3 y; } >data/dir.tsv
expect 1 "data/dir.tsv:2: sub: is a directory" data/dir.tsv
{ printf '%s\n' "$H"; row "" en 3 y; } >data/emptyfile.tsv
expect 1 "data/emptyfile.tsv:2: empty 'file' column" data/emptyfile.tsv
{ printf '%s\n' "$H"; row a.flac xx 3 y; } >data/lang.tsv
expect 1 "data/lang.tsv:2: unknown language 'xx'" data/lang.tsv
{ printf '%s\n' "$H"; row a.flac en 3 y; row a.flac en abc y; row a.flac en -1 y; } >data/dur.tsv
expect 1 "data/dur.tsv:3: bad duration_s 'abc'
data/dur.tsv:4: bad duration_s '-1'" data/dur.tsv
{ printf '%s\n' "$H"; printf 'a.flac\ten\t3\t\xff\xfe bad\n'; } >data/utf8.tsv
expect 1 "data/utf8.tsv:2: the line is not valid UTF-8" data/utf8.tsv
{ printf '%s\n' "$H"; printf 'a.flac\ten\t3\t\xe4\xbd\n'; } >data/utf8b.tsv
expect 1 "data/utf8b.tsv:2: the line is not valid UTF-8" data/utf8b.tsv
# every problem is reported, with its own line number
{
    printf '%s\n' "$H"
    row a.flac en 1 ok
    row gone1.flac en 1 x
    row a.flac en 1 ok
    row gone2.flac zz 1 x
} >data/many.tsv
expect 1 "data/many.tsv:3: gone1.flac: no such file
data/many.tsv:5: gone2.flac: no such file
data/many.tsv:5: unknown language 'zz'" data/many.tsv

# --- 2. usage errors --------------------------------------------------------
{ printf '%s\n' "$H"; row a.flac en 11 "ask not"; } >data/good.tsv
expect 2 "required: MANIFEST"
expect 2 "one MANIFEST at a time" data/good.tsv data/good.tsv
expect 2 "argument --batch" data/good.tsv --batch 0
expect 2 "argument --language" data/good.tsv --language klingon
expect 2 "argument --repeat" data/good.tsv --repeat 0
expect 2 "argument --task" data/good.tsv --task summarise
expect 2 "argument --compute_type" data/good.tsv --compute_type int4
expect 2 "unrecognized argument: --bogus" data/good.tsv --bogus
# a good manifest with a missing model: exit 1 before anything is written
expect 1 "model 'nosuch' not found" data/good.tsv --model nosuch

# --- 3. good manifests pass --check ------------------------------------------
check_ok() {
    local name=$1
    shift
    if out=$("$@" 2>&1) && [ -n "$out" ] && grep -q "manifest ok" <<<"$out"; then
        echo "ok: $name: $out"
    else
        fail "$name: $out"
    fi
}
{
    printf 'file\tlanguage\tduration_s\treference\tsource\r\n'
    printf 'a.flac\ten\t11.0\task not\tx\r\n'
    printf '\r\n'
    printf '%s\ten\t\tabsolute path\ty\r\n' "$work/data/a.flac"
    printf 'sub/../a.flac\t\t\tno language: detected\tz\r\n'
} >data/crlf.tsv
check_ok "CRLF, blank line, absolute path, empty optional fields" "$TOLK" bench data/crlf.tsv --check
check_ok "relative paths from another directory" \
    bash -c "cd other && '$TOLK' bench ../data/crlf.tsv --check"
check_ok "translate layout" bash -c "printf 'file\tsource_language\ttarget_language\treference\n\
a.flac\tes\ten\tthe text\n' >data/tr.tsv && '$TOLK' bench data/tr.tsv --check"
if [ -f "$SHARED/speech/asr.tsv" ]; then
    check_ok "shared asr.tsv" "$TOLK" bench "$SHARED/speech/asr.tsv" --check
    check_ok "shared translate.tsv" "$TOLK" bench "$SHARED/speech/translate.tsv" --check
fi

# --- 4. a real run ------------------------------------------------------------
have() { [ -f "$ROOT/$1/model.bin" ] || [ -f "$ROOT/$1/config.json" ]; }
M=""
for m in tiny.en base; do
    if have $m; then M=$m; break; fi
done
if [ -z "$M" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        fail "no model in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model tiny.en)"
    else
        echo "SKIP: real run: no model installed in $ROOT (scripts/get-model tiny.en)"
    fi
else
    # the reference holds JSON's special characters and non-ASCII text
    { printf '%s\n' "$H"; row a.flac en 11.0 'say "ask not" \ café'; row bad.flac en 1 "x"; } \
        >data/run.tsv
    TOLK_MODELS=$ROOT "$TOLK" bench data/run.tsv --model "$M" --threads 2 --warmup 0 \
        --temperature_increment_on_fallback None -o run.jsonl --summary sum.json 2>run.err
    rc=$?
    if [ "$rc" != 1 ]; then
        fail "real run: exit $rc, expected 1 (one corrupt file)"
        sed 's/^/    /' run.err
    fi
    # the line types in order, with the fields the suite reads
    check=$(python3 - run.jsonl sum.json <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
types = [l["type"] for l in lines]
assert types == ["config", "file", "file", "summary"], types
good, bad = lines[1], lines[2]
assert good["status"] == "ok" and bad["status"] == "error", (good["status"], bad["status"])
assert "bad.flac" in bad["error"], bad["error"]
assert "country" in good["hypothesis"].lower(), good["hypothesis"]
assert abs(good["audio_s"] - 11.0) < 0.1, good["audio_s"]
assert good["wall_s"] > 0 and good["peak_rss_mib"] > 0
assert good["max_temperature"] == 0, good["max_temperature"]
assert lines[0]["compute_type"] == "float32", lines[0]
assert set(good["stages"]) == {"audio_s", "mel_s", "encoder_s", "decoder_s", "search_s"}
assert good["language"] == "en" and good["reference"] == 'say "ask not" \\ café', good["reference"]
s = lines[3]
assert (s["files"], s["ok"], s["failed"]) == (2, 1, 1), s
assert json.load(open(sys.argv[2])) == s
print("4 lines, fields ok; wall %.2f s, stages %s" % (good["wall_s"], good["stages"]))
EOF
    ) && echo "ok: real run ($M): $check" || fail "real run ($M): $check"
fi

if [ "$fails" -gt 0 ]; then
    echo "$fails FAILED"
    exit 1
fi
echo "all bench_manifest checks passed"
