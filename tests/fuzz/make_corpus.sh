#!/usr/bin/env bash
# make_corpus.sh [BUILD_DIR] — (re)write the small seed corpora of the libFuzzer targets,
# tests/fuzz/corpus/<target>/ (the folders .ci/run hands to each fuzz_<target>); the outputs
# are committed, so CI never runs this. Needs a CPU build (default: build/, for libtolk.a),
# ffmpeg and sox (scripts/setup-deps installs both).
#   audio:       0.2 s of speech from data/speech/jfk.flac in WAV (16-bit, float, stereo 44.1 kHz),
#                FLAC, Ogg Vorbis, Opus, MP3, AIFF, and (FFmpeg builds) m4a / webm / ADTS
#   ct2, safetensors, ggml: tiny random-weight models (make_seeds.c) in each target's layout
#   tokenizer:   UTF-8 text (references from data/speech/*.tsv, mixed scripts) and id bytes
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
out=$here/corpus
jfk=$root/data/speech/jfk.flac
rm -rf "$out"
mkdir -p "$out"/{audio,ct2,safetensors,ggml,tokenizer}

# audio
a=$out/audio
ff() { ffmpeg -nostdin -loglevel error -y -ss 1.0 -t 0.2 -i "$jfk" "$@"; }
ff -ac 1 -ar 16000 -c:a pcm_s16le "$a/speech16k.wav"
ff -ac 2 -ar 44100 -c:a pcm_s16le "$a/stereo44k.wav"
ff -ac 1 -ar 8000 -c:a pcm_f32le "$a/float8k.wav"
ff -ac 1 -ar 16000 "$a/speech.flac"
ff -ac 1 -ar 16000 -c:a libvorbis "$a/speech.ogg"
ff -ac 1 -ar 48000 -c:a libopus -b:a 16k "$a/speech.opus"
ff -ac 1 -ar 16000 -c:a libmp3lame -b:a 32k "$a/speech.mp3"
ff -ac 1 -ar 16000 -c:a pcm_s16be "$a/speech.aiff"
ff -ac 1 -ar 16000 -c:a aac -b:a 24k "$a/speech.m4a"
ff -ac 1 -ar 16000 -c:a aac -b:a 24k -f adts "$a/speech.aac"
ff -ac 1 -ar 48000 -c:a libopus -b:a 16k "$a/speech.webm"

# models
cc -O1 -I"$root/src" -I"$root/include" -I"$root/tests" "$here/make_seeds.c" \
    "$root/tests/support/model_writer.c" "$build/libtolk.a" \
    $(pkg-config --libs sndfile soxr fftw3f openblas libpcre2-8 libcjson zlib) \
    $(pkg-config --exists libavformat && pkg-config --libs libavformat libavcodec libswresample libavutil) \
    -lfftw3f_threads -fopenmp -lm -o "$build/make_seeds"
"$build/make_seeds" "$out"

# tokenizer: text, and little-endian id pairs (the target reads the input as ids too)
t=$out/tokenizer
awk -F'\t' 'NR > 1 && NR % 9 == 2 {print $5}' "$root/data/speech/asr.tsv" | head -n 12 |
    while IFS= read -r line; do printf '%s' "$line" >"$t/ref-$(printf '%s' "$line" | cksum | cut -d' ' -f1)"; done
printf 'Grüße aus Köln! ¿Qué tal? 日本語のテキスト، العربية 🙂' >"$t/mixed-scripts"
printf '  leading and trailing spaces \t\n\n' >"$t/whitespace"
printf "it's 3:45 p.m. -- isn't it? 1,234.56%%" >"$t/numbers-punct"
printf '\x50\xc4\x51\xc4\x00\x00\xff\xc8\x01\x02' >"$t/ids"
du -sh "$out"
