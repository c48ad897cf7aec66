/*
 * cmd_mt.c — `tolk mt --from en --to pt`: text translation with a Firefox /
 * Bergamot model, standard input to standard output, one output line per
 * input line (empty lines stay empty); and the speech-translation helpers
 * `tolk translate --to LANG` uses (cli_mt_*: which task Whisper runs for a
 * file, then the translation of its segments).
 *
 * Lines are translated in batches of whatever input is already available
 * (up to --batch lines), so a file or a pipe full of text is batched and an
 * interactive session is answered line by line.
 *
 * Uses the public API (tolk.h) only.
 */
#include "cli.h"
#include "options.h"
#include "progress.h"
#include "tolk.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const cli_optdef mt_opts[] = {
    {"help", 'h', 0},     {"from", 0, 1},         {"to", 0, 1},        {"model", 0, 1},
    {"model_dir", 0, 1},  {"beam_size", 0, 1},    {"shortlist", 0, 1}, {"split", 0, 1},
    {"max_tokens", 0, 1}, {"batch", 0, 1},        {"threads", 0, 1},   {"device", 0, 1},
    {"list", 0, 0},       {"compute_type", 0, 1}, {NULL, 0, 0},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tolk mt --from LANG --to LANG [OPTIONS] < TEXT\n"
               "       tolk mt --model DIR [OPTIONS] < TEXT\n"
               "       tolk mt --list\n"
               "\n"
               "Translate text from standard input to standard output with a Firefox / Bergamot\n"
               "translation model: one output line per input line, empty lines kept.\n"
               "\n"
               "Options (defaults in brackets)\n"
               "  --from LANG, --to LANG  the language pair (codes such as en, pt, or names); the\n"
               "                          model is the folder for that pair under --model_dir\n"
               "  --model DIR             a model folder (model.*.bin, vocab*.spm, lex.*.s2t.bin)\n"
               "  --model_dir DIR         where model folders live [$TOLK_MODELS, else\n"
               "                          ~/.cache/tolk/models]: scripts/get-model mt-en-pt\n"
               "                          installs one; any Firefox model folder (enpt/, deen/,\n"
               "                          ... or mt-XX-YY/) is found there too\n"
               "  --list                  print the language pairs found and exit\n"
               "  --beam_size N           1: greedy; 0: the model's config [0]\n"
               "  --shortlist True|False  score only the lexical shortlist [True]\n"
               "  --split long|never|sentences  split lines into sentences: only lines longer\n"
               "                          than --max_tokens, never, or always [long]\n"
               "  --max_tokens N          longer sentences are cut into pieces [128]\n"
               "  --batch N               lines translated together at most [32]\n"
               "  --threads N             CPU threads; 0: all cores [0]\n"
               "  --device cpu|cuda|auto  where the model runs [cpu]\n"
               "  --compute_type float32|int8  float32: the int8 weights dequantised once (the\n"
               "                          reference engine's arithmetic); int8: Bergamot's int8\n"
               "                          products (AVX-512 VNNI, CPU) [float32]\n"
               "  -h, --help              show this help\n"
               "\n"
               "Exit status: 0 success, 1 failure (model, input or output), 2 bad options.\n");
}

/* The models folder: --model_dir, $TOLK_MODELS, ~/.cache/tolk/models. */
static char *models_root(const char *model_dir) {
    if (model_dir) return strdup(model_dir);
    const char *env = getenv("TOLK_MODELS");
    if (env && *env) return strdup(env);
    const char *home = getenv("HOME");
    return cli_path_join(home && *home ? home : ".", ".cache/tolk/models");
}

/* A language code from a code or name; NULL (after a usage error) when
 * unknown. */
static const char *lang_arg(const cli_args *a, const char *name, int *r) {
    const char *v = cli_str(a, name, NULL);
    if (!v) return NULL;
    const char *code = cli_language_code(v);
    if (!code) *r = cli_usage_error(a, "argument --%s: unknown language '%s'", name, v);
    return code;
}

