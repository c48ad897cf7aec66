#!/usr/bin/env bash
# model_info.sh — end-to-end test of `tolk model info PATH`: the description
# of the installed CTranslate2 models (and of base converted to safetensors
# and ggml, when those conversions exist next to it), usage errors (exit 2)
# and bad paths (exit 1 with a message naming the path, never a crash).
# Skips the model checks (a SKIP line) when no model is installed, unless
# TOLK_REQUIRE_MODELS=1.
#
# usage: bash tests/cli/model_info.sh /path/to/tolk
# env:   TOLK_MODELS (default ~/.cache/tolk/models), TOLK_REQUIRE_MODELS
# ctest-labels: models
set -u
TOLK=${1:?usage: model_info.sh /path/to/tolk}
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_line OUT PATTERN: OUT holds a line matching the grep pattern.
expect_line() {
    grep -q -- "$2" "$1" || fail "no line matching '$2' in: $(cat "$1")"
}

# `tolk version` names the OpenBLAS kernel set, and the command restarts itself with the set this
# CPU runs when OpenBLAS picked a weaker one (src/blas_core.c): no advice is left after the restart
"$TOLK" version >"$TMP/version" 2>&1 || fail "tolk version failed"
expect_line "$TMP/version" "^OpenBLAS kernels: [A-Za-z]"
if grep -q "this CPU runs" "$TMP/version"; then
    fail "the restart did not take the advised OpenBLAS kernels: $(cat "$TMP/version")"
fi

# describe PATH FORMAT SIZE LANGS LAYERS WIDTH HEADS VOCAB DTYPES
describe() {
    local path=$1
    timeout 120 "$TOLK" model info "$path" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "model info $path: exit $rc: $(cat "$TMP/err")"
        return
    fi
    cat "$TMP/out"
    expect_line "$TMP/out" "^format: *$2\$"
    expect_line "$TMP/out" "^size: *$3\$"
    expect_line "$TMP/out" "^languages: *$4"
    expect_line "$TMP/out" "^mel bins: *80\$"
    expect_line "$TMP/out" "^vocabulary: *$8\$"
    expect_line "$TMP/out" "^encoder: *$5 layers, $7 heads, width $6, context 1500\$"
    expect_line "$TMP/out" "^decoder: *$5 layers, $7 heads, width $6, context 448\$"
    expect_line "$TMP/out" "^dtypes: *$9\$"
    expect_line "$TMP/out" "^disk bytes: *[0-9][0-9]* ("
    expect_line "$TMP/out" "^memory bytes: *[0-9][0-9]* ("
}

# usage errors: exit 2
"$TOLK" model >/dev/null 2>&1
[ $? -eq 2 ] || fail "'tolk model' should exit 2"
"$TOLK" model info >/dev/null 2>&1
[ $? -eq 2 ] || fail "'tolk model info' without PATH should exit 2"
"$TOLK" model frobnicate x >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown subcommand should exit 2"
"$TOLK" model info --bogus x >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown option should exit 2"
"$TOLK" model --help | grep -q "usage: tolk model info" || fail "--help"

# bad paths: exit 1, message names the path
bad() {
    local what=$1 path=$2
    timeout 60 "$TOLK" model info "$path" >/dev/null 2>"$TMP/err"
    local rc=$?
    [ "$rc" -eq 1 ] || fail "$what: exit $rc (want 1)"
    grep -q -- "$path" "$TMP/err" || fail "$what: message does not name the path: $(cat "$TMP/err")"
    echo "$what: $(cat "$TMP/err")"
}
bad "missing path" "$TMP/nope"
: >"$TMP/empty.bin"
bad "empty file" "$TMP/empty.bin"
mkdir "$TMP/emptydir"
bad "empty directory" "$TMP/emptydir"
head -c 5000 /dev/urandom >"$TMP/random.bin"
bad "random bytes" "$TMP/random.bin"
mkdir "$TMP/badct2"
printf '\006\000\000\000\014\000WhisperSpec\000\003\000\000\000\377\377\377\377' >"$TMP/badct2/model.bin"
bad "truncated model.bin" "$TMP/badct2"
mkdir "$TMP/badst"
printf '\010\000\000\000\000\000\000\000{}      ' >"$TMP/badst/model.safetensors"
bad "safetensors without config.json" "$TMP/badst"

if [ ! -f "$ROOT/tiny.en/model.bin" ] && [ ! -f "$ROOT/base/model.bin" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        fail "no model in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model base)"
    else
        echo "SKIP: no model installed in $ROOT (scripts/get-model base)"
    fi
else
    [ -f "$ROOT/tiny.en/model.bin" ] &&
        describe "$ROOT/tiny.en" ctranslate2 tiny.en English-only 4 384 6 51864 float16
    [ -f "$ROOT/base/model.bin" ] &&
        describe "$ROOT/base" ctranslate2 base "multilingual (99 languages)" 6 512 8 51865 float16
    [ -f "$ROOT/base/model.bin" ] && {
        "$TOLK" model info --no-mmap "$ROOT/base" | grep -q "(read)" || fail "--no-mmap"
    }
    [ -f "$ROOT/base-hf/model.safetensors" ] &&
        describe "$ROOT/base-hf" safetensors base "multilingual (99 languages)" 6 512 8 51865 float16
    [ -f "$ROOT/base.ggml.bin" ] &&
        describe "$ROOT/base.ggml.bin" ggml base "multilingual (99 languages)" 6 512 8 51865 \
            "float32,float16"
fi

if [ "$fails" -ne 0 ]; then
    echo "model_info.sh: $fails failure(s)"
    exit 1
fi
echo "model_info.sh: all passed"
