/*
 * cmd_transcribe.c — `tolk transcribe FILE...` and `tolk translate FILE...`.
 *
 * Reproduces openai-whisper's command line (whisper/transcribe.py cli()):
 * the same flag names, value syntax (argparse: "--flag value" or
 * "--flag=value", "None" for optional numbers, True/False booleans) and
 * defaults (beam_size 5, best_of 5, temperature 0 with fallback increments
 * of 0.2, thresholds 2.4 / -1.0 / 0.6, ...), and its output files (txt, vtt,
 * srt, tsv, json named after the audio file's base name), word timestamps
 * and the subtitle options that use them included. Differences, all
 * documented in --help: the transcript goes to standard output unless
 * --output_dir or --output_format asks for files; progress goes to stderr;
 * --carry_initial_prompt True is refused as not supported yet. faster-whisper's
 * voice activity filter is there too: --vad_filter and its --vad_* options
 * (names and defaults of its vad_parameters), off by default.
 *
 * All files of one call share one loaded model. With several files and
 * --batch_size above 1 they run through one engine (tolk_engine): up to
 * batch_size files decode at once, sharing every decoder step; each file's
 * output files are written as soon as it is done, and what goes to
 * standard output comes in the order of the files, as without batching.
 * Otherwise one tolk_state runs the files one after the other, segment
 * lines streaming as they are decoded. A file that fails is reported
 * ("tolk: FILE: problem") and skipped; the exit status is then 1. Bad
 * options are usage errors (exit status 2) found before anything is loaded
 * or written.
 *
 * Uses the public API (tolk.h) only.
 */
#include "cli.h"
#include "options.h"
#include "progress.h"
#include "tolk.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_FORMATS 5

static const cli_optdef transcribe_opts[] = {
    {"help", 'h', 0},
    {"model", 0, 1},
    {"model_dir", 0, 1},
    {"device", 0, 1},
    {"compute_type", 0, 1},
    {"kv_cache", 0, 1},
    {"gelu", 0, 1},
    {"output_dir", 'o', 1},
    {"output_format", 'f', 1},
    {"verbose", 0, 1},
    {"task", 0, 1},
    {"language", 0, 1},
    {"temperature", 0, 1},
    {"best_of", 0, 1},
    {"beam_size", 0, 1},
    {"patience", 0, 1},
    {"length_penalty", 0, 1},
    {"suppress_tokens", 0, 1},
    {"initial_prompt", 0, 1},
    {"prefix", 0, 1},
    {"condition_on_previous_text", 0, 1},
    {"temperature_increment_on_fallback", 0, 1},
    {"compression_ratio_threshold", 0, 1},
    {"logprob_threshold", 0, 1},
    {"no_speech_threshold", 0, 1},
    {"threads", 0, 1},
    {"clip_timestamps", 0, 1},
    {"seed", 0, 1},
    {"suppress_blank", 0, 1},
    {"without_timestamps", 0, 1},
    {"max_initial_timestamp", 0, 1},
    {"sample_len", 0, 1},
    {"fp16", 0, 1},
    /* faster-whisper's voice activity filter */
    {"vad_filter", 0, 1},
    {"batched", 0, 1},
    CLI_VAD_OPTS,
    {"batch_size", 0, 1},
    /* word timestamps and the subtitle options that need them */
    {"word_timestamps", 0, 1},
    {"highlight_words", 0, 1},
    {"max_line_width", 0, 1},
    {"max_line_count", 0, 1},
    {"max_words_per_line", 0, 1},
    {"hallucination_silence_threshold", 0, 1},
    {"carry_initial_prompt", 0, 1},
    {"prepend_punctuations", 0, 1},
    {"append_punctuations", 0, 1},
    /* translation into other languages with a text model (cmd_mt.c) */
    {"to", 0, 1},
    {"mt_model_dir", 0, 1},
    {"mt_beam_size", 0, 1},
    {"shortlist", 0, 1},
    {"split", 0, 1},
    {"max_tokens", 0, 1},
    {NULL, 0, 0},
};

