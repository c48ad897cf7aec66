#!/usr/bin/env bash
# transcribe_errors.sh TOLK — `tolk transcribe` / `tolk translate` error
# handling, without a model: every bad option is a usage error (exit 2,
# a message on stderr, nothing on stdout, nothing written); bad input files
# and a missing model or device fail with exit 1 and "tolk: FILE: problem"
# and leave no output behind; every valid option parses.
set -u
TOLK=${1:?usage: transcribe_errors.sh /path/to/tolk}
TOLK=$(cd "$(dirname "$TOLK")" && pwd)/$(basename "$TOLK")
# the checkout's data/ (TOLK_DATA overrides)
SHARED=${TOLK_DATA:-$(dirname "$0")/../../data}
SHARED=$(cd "$SHARED" 2>/dev/null && pwd) || { echo "FAIL: no data/ folder (TOLK_DATA)"; exit 1; }
JFK=$SHARED/speech/jfk.flac
[ -f "$JFK" ] || { echo "FAIL: $JFK not found (TOLK_DATA)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
mkdir run
export TOLK_MODELS=$work/models # no named models here
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect RC PATTERN CMD ARGS...: run tolk CMD ARGS in run/ with -o run/out;
# check the exit status, that stderr matches PATTERN (grep -E), that stdout
# is empty and that nothing was written.
expect() {
    local want=$1 pat=$2
    shift 2
    (cd run && "$TOLK" "$@" >../stdout 2>../stderr)
    local rc=$?
    if [ "$rc" != "$want" ]; then
        fail "tolk $*: exit $rc, expected $want"
        sed 's/^/    /' stderr
    elif ! grep -Eq -- "$pat" stderr; then
        fail "tolk $*: stderr does not match /$pat/:"
        sed 's/^/    /' stderr
    elif [ -s stdout ]; then
        fail "tolk $*: wrote to stdout on failure"
    elif [ -n "$(ls -A run)" ]; then
        fail "tolk $*: left files behind: $(ls -A run)"
        rm -rf run/* run/.[!.]*
    else
        echo "ok: tolk $* -> $rc"
    fi
}

# --- usage errors: exit 2, nothing written ---------------------------------
U='error: '
expect 2 "$U.*required: AUDIO" transcribe
expect 2 "$U.*required: AUDIO" transcribe -o out
expect 2 "$U.*required: AUDIO" translate --language de
expect 2 "unrecognized argument: --bogus" transcribe --bogus "$JFK"
expect 2 "unrecognized argument: -x" transcribe -x "$JFK"
expect 2 "unrecognized argument: --mode" transcribe --mode base "$JFK"
expect 2 "--model: expected one argument" transcribe "$JFK" --model
expect 2 "--output_dir: expected one argument" transcribe "$JFK" --output_dir --verbose False
expect 2 "--beam_size: invalid int value: 'x'" transcribe --beam_size x -o out "$JFK"
expect 2 "--beam_size: 0 is out of range" transcribe --beam_size 0 -o out "$JFK"
expect 2 "--beam_size: -3 is out of range" transcribe --beam_size=-3 -o out "$JFK"
expect 2 "--best_of: invalid int value: '1.5'" transcribe --best_of 1.5 -o out "$JFK"
expect 2 "--best_of: 0 is out of range" transcribe --best_of 0 -o out "$JFK"
expect 2 "--temperature: invalid float value: 'abc'" transcribe --temperature abc -o out "$JFK"
expect 2 "--temperature: invalid float value: 'nan'" transcribe --temperature nan -o out "$JFK"
expect 2 "--temperature: -0.5 is out of range" transcribe --temperature -0.5 -o out "$JFK"
expect 2 "--temperature: invalid float value: '0x1p-2'" transcribe --temperature 0x1p-2 "$JFK"
expect 2 "at most 16 are supported" transcribe --temperature_increment_on_fallback 0.05 "$JFK"
expect 2 "--temperature_increment_on_fallback: 0 is out of range" \
    transcribe --temperature_increment_on_fallback 0 "$JFK"
expect 2 "--patience: requires --beam_size" transcribe --patience 2 --beam_size None "$JFK"
expect 2 "--patience: 0 is out of range" transcribe --patience 0 "$JFK"
expect 2 "--length_penalty: 1.5 is out of range" transcribe --length_penalty 1.5 "$JFK"
expect 2 "--compression_ratio_threshold: invalid float" \
    transcribe --compression_ratio_threshold 2,4 "$JFK"
expect 2 "--logprob_threshold: invalid float" transcribe --logprob_threshold=-1e "$JFK"
expect 2 "--no_speech_threshold: invalid float" transcribe --no_speech_threshold inf "$JFK"
expect 2 "--threads: -1 is out of range" transcribe --threads=-1 "$JFK"
expect 2 "--threads: invalid int" transcribe --threads 2x "$JFK"
expect 2 "--sample_len: 449 is out of range" transcribe --sample_len 449 "$JFK"
expect 2 "--max_initial_timestamp: invalid float" transcribe --max_initial_timestamp x "$JFK"
expect 2 "--seed: invalid value" transcribe --seed -1 "$JFK"
expect 2 "--seed: invalid value" transcribe --seed 18446744073709551616 "$JFK"
expect 2 "--suppress_tokens: '' is not a token id" transcribe --suppress_tokens 1,,2 "$JFK"
expect 2 "--suppress_tokens: token id -2 is outside" transcribe --suppress_tokens=-2 "$JFK"
expect 2 "--clip_timestamps: 'x' is not a number" transcribe --clip_timestamps 0,x "$JFK"
expect 2 "--clip_timestamps: -5 s is out of range" transcribe --clip_timestamps=-5 "$JFK"
expect 2 "--output_format: invalid choice: 'pdf'" transcribe --output_format pdf "$JFK"
expect 2 "--output_format: invalid choice: 'TXT'" transcribe -f TXT "$JFK"
expect 2 "--output_format: invalid choice: 'pdf'" transcribe -fpdf "$JFK"
expect 2 "--output_format: invalid choice: 'pdf'" transcribe --output_format=pdf "$JFK"
expect 2 "--language: invalid choice: 'xx'" transcribe --language xx "$JFK"
expect 2 "--language: invalid choice: 'english!'" transcribe --language 'english!' "$JFK"
expect 2 "--task: invalid choice: 'dance'" transcribe --task dance "$JFK"
expect 2 "always translates" translate --task transcribe "$JFK"
expect 2 "--verbose: expected True or False" transcribe --verbose maybe "$JFK"
expect 2 "--verbose: expected True or False" transcribe --verbose 1 "$JFK"
expect 2 "--condition_on_previous_text: expected True or False" \
    transcribe --condition_on_previous_text yes "$JFK"
expect 2 "--device: invalid choice: 'gpu'" transcribe --device gpu "$JFK"
expect 2 "--fp16: expected True or False" transcribe --fp16 half "$JFK"
expect 2 "--model: empty model name" transcribe --model= "$JFK"
expect 2 "--help: ignored explicit argument" transcribe --help=yes
expect 2 "--carry_initial_prompt True is not supported yet" \
    transcribe --carry_initial_prompt True -o out "$JFK"
# the subtitle options need word timestamps (openai-whisper's message)
for opt in "--highlight_words True" "--max_line_width 40" "--max_line_count 2" \
    "--max_words_per_line 5"; do
    # shellcheck disable=SC2086
    expect 2 "${opt%% *} requires --word_timestamps True" transcribe $opt -o out "$JFK"
    # shellcheck disable=SC2086
    expect 2 "${opt%% *} requires --word_timestamps True" \
        transcribe --word_timestamps False $opt -o out "$JFK"
done
expect 2 "--word_timestamps: expected True or False" transcribe --word_timestamps 1 "$JFK"
expect 2 "--highlight_words: expected True or False" \
    transcribe --word_timestamps True --highlight_words yes "$JFK"
expect 2 "--max_line_width" transcribe --word_timestamps True --max_line_width abc "$JFK"
expect 2 "--max_line_width" transcribe --word_timestamps True --max_line_width -3 "$JFK"
expect 2 "--max_words_per_line" transcribe --word_timestamps True --max_words_per_line 1.5 "$JFK"
expect 2 "--hallucination_silence_threshold" \
    transcribe --word_timestamps True --hallucination_silence_threshold x "$JFK"
expect 2 "--hallucination_silence_threshold" \
    transcribe --word_timestamps True --hallucination_silence_threshold -1 "$JFK"
# a usage error wins over bad files: nothing is opened
expect 2 "unrecognized argument" transcribe missing.wav --nope

# --- help: exit 0 ------------------------------------------------------------
for cmd in transcribe translate; do
    if "$TOLK" $cmd --help >stdout 2>stderr && grep -q "usage: tolk $cmd" stdout &&
        grep -q -- "--output_format" stdout && grep -q -- "--beam_size" stdout; then
        echo "ok: tolk $cmd --help"
    else
        fail "tolk $cmd --help"
    fi
    "$TOLK" $cmd -h >stdout 2>&1 && grep -q "usage: tolk $cmd" stdout || fail "tolk $cmd -h"
done

# --- bad input files: exit 1, named, nothing written -------------------------
echo "this is not audio" >notaudio.wav
: >empty.wav
mkdir adir
expect 1 "^tolk: missing\.wav: no such file" transcribe missing.wav
expect 1 "^tolk: missing\.wav: no such file" transcribe -o out -f all missing.wav
expect 1 "^tolk: $work/adir: is a directory" transcribe -o out "$work/adir"
expect 1 "^tolk: $work/notaudio\.wav: .*(format|recogn)" transcribe -o out "$work/notaudio.wav"
expect 1 "^tolk: $work/empty\.wav: .*(empty|0 bytes)" translate -o out "$work/empty.wav"
# several bad files: each reported
expect 1 "missing2\.wav: no such file" transcribe -o out missing1.wav missing2.wav "$work/adir"
n=$(grep -c "^tolk: " stderr)
[ "$n" = 3 ] || fail "three bad files gave $n messages"

# --- every valid option parses: the missing file is the only problem --------
expect 1 "^tolk: missing\.wav: no such file" transcribe --model base --model_dir "$work/m" \
    --device cpu --output_dir out --output_format json --verbose False --task translate \
    --language German --temperature 0.1 --best_of 3 --beam_size 2 --patience 1.5 \
    --length_penalty 0.5 --suppress_tokens=-1,220 --initial_prompt "Hello." --prefix "So" \
    --condition_on_previous_text False --temperature_increment_on_fallback=0.3 \
    --compression_ratio_threshold None --logprob_threshold=-inf --no_speech_threshold 0.5 \
    --threads 1 --clip_timestamps 0,5.5,7 --seed 18446744073709551615 --suppress_blank False \
    --without_timestamps False --max_initial_timestamp 0.5 --sample_len 100 --fp16 False \
    --word_timestamps False --highlight_words False --max_line_width None \
    --prepend_punctuations '"(' --append_punctuations '.,' -- missing.wav
expect 1 "^tolk: missing\.wav: no such file" transcribe --word_timestamps True \
    --highlight_words True --max_line_width 42 --max_line_count 2 --max_words_per_line None \
    --hallucination_silence_threshold 2.5 --prepend_punctuations "" missing.wav
expect 1 "warning: --max_line_count has no effect without --max_line_width" \
    transcribe --word_timestamps True --max_line_count 2 missing.wav
expect 1 "warning: --max_words_per_line has no effect with --max_line_width" \
    transcribe --word_timestamps True --max_words_per_line 2 --max_line_width 9 missing.wav
expect 1 "warning: word-level timestamps on translations may not be reliable" \
    translate --word_timestamps True missing.wav
expect 1 "^tolk: missing\.wav: no such file" transcribe --language None --beam_size None \
    --best_of None --length_penalty None --threads None -fjson -oout missing.wav
expect 1 "^tolk: missing\.wav: no such file" translate --language=ja --task=translate missing.wav
expect 1 "^tolk: missing\.wav: no such file" transcribe --language Castilian missing.wav
expect 1 "^tolk: missing\.wav: no such file" transcribe --language haw missing.wav

# --- the model or the device is missing: exit 1, nothing written ----------------
expect 1 "model 'nosuch' not found.*get-model" transcribe --model nosuch -o out "$JFK"
expect 1 "model 'base' not found" transcribe -o out "$JFK" # TOLK_MODELS is empty
expect 1 "/no/such/model: model not found" transcribe --model /no/such/model -o out "$JFK"
mkdir -p "$work/badmodel" && echo "{}" >"$work/badmodel/config.json"
expect 1 "^tolk: .*badmodel" transcribe --model "$work/badmodel" -o out "$JFK"
echo garbage >"$work/badmodel.bin"
expect 1 "^tolk: .*badmodel\.bin" transcribe --model "$work/badmodel.bin" -o out "$JFK"
# --device cuda: without CUDA a clear error; with it, the missing model
expect 1 "no CUDA device available|model 'nosuch' not found" \
    transcribe --device cuda --model nosuch -o out "$JFK"

if [ "$fails" -gt 0 ]; then
    echo "FAILED: $fails check(s)"
    exit 1
fi
echo "all transcribe error checks passed"
