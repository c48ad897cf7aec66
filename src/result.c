/*
 * result.c — the opaque transcription result (tolk.h "Results"): the
 * public accessors, tolk_result_free, and the builder of result.h.
 *
 * ABI: callers see tolk_segment / tolk_word through pointers only, and
 * each carries struct_size (sizeof of this library's struct), so fields
 * appended later are invisible to older callers and detectable by newer
 * ones (TOLK_HAS_FIELD).
 */
#include "result.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_text(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* ---- public accessors ----------------------------------------------------- */

const char *tolk_result_text(const tolk_result *res) {
    return res && res->text ? res->text : "";
}

const char *tolk_result_language(const tolk_result *res) {
    return res ? res->language : "";
}

float tolk_result_language_prob(const tolk_result *res) {
    return res ? res->language_prob : 0.0f;
}

double tolk_result_duration(const tolk_result *res) {
    return res ? res->duration : 0.0;
}

int tolk_result_has_words(const tolk_result *res) {
    return res ? res->has_words : 0;
}

int tolk_result_n_segments(const tolk_result *res) {
    return res ? res->n_segs : 0;
}

const tolk_segment *tolk_result_segment(const tolk_result *res, int i) {
    if (!res || i < 0 || i >= res->n_segs) return NULL;
    return &res->segs[i].pub;
}

const tolk_word *tolk_segment_word(const tolk_segment *seg, int i) {
    if (!seg || i < 0 || i >= seg->n_words) return NULL;
    const tolk_seg_rec *rec = (const tolk_seg_rec *)seg; /* pub is the first member */
    return rec->words ? &rec->words[i] : NULL;
}

/* ---- builder -------------------------------------------------------------- */

tolk_result *tolk_result_new(void) {
    tolk_result *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->text = dup_text("");
    if (!r->text) {
        free(r);
        return NULL;
    }
    r->language_prob = 1.0f;
    return r;
}

int tolk_seg_rec_init(tolk_seg_rec *rec, const tolk_segment *f, const char *text, const int *tokens,
                      int n_tokens) {
    memset(rec, 0, sizeof *rec);
    if (n_tokens < 0) n_tokens = 0;
    rec->text = dup_text(text);
    rec->tokens = tolk_malloc_array((size_t)(n_tokens ? n_tokens : 1), sizeof(int));
    if (!rec->text || !rec->tokens) {
        free(rec->text);
        free(rec->tokens);
        memset(rec, 0, sizeof *rec);
        return 0;
    }
    if (n_tokens) memcpy(rec->tokens, tokens, (size_t)n_tokens * sizeof(int));
    rec->pub.struct_size = sizeof(tolk_segment);
    rec->pub.id = f->id;
    rec->pub.seek = f->seek;
    rec->pub.start = f->start;
    rec->pub.end = f->end;
    rec->pub.text = rec->text;
    rec->pub.tokens = rec->tokens;
    rec->pub.n_tokens = n_tokens;
    rec->pub.temperature = f->temperature;
    rec->pub.avg_logprob = f->avg_logprob;
    rec->pub.compression_ratio = f->compression_ratio;
    rec->pub.no_speech_prob = f->no_speech_prob;
    rec->pub.n_words = 0;
    return 1;
}

static void free_words(tolk_seg_rec *rec) {
    for (int i = 0; rec->words && i < rec->pub.n_words; i++)
        free((char *)rec->words[i].word);
    free(rec->words);
    rec->words = NULL;
    rec->pub.n_words = 0;
}

int tolk_seg_rec_set_words(tolk_seg_rec *rec, const tolk_word *words, int n) {
    free_words(rec);
    if (n <= 0) return 1;
    tolk_word *w = tolk_calloc_array((size_t)n, sizeof *w);
    if (!w) return 0;
    for (int i = 0; i < n; i++) {
        w[i].struct_size = sizeof(tolk_word);
        w[i].word = dup_text(words[i].word);
        w[i].start = words[i].start;
        w[i].end = words[i].end;
        w[i].probability = words[i].probability;
        if (!w[i].word) {
            for (int k = 0; k < i; k++)
                free((char *)w[k].word);
            free(w);
            return 0;
        }
    }
    rec->words = w;
    rec->pub.n_words = n;
    return 1;
}

int tolk_seg_rec_copy(tolk_seg_rec *dst, const tolk_seg_rec *src) {
    if (!tolk_seg_rec_init(dst, &src->pub, src->text, src->tokens, src->pub.n_tokens)) return 0;
    if (!tolk_seg_rec_set_words(dst, src->words, src->pub.n_words)) {
        tolk_seg_rec_clear(dst);
        return 0;
    }
    return 1;
}

void tolk_seg_rec_clear(tolk_seg_rec *rec) {
    if (!rec) return;
    free_words(rec);
    free(rec->text);
    free(rec->tokens);
    memset(rec, 0, sizeof *rec);
}

tolk_seg_rec *tolk_result_push(tolk_result *res, tolk_seg_rec *rec) {
    if (res->n_segs == res->cap) {
        if (res->cap > (1 << 26)) return NULL;
        int cap = res->cap ? res->cap * 2 : 64;
        tolk_seg_rec *v = realloc(res->segs, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        res->segs = v;
        res->cap = cap;
    }
    tolk_seg_rec *d = &res->segs[res->n_segs++];
    *d = *rec; /* the owned buffers move; pub's pointers stay valid */
    memset(rec, 0, sizeof *rec);
    return d;
}

tolk_seg_rec *tolk_result_add_segment(tolk_result *res, const tolk_segment *fields,
                                      const char *text, const int *tokens, int n_tokens) {
    tolk_seg_rec rec;
    if (!tolk_seg_rec_init(&rec, fields, text, tokens, n_tokens)) return NULL;
    tolk_seg_rec *d = tolk_result_push(res, &rec);
    if (!d) tolk_seg_rec_clear(&rec);
    return d;
}

int tolk_result_set_text(tolk_result *res, const char *text) {
    char *t = dup_text(text);
    if (!t) return 0;
    free(res->text);
    res->text = t;
    return 1;
}

void tolk_result_take_text(tolk_result *res, char *text) {
    free(res->text);
    res->text = text;
}

void tolk_result_set_language(tolk_result *res, const char *code) {
    snprintf(res->language, sizeof res->language, "%s", code ? code : "");
}

void tolk_result_free(tolk_result *res) {
    if (!res) return;
    for (int i = 0; i < res->n_segs; i++)
        tolk_seg_rec_clear(&res->segs[i]);
    free(res->segs);
    free(res->text);
    free(res);
}