static void usage(FILE *f, const char *cmd) {
    fprintf(f,
            "usage: tolk %s [OPTIONS] AUDIO [AUDIO ...]\n"
            "\n"
            "%s speech with a Whisper model (openai-whisper's flags).\n"
            "AUDIO: any file libsndfile%s reads, or - for standard input (output\n"
            "files stdin.EXT). All files share one loaded model; a file that fails is\n"
            "reported (\"tolk: FILE: problem\") and skipped.\n"
            "\n"
            "Output\n"
            "  By default the transcript goes to standard output and no file is written:\n"
            "    with --verbose True (default): one line per segment as openai-whisper\n"
            "      prints them, \"[00:00.000 --> 00:07.000]  text\";\n"
            "    with --verbose False: the plain text, one segment per line (the txt format).\n"
            "  Files are written only when --output_dir or --output_format is given:\n"
            "  into --output_dir (default .), named after the audio file (jfk.flac ->\n"
            "  jfk.txt ...), in --output_format (default all), replacing existing files\n"
            "  atomically. The segment lines still go to stdout with --verbose True.\n"
            "  Progress goes to stderr (a bar on a terminal, plain lines otherwise) with\n"
            "  the real-time factor (RTF: processing time / audio time, lower is faster);\n"
            "  --verbose False silences it.\n"
            "\n"
            "Options (defaults in brackets; \"None\" unsets optional numbers)\n"
            "  --model NAME|PATH          model directory or file (CTranslate2, Hugging\n"
            "                             Face safetensors, ggml), or the name of a model\n"
            "                             installed by scripts/get-model [base]\n"
            "  --model_dir DIR            where named models live [$TOLK_MODELS, else\n"
            "                             ~/.cache/tolk/models]\n"
            "  --device cpu|cuda|auto     where to run [auto: CUDA when available]\n"
            "  --compute_type auto|float32|bfloat16|float16  matrix-product precision:\n"
            "                             float32 is exact (on CUDA too: the parity mode);\n"
            "                             bfloat16 (or bf16) runs the CPU encoder ~1.5x\n"
            "                             faster on CPUs with AVX-512 BF16; on CUDA\n"
            "                             float16 / bfloat16 keep half weights on tensor\n"
            "                             cores; text may differ slightly. auto: float16\n"
            "                             on CUDA, float32 on the CPU [auto]\n"
            "  --kv_cache auto|float32|float16  storage of the decoder's cross-attention\n"
            "                             keys and values: float16 halves their memory and\n"
            "                             the bytes each decoder step reads (text may\n"
            "                             differ slightly). auto: float16 on CUDA with\n"
            "                             half weights, else float32 [auto]\n"
            "  --gelu exact|tanh          the MLP's GELU; tanh (CUDA, half weights): the\n"
            "                             approximation inside fc1's product, one kernel\n"
            "                             fewer per layer, logits move more [exact]\n"
            "  -o, --output_dir DIR       directory for output files [.]\n"
            "  -f, --output_format FMT    txt, vtt, srt, tsv, json or all [all]\n"
            "  --verbose True|False       print segments and progress [True]\n"
            "  --task transcribe|translate  X->X recognition or X->English [%s]\n"
            "  --language LANG            spoken language: a code (en, de, ...) or a name\n"
            "                             (English, German, ...); None detects it; *.en\n"
            "                             models always use English [None]\n"
            "  --temperature T            sampling temperature [0]\n"
            "  --temperature_increment_on_fallback D  fallback schedule T, T+D, ... 1.0;\n"
            "                             None: no fallback [0.2]\n"
            "  --best_of N                samples at non-zero temperature [5]\n"
            "  --beam_size N              beams at temperature 0; None: greedy [5]\n"
            "  --patience P               beam search patience (needs --beam_size) [1.0]\n"
            "  --length_penalty A         length penalty alpha in [0, 1]; None: simple length\n"
            "                             normalisation [None]\n"
            "  --suppress_tokens LIST     token ids to suppress; -1: the default set [-1]\n"
            "  --initial_prompt TEXT      prompt for the first window [None]\n"
            "  --prefix TEXT              forced start of the first window's text [None]\n"
            "  --condition_on_previous_text True|False  prompt with the previous text [True]\n"
            "  --compression_ratio_threshold R  gzip ratio above which to fall back [2.4]\n"
            "  --logprob_threshold L      mean log probability below which to fall back\n"
            "                             [-1.0]\n"
            "  --no_speech_threshold P    no-speech probability for silence [0.6]\n"
            "  --clip_timestamps LIST     start,end,start,end,... seconds to process [0]\n"
            "  --threads N                CPU threads; 0: all cores [0]\n"
            "  --seed N                   random seed for sampling [0]\n"
            "  --suppress_blank True|False  suppress a blank first token [True]\n"
            "  --without_timestamps True|False  text only, no timestamp tokens [False]\n"
            "  --max_initial_timestamp S  latest first timestamp, seconds [1.0]\n"
            "  --sample_len N             max tokens per window; 0: model default [0]\n"
            "  --fp16 True|False          accepted for compatibility; tolk chooses precision\n"
            "  --word_timestamps True|False  word-level timestamps from the alignment heads'\n"
            "                             cross-attention (json \"words\"; refines segment\n"
            "                             times) [False]\n"
            "  --prepend_punctuations S   merged with the next word [\"'\u201c\u00bf([{-]\n"
            "  --append_punctuations S    merged with the previous word\n"
            "                             [\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001]\n"
            "  --highlight_words True|False  underline each word as it is spoken in srt and\n"
            "                             vtt (needs --word_timestamps True) [False]\n"
            "  --max_line_width N         characters per subtitle line before a break\n"
            "                             (needs --word_timestamps True) [None]\n"
            "  --max_line_count N         lines per subtitle (with --max_line_width) [None]\n"
            "  --max_words_per_line N     words per subtitle line (needs --word_timestamps\n"
            "                             True; ignored with --max_line_width) [None]\n"
            "  --hallucination_silence_threshold S  with --word_timestamps True, skip silences\n"
            "                             longer than S seconds around a suspected\n"
            "                             hallucination [None]\n"
            "  --batch_size N             files decoded at once, sharing each decoder step;\n"
            "                             1: one after the other [8 on the CPU, 32 on CUDA]\n"
            "  --to LANG                  (translate) the output language [en]: other than\n"
            "                             en, Whisper transcribes (or translates to English\n"
            "                             when no text model from the spoken language to LANG\n"
            "                             exists) and a Firefox text model translates the\n"
            "                             segments, timestamps kept (see `tolk mt --help`);\n"
            "                             files are then processed one at a time\n"
            "  --mt_model_dir DIR         where text models live [--model_dir's default]\n"
            "  --mt_beam_size N           text model beam; 0: its config [0]\n"
            "  --shortlist, --split, --max_tokens  text model options as in `tolk mt`\n"
            "  -h, --help                 show this help\n"
            "\n"
            "Voice activity filter (faster-whisper's vad_filter; off by default)\n"
            "  --vad_filter True|False    decode only the speech that Silero VAD finds (its\n"
            "                             segments joined), timestamps mapped back to the\n"
            "                             original timeline; not with --clip_timestamps [False]\n"
            "  --batched True|False       batched long-form (faster-whisper's batched pipeline):\n"
            "                             each file's speech in pieces of at most 30 s decoded\n"
            "                             in parallel, each keeping the fallback, the no-speech\n"
            "                             skip and timestamps; pieces are not conditioned on\n"
            "                             each other; implies --vad_filter True [False]\n"
            "%s"
            "\n"
            "Not supported yet: --carry_initial_prompt True.\n"
            "\n"
            "Exit status: 0 all files done, 1 some file or the model failed (the others are\n"
            "still processed), 2 bad options (nothing is loaded or written).\n",
            cmd, !strcmp(cmd, "translate") ? "Translate (into English)" : "Transcribe or translate",
            tolk_audio_has_ffmpeg() ? " or FFmpeg" : "",
            !strcmp(cmd, "translate") ? "translate" : "transcribe", cli_vad_help);
}

/* Everything the options decide. */
typedef struct run_opts {
    tolk_transcribe_params params;
    const char *model;     /* --model as given */
    const char *model_dir; /* NULL: $TOLK_MODELS or ~/.cache/tolk/models */
    tolk_device device;
    int compute_type; /* tolk_compute_type */
    int kv_cache;     /* tolk_kv_cache_type */
    int gelu;         /* tolk_gelu_type */
    int n_threads;
    tolk_writer_options writer; /* --highlight_words, --max_line_* */
    int write_files;            /* --output_dir or --output_format given */
    const char *output_dir;     /* "." by default */
    int formats[N_FORMATS];     /* formats to write */
    int n_formats;
    int verbose;
    int vad_filter;        /* --vad_filter True */
    int batched;           /* --batched True */
    const char *vad_model; /* --vad_model, "silero-vad" by default */
    int batch_size;        /* 0: the device's default */
} run_opts;

