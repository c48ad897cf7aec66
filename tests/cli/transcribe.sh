#!/usr/bin/env bash
# transcribe.sh TOLK — `tolk transcribe` / `tolk translate` end to end with a
# real model (scripts/get-model tiny.en / base): stdout formats, output files
# and their names, several files sharing one model with bad ones skipped,
# standard input, and translation. Skips (exit 0, a SKIP line) when no model
# is installed, unless TOLK_REQUIRE_MODELS=1.
# ctest-labels: models
set -u
TOLK=${1:?usage: transcribe.sh /path/to/tolk}
TOLK=$(cd "$(dirname "$TOLK")" && pwd)/$(basename "$TOLK")
# the checkout's data/ (TOLK_DATA overrides)
SHARED=${TOLK_DATA:-$(dirname "$0")/../../data}
SHARED=$(cd "$SHARED" 2>/dev/null && pwd) || { echo "FAIL: no data/ folder (TOLK_DATA)"; exit 1; }
JFK=$SHARED/speech/jfk.flac
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}

have() { [ -f "$ROOT/$1/model.bin" ] || [ -f "$ROOT/$1/config.json" ]; }
EN=""
for m in tiny.en base; do
    if have $m; then EN=$m; break; fi
done
if [ -z "$EN" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        echo "FAIL: no model in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model tiny.en)"
        exit 1
    fi
    echo "SKIP: no model installed in $ROOT (scripts/get-model tiny.en)"
    exit 0
fi
export TOLK_MODELS=$ROOT
# greedy decoding keeps the runs short; the first run uses the defaults (beam 5)
G="--model $EN --beam_size None"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

# run NAME ARGS...: tolk ARGS > NAME.out 2> NAME.err; echoes the exit status
run() {
    local name=$1
    shift
    "$TOLK" "$@" >"$name.out" 2>"$name.err"
    echo $?
}

# 1. default: "[MM:SS.mmm --> MM:SS.mmm]  text" lines on stdout, no files
mkdir quiet && cd quiet || exit 1
rc=$(run ../v transcribe --model "$EN" "$JFK") # defaults
cd .. || exit 1
if [ "$rc" = 0 ] && grep -Eq '^\[00:00\.000 --> [0-9]{2}:[0-9]{2}\.[0-9]{3}\]  ' v.out &&
    grep -iq "fellow americans" v.out && [ -z "$(ls -A quiet)" ]; then
    ok "verbose transcript on stdout, no files"
else
    fail "verbose run (rc $rc)"; cat v.out v.err
fi
grep -Eq "jfk\.flac: 1[01]\.[0-9] s of audio in .*RTF" v.err || fail "no summary on stderr"

# 2. --verbose False: plain text (the txt format), silent stderr
rc=$(run p transcribe $G --verbose False "$JFK")
if [ "$rc" = 0 ] && grep -iq "fellow americans" p.out && ! grep -q '^\[' p.out && [ ! -s p.err ]
then
    ok "plain transcript with --verbose False"
else
    fail "--verbose False (rc $rc)"; cat p.out p.err
fi

# 3. -o DIR: all five formats, named after the audio file
rc=$(run o transcribe $G --verbose False -o out "$JFK")
all5="jfk.json jfk.srt jfk.tsv jfk.txt jfk.vtt "
if [ "$rc" = 0 ] && [ "$(ls out | tr '\n' ' ')" = "$all5" ]; then
    ok "-o writes jfk.{json,srt,tsv,txt,vtt}"
else
    fail "-o out (rc $rc): $(ls out 2>&1)"; cat o.err
fi
[ ! -s o.out ] || fail "-o with --verbose False printed to stdout"
cmp -s out/jfk.txt p.out || fail "jfk.txt differs from the --verbose False stdout"
head -n 2 out/jfk.vtt | tr '\n' '|' | grep -Eq '^WEBVTT\|\|$' || fail "vtt header"
sed -n 3p out/jfk.vtt | grep -Eq '^00:00\.000 --> [0-9]{2}:[0-9]{2}\.[0-9]{3}$' || fail "vtt cue"
head -n 2 out/jfk.srt | tr '\n' '|' | grep -Eq '^1\|00:00:00,000 --> 00:00:[0-9]{2},[0-9]{3}\|$' ||
    fail "srt cue"
head -n 1 out/jfk.tsv | grep -q $'^start\tend\ttext$' || fail "tsv header"
sed -n 2p out/jfk.tsv | grep -Eq $'^0\t[0-9]+\t' || fail "tsv row"
if command -v python3 >/dev/null; then
    python3 - out/jfk.json <<'EOF' || fail "jfk.json is not the reference's result dict"
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
assert list(r) == ["text", "segments", "language"], list(r)
assert r["language"] == "en"
keys = ["id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
        "compression_ratio", "no_speech_prob"]
assert r["segments"] and all(list(s) == keys for s in r["segments"])
assert [s["id"] for s in r["segments"]] == list(range(len(r["segments"])))
assert r["text"] == "".join(s["text"] for s in r["segments"])
assert "fellow americans" in r["text"].lower()
EOF
fi
# -f alone: files in the current directory; the verbose lines still go to stdout
mkdir cwd && cd cwd || exit 1
rc=$(run ../f transcribe $G -f srt "$JFK")
cd .. || exit 1
[ "$rc" = 0 ] && [ "$(ls cwd)" = "jfk.srt" ] && grep -q '^\[00:00\.000' f.out ||
    fail "-f srt into . (rc $rc): $(ls cwd)"
cmp -s cwd/jfk.srt out/jfk.srt || fail "-f srt differs from the srt of -f all"

# 4. several files, one model: bad ones reported and skipped, exit 1. jfk's srt
#    cannot be written (a directory is in the way): its other files are removed
#    again (no partial outputs) and the next file still gets all five.
cp "$JFK" "my.talk.flac"
echo "not audio" >bad.wav
mkdir -p multi/jfk.srt
rc=$(run m transcribe $G --verbose False -o multi "$JFK" missing.wav bad.wav my.talk.flac)
want="jfk.srt my.talk.json my.talk.srt my.talk.tsv my.talk.txt my.talk.vtt "
if [ "$rc" = 1 ] && [ "$(ls multi | tr '\n' ' ')" = "$want" ] &&
    grep -q "^tolk: missing.wav: no such file" m.err && grep -q "^tolk: bad.wav: " m.err &&
    grep -q "^tolk: $JFK: .*jfk.srt" m.err && cmp -s multi/my.talk.txt out/jfk.txt; then
    ok "bad files skipped, no partial outputs, good ones written, exit 1"
else
    fail "mixed files (rc $rc): $(ls multi 2>&1)"; cat m.err
fi
[ "$(grep -c "^tolk: " m.err)" = 3 ] || fail "expected exactly three error lines"
[ -z "$(ls multi/jfk.srt)" ] || fail "something was written into multi/jfk.srt/"

# 5. standard input -> stdin.txt
rc=$(run s transcribe $G --verbose False -f txt -o sin - <"$JFK")
[ "$rc" = 0 ] && cmp -s sin/stdin.txt out/jfk.txt || fail "stdin (rc $rc): $(ls sin 2>&1)"

# 6. the output directory cannot be made: exit 1, nothing written
echo x >afile
rc=$(run d transcribe $G -o afile/sub "$JFK")
[ "$rc" = 1 ] && grep -q "cannot create the output directory" d.err && [ ! -s d.out ] ||
    fail "output dir under a file (rc $rc)"

# 7. word timestamps: json words, karaoke subtitles, the other formats unchanged
rc=$(run w transcribe $G --verbose False --word_timestamps True --max_line_width 42 \
    --highlight_words True -o words "$JFK")
if [ "$rc" = 0 ] && grep -q '<u>fellow</u>' words/jfk.srt && grep -q '<u>fellow</u>' words/jfk.vtt &&
    cmp -s words/jfk.txt out/jfk.txt; then
    ok "--word_timestamps True --highlight_words True: underlined words in srt / vtt"
else
    fail "word timestamps (rc $rc)"; cat w.err
fi
awk 'length > 42 + 7 { bad = 1 } END { exit bad }' words/jfk.srt ||
    fail "a line of words/jfk.srt is longer than 42 characters (+ <u></u>)"
if command -v python3 >/dev/null; then
    python3 - words/jfk.json <<'EOF' || fail "jfk.json has no proper words"
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
words = [w for s in r["segments"] for w in s["words"]]
assert all(list(w) == ["word", "start", "end", "probability"] for w in words)
assert "".join(w["word"] for w in words) == r["text"], "the words spell the text"
assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
assert all(0 <= w["start"] <= w["end"] <= 11.01 and 0 < w["probability"] <= 1 for w in words)
assert any(w["word"] == " fellow" for w in words)
EOF
fi
rc=$(run w2 transcribe $G --verbose False --word_timestamps True --max_words_per_line 3 \
    --hallucination_silence_threshold 2 -f vtt -o words3 "$JFK")
[ "$rc" = 0 ] && awk 'NR > 2 && /^[^0-9]/ && NF > 3 { bad = 1 } END { exit bad }' \
    words3/jfk.vtt || fail "--max_words_per_line 3 (rc $rc)"

# 8. translation with a multilingual model
if have base; then
    ES=$SHARED/speech/multi/asterisk_es/conf-getpin.flac
    rc=$(run t translate --model base --beam_size None --verbose False "$ES")
    if [ "$rc" = 0 ] && grep -iq "conference" t.out; then
        ok "translate es -> en: $(cat t.out)"
    else
        fail "translate (rc $rc)"; cat t.out t.err
    fi
    rc=$(run t2 transcribe --model base --beam_size None --language Spanish --verbose False \
        "$ES")
    [ "$rc" = 0 ] && [ -s t2.out ] || fail "transcribe --language Spanish (rc $rc)"
    echo "    es transcript: $(cat t2.out)"
else
    echo "SKIP: translate (model 'base' not installed)"
fi


# batch: several files through one engine give the files and stdout of one-by-one runs
L=$SHARED/speech/en/librispeech
B1="$L/test-clean_1089-134686-0000.flac $L/dev-clean_1272-128104-0000.flac $JFK"
mkdir b1 b3 || exit 1
rc1=$(run b1 transcribe $G --batch_size 1 -f json -o b1 $B1 "$work/missing.flac")
rc3=$(run b3 transcribe $G --batch_size 3 -f json -o b3 $B1 "$work/missing.flac")
same=1
for f in b1/*.json; do cmp -s "$f" "b3/$(basename "$f")" || same=0; done
if [ "$rc1" = 1 ] && [ "$rc3" = 1 ] && [ "$same" = 1 ] && [ "$(ls b3 | wc -l)" = 3 ] &&
    cmp -s b1.out b3.out && grep -q "missing.flac" b3.err; then
    ok "--batch_size 3: the same files and stdout as one by one; a missing file reported"
else
    fail "--batch_size (rc $rc1 / $rc3, same $same)"; cat b3.err
fi
rc=$(run b0 transcribe $G --batch_size 0 "$JFK")
[ "$rc" = 2 ] && grep -q "batch_size" b0.err || fail "--batch_size 0 is a usage error (rc $rc)"

if [ "$fails" -gt 0 ]; then
    echo "FAILED: $fails check(s)"
    exit 1
fi
echo "all transcribe checks passed"
