/*
 * options.h — command-line option parsing shared by the tolk subcommands,
 * in the manner of Python's argparse as openai-whisper's CLI uses it:
 * "--flag value" and "--flag=value", short aliases ("-o DIR", "-oDIR"),
 * the last occurrence of a flag wins, "--" ends the options, "-" is a
 * positional argument (standard input). After a flag that takes a value, an
 * argument starting with '-' and a digit is its value ("-1", "-5,abc"),
 * so the flag's own check names what is wrong with it. Typed getters convert and check
 * values the way the reference's argparse types do (int, float, "None" for
 * optional numbers, True/False booleans) and print argparse-style errors.
 *
 * Every error is printed to stderr as "PROG: error: ..." and reported as
 * exit status 2 (a usage error).
 */
#ifndef TOLK_CLI_OPTIONS_H
#define TOLK_CLI_OPTIONS_H

#include <stdio.h>

/* One accepted flag. An array of these ends with an entry whose name is
 * NULL. */
typedef struct cli_optdef {
    const char *name; /* long form without dashes: "model" for --model */
    char alias;       /* short form ('o' for -o) or 0 */
    int takes_value;  /* 1: needs a value; 0: a switch (--help) */
} cli_optdef;

/* The parsed command line. values[i] is the last value given for defs[i]
 * (a pointer into argv, or "" for a switch), NULL when not given. */
typedef struct cli_args {
    const char *prog; /* "tolk transcribe", for messages */
    const cli_optdef *defs;
    int n_defs;
    const char **values; /* [n_defs], owned */
    char **positional;   /* [n_positional], pointers into argv; array owned */
    int n_positional;
} cli_args;

/* Parse argv[1..argc) (argv[0] is the subcommand name) against defs.
 * Returns 0 on success (free with cli_args_free), or 2 after printing an
 * error (unknown flag, missing value); out is then empty. */
int cli_parse(const char *prog, int argc, char **argv, const cli_optdef *defs, cli_args *out);
void cli_args_free(cli_args *a);

/* Print "PROG: error: MESSAGE" and a hint to --help on stderr; returns 2. */
int cli_usage_error(const cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether --name was given. */
int cli_given(const cli_args *a, const char *name);

/* The value of --name, or def when not given. */
const char *cli_str(const cli_args *a, const char *name, const char *def);

/* Typed getters. Each returns 0 and sets *out (def when the flag is not
 * given), or returns 2 after printing an error naming the flag and value.
 *  cli_int:    a decimal integer in [lo, hi]. allow_none: "None" is
 *              accepted and sets *is_none (may be NULL otherwise).
 *  cli_float:  a finite decimal number in [lo, hi] ("inf"/"-inf" allowed
 *              when allow_inf); "None" as for cli_int.
 *  cli_bool:   "True" or "False" (also "true"/"false").
 *  cli_choice: one of choices (NULL-terminated); *out = its index. */
int cli_int(const cli_args *a, const char *name, long lo, long hi, int allow_none, long def,
            long *out, int *is_none);
int cli_float(const cli_args *a, const char *name, double lo, double hi, int allow_inf,
              int allow_none, double def, double *out, int *is_none);
int cli_bool(const cli_args *a, const char *name, int def, int *out);
int cli_choice(const cli_args *a, const char *name, const char *const *choices, int def, int *out);

/* The temperature schedule from --temperature T and
 * --temperature_increment_on_fallback D|None into p->temperatures /
 * p->n_temperatures: numpy.arange(T, 1.0 + 1e-6, D) as the reference
 * builds it (T > 1: just T), or T alone when D is None. Returns 0, or 2
 * after a usage error (bad numbers, more than TOLK_MAX_TEMPERATURES steps). */
struct tolk_transcribe_params;
int cli_temperatures(const cli_args *a, struct tolk_transcribe_params *p);

/* The search options as openai-whisper's command line takes them, into p:
 * --best_of N|None (None: 1), --beam_size N|None (default 5; None:
 * sampling), --patience F|None (given alone, without --beam_size: a usage
 * error; None: 1.0), --length_penalty F|None (None: the length-normalised
 * score). Returns 0, or 2 after a usage error. */
int cli_search_options(const cli_args *a, struct tolk_transcribe_params *p);
/* The fallback thresholds into p: --compression_ratio_threshold (2.4),
 * --logprob_threshold (-1.0), --no_speech_threshold (0.6); None turns each
 * off. Returns 0, or 2 after a usage error. */
int cli_fallback_thresholds(const cli_args *a, struct tolk_transcribe_params *p);

/* faster-whisper's VAD options (vad_parameters) as flags: --vad_threshold,
 * --vad_neg_threshold (None: threshold - 0.15), --vad_min_speech_duration_ms,
 * --vad_max_speech_duration_s (inf allowed), --vad_min_silence_duration_ms,
 * --vad_speech_pad_ms, into *p (defaults: tolk_vad_default_params()).
 * Returns 0, or 2 after a usage error naming the flag. CLI_VAD_OPTS lists
 * them for a cli_optdef table. */
struct tolk_vad_params;
int cli_vad_params(const cli_args *a, struct tolk_vad_params *p);
/* clang-format off */
#define CLI_VAD_OPTS                                                                               \
    {"vad_threshold", 0, 1}, {"vad_neg_threshold", 0, 1}, {"vad_min_speech_duration_ms", 0, 1},    \
    {"vad_max_speech_duration_s", 0, 1}, {"vad_min_silence_duration_ms", 0, 1},                    \
    {"vad_speech_pad_ms", 0, 1}, {"vad_model", 0, 1}
/* clang-format on */
/* The help lines of those flags (and --vad_model). */
extern const char cli_vad_help[];

/* The language code for a --language argument: a code ("en", "haw"), or a
 * language name or alias in any letter case ("English", "castilian");
 * NULL when unknown. Static storage. */
const char *cli_language_code(const char *arg);
/* The English name of a language code, title-cased ("English", "Haitian
 * Creole") into buf[n]; the code itself when unknown. Returns buf. */
const char *cli_language_name(const char *code, char *buf, size_t n);

/* Print "PROG: warning: NAME: truncated: ..." on stderr for an input that
 * is cut short (tolk_audio_truncated): the seconds its header promised
 * (expected_s < 0: it states no length) and the seconds decoded. */
void cli_warn_truncated(const char *prog, const char *name, double expected_s, double decoded_s);

/* A malloc'd "a/b" (no doubled slash), or NULL. */
char *cli_path_join(const char *a, const char *b);

/* The model path for --model NAME|PATH: a path, or a name under model_dir /
 * $TOLK_MODELS / ~/.cache/tolk/models (scripts/get-model's cache). Returns a
 * malloc'd path, or NULL after printing why (prefixed with prog). */
char *cli_resolve_model(const char *prog, const char *model, const char *model_dir);
/* The same; quiet: NULL without a word when it is not found. */
char *cli_find_model(const char *prog, const char *model, const char *model_dir, int quiet);

#endif