/* The largest Whisper vocabulary (large-v3): token ids are below it. */
#define MAX_N_VOCAB 51866
/* The library's bound on --clip_timestamps values (seconds). */
#define MAX_CLIP_SECONDS 1e9

/* Item k (0-based) of a comma-separated list into item[cap]; 0 when the
 * list has no item k or it does not fit. */
static int list_item(const char *s, int k, char *item, size_t cap) {
    const char *p = s;
    for (int i = 0; i < k; i++) {
        p = strchr(p, ',');
        if (!p) return 0;
        p++;
    }
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (n >= cap) return 0;
    memcpy(item, p, n);
    item[n] = '\0';
    return 1;
}

/* --suppress_tokens: comma-separated ids in [0, n_vocab), or -1 (the
 * model's default set). 0, or a usage error naming the bad item. */
static int check_token_list(const cli_args *a, const char *s, int n_vocab, const char *model) {
    char item[64];
    int commas = 0;
    for (const char *p = s; *p; p++)
        commas += *p == ',';
    for (int k = 0; k <= commas; k++) {
        if (!list_item(s, k, item, sizeof item))
            return cli_usage_error(a, "argument --suppress_tokens: item %d of '%s' is too long",
                                   k + 1, s);
        char *end;
        errno = 0;
        long v = strtol(item, &end, 10);
        if (!*item || *end || errno || isspace((unsigned char)*item))
            return cli_usage_error(a,
                                   "argument --suppress_tokens: '%s' is not a token id "
                                   "(comma-separated ids, or -1 for the default set)",
                                   item);
        if (v < -1 || v >= n_vocab)
            return cli_usage_error(a,
                                   "argument --suppress_tokens: token id %ld is outside %s%s "
                                   "[0, %d) (or -1 for the default set)",
                                   v, model ? "the vocabulary of " : "every Whisper vocabulary",
                                   model ? model : "", n_vocab);
    }
    return 0;
}

/* --clip_timestamps: "start,end,start,end,..." non-negative seconds (at
 * most MAX_CLIP_SECONDS; the last end may be left out; "" is the whole
 * file), each clip ending after it starts. 0, or a usage error naming the
 * bad value. */
static int check_clips(const cli_args *a, const char *s) {
    char item[64];
    double prev = 0;
    int commas = 0, j = 0;
    for (const char *p = s; *p; p++)
        commas += *p == ',';
    for (int k = 0; k <= commas; k++) {
        if (!list_item(s, k, item, sizeof item))
            return cli_usage_error(a, "argument --clip_timestamps: item %d of '%s' is too long",
                                   k + 1, s);
        if (!*item) {
            if (commas == 0) return 0;
            return cli_usage_error(a, "argument --clip_timestamps: empty item %d in '%s'", k + 1,
                                   s);
        }
        char *end;
        errno = 0;
        double v = strtod(item, &end);
        if (*end || isspace((unsigned char)*item) || strpbrk(item, "xXnN") ||
            (errno == ERANGE && v != 0))
            return cli_usage_error(a,
                                   "argument --clip_timestamps: '%s' is not a number of seconds "
                                   "(start,end,start,end,...)",
                                   item);
        if (!(v >= 0 && v <= MAX_CLIP_SECONDS))
            return cli_usage_error(a, "argument --clip_timestamps: %s s is out of range [0, 1e9]",
                                   item);
        if (j % 2 == 1 && !(v > prev))
            return cli_usage_error(a,
                                   "argument --clip_timestamps: clip %d ends at %s s, not after "
                                   "its start at %g s",
                                   j / 2 + 1, item, prev);
        prev = v;
        j++;
    }
    return 0;
}

/* Refuse an option unless it is off (False / None). */
static int refuse_unsupported(const cli_args *a, const char *name, const char *off) {
    const char *v = cli_str(a, name, NULL);
    if (!v || !strcmp(v, off) || (!strcmp(off, "False") && !strcmp(v, "false"))) return 0;
    return cli_usage_error(a, "--%s %s is not supported yet", name, v);
}

/* The word-timestamp options into o (openai-whisper's cli(): the subtitle
 * options need --word_timestamps True; --max_line_count without
 * --max_line_width and --max_words_per_line with it only warn). Returns 0
 * or 2 after a usage error. */
static int parse_word_options(const cli_args *a, run_opts *o) {
    static const char *const ints[3] = {"max_line_count", "max_line_width", "max_words_per_line"};
    tolk_transcribe_params *p = &o->params;
    int r, b, none;
    long l;
    double d;
    if ((r = cli_bool(a, "word_timestamps", 0, &b))) return r;
    p->word_timestamps = b;
    p->prepend_punctuations = cli_str(a, "prepend_punctuations", NULL);
    p->append_punctuations = cli_str(a, "append_punctuations", NULL);
    o->writer = tolk_writer_default_options();
    if ((r = cli_bool(a, "highlight_words", 0, &o->writer.highlight_words))) return r;
    int *dst[3] = {&o->writer.max_line_count, &o->writer.max_line_width,
                   &o->writer.max_words_per_line};
    for (int i = 0; i < 3; i++) {
        if ((r = cli_int(a, ints[i], 0, 1000000, 1, 0, &l, &none))) return r;
        *dst[i] = none ? 0 : (int)l;
    }
    if (!p->word_timestamps) {
        if (o->writer.highlight_words)
            return cli_usage_error(a, "--highlight_words requires --word_timestamps True");
        for (int i = 0; i < 3; i++)
            if (*dst[i]) return cli_usage_error(a, "--%s requires --word_timestamps True", ints[i]);
    }
    if (o->writer.max_line_count && !o->writer.max_line_width)
        fprintf(stderr, "tolk: warning: --max_line_count has no effect without --max_line_width\n");
    if (o->writer.max_words_per_line && o->writer.max_line_width)
        fprintf(stderr,
                "tolk: warning: --max_words_per_line has no effect with --max_line_width\n");
    if (p->word_timestamps && p->task == TOLK_TASK_TRANSLATE)
        fprintf(stderr,
                "tolk: warning: word-level timestamps on translations may not be reliable\n");
    if ((r = cli_float(a, "hallucination_silence_threshold", 0.0, 1e9, 0, 1, -1.0, &d, &none)))
        return r;
    p->hallucination_silence_threshold = none ? -1.0f : (float)d;
    return 0;
}

/* Read and check every option into o. Returns 0, or 2 after printing a
 * usage error. */