/* ------------------------------------------------------------------------ */
/* Line input: every complete line already available, up to max             */
/* ------------------------------------------------------------------------ */

typedef struct line_reader {
    char *buf;
    size_t len, cap, pos; /* bytes held; consumed up to pos */
    int eof, err;
} line_reader;

/* Drop the consumed bytes (no line of r may be in use). */
static void lr_compact(line_reader *r) {
    if (r->pos == 0) return;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
}

/* Append what standard input has (blocking when block; without, only when
 * poll says bytes are ready). The buffer may move. 0, or -1 on failure. */
static int lr_fill(line_reader *r, int block) {
    if (r->eof) return 0;
    if (!block) {
        struct pollfd p = {0, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0) return 0;
    }
    if (r->cap - r->len < 65536) {
        size_t c = r->cap ? r->cap * 2 : 131072;
        char *g = realloc(r->buf, c);
        if (!g) {
            r->err = ENOMEM;
            return -1;
        }
        r->buf = g;
        r->cap = c;
    }
    ssize_t n;
    do {
        n = read(0, r->buf + r->len, r->cap - r->len - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        r->err = errno;
        r->eof = 1;
        return -1;
    }
    if (n == 0) r->eof = 1;
    r->len += (size_t)n;
    return 0;
}

/* The offset of the next complete line (NUL-terminated in place, "\r\n"
 * or "\n" removed), or of the unterminated last one at EOF; -1 when none
 * yet. */
static long lr_next(line_reader *r) {
    if (r->pos >= r->len) return -1;
    char *s = r->buf + r->pos, *nl = memchr(s, '\n', r->len - r->pos);
    if (!nl) {
        if (!r->eof) return -1;
        nl = r->buf + r->len; /* the buffer keeps a spare byte for this NUL */
    }
    *nl = '\0';
    long off = (long)r->pos;
    r->pos = (size_t)(nl - r->buf) + 1;
    if (r->pos > r->len) r->pos = r->len;
    if (nl > s && nl[-1] == '\r') nl[-1] = '\0';
    return off;
}

/* ------------------------------------------------------------------------ */
/* tolk mt                                                                   */
/* ------------------------------------------------------------------------ */

/* The translation options common to `mt` and `translate --to`. */
static int parse_mt_params(const cli_args *a, tolk_mt_params *p, const char *beam_flag) {
    static const char *const split_choices[] = {"long", "never", "sentences", NULL};
    long l;
    int r, b;
    *p = tolk_mt_default_params();
    if ((r = cli_int(a, beam_flag, 0, 32, 0, 0, &l, NULL))) return r;
    p->beam_size = (int)l;
    if ((r = cli_bool(a, "shortlist", 1, &p->use_shortlist))) return r;
    if ((r = cli_choice(a, "split", split_choices, 0, &b))) return r;
    p->split = b == 0 ? TOLK_MT_SPLIT_LONG : b == 1 ? TOLK_MT_SPLIT_NEVER : TOLK_MT_SPLIT_SENTENCES;
    if ((r = cli_int(a, "max_tokens", 1, 1024, 0, 128, &l, NULL))) return r;
    p->max_tokens = (int)l;
    return 0;
}

int cli_mt(int argc, char **argv) {
    const char *prog = "tolk mt";
    cli_args a;
    int r = cli_parse(prog, argc, argv, mt_opts, &a);
    if (r) return r;
    if (cli_given(&a, "help")) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    static const char *const device_choices[] = {"cpu", "cuda", "auto", NULL};
    static const char *const compute_choices[] = {"float32", "int8", NULL};
    int compute = 0;
    tolk_mt_params mp;
    long batch = 32, threads = 0;
    int dev = 0;
    const char *from = lang_arg(&a, "from", &r), *to = r ? NULL : lang_arg(&a, "to", &r);
    if (!r) r = parse_mt_params(&a, &mp, "beam_size");
    if (!r) r = cli_int(&a, "batch", 1, 4096, 0, 32, &batch, NULL);
    if (!r) r = cli_int(&a, "threads", 0, 4096, 0, 0, &threads, NULL);
    if (!r) r = cli_choice(&a, "device", device_choices, 0, &dev);
    if (!r) r = cli_choice(&a, "compute_type", compute_choices, 0, &compute);
    const char *model = cli_str(&a, "model", NULL);
    int list = cli_given(&a, "list");
    if (!r && !list && !model && (!from || !to))
        r = cli_usage_error(&a, "give --from and --to (or --model DIR)");
    if (!r && a.n_positional)
        r = cli_usage_error(&a, "unexpected argument '%s' (the text comes from standard input)",
                            a.positional[0]);
    if (r) {
        cli_args_free(&a);
        return r;
    }
    mp.batch_size = (int)batch;

    int status = 0;
    tolk_ctx *ctx = NULL;
    tolk_mt_model *m = NULL;
    char *root = models_root(cli_str(&a, "model_dir", NULL)), *dir = NULL;
    line_reader lr;
    memset(&lr, 0, sizeof lr);
    char **lines = NULL, **outs = NULL;
    long *offs = NULL;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = (int)threads;
    cp.device = dev == 0 ? TOLK_DEVICE_CPU : dev == 1 ? TOLK_DEVICE_CUDA : TOLK_DEVICE_AUTO;
    if (!root || tolk_ctx_new(&cp, &ctx) != TOLK_OK) {
        fprintf(stderr, "%s: cannot create a context (%s)\n", prog,
                dev == 1 ? "no CUDA device" : "out of memory");
        status = 1;
        goto done;
    }
    if (list) {
        char *pairs = NULL;
        if (tolk_mt_list(ctx, root, &pairs) != TOLK_OK) {
            fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
            status = 1;
        } else {
            for (char *s = pairs, *t; s && *s; s = t ? t + 1 : s + strlen(s)) {
                t = strchr(s, ',');
                printf("%.*s\n", t ? (int)(t - s) : (int)strlen(s), s);
            }
            tolk_free(pairs);
        }
        goto done;
    }
    if (model) {
        dir = strdup(model);
    } else if (tolk_mt_find(ctx, root, from, to, &dir) != TOLK_OK) {
        fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
        status = 1;
        goto done;
    }
    tolk_mt_model_params lp = tolk_mt_model_default_params();
    lp.device = cp.device;
    lp.int8 = compute == 1;
    if (!dir || tolk_mt_model_load(ctx, dir, &lp, &m) != TOLK_OK) {
        fprintf(stderr, "tolk: %s\n", dir ? tolk_ctx_last_error(ctx) : "out of memory");
        status = 1;
        goto done;
    }
    lines = malloc((size_t)batch * sizeof *lines);
    outs = calloc((size_t)batch, sizeof *outs);
    if (!lines || !outs) {
        fprintf(stderr, "%s: out of memory\n", prog);
        status = 1;
        goto done;
    }
    offs = malloc((size_t)batch * sizeof *offs);
    if (!offs) {
        fprintf(stderr, "%s: out of memory\n", prog);
        status = 1;
        goto done;
    }
    for (;;) {
        int n = 0;
        long o;
        lr_compact(&lr);
        /* block for the first line, then take what is already there */
        for (;;) {
            while (n < batch && (o = lr_next(&lr)) >= 0)
                offs[n++] = o;
            if (n >= batch || lr.eof) break;
            if (lr_fill(&lr, n == 0)) break;
            if (n > 0) { /* non-blocking: stop when nothing more arrived */
                size_t before = lr.pos;
                while (n < batch && (o = lr_next(&lr)) >= 0)
                    offs[n++] = o;
                if (lr.pos == before) break;
            }
        }
        for (int i = 0; i < n; i++)
            lines[i] = lr.buf + offs[i];
        if (n == 0) break;
        if (tolk_mt_translate_batch(ctx, m, (const char *const *)lines, n, &mp, outs) != TOLK_OK) {
            fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
            status = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            fputs(outs[i], stdout);
            fputc('\n', stdout);
            tolk_free(outs[i]);
            outs[i] = NULL;
        }
        fflush(stdout);
        if (ferror(stdout)) break;
    }
    if (lr.err) {
        fprintf(stderr, "%s: reading standard input: %s\n", prog, strerror(lr.err));
        status = 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: writing to standard output failed\n", prog);
        status = 1;
    }
done:
    tolk_mt_model_free(m);
    tolk_ctx_free(ctx);
    free(root), free(dir), free(lr.buf), free(lines), free(outs), free(offs);
    cli_args_free(&a);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Speech translation into other languages: `tolk translate --to LANG`      */
/* ------------------------------------------------------------------------ */

#define PIVOT_MAX_MODELS 8

struct cli_mt_pivot {
    const char *to; /* target language code (static storage) */
    char *root;     /* the models folder */
    tolk_mt_params params;
    struct {
        char src[8];
        tolk_mt_model *m;
    } models[PIVOT_MAX_MODELS];
    int n_models;
    tolk_mt_model *cur; /* the model for the current file, NULL: no translation */
    char route[64];     /* "en->pt", "de->en (Whisper)->pt" */
};

int cli_mt_pivot_new(const cli_args *a, const char *cmd, cli_mt_pivot **out) {
    *out = NULL;
    int r = 0;
    const char *to = lang_arg(a, "to", &r);
    if (r) return r;
    if (to && strcmp(cmd, "translate") != 0)
        return cli_usage_error(a, "--to %s needs `tolk translate` (speech translation)", to);
    if (!to || !strcmp(to, "en")) {
        if (cli_given(a, "mt_beam_size") || cli_given(a, "mt_model_dir"))
            if (!to) return cli_usage_error(a, "--mt_beam_size and --mt_model_dir need --to LANG");
        return 0; /* English: Whisper's own translate task */
    }
    cli_mt_pivot *pv = calloc(1, sizeof *pv);
    if (!pv) {
        fprintf(stderr, "%s: out of memory\n", a->prog);
        return 1;
    }
    pv->to = to;
    if ((r = parse_mt_params(a, &pv->params, "mt_beam_size"))) {
        free(pv);
        return r;
    }
    pv->root = models_root(cli_str(a, "mt_model_dir", NULL));
    if (!pv->root) {
        free(pv);
        return 1;
    }
    *out = pv;
    return 0;
}

void cli_mt_pivot_free(cli_mt_pivot *pv) {
    if (!pv) return;
    for (int i = 0; i < pv->n_models; i++)
        tolk_mt_model_free(pv->models[i].m);
    free(pv->root);
    free(pv);
}

/* The loaded model src -> pv->to, loading it on first use; NULL when the
 * models folder has none (why, in ctx) or it fails to load. */
static tolk_mt_model *pivot_model(cli_mt_pivot *pv, tolk_ctx *ctx, const char *src, int *failed) {
    for (int i = 0; i < pv->n_models; i++)
        if (!strcmp(pv->models[i].src, src)) return pv->models[i].m;
    *failed = 0;
    char *dir = NULL;
    if (tolk_mt_find(ctx, pv->root, src, pv->to, &dir) != TOLK_OK) return NULL;
    tolk_mt_model_params lp = tolk_mt_model_default_params();
    lp.device = tolk_ctx_device(ctx);
    tolk_mt_model *m = NULL;
    tolk_status st = tolk_mt_model_load(ctx, dir, &lp, &m);
    tolk_free(dir);
    if (st != TOLK_OK) {
        *failed = 1;
        return NULL;
    }
    if (pv->n_models == PIVOT_MAX_MODELS) { /* (never with real inputs) */
        tolk_mt_model_free(pv->models[0].m);
        memmove(pv->models, pv->models + 1, sizeof pv->models[0] * (PIVOT_MAX_MODELS - 1));
        pv->n_models--;
    }
    snprintf(pv->models[pv->n_models].src, sizeof pv->models[0].src, "%s", src);
    pv->models[pv->n_models++].m = m;
    return m;
}

/* The spoken language of path: the most probable on its first 30 s. */
static const char *detect(tolk_ctx *ctx, tolk_state *state, const char *path, char *err, size_t n) {
    tolk_audio_reader *rd = NULL;
    float *buf = malloc((size_t)TOLK_N_SAMPLES * sizeof *buf);
    size_t have = 0, got = 0;
    const char *codes[128];
    float probs[128];
    int k = 0;
    if (!buf || tolk_audio_open(ctx, path, &rd) != TOLK_OK) {
        snprintf(err, n, "%s", buf ? tolk_ctx_last_error(ctx) : "out of memory");
        free(buf);
        return NULL;
    }
    while (have < (size_t)TOLK_N_SAMPLES &&
           tolk_audio_read(ctx, rd, buf + have, (size_t)TOLK_N_SAMPLES - have, &got) == TOLK_OK &&
           got > 0)
        have += got;
    tolk_audio_close(rd);
    tolk_status st =
        have ? tolk_detect_language(state, buf, have, codes, probs, &k) : TOLK_ERR_EMPTY;
    free(buf);
    if (st != TOLK_OK || k < 1) {
        snprintf(err, n, "language identification failed: %s",
                 st == TOLK_ERR_EMPTY ? "no audio" : tolk_state_last_error(state));
        return NULL;
    }
    return codes[0];
}

int cli_mt_pivot_plan(cli_mt_pivot *pv, tolk_ctx *ctx, tolk_state *state, const char *path,
                      tolk_transcribe_params *p) {
    char err[512] = "";
    const char *spoken = p->language;
    pv->cur = NULL;
    if (!spoken) {
        if (!strcmp(path, "-")) {
            fprintf(stderr, "tolk: <stdin>: --to %s with standard input needs --language\n",
                    pv->to);
            return 1;
        }
        spoken = detect(ctx, state, path, err, sizeof err);
        if (!spoken) {
            fprintf(stderr, "tolk: %s: %s\n", path, err);
            return 1;
        }
    }
    p->language = spoken;
    p->task = TOLK_TASK_TRANSCRIBE;
    if (!strcmp(spoken, pv->to)) { /* already in the target language */
        snprintf(pv->route, sizeof pv->route, "%s (no translation)", spoken);
        return 0;
    }
    int failed = 0;
    pv->cur = pivot_model(pv, ctx, spoken, &failed);
    if (pv->cur) {
        snprintf(pv->route, sizeof pv->route, "%s->%s", spoken, pv->to);
        return 0;
    }
    if (!failed && strcmp(spoken, "en") != 0) { /* Whisper to English, then en -> target */
        pv->cur = pivot_model(pv, ctx, "en", &failed);
        if (pv->cur) {
            p->task = TOLK_TASK_TRANSLATE;
            snprintf(pv->route, sizeof pv->route, "%s->en (Whisper)->%s", spoken, pv->to);
            return 0;
        }
    }
    fprintf(stderr, "tolk: %s: cannot translate %s into %s: %s\n", path, spoken, pv->to,
            tolk_ctx_last_error(ctx));
    return 1;
}

int cli_mt_pivot_apply(cli_mt_pivot *pv, tolk_ctx *ctx, const char *path, tolk_result *res,
                       char *summary, size_t n) {
    double t0 = cli_now();
    if (pv->cur && tolk_mt_translate_result(ctx, pv->cur, res, &pv->params) != TOLK_OK) {
        fprintf(stderr, "tolk: %s: translation failed: %s\n", path, tolk_ctx_last_error(ctx));
        return 1;
    }
    /* no text model: the speech is in LANG already, and so is the result */
    snprintf(summary, n, "%s, mt %.3f s", pv->route, cli_now() - t0);
    return 0;
}
