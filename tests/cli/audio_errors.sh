#!/usr/bin/env bash
# audio_errors.sh — bad audio input through the CLI (`tolk mel`): a
# directory, an empty file, a text file, random bytes, truncated FLAC, a WAV
# header with absurd channel count / sample rate, and an m4a (decoded when
# the build has FFmpeg, else refused with a message that says to build with
# FFmpeg). Each must exit 1 (never a crash signal or a hang) with one message
# on stderr that names the file, and leave no output behind.
#
# usage: bash tests/cli/audio_errors.sh /path/to/tolk
# env:   TOLK_DATA (default: data/ in the checkout)
set -u
TOLK=${1:?usage: audio_errors.sh /path/to/tolk}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${TOLK_DATA:-$HERE/../../data}
JFK=$DATA/speech/jfk.flac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_error WHAT FILE [WORD]: tolk mel FILE fails cleanly, naming FILE
# (and WORD, when given) on stderr.
expect_error() {
    local what=$1 file=$2 word=${3:-}
    rm -f "$TMP/out.npy"
    timeout 60 "$TOLK" mel "$file" -o "$TMP/out.npy" 2>"$TMP/err"
    local rc=$?
    local msg
    msg=$(cat "$TMP/err")
    echo "$what: rc=$rc: $msg"
    [ "$rc" -eq 1 ] || fail "$what: exit status $rc (want 1)"
    case $msg in *"$file"*) ;; *) fail "$what: message does not name the file: $msg" ;; esac
    if [ -n "$word" ]; then
        case $msg in *"$word"*) ;; *) fail "$what: message lacks '$word': $msg" ;; esac
    fi
    [ ! -e "$TMP/out.npy" ] || fail "$what: output written anyway"
}

mkdir "$TMP/dir.wav"
expect_error "directory" "$TMP/dir.wav" "directory"
: >"$TMP/empty.wav"
expect_error "empty file" "$TMP/empty.wav" "empty"
printf 'hello, this is a text file\nnot audio at all\n' >"$TMP/notes.wav"
expect_error "text file" "$TMP/notes.wav" "not a recognised audio format"
head -c 20000 /dev/urandom >"$TMP/noise.bin"
expect_error "random bytes" "$TMP/noise.bin"

# A canonical WAV header: RIFF, fmt (PCM), data; then 256 zero bytes.
# wav RATE CHANNELS > file
wav() {
    local rate=$1 ch=$2
    local le32 le16
    le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
    le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"; }
    printf 'RIFF'; le32 292; printf 'WAVEfmt '; le32 16; le16 1; le16 "$ch"; le32 "$rate"
    le32 $((rate * ch * 2)); le16 $((ch * 2)); le16 16; printf 'data'; le32 256
    head -c 256 /dev/zero
}
wav 16000 60000 >"$TMP/channels.wav"
expect_error "absurd channel count" "$TMP/channels.wav"
wav 2000000000 1 >"$TMP/rate.wav"
expect_error "absurd sample rate" "$TMP/rate.wav" "sample rate"

if [ -f "$JFK" ]; then
    head -c 300000 "$JFK" >"$TMP/cut.flac"
    expect_error "truncated FLAC" "$TMP/cut.flac" "truncated"
    head -c 100 "$JFK" >"$TMP/cut100.flac"
    expect_error "FLAC cut in its header" "$TMP/cut100.flac"
    if command -v ffmpeg >/dev/null 2>&1; then
        ffmpeg -nostdin -loglevel error -y -i "$JFK" -c:a aac "$TMP/jfk.m4a"
        rm -f "$TMP/out.npy"
        if timeout 60 "$TOLK" mel "$TMP/jfk.m4a" -o "$TMP/out.npy" 2>"$TMP/err"; then
            echo "m4a: decoded (FFmpeg build)"
            [ -s "$TMP/out.npy" ] || fail "m4a: no output"
        else
            expect_error "m4a without FFmpeg" "$TMP/jfk.m4a" "FFmpeg"
        fi
    fi
else
    echo "SKIP: $JFK not found"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "audio_errors: all passed"