static int parse_options(const cli_args *a, const char *cmd, run_opts *o) {
    static const char *const format_choices[] = {"txt", "vtt", "srt", "tsv", "json", "all", NULL};
    static const char *const task_choices[] = {"transcribe", "translate", NULL};
    static const char *const device_choices[] = {"cpu", "cuda", "auto", NULL};
    static const char *const compute_choices[] = {"auto", "float32", "bfloat16", "float16",
                                                  "fp32", "bf16",    "fp16",     NULL};
    int r, b, none;
    long l;
    double d;
    tolk_transcribe_params *p = &o->params;
    memset(o, 0, sizeof *o);
    *p = tolk_transcribe_default_params();

    /* a clear "not supported" beats other errors */
    if ((r = refuse_unsupported(a, "carry_initial_prompt", "False"))) return r;
    if ((r = cli_bool(a, "fp16", 1, &b))) return r;

    o->model = cli_str(a, "model", "base");
    if (!*o->model) return cli_usage_error(a, "argument --model: empty model name");
    o->model_dir = cli_str(a, "model_dir", NULL);
    if ((r = cli_choice(a, "device", device_choices, 2, &b))) return r;
    o->device = b == 0 ? TOLK_DEVICE_CPU : b == 1 ? TOLK_DEVICE_CUDA : TOLK_DEVICE_AUTO;
    if ((r = cli_choice(a, "compute_type", compute_choices, 0, &b))) return r;
    o->compute_type = b == 0               ? TOLK_COMPUTE_AUTO
                      : (b == 1 || b == 4) ? TOLK_COMPUTE_F32
                      : (b == 2 || b == 5) ? TOLK_COMPUTE_BF16
                                           : TOLK_COMPUTE_F16;
    static const char *const kv_choices[] = {"auto", "float32", "float16", NULL};
    if ((r = cli_choice(a, "kv_cache", kv_choices, 0, &b))) return r;
    o->kv_cache = b == 0 ? TOLK_KV_AUTO : b == 1 ? TOLK_KV_F32 : TOLK_KV_F16;
    static const char *const gelu_choices[] = {"exact", "tanh", NULL};
    if ((r = cli_choice(a, "gelu", gelu_choices, 0, &b))) return r;
    o->gelu = b == 0 ? TOLK_GELU_EXACT : TOLK_GELU_TANH;

    o->write_files = cli_given(a, "output_dir") || cli_given(a, "output_format");
    o->output_dir = cli_str(a, "output_dir", ".");
    if (!*o->output_dir) return cli_usage_error(a, "argument --output_dir: empty directory name");
    if ((r = cli_choice(a, "output_format", format_choices, 5, &b))) return r;
    if (b == 5) {
        for (int i = 0; i < N_FORMATS; i++)
            o->formats[i] = i;
        o->n_formats = N_FORMATS;
    } else {
        o->formats[0] = b;
        o->n_formats = 1;
    }
    if ((r = cli_bool(a, "verbose", 1, &o->verbose))) return r;

    int translate_cmd = !strcmp(cmd, "translate");
    if ((r = cli_choice(a, "task", task_choices, translate_cmd ? 1 : 0, &b))) return r;
    if (translate_cmd && b != 1)
        return cli_usage_error(a, "argument --task: `tolk translate` always translates; "
                                  "use `tolk transcribe` to transcribe");
    p->task = b == 1 ? TOLK_TASK_TRANSLATE : TOLK_TASK_TRANSCRIBE;

    const char *lang = cli_str(a, "language", NULL);
    p->language = NULL;
    if (lang && strcmp(lang, "None") != 0) {
        p->language = cli_language_code(lang);
        if (!p->language)
            return cli_usage_error(a,
                                   "argument --language: invalid choice: '%s' (a language "
                                   "code such as en, de, ja, or a name such as English)",
                                   lang);
    }

    if ((r = cli_temperatures(a, p))) return r;

    if ((r = cli_search_options(a, p))) return r;

    /* checked against every Whisper vocabulary here, against the model's
     * once it is loaded (run) */
    const char *st = cli_str(a, "suppress_tokens", "-1");
    if (*st && (r = check_token_list(a, st, MAX_N_VOCAB, NULL))) return r;
    p->suppress_tokens = st;
    p->initial_prompt = cli_str(a, "initial_prompt", NULL);
    p->prefix = cli_str(a, "prefix", NULL);
    if ((r = cli_bool(a, "condition_on_previous_text", 1, &b))) return r;
    p->condition_on_previous_text = b;

    if ((r = cli_fallback_thresholds(a, p))) return r;

    if ((r = cli_int(a, "threads", 0, 4096, 1, 0, &l, &none))) return r;
    o->n_threads = none ? 0 : (int)l;
    const char *clip = cli_str(a, "clip_timestamps", "0");
    if ((r = check_clips(a, clip))) return r;
    p->clip_timestamps = clip;

    const char *seed = cli_str(a, "seed", NULL);
    if (seed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(seed, &end, 10);
        if (!*seed || *end || errno || seed[0] == '-' || seed[0] == ' ')
            return cli_usage_error(a, "argument --seed: invalid value '%s' (0 to 2^64-1)", seed);
        p->seed = (uint64_t)v;
    }
    if ((r = cli_bool(a, "suppress_blank", 1, &b))) return r;
    p->suppress_blank = b;
    if ((r = cli_bool(a, "without_timestamps", 0, &b))) return r;
    p->without_timestamps = b;
    if ((r = cli_float(a, "max_initial_timestamp", 0.0, 30.0, 0, 0, p->max_initial_timestamp, &d,
                       NULL)))
        return r;
    p->max_initial_timestamp = (float)d;
    if ((r = cli_int(a, "sample_len", 0, 448, 0, 0, &l, NULL))) return r;
    p->sample_len = (int)l;
    if ((r = cli_int(a, "batch_size", 1, 4096, 0, 0, &l, NULL))) return r;
    o->batch_size = (int)l;

    if ((r = cli_bool(a, "vad_filter", 0, &o->vad_filter))) return r;
    if ((r = cli_bool(a, "batched", 0, &o->batched))) return r;
    if (o->batched) {
        if (cli_given(a, "vad_filter") && !o->vad_filter)
            return cli_usage_error(a, "--batched True needs the voice activity filter "
                                      "(--vad_filter False given)");
        o->vad_filter = 1;
        p->vad_batched = 1;
    }
    if ((r = cli_vad_params(a, &p->vad_params))) return r;
    o->vad_model = cli_str(a, "vad_model", "silero-vad");
    if (!*o->vad_model) return cli_usage_error(a, "argument --vad_model: empty model name");
    if (o->vad_filter && strcmp(clip, "0") != 0)
        return cli_usage_error(a, "--vad_filter True cannot be combined with --clip_timestamps");
    if ((r = parse_word_options(a, o))) return r;

    if (a->n_positional == 0)
        return cli_usage_error(a, "the following arguments are required: AUDIO");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */
/* ------------------------------------------------------------------------ */

/* mkdir -p dir. Returns 0 or an errno value. */
static int make_dirs(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ENOMEM;
    int err = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                err = errno;
                break;
            }
            *s = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (!err && (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))) err = ENOTDIR;
    free(p);
    return err;
}

