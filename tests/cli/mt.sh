#!/usr/bin/env bash
# mt.sh — end-to-end test of text and speech translation with the Firefox /
# Bergamot models: `tolk mt` (stdin -> stdout, one line per line, empty
# lines kept, batching, --list, options), usage errors (exit 2), missing or
# hostile model folders (exit 1 with a message naming them), and
# `tolk translate --to pt` (English speech -> Portuguese srt with the
# timestamps; --to with `tolk transcribe` refused; --to en stays Whisper's).
# The model checks skip (a SKIP line) when mt-en-pt is not installed, unless
# TOLK_REQUIRE_MODELS=1 (scripts/get-model mt-en-pt, tiny.en).
#
# usage: bash tests/cli/mt.sh /path/to/tolk
# env:   TOLK_MODELS (default ~/.cache/tolk/models), TOLK_REQUIRE_MODELS,
#        TOLK_DATA (the speech data; default the repository's data/)
set -u
TOLK=${1:?usage: mt.sh /path/to/tolk}
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}
SRC=${TOLK_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
DATA=${TOLK_DATA:-$SRC/data}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_exit CODE ARGS...: run tolk with ARGS (stdin from /dev/null).
expect_exit() {
    local want=$1
    shift
    "$TOLK" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "tolk $*: exit $rc, want $want ($(head -c 300 "$TMP/err"))"
}

# usage errors: exit 2, nothing loaded
expect_exit 2 mt
expect_exit 2 mt --from en
expect_exit 2 mt --from klingon --to pt
grep -q "unknown language 'klingon'" "$TMP/err" || fail "unknown language message"
expect_exit 2 mt --from en --to pt --beam_size 99
expect_exit 2 mt --from en --to pt --split sometimes
expect_exit 2 mt --from en --to pt extra-argument
expect_exit 2 mt --bogus
"$TOLK" mt --help | grep -q "usage: tolk mt" || fail "mt --help"
"$TOLK" --help | grep -q "  mt --from LANG --to LANG" || fail "tolk --help lists mt"

# missing and hostile model folders: exit 1, the folder or file named
mkdir -p "$TMP/empty"
expect_exit 1 mt --from en --to pt --model_dir "$TMP/empty"
grep -q "no en->pt translation model" "$TMP/err" || fail "missing pair: $(cat "$TMP/err")"
expect_exit 1 mt --model "$TMP/nonexistent"
grep -q "$TMP/nonexistent" "$TMP/err" || fail "missing folder not named"
mkdir -p "$TMP/bad/enpt"
printf 'not a model' >"$TMP/bad/enpt/model.enpt.intgemm.alphas.bin"
printf 'not a vocabulary' >"$TMP/bad/enpt/vocab.enpt.spm"
expect_exit 1 mt --from en --to pt --model_dir "$TMP/bad"
grep -q "model.enpt.intgemm.alphas.bin" "$TMP/err" || fail "hostile model not named: $(cat "$TMP/err")"
expect_exit 0 mt --list --model_dir "$TMP/bad"
grep -qx "en-pt" "$TMP/out" || fail "--list: $(cat "$TMP/out")"

if [ ! -f "$ROOT/mt-en-pt/.tolk-complete" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        fail "no mt-en-pt in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model mt-en-pt)"
    else
        echo "SKIP: mt-en-pt not installed in $ROOT (scripts/get-model mt-en-pt)"
    fi
else
    # one output line per input line, empty lines kept, a last line without \n
    printf 'How are you today?\n\nThe weather was terrible yesterday. We stayed at home and read books.\nI like apples' \
        | timeout 300 "$TOLK" mt --from en --to pt --threads 1 >"$TMP/out" 2>"$TMP/err" \
        || fail "mt: $(cat "$TMP/err")"
    printf 'Como você está hoje?\n\nO tempo foi terrível ontem. Ficamos em casa e ler livros.\nEu gosto de maçãs\n' \
        >"$TMP/want"
    cmp -s "$TMP/out" "$TMP/want" || fail "mt output: $(cat "$TMP/out")"
    # names and the explicit folder; beam search; no shortlist; always split
    echo "Good morning." | "$TOLK" mt --from English --to Portuguese --threads 1 \
        | grep -qx "Bom dia." || fail "language names"
    echo "Good morning." | "$TOLK" mt --model "$ROOT/mt-en-pt" --beam_size 4 --shortlist False \
        --threads 1 | grep -qx "Bom dia." || fail "--model --beam_size 4 --shortlist False"
    echo "Good morning. I like apples." | "$TOLK" mt --from en --to pt --split sentences \
        --threads 1 | grep -qx "Bom dia. Eu gosto de maçãs." || fail "--split sentences"
    # 200 lines in batches of 7: 200 lines out, in order
    for i in $(seq 1 100); do echo "I like apples."; echo "Good morning."; done >"$TMP/many"
    "$TOLK" mt --from en --to pt --batch 7 --threads 1 <"$TMP/many" >"$TMP/out"
    [ "$(wc -l <"$TMP/out")" -eq 200 ] || fail "200 lines in, $(wc -l <"$TMP/out") out"
    [ "$(sed -n 2p "$TMP/out")" = "Bom dia." ] && [ "$(sed -n 199p "$TMP/out")" = "Eu gosto de maçãs." ] \
        || fail "batched order"
    "$TOLK" mt --list | grep -qx "en-pt" || fail "--list en-pt"
    # a closed stdout: an error, not a crash
    echo "Good morning." | "$TOLK" mt --from en --to pt --threads 1 >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "writing to /dev/full should fail with exit 1"

    # speech: English -> Portuguese subtitles (tiny.en), timestamps kept
    expect_exit 2 transcribe --to pt "$DATA/speech/jfk.flac"
    grep -q "needs \`tolk translate\`" "$TMP/err" || fail "--to with transcribe: $(cat "$TMP/err")"
    if [ -f "$ROOT/tiny.en/model.bin" ] && [ -f "$DATA/speech/jfk.flac" ]; then
        timeout 600 "$TOLK" translate --to pt --model tiny.en --threads 1 -f srt -o "$TMP/srt" \
            "$DATA/speech/jfk.flac" >"$TMP/out" 2>"$TMP/err" || fail "translate --to pt: $(cat "$TMP/err")"
        grep -q "en->pt, mt " "$TMP/err" || fail "progress line: $(cat "$TMP/err")"
        grep -q "^00:00:00,000 --> " "$TMP/srt/jfk.srt" || fail "srt times: $(cat "$TMP/srt/jfk.srt")"
        grep -qi "país" "$TMP/srt/jfk.srt" || fail "srt not in Portuguese: $(cat "$TMP/srt/jfk.srt")"
        grep -q "país" "$TMP/out" || fail "printed segments not translated: $(cat "$TMP/out")"
        # the same segments as the English transcription: same count and times
        timeout 600 "$TOLK" transcribe --model tiny.en --threads 1 -f srt -o "$TMP/en" \
            "$DATA/speech/jfk.flac" >/dev/null 2>&1
        diff <(grep -- '-->' "$TMP/srt/jfk.srt") <(grep -- '-->' "$TMP/en/jfk.srt") >/dev/null \
            || fail "the translated srt has other timestamps than the transcription"
        # no text model for the pair: a clear error
        timeout 600 "$TOLK" translate --to de --model tiny.en --threads 1 "$DATA/speech/jfk.flac" \
            >/dev/null 2>"$TMP/err"
        [ $? -eq 1 ] && grep -q "cannot translate en into de" "$TMP/err" \
            || fail "--to de without a model: $(cat "$TMP/err")"
    elif [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        fail "tiny.en or jfk.flac missing"
    else
        echo "SKIP: speech translation (tiny.en or shared jfk.flac missing)"
    fi
fi

if [ "$fails" -ne 0 ]; then
    echo "mt.sh: $fails failure(s)"
    exit 1
fi
echo "mt.sh: all passed"
