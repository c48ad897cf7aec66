/*
 * options.c — argparse-like option parsing for the tolk subcommands (see
 * options.h), and the --language table: the language codes and names that
 * openai-whisper's CLI accepts (whisper.tokenizer.LANGUAGES plus its name
 * aliases such as "castilian" -> es).
 */
#include "options.h"
#include "tolk.h"

#include <sys/stat.h>
#include <stdio.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

int cli_usage_error(const cli_args *a, const char *fmt, ...) {
    const char *prog = a && a->prog ? a->prog : "tolk";
    fprintf(stderr, "%s: error: ", prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `%s --help`)\n", prog);
    return 2;
}

/* Index of the def with long name (n bytes of name) or -1. */
static int find_long(const cli_optdef *defs, const char *name, size_t n) {
    for (int i = 0; defs[i].name; i++)
        if (strlen(defs[i].name) == n && !strncmp(defs[i].name, name, n)) return i;
    return -1;
}

static int find_short(const cli_optdef *defs, char c) {
    for (int i = 0; defs[i].name; i++)
        if (defs[i].alias && defs[i].alias == c) return i;
    return -1;
}

/* Whether s reads as a negative number ("-1", "-0.5", "-inf"): such an
 * argument is a value, not a flag, as argparse decides. */
static int looks_negative_number(const char *s) {
    if (s[0] != '-' || !s[1]) return 0;
    char *end;
    errno = 0;
    strtod(s, &end);
    return *end == '\0';
}

int cli_parse(const char *prog, int argc, char **argv, const cli_optdef *defs, cli_args *out) {
    memset(out, 0, sizeof *out);
    out->prog = prog;
    out->defs = defs;
    int n = 0;
    while (defs[n].name)
        n++;
    out->n_defs = n;
    out->values = calloc((size_t)n + 1, sizeof *out->values);
    out->positional = calloc((size_t)(argc > 0 ? argc : 1), sizeof *out->positional);
    if (!out->values || !out->positional) {
        cli_args_free(out);
        fprintf(stderr, "%s: out of memory\n", prog);
        return 2;
    }
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (only_positional || arg[0] != '-' || !strcmp(arg, "-") || looks_negative_number(arg)) {
            out->positional[out->n_positional++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_positional = 1;
            continue;
        }
        int idx;
        const char *inline_value = NULL;
        const char *shown = arg; /* the flag as the user wrote it, for messages */
        char flagbuf[64];
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            idx = find_long(defs, name, len);
            if (eq) inline_value = eq + 1;
            snprintf(flagbuf, sizeof flagbuf, "--%.*s", (int)(len < 50 ? len : 50), name);
            shown = flagbuf;
        } else {
            idx = find_short(defs, arg[1]);
            if (arg[2]) inline_value = arg[2] == '=' ? arg + 3 : arg + 2;
            snprintf(flagbuf, sizeof flagbuf, "-%c", arg[1]);
            shown = flagbuf;
        }
        if (idx < 0) {
            int r = cli_usage_error(out, "unrecognized argument: %s", arg);
            cli_args_free(out);
            return r;
        }
        if (!defs[idx].takes_value) {
            if (inline_value) {
                int r = cli_usage_error(out, "argument %s: ignored explicit argument '%s'", shown,
                                        inline_value);
                cli_args_free(out);
                return r;
            }
            out->values[idx] = "";
            continue;
        }
        if (!inline_value) {
            /* a value may start with '-' followed by a digit ("-1", "-5,abc":
             * checked, and named, by the option's own parser) */
            const char *nx = i + 1 < argc ? argv[i + 1] : NULL;
            if (!nx || (nx[0] == '-' && nx[1] && !looks_negative_number(nx) &&
                        !isdigit((unsigned char)nx[1]))) {
                int r = cli_usage_error(out, "argument %s: expected one argument", shown);
                cli_args_free(out);
                return r;
            }
            inline_value = argv[++i];
        }
        out->values[idx] = inline_value;
    }
    return 0;
}