/* The output base name of an audio path, as os.path.splitext(basename):
 * the last ".ext" removed unless the dot only leads the name. "-" is
 * "stdin". Returns malloc'd. */
static char *output_base(const char *audio) {
    if (!strcmp(audio, "-")) return strdup("stdin");
    const char *b = strrchr(audio, '/');
    b = b ? b + 1 : audio;
    char *s = strdup(b);
    if (!s) return NULL;
    char *dot = strrchr(s, '.');
    if (dot) {
        int leading = 1;
        for (char *q = s; q < dot; q++)
            if (*q != '.') leading = 0;
        if (!leading) *dot = '\0';
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct run_state {
    cli_progress progress;
    int print_lines; /* print "[start --> end] text" lines to stdout */
    int printed;     /* segments printed so far for the current file */
} run_state;

/* format_timestamp(seconds) of the reference: [HH:]MM:SS.mmm. */
static void format_ts(char *buf, size_t n, double seconds) {
    if (!(seconds >= 0) || seconds > 1e9) seconds = 0;
    double msd = seconds * 1000.0, r = floor(msd);
    if (msd - r > 0.5 || (msd - r == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
    long long ms = (long long)r;
    long long h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
    if (h > 0)
        snprintf(buf, n, "%02lld:%02lld:%02lld.%03lld", h, m, s, ms % 1000);
    else
        snprintf(buf, n, "%02lld:%02lld.%03lld", m, s, ms % 1000);
}

static void print_segment_line(run_state *rs, const tolk_segment *s) {
    char a[32], b[32];
    format_ts(a, sizeof a, s->start);
    format_ts(b, sizeof b, s->end);
    cli_progress_clear(&rs->progress);
    printf("[%s --> %s] %s\n", a, b, s->text ? s->text : "");
    fflush(stdout);
    rs->printed++;
}

static void on_segment(void *user, const tolk_segment *s) {
    run_state *rs = user;
    if (rs->print_lines) print_segment_line(rs, s);
}

static int on_progress(void *user, double pos, double total) {
    run_state *rs = user;
    return cli_progress_update(&rs->progress, pos, total);
}

/* Print "tolk: PATH: MSG", without repeating PATH when msg starts with it. */
static void report(const char *path, const char *msg) {
    const char *shown = !strcmp(path, "-") ? "<stdin>" : path;
    if (!msg || !*msg) msg = "failed";
    if (!strncmp(msg, shown, strlen(shown)) && msg[strlen(shown)] == ':')
        fprintf(stderr, "tolk: %s\n", msg);
    else
        fprintf(stderr, "tolk: %s: %s\n", shown, msg);
}

/* Check an input before the model is loaded: it exists, is not a
 * directory, and (regular files) opens as audio. Pipes and "-" are not
 * read here. Returns 0 when usable, else reports and returns 1. */
static int precheck_input(tolk_ctx *ctx, const char *path) {
    if (!strcmp(path, "-")) return 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        report(path, errno == ENOENT ? "no such file" : strerror(errno));
        return 1;
    }
    if (S_ISDIR(sb.st_mode)) {
        report(path, "is a directory, not an audio file");
        return 1;
    }
    if (!S_ISREG(sb.st_mode)) return 0;
    tolk_audio_reader *r = NULL;
    tolk_status st = tolk_audio_open(ctx, path, &r);
    if (st != TOLK_OK) {
        report(path, tolk_ctx_last_error(ctx)[0] ? tolk_ctx_last_error(ctx) : tolk_strerror(st));
        return 1;
    }
    tolk_audio_close(r);
    return 0;
}

/* The output path of audio in format (output_dir/BASE.EXT); malloc'd, or
 * NULL when out of memory. */
static char *output_path(const run_opts *o, const char *audio, int format) {
    char *base = output_base(audio);
    if (!base) return NULL;
    const char *ext = tolk_output_format_ext((tolk_output_format)format);
    size_t n = strlen(base) + strlen(ext) + 2;
    char *name = malloc(n);
    char *path = NULL;
    if (name) {
        snprintf(name, n, "%s.%s", base, ext);
        path = cli_path_join(o->output_dir, name);
    }
    free(name);
    free(base);
    return path;
}

/* Whether two paths name the same existing file. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Refuse input i when one of its output files would be an input (its own,
 * or another file's of this call): writing it would destroy the audio.
 * Returns 0, or 1 after reporting. */
static int refuse_overwriting_input(const run_opts *o, char **files, int n, int i) {
    if (!o->write_files) return 0;
    for (int f = 0; f < o->n_formats; f++) {
        char *out = output_path(o, files[i], o->formats[f]);
        if (!out) {
            report(files[i], "out of memory");
            return 1;
        }
        for (int j = 0; j < n; j++) {
            if (strcmp(files[j], "-") != 0 && same_file(out, files[j])) {
                char msg[512];
                snprintf(msg, sizeof msg,
                         "the output file %s would overwrite the input %s; choose another "
                         "--output_dir (or --output_format)",
                         out, files[j]);
                report(files[i], msg);
                free(out);
                return 1;
            }
        }
        free(out);
    }
    return 0;
}

/* The JSON output with the input's truncation added when there is one:
 * "input_truncated":{"expected_s":E or null,"decoded_s":D} before the
 * closing brace (the reference's keys are unchanged; added here, on the CLI
 * side, from tolk_result_input_truncated). Takes text (malloc'd
 * by tolk_render) and returns the buffer to write, *len updated. */
static char *json_with_truncation(const tolk_result *res, char *text, size_t *len) {
    double expected = -1, decoded = 0;
    if (!tolk_result_input_truncated(res, &expected, &decoded)) return text;
    size_t end = *len;
    while (end > 0 && text[end - 1] != '}')
        end--;
    if (end == 0) return text;
    char add[160];
    char e[32] = "null";
    if (expected >= 0) snprintf(e, sizeof e, "%.3f", expected);
    int k = snprintf(add, sizeof add, ",\"input_truncated\":{\"expected_s\":%s,\"decoded_s\":%.3f}",
                     e, decoded);
    char *out = malloc(*len + (size_t)k + 1);
    if (!out) return text;
    memcpy(out, text, end - 1);
    memcpy(out + end - 1, add, (size_t)k);
    memcpy(out + end - 1 + k, text + end - 1, *len - (end - 1));
    *len += (size_t)k;
    out[*len] = '\0';
    tolk_free(text);
    return out;
}

/* Write len bytes to a new temporary file beside path ("PATH.tmp-XXXXXX",
 * mode 0666 less the umask), flushed to disk. Returns the malloc'd
 * temporary name, or NULL with *err set (nothing left behind). */
static char *write_temp(const char *path, const char *data, size_t len, int *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12);
    if (!tmp) {
        *err = ENOMEM;
        return NULL;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        *err = errno;
        free(tmp);
        return NULL;
    }
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    *err = 0;
    for (size_t off = 0; off < len && !*err;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            *err = w < 0 ? errno : EIO;
        else
            off += (size_t)w;
    }
    if (!*err && fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) *err = errno;
    if (close(fd) != 0 && !*err) *err = errno;
    if (*err) {
        unlink(tmp);
        free(tmp);
        return NULL;
    }
    return tmp;
}

/* Write result in every requested format, all or nothing: every format is
 * rendered and written to a temporary file first, and only when all of
 * them succeeded are they renamed over the targets; on a failure the
 * temporary files are removed and earlier outputs stay as they were. A
 * target that is a device or a FIFO is written in place (never renamed
 * over). Returns 0 or 1 (reported). */
static int write_outputs(tolk_ctx *ctx, const run_opts *o, const char *audio,
                         const tolk_result *res) {
    char *paths[N_FORMATS] = {0}, *tmps[N_FORMATS] = {0}, *direct[N_FORMATS] = {0};
    size_t direct_len[N_FORMATS] = {0};
    int failed = 0;
    for (int i = 0; i < o->n_formats && !failed; i++) {
        paths[i] = output_path(o, audio, o->formats[i]);
        if (!paths[i]) {
            report(audio, "out of memory");
            failed = 1;
            break;
        }
        struct stat sb;
        int exists = stat(paths[i], &sb) == 0;
        if (exists && S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "tolk: %s: cannot write %s: it is a directory\n", audio, paths[i]);
            failed = 1;
            break;
        }
        char *text = NULL;
        size_t len = 0;
        tolk_status st =
            tolk_render_ex(ctx, res, (tolk_output_format)o->formats[i], &o->writer, &text, &len);
        if (st != TOLK_OK) {
            const char *m = tolk_ctx_last_error(ctx);
            fprintf(stderr, "tolk: %s: %s\n", audio, m[0] ? m : tolk_strerror(st));
            failed = 1;
            break;
        }
        if (o->formats[i] == TOLK_OUTPUT_JSON) text = json_with_truncation(res, text, &len);
        if (exists && !S_ISREG(sb.st_mode)) {
            /* a device or a FIFO is written as it is, when the others are
             * ready: a rename would replace it with a regular file */
            direct[i] = text;
            direct_len[i] = len;
            continue;
        }
        int err = 0;
        tmps[i] = write_temp(paths[i], text, len, &err);
        tolk_free(text);
        if (!tmps[i]) {
            fprintf(stderr, "tolk: %s: cannot write %s: %s\n", audio, paths[i], strerror(err));
            failed = 1;
        }
    }
    for (int i = 0; i < o->n_formats && !failed; i++) {
        if (direct[i]) {
            FILE *f = fopen(paths[i], "wb");
            int ok = f && fwrite(direct[i], 1, direct_len[i], f) == direct_len[i];
            if (f && fclose(f) != 0) ok = 0;
            if (!ok) {
                fprintf(stderr, "tolk: %s: cannot write %s: %s\n", audio, paths[i],
                        strerror(errno));
                failed = 1;
            }
            continue;
        }
        if (rename(tmps[i], paths[i]) != 0) {
            fprintf(stderr, "tolk: %s: cannot replace %s: %s\n", audio, paths[i], strerror(errno));
            failed = 1;
            break;
        }
        free(tmps[i]);
        tmps[i] = NULL;
    }
    for (int i = 0; i < N_FORMATS; i++) {
        if (tmps[i]) unlink(tmps[i]);
        free(tmps[i]);
        free(paths[i]);
        tolk_free(direct[i]);
    }
    return failed;
}

/* Print a finished file's transcript to stdout (the segment lines unless
 * they were streamed, or the plain text) and, unless written already, its
 * output files; then the progress line (summary, when not NULL, in place of
 * the language: --to LANG's route and time). Returns 0 or 1 (reported). */
static int emit_result(tolk_ctx *ctx, const run_opts *o, const char *path, run_state *rs,
                       const tolk_result *res, int files_written, const char *summary) {
    double expected_s, decoded_s;
    if (tolk_result_input_truncated(res, &expected_s, &decoded_s)) {
        cli_progress_clear(&rs->progress);
        cli_warn_truncated("tolk", strcmp(path, "-") ? path : "<stdin>", expected_s, decoded_s);
    }
    if (o->verbose && rs->printed == 0) /* no streamed segments: print them now */
        for (int i = 0; i < tolk_result_n_segments(res); i++)
            print_segment_line(rs, tolk_result_segment(res, i));
    int failed = 0;
    if (!o->verbose && !o->write_files) {
        char *text = NULL;
        size_t len = 0;
        tolk_status st = tolk_render(ctx, res, TOLK_OUTPUT_TXT, &text, &len);
        if (st != TOLK_OK) {
            report(path, tolk_ctx_last_error(ctx));
            failed = 1;
        } else {
            fwrite(text, 1, len, stdout);
            fflush(stdout);
            tolk_free(text);
        }
    }
    if (!failed && o->write_files && !files_written) failed = write_outputs(ctx, o, path, res);

    char extra[160] = "";
    if (!failed) {
        char name[48];
        cli_language_name(tolk_result_language(res), name, sizeof name);
        if (summary) /* --to LANG: the route and the translation time */
            snprintf(extra, sizeof extra, "%s", summary);
        else if (o->params.language)
            snprintf(extra, sizeof extra, "language %s", name);
        else
            snprintf(extra, sizeof extra, "detected language %s (p=%.2f)", name,
                     (double)tolk_result_language_prob(res));
        cli_progress_done(&rs->progress, tolk_result_duration(res), extra);
    } else {
        cli_progress_clear(&rs->progress);
    }
    return failed;
}

/* Transcribe one file (and translate it with pivot) and emit its outputs.
 * Returns 0 or 1 (reported). */
static int run_file(tolk_ctx *ctx, tolk_state *state, const run_opts *o, const char *path,
                    cli_mt_pivot *pivot) {
    run_state rs;
    memset(&rs, 0, sizeof rs);
    rs.print_lines = o->verbose && !pivot; /* translated lines are printed at the end */
    const char *shown = !strcmp(path, "-") ? "<stdin>" : path;
    cli_progress_start(&rs.progress, stderr, o->verbose, shown);

    tolk_transcribe_params p = o->params;
    if (pivot && cli_mt_pivot_plan(pivot, ctx, state, path, &p)) {
        cli_progress_clear(&rs.progress);
        return 1;
    }
    p.progress = o->verbose ? on_progress : NULL;
    p.on_segment = on_segment;
    p.user = &rs;
    tolk_result *res = NULL;
    tolk_status st = tolk_transcribe_file(state, path, &p, &res);
    if (st != TOLK_OK || !res) {
        cli_progress_clear(&rs.progress);
        const char *m = tolk_state_last_error(state);
        report(path, m && m[0] ? m : tolk_strerror(st));
        tolk_result_free(res);
        return 1;
    }
    char mt_summary[128] = "";
    if (pivot && cli_mt_pivot_apply(pivot, ctx, path, res, mt_summary, sizeof mt_summary)) {
        cli_progress_clear(&rs.progress);
        tolk_result_free(res);
        return 1;
    }
    int failed = emit_result(ctx, o, path, &rs, res, 0, pivot ? mt_summary : NULL);
    tolk_result_free(res);
    return failed;
}

/* One file of a batch. */
typedef struct batch_item {
    tolk_request *rq;
    tolk_result *res;
    run_state rs;
    int submitted, finished, written, failed;
} batch_item;

/* Collect a finished request's result (or report its failure), and write
 * its files at once. */
static void batch_collect(tolk_ctx *ctx, const run_opts *o, const char *path, batch_item *it) {
    if (it->finished || !tolk_request_done(it->rq)) return;
    it->finished = 1;
    tolk_status st = tolk_request_status(it->rq);
    if (st == TOLK_OK) st = tolk_request_result(it->rq, &it->res);
    if (st != TOLK_OK || !it->res) {
        const char *m = tolk_request_last_error(it->rq);
        report(path, m && m[0] ? m : tolk_strerror(st));
        it->failed = 1;
        return;
    }
    if (o->write_files) {
        it->failed = write_outputs(ctx, o, path, it->res);
        it->written = 1;
    }
}

/* Warn once per run (stderr) when GPU products ran a slow fallback kernel
 * (tolk_timings.gemm_fallbacks): the library counts, the program tells. */
static void warn_fallbacks(const tolk_timings *t) {
    static int warned;
    if (!t || t->gemm_fallbacks == 0 || warned) return;
    fprintf(stderr,
            "tolk: warning: %llu matrix products ran a slow fallback kernel (the GPU library had "
            "no algorithm for their shapes); expect low speed\n",
            (unsigned long long)t->gemm_fallbacks);
    warned = 1;
}

/* Run the usable files through an engine, batch_size at a time. Standard
 * output in file order; output files as each file is done. Returns the
 * number of files that failed. */
static int run_batch(tolk_ctx *ctx, tolk_model *model, const run_opts *o, char **files,
                     const int *ok, int n, int batch_size) {
    tolk_engine_params ep = tolk_engine_default_params();
    ep.max_requests = batch_size;
    tolk_engine *e = NULL;
    tolk_status st = tolk_engine_new(ctx, model, &ep, &e);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk: cannot start the engine: %s\n",
                tolk_ctx_last_error(ctx)[0] ? tolk_ctx_last_error(ctx) : tolk_strerror(st));
        return n;
    }
    batch_item *it = calloc((size_t)n, sizeof *it);
    if (!it) {
        tolk_engine_free(e);
        fprintf(stderr, "tolk: out of memory\n");
        return n;
    }
    const int window = 2 * batch_size; /* submitted and not yet printed */
    int failures = 0, next_sub = 0;
    double t0 = cli_now(), audio = 0.0;
    for (int i = 0; i < n; i++) {
        if (!ok[i]) continue;
        /* keep the engine fed: submit ahead of the file printed next */
        int pending = 0;
        for (int j = i; j < next_sub; j++)
            pending += ok[j] && it[j].submitted && !it[j].finished;
        for (; next_sub < n && pending < window; next_sub++) {
            if (!ok[next_sub]) continue;
            batch_item *b = &it[next_sub];
            b->rs.print_lines = o->verbose;
            const char *shown = !strcmp(files[next_sub], "-") ? "<stdin>" : files[next_sub];
            cli_progress_start(&b->rs.progress, stderr, o->verbose, shown);
            st = tolk_engine_submit_file(e, files[next_sub], &o->params, &b->rq);
            b->submitted = 1;
            if (st != TOLK_OK) {
                report(files[next_sub], tolk_engine_last_error(e));
                b->finished = b->failed = 1;
                continue;
            }
            pending++;
        }
        if (it[i].rq) tolk_request_wait(it[i].rq);
        for (int j = i; j < next_sub; j++)
            if (ok[j] && it[j].rq) batch_collect(ctx, o, files[j], &it[j]);
        if (!it[i].failed && it[i].res) {
            audio += tolk_result_duration(it[i].res);
            it[i].failed = emit_result(ctx, o, files[i], &it[i].rs, it[i].res, it[i].written, NULL);
        }
        failures += it[i].failed;
        tolk_result_free(it[i].res);
        it[i].res = NULL;
        tolk_request_free(it[i].rq);
        it[i].rq = NULL;
    }
    if (o->verbose && audio > 0) {
        double t = cli_now() - t0;
        fprintf(stderr, "tolk: %d files, %.1f s of audio in %.1f s (RTF %.3f, batch %d)\n", n,
                audio, t, t / audio, batch_size);
    }
    free(it);
    tolk_timings tm;
    tolk_engine_timings(e, &tm);
    warn_fallbacks(&tm);
    tolk_engine_free(e);
    return failures;
}

/* Warn when two inputs would write the same output files. */
static void warn_duplicate_outputs(const run_opts *o, char **files, int n, const int *ok) {
    if (!o->write_files) return;
    for (int i = 0; i < n; i++) {
        if (!ok[i]) continue;
        char *bi = output_base(files[i]);
        for (int j = 0; j < i && bi; j++) {
            if (!ok[j]) continue;
            char *bj = output_base(files[j]);
            if (bj && !strcmp(bi, bj)) {
                fprintf(stderr,
                        "tolk: warning: %s and %s have the same output name '%s'; "
                        "the later one replaces the earlier one's files\n",
                        files[j], files[i], bi);
                free(bj);
                break;
            }
            free(bj);
        }
        free(bi);
    }
}

static int run(const char *cmd, int argc, char **argv) {
    char prog[32];
    snprintf(prog, sizeof prog, "tolk %s", cmd);
    cli_args a;
    int r = cli_parse(prog, argc, argv, transcribe_opts, &a);
    if (r) return r;
    if (cli_given(&a, "help")) {
        usage(stdout, cmd);
        cli_args_free(&a);
        return 0;
    }
    run_opts o;
    cli_mt_pivot *pivot = NULL;
    r = parse_options(&a, cmd, &o);
    if (!r) r = cli_mt_pivot_new(&a, cmd, &pivot);
    if (r) {
        cli_args_free(&a);
        return r;
    }

    int exit_status = 0;
    tolk_ctx *ctx = NULL;
    tolk_model *model = NULL;
    tolk_state *state = NULL;
    tolk_vad *vad = NULL;
    char *model_path = NULL, *vad_path = NULL;
    int *ok = calloc((size_t)a.n_positional, sizeof *ok);
    if (!ok) {
        fprintf(stderr, "%s: out of memory\n", prog);
        cli_args_free(&a);
        return 1;
    }

    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = o.n_threads;
    cp.device = o.device;
    tolk_status st = tolk_ctx_new(&cp, &ctx);
    if (st == TOLK_ERR_NO_DEVICE) {
        fprintf(stderr,
                "%s: --device cuda: no CUDA device available (%s); use --device cpu or auto\n",
                prog,
                tolk_cuda_available() ? "device busy or failed"
                                      : "this build has no CUDA backend or no GPU is visible");
        exit_status = 1;
        goto done;
    } else if (st != TOLK_OK) {
        fprintf(stderr, "%s: cannot create a context: %s\n", prog, tolk_strerror(st));
        exit_status = 1;
        goto done;
    }

    /* inputs first: a missing or unreadable file fails fast, before the model */
    int n_ok = 0;
    for (int i = 0; i < a.n_positional; i++) {
        ok[i] = precheck_input(ctx, a.positional[i]) == 0 &&
                refuse_overwriting_input(&o, a.positional, a.n_positional, i) == 0;
        n_ok += ok[i];
    }
    if (n_ok < a.n_positional) exit_status = 1;
    if (n_ok == 0) goto done;
    warn_duplicate_outputs(&o, a.positional, a.n_positional, ok);

    model_path = cli_resolve_model(prog, o.model, o.model_dir);
    if (!model_path) {
        exit_status = 1;
        goto done;
    }
    tolk_model_params mp = tolk_model_default_params();
    mp.device = tolk_ctx_device(ctx);
    mp.compute_type = o.compute_type;
    mp.kv_cache = o.kv_cache;
    mp.gelu = o.gelu;
    st = tolk_model_load(ctx, model_path, &mp, &model);
    if (st != TOLK_OK) {
        report(model_path,
               tolk_ctx_last_error(ctx)[0] ? tolk_ctx_last_error(ctx) : tolk_strerror(st));
        exit_status = 1;
        goto done;
    }
    tolk_model_desc desc;
    tolk_model_describe(model, &desc);
    /* the token ids against this model's vocabulary: still a usage error */
    if (*o.params.suppress_tokens &&
        (r = check_token_list(&a, o.params.suppress_tokens, desc.n_vocab, o.model))) {
        exit_status = r;
        goto done;
    }
    if (!desc.multilingual) {
        if (o.params.language && strcmp(o.params.language, "en") != 0)
            fprintf(stderr,
                    "tolk: warning: %s is an English-only model but --language is '%s'; "
                    "using English instead\n",
                    o.model, o.params.language);
        if (o.params.task == TOLK_TASK_TRANSLATE)
            fprintf(stderr,
                    "tolk: warning: %s is an English-only model: it cannot translate; "
                    "transcribing in English instead\n",
                    o.model);
        o.params.language = "en";
    }
    if (o.vad_filter) {
        vad_path = cli_resolve_model(prog, o.vad_model, o.model_dir);
        if (!vad_path) {
            exit_status = 1;
            goto done;
        }
        st = tolk_vad_load(ctx, vad_path, &vad);
        if (st != TOLK_OK) {
            report(vad_path,
                   tolk_ctx_last_error(ctx)[0] ? tolk_ctx_last_error(ctx) : tolk_strerror(st));
            exit_status = 1;
            goto done;
        }
        o.params.vad = vad;
    }
    int batch = o.batch_size > 0 ? o.batch_size : tolk_ctx_device(ctx) == TOLK_DEVICE_CUDA ? 32 : 8;
    /* --batched: a file's pieces run at once; --to: each file's task depends on its language */
    if ((n_ok < 2 && !o.batched) || pivot) batch = 1;
    if (batch == 1) st = tolk_state_new(ctx, model, &state);
    if (st != TOLK_OK) {
        report(model_path,
               tolk_ctx_last_error(ctx)[0] ? tolk_ctx_last_error(ctx) : tolk_strerror(st));
        exit_status = 1;
        goto done;
    }

    /* the output directory once everything is ready, as late as possible */
    if (o.write_files) {
        int err = make_dirs(o.output_dir);
        if (err) {
            fprintf(stderr, "tolk: %s: cannot create the output directory: %s\n", o.output_dir,
                    strerror(err));
            exit_status = 1;
            goto done;
        }
    }

    if (batch > 1) {
        if (run_batch(ctx, model, &o, a.positional, ok, a.n_positional, batch) != 0)
            exit_status = 1;
    } else {
        for (int i = 0; i < a.n_positional; i++) {
            if (!ok[i]) continue;
            if (run_file(ctx, state, &o, a.positional[i], pivot) != 0) exit_status = 1;
            tolk_timings t;
            tolk_state_timings(state, &t);
            warn_fallbacks(&t);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tolk: writing to standard output failed\n");
        exit_status = 1;
    }

done:
    cli_mt_pivot_free(pivot);
    tolk_state_free(state);
    tolk_vad_free(vad);
    free(vad_path);
    tolk_model_free(model);
    tolk_ctx_free(ctx);
    free(model_path);
    free(ok);
    cli_args_free(&a);
    return exit_status;
}

int cli_transcribe(int argc, char **argv) {
    return run("transcribe", argc, argv);
}

int cli_translate(int argc, char **argv) {
    return run("translate", argc, argv);
}