void cli_args_free(cli_args *a) {
    if (!a) return;
    free((void *)a->values);
    free(a->positional);
    a->values = NULL;
    a->positional = NULL;
    a->n_positional = 0;
}

static int def_index(const cli_args *a, const char *name) {
    return find_long(a->defs, name, strlen(name));
}

int cli_given(const cli_args *a, const char *name) {
    int i = def_index(a, name);
    return i >= 0 && a->values[i] != NULL;
}

const char *cli_str(const cli_args *a, const char *name, const char *def) {
    int i = def_index(a, name);
    return i >= 0 && a->values[i] ? a->values[i] : def;
}

/* ------------------------------------------------------------------------ */
/* Typed values                                                              */
/* ------------------------------------------------------------------------ */

int cli_int(const cli_args *a, const char *name, long lo, long hi, int allow_none, long def,
            long *out, int *is_none) {
    const char *v = cli_str(a, name, NULL);
    if (is_none) *is_none = 0;
    *out = def;
    if (!v) return 0;
    if (allow_none && !strcmp(v, "None")) {
        if (is_none) *is_none = 1;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || isspace((unsigned char)*v))
        return cli_usage_error(a, "argument --%s: invalid int value: '%s'", name, v);
    if (x < lo || x > hi)
        return cli_usage_error(a, "argument --%s: %ld is out of range [%ld, %ld]", name, x, lo, hi);
    *out = x;
    return 0;
}

int cli_float(const cli_args *a, const char *name, double lo, double hi, int allow_inf,
              int allow_none, double def, double *out, int *is_none) {
    const char *v = cli_str(a, name, NULL);
    if (is_none) *is_none = 0;
    *out = def;
    if (!v) return 0;
    if (allow_none && !strcmp(v, "None")) {
        if (is_none) *is_none = 1;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    /* decimal numbers only: no hex floats, no "nan" */
    int bad = !*v || *end || isspace((unsigned char)*v) || strpbrk(v, "xX") || isnan(x) ||
              (errno == ERANGE && isinf(x));
    if (!bad && isinf(x) && !allow_inf) bad = 1;
    if (bad) return cli_usage_error(a, "argument --%s: invalid float value: '%s'", name, v);
    if (x < lo || x > hi)
        return cli_usage_error(a, "argument --%s: %s is out of range [%g, %g]", name, v, lo, hi);
    *out = x;
    return 0;
}

int cli_bool(const cli_args *a, const char *name, int def, int *out) {
    const char *v = cli_str(a, name, NULL);
    *out = def;
    if (!v) return 0;
    if (!strcmp(v, "True") || !strcmp(v, "true")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(v, "False") || !strcmp(v, "false")) {
        *out = 0;
        return 0;
    }
    return cli_usage_error(a, "argument --%s: expected True or False, got '%s'", name, v);
}

int cli_choice(const cli_args *a, const char *name, const char *const *choices, int def, int *out) {
    const char *v = cli_str(a, name, NULL);
    *out = def;
    if (!v) return 0;
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(v, choices[i])) {
            *out = i;
            return 0;
        }
    }
    char list[512];
    size_t len = 0;
    list[0] = '\0';
    for (int i = 0; choices[i] && len + 1 < sizeof list; i++) {
        int w = snprintf(list + len, sizeof list - len, "%s'%s'", i ? ", " : "", choices[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    return cli_usage_error(a, "argument --%s: invalid choice: '%s' (choose from %s)", name, v,
                           list);
}

/* ------------------------------------------------------------------------ */
/* Languages                                                                 */
/* ------------------------------------------------------------------------ */

const char *cli_language_code(const char *arg) {
    int i = tolk_language_index(arg);
    return i >= 0 ? tolk_language_code(i) : NULL;
}

const char *cli_language_name(const char *code, char *buf, size_t n) {
    if (!buf || n == 0) return "";
    int i = code ? tolk_language_index(code) : -1;
    snprintf(buf, n, "%s", i >= 0 ? tolk_language_name(i) : code ? code : "");
    /* title case: upper-case the first letter of each word */
    for (size_t k = 0; buf[k]; k++)
        if (k == 0 || buf[k - 1] == ' ') buf[k] = (char)toupper((unsigned char)buf[k]);
    return buf;
}

void cli_warn_truncated(const char *prog, const char *name, double expected_s, double decoded_s) {
    if (expected_s >= 0)
        fprintf(stderr,
                "%s: warning: %s: truncated: the header promises %.2f s of audio, only %.2f s "
                "decode (the file is cut short); using what is there\n",
                prog, name, expected_s, decoded_s);
    else
        fprintf(stderr,
                "%s: warning: %s: truncated: the stream ends without its final page after "
                "%.2f s (the file is cut short or still being written); using what is there\n",
                prog, name, decoded_s);
}

/* A malloc'd "a/b" (no doubled slash), or NULL. */
char *cli_path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    int slash = na > 0 && a[na - 1] != '/';
    char *s = malloc(na + nb + 2);
    if (!s) return NULL;
    memcpy(s, a, na);
    if (slash) s[na] = '/';
    memcpy(s + na + slash, b, nb + 1);
    return s;
}

/* Find the model: a path (anything containing '/', or that exists), or a
 * name under model_dir / $TOLK_MODELS / ~/.cache/tolk/models. Names take
 * precedence over same-named entries of the current directory, as the
 * reference's model names do. Returns a malloc'd path, or NULL after
 * printing why. */
char *cli_resolve_model(const char *prog, const char *model, const char *model_dir) {
    return cli_find_model(prog, model, model_dir, 0);
}

char *cli_find_model(const char *prog, const char *model, const char *model_dir, int quiet) {
    struct stat sb;
    if (strchr(model, '/')) {
        if (stat(model, &sb) != 0) {
            if (!quiet)
                fprintf(stderr, "%s: %s: model not found: %s\n", prog, model, strerror(errno));
            return NULL;
        }
        return strdup(model);
    }
    char *root = NULL;
    if (model_dir) {
        root = strdup(model_dir);
    } else if (getenv("TOLK_MODELS") && *getenv("TOLK_MODELS")) {
        root = strdup(getenv("TOLK_MODELS"));
    } else {
        const char *home = getenv("HOME");
        root = cli_path_join(home && *home ? home : ".", ".cache/tolk/models");
    }
    char *cand = root ? cli_path_join(root, model) : NULL;
    if (cand && stat(cand, &sb) == 0) {
        free(root);
        return cand;
    }
    free(cand);
    if (stat(model, &sb) == 0) {
        free(root);
        return strdup(model);
    }
    if (!quiet)
        fprintf(stderr,
                "%s: model '%s' not found: no %s/%s and no such path "
                "(install it with scripts/get-model %s, or give --model a path)\n",
                prog, model, root ? root : "?", model, model);
    free(root);
    return NULL;
}

int cli_temperatures(const cli_args *a, tolk_transcribe_params *p) {
    double t0, inc;
    int r, none;
    if ((r = cli_float(a, "temperature", 0.0, 100.0, 0, 0, 0.0, &t0, NULL))) return r;
    if ((r = cli_float(a, "temperature_increment_on_fallback", 1e-6, 100.0, 0, 1, 0.2, &inc,
                       &none)))
        return r;
    if (none) {
        p->temperatures[0] = (float)t0;
        p->n_temperatures = 1;
        return 0;
    }
    double count = ceil((1.0 + 1e-6 - t0) / inc);
    if (count > TOLK_MAX_TEMPERATURES)
        return cli_usage_error(a,
                               "--temperature %g with --temperature_increment_on_fallback %g "
                               "gives %.0f temperatures; at most %d are supported",
                               t0, inc, count, TOLK_MAX_TEMPERATURES);
    int n = count < 1 ? 1 : (int)count; /* T > 1: just T, as a schedule of one */
    for (int i = 0; i < n; i++)
        p->temperatures[i] = (float)(t0 + i * inc);
    p->n_temperatures = n;
    return 0;
}

int cli_search_options(const cli_args *a, tolk_transcribe_params *p) {
    long l;
    double d;
    int r, none, none_p;
    if ((r = cli_int(a, "best_of", 1, 1000, 1, 5, &l, &none))) return r;
    p->best_of = none ? 1 : (int)l;
    if ((r = cli_int(a, "beam_size", 1, 1000, 1, 5, &l, &none))) return r;
    p->beam_size = none ? 0 : (int)l;
    if ((r = cli_float(a, "patience", 1e-9, 1e6, 0, 1, 1.0, &d, &none_p))) return r;
    if (!none_p && cli_given(a, "patience") && none)
        return cli_usage_error(a, "argument --patience: requires --beam_size to be given");
    p->patience = none_p ? 1.0f : (float)d;
    if ((r = cli_float(a, "length_penalty", 0.0, 1.0, 0, 1, -1.0, &d, &none))) return r;
    p->length_penalty = none ? -1.0f : (float)d;
    return 0;
}

int cli_fallback_thresholds(const cli_args *a, tolk_transcribe_params *p) {
    double d;
    int r, none;
    if ((r = cli_float(a, "compression_ratio_threshold", -1e9, 1e9, 0, 1, 2.4, &d, &none)))
        return r;
    p->compression_ratio_threshold = none ? 0.0f : (float)d;
    if ((r = cli_float(a, "logprob_threshold", -INFINITY, INFINITY, 1, 1, -1.0, &d, &none)))
        return r;
    p->logprob_threshold = none ? -INFINITY : (float)d;
    if ((r = cli_float(a, "no_speech_threshold", -1e9, 1e9, 0, 1, 0.6, &d, &none))) return r;
    p->no_speech_threshold = none ? 0.0f : (float)d;
    return 0;
}

int cli_vad_params(const cli_args *a, tolk_vad_params *p) {
    *p = tolk_vad_default_params();
    int r, none;
    double d;
    long l;
    if ((r = cli_float(a, "vad_threshold", 0.0, 1.0, 0, 0, p->threshold, &d, NULL))) return r;
    p->threshold = d;
    if ((r = cli_float(a, "vad_neg_threshold", 0.0, 1.0, 0, 1, -1.0, &d, &none))) return r;
    p->neg_threshold = none ? -1.0 : d;
    if (p->neg_threshold >= 0 && p->neg_threshold > p->threshold)
        return cli_usage_error(a, "argument --vad_neg_threshold: %g exceeds --vad_threshold %g",
                               p->neg_threshold, p->threshold);
    if ((r = cli_int(a, "vad_min_speech_duration_ms", 0, 100000000, 0, p->min_speech_duration_ms,
                     &l, NULL)))
        return r;
    p->min_speech_duration_ms = (int)l;
    if ((r = cli_float(a, "vad_max_speech_duration_s", 1e-3, INFINITY, 1, 0, INFINITY, &d, NULL)))
        return r;
    p->max_speech_duration_s = d;
    if ((r = cli_int(a, "vad_min_silence_duration_ms", 0, 100000000, 0, p->min_silence_duration_ms,
                     &l, NULL)))
        return r;
    p->min_silence_duration_ms = (int)l;
    if ((r = cli_int(a, "vad_speech_pad_ms", 0, 100000000, 0, p->speech_pad_ms, &l, NULL)))
        return r;
    p->speech_pad_ms = (int)l;
    return 0;
}

const char cli_vad_help[] =
    "  --vad_model NAME|PATH      Silero VAD model: a directory, safetensors or\n"
    "                             whisper.cpp ggml file, or a name installed by\n"
    "                             scripts/get-model [silero-vad]\n"
    "  --vad_threshold P          speech when the probability is >= P [0.5]\n"
    "  --vad_neg_threshold P      silence when below P; None: threshold - 0.15 [None]\n"
    "  --vad_min_speech_duration_ms MS  drop shorter speech [0]\n"
    "  --vad_max_speech_duration_s S    split longer speech; inf: never [inf]\n"
    "  --vad_min_silence_duration_ms MS silence that ends speech [2000]\n"
    "  --vad_speech_pad_ms MS     padding added each side of speech [400]\n";
