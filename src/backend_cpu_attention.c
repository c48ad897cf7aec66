/*
 * backend_cpu_attention.c — the CPU backend's attention ops (backend.h:
 * attention, attention_desc, attn_weights): multi-head scaled dot-product
 * attention batched over sequences of different lengths, in float32, with
 * float16 K/V (TOLK_ATTN_KV_F16) and a float16 output
 * (TOLK_ATTN_OUT_F16, through backend_host_half.c) where the flags ask.
 * Many-query sequences (the encoder, prompts) go through sgemm row blocks;
 * few-query rows (decoder steps) sweep the keys once for all heads of a
 * task (att_few). Reference: openai-whisper's
 * MultiHeadAttention.qkv_attention, softmax(q k^T / sqrt(d_head)) v.
 * Threads and OpenBLAS as in backend_cpu.c (backend_cpu_internal.h).
 */
#include "backend_cpu_internal.h"
#include "backend_host_half.h"
#include "scratch.h"
#include "weights.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows of the score matrix one attention task holds at a time (the
 * large-query path), per thread: 256 x n_kv floats (1.5 MB for 1500 keys;
 * 6% faster than 128 rows on the base encoder). */
#define ATT_ROW_BLOCK 256
/* Few-query attention: key rows prefetched this far ahead of the sweep
 * (a key row of the decoder's caches is 2 d floats, often a page: the
 * hardware prefetchers stop at page ends). */
#define ATT_PREFETCH 6
/* Queries at or above this count take the sgemm attention path. */
#define ATT_GEMM_MIN_Q 32
/* Few-query rows of sequences sharing keys processed together (at most). */
#define ATT_GROUP_ROWS 32

/* ------------------------------------------------------------------------ */
/* Attention over host sequences                                            */
/* ------------------------------------------------------------------------ */

/* Keys query row i of s may see: all n_kv, or q_pos0 + i + 1 when causal. */
static size_t att_visible(const tolk_attn_seq *s, size_t i) {
    if (!s->causal) return (size_t)s->n_kv;
    return (size_t)s->q_pos0 + i + 1;
}

/* q · k over n floats (one head's slice). The one dot product of the
 * few-query path: every (row, head, key) score is this same code. */
static inline float att_dot(const float *q, const float *k, int n) {
    float d = 0.0f;
    OMP(simd reduction(+ : d))
    for (int c = 0; c < n; c++)
        d += q[c] * k[c];
    return d;
}

/* q · k over n elements with k float16 (TOLK_KV_F16 caches); a fixed
 * order (8 lanes over the multiples of 8, their sum, the scalar tail). */
static inline float att_dot_h(const float *q, const uint16_t *k, int n) {
    int c = 0;
    float d = 0.0f;
#ifdef TOLK_HAVE_F16C_FMA
    __m256 a = _mm256_setzero_ps();
    for (; c + 8 <= n; c += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + c))), a);
    d = tolk_cpu_hsum8(a);
#endif
    for (; c < n; c++)
        d += q[c] * tolk_f16_to_f32(k[c]);
    return d;
}

/* o[c] += p * v[c] for c < n, v float16. */
static inline void att_axpy_h(float *o, float p, const uint16_t *v, int n) {
    int c = 0;
#ifdef TOLK_HAVE_F16C_FMA
    const __m256 pv = _mm256_set1_ps(p);
    for (; c + 8 <= n; c += 8)
        _mm256_storeu_ps(
            o + c, _mm256_fmadd_ps(pv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + c))),
                                   _mm256_loadu_ps(o + c)));
#endif
    for (; c < n; c++)
        o[c] += p * tolk_f16_to_f32(v[c]);
}

/* A block of up to ATT_ROW_BLOCK query rows [i0, i0 + nb) of one head:
 * scores = scale Q K^T (sgemm), causal mask, row softmax, out = P V
 * (sgemm). sc holds ATT_ROW_BLOCK * n_kv floats. */
static void att_block(const tolk_attn_seq *s, size_t h, int d_head, size_t ldq, size_t ldkv,
                      size_t ldo, float scale, size_t i0, size_t nb, int kv16, float *sc) {
    size_t nk = att_visible(s, i0 + nb - 1); /* keys the block's last row sees */
    const float *K = s->k + h, *V = s->v + h;
    size_t ldk = ldkv;
    if (kv16) { /* the head's keys and values widened after the scores' room */
        float *kf = sc + ATT_ROW_BLOCK * nk, *vf = kf + nk * (size_t)d_head;
        const uint16_t *k16 = (const uint16_t *)(const void *)s->k + h;
        const uint16_t *v16 = (const uint16_t *)(const void *)s->v + h;
        for (size_t j = 0; j < nk; j++) {
            tolk_f16_to_f32_n(k16 + j * ldkv, kf + j * (size_t)d_head, (size_t)d_head);
            tolk_f16_to_f32_n(v16 + j * ldkv, vf + j * (size_t)d_head, (size_t)d_head);
        }
        K = kf, V = vf, ldk = (size_t)d_head;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk, d_head, scale,
                s->q + i0 * ldq + h, (int)ldq, K, (int)ldk, 0.0f, sc, (int)nk);
    for (size_t r = 0; r < nb; r++) {
        float *row = sc + r * nk;
        size_t vis = att_visible(s, i0 + r);
        tolk_cpu_softmax_row(row, vis);
        for (size_t j = vis; j < nk; j++)
            row[j] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, d_head, (int)nk, 1.0f, sc,
                (int)nk, V, (int)ldk, 0.0f, s->out + i0 * ldo + h, (int)ldo);
}

/* The few-query path (decoder steps), heads [h0, h1) of one unit: the
 * rows of members[0..gn), sequences that attend to the SAME keys and
 * values — the beams of one window in cross-attention, or the few rows of
 * one causal sequence over its cache (gn = 1). Keys are swept in order
 * with every head of the range inside, so each key and value row is read
 * once, contiguously, for all the unit's rows and heads. (Head by head, a
 * sweep would stride a whole K/V row — 2 d floats, a 4 KiB page for base
 * — from one key to the next: a TLB miss and no prefetch per key, which
 * made cross-attention half of a batched decoder step.)
 * Per (row, head) the arithmetic is fixed — att_dot in key order, the
 * softmax over the row's visible keys, values accumulated in key order —
 * whatever the unit, the head range or the batch: rows stay exact
 * (TOLK_LINEAR_ROW_EXACT's promise, for attention). Rows total at most
 * ATT_GROUP_ROWS; sc holds (h1 - h0) * rows * n_kv floats. */
static void att_few(const tolk_attn_seq *seqs, const int *members, int gn, int h0, int h1,
                    int d_head, size_t ldq, size_t ldkv, size_t ldo, float scale, int kv16,
                    float *sc) {
    const float *qp[ATT_GROUP_ROWS];
    float *op[ATT_GROUP_ROWS];
    size_t vis[ATT_GROUP_ROWS];
    size_t R = 0, nk = 0;
    for (int m = 0; m < gn; m++) {
        const tolk_attn_seq *s = &seqs[members[m]];
        for (size_t i = 0; i < (size_t)s->n_q; i++, R++) {
            qp[R] = s->q + i * ldq;
            op[R] = s->out + i * ldo;
            vis[R] = att_visible(s, i);
            if (vis[R] > nk) nk = vis[R];
        }
    }
    const tolk_attn_seq *s0 = &seqs[members[0]];
    const size_t H = (size_t)(h1 - h0), dh = (size_t)d_head, hb = (size_t)h0 * dh;
    const size_t span = H * dh; /* elements of a key row the task reads */
    if (kv16) {
        const uint16_t *K = (const uint16_t *)(const void *)s0->k + hb;
        for (size_t j = 0; j < nk; j++) {
            const uint16_t *k = K + j * ldkv;
            if (j + ATT_PREFETCH < nk)
                for (size_t f = 0; f < span; f += 32)
                    __builtin_prefetch(k + ATT_PREFETCH * ldkv + f);
            for (size_t hh = 0; hh < H; hh++, k += dh)
                for (size_t r = 0; r < R; r++)
                    if (j < vis[r])
                        sc[(hh * R + r) * nk + j] =
                            att_dot_h(qp[r] + hb + hh * dh, k, d_head) * scale;
        }
    }
    for (size_t j = 0; j < nk && !kv16; j++) {
        const float *k = s0->k + j * ldkv + hb;
        if (j + ATT_PREFETCH < nk)
            for (size_t f = 0; f < span; f += 16)
                __builtin_prefetch(k + ATT_PREFETCH * ldkv + f);
        for (size_t hh = 0; hh < H; hh++, k += dh)
            for (size_t r = 0; r < R; r++)
                if (j < vis[r])
                    sc[(hh * R + r) * nk + j] = att_dot(qp[r] + hb + hh * dh, k, d_head) * scale;
    }
    for (size_t hh = 0; hh < H; hh++)
        for (size_t r = 0; r < R; r++) {
            tolk_cpu_softmax_row(sc + (hh * R + r) * nk, vis[r]);
            float *o = op[r] + hb + hh * dh;
            for (size_t c = 0; c < dh; c++)
                o[c] = 0.0f;
        }
    if (kv16) {
        const uint16_t *V = (const uint16_t *)(const void *)s0->v + hb;
        for (size_t j = 0; j < nk; j++) {
            const uint16_t *v = V + j * ldkv;
            if (j + ATT_PREFETCH < nk)
                for (size_t f = 0; f < span; f += 32)
                    __builtin_prefetch(v + ATT_PREFETCH * ldkv + f);
            for (size_t hh = 0; hh < H; hh++, v += dh)
                for (size_t r = 0; r < R; r++)
                    if (j < vis[r])
                        att_axpy_h(op[r] + hb + hh * dh, sc[(hh * R + r) * nk + j], v, d_head);
        }
    }
    for (size_t j = 0; j < nk && !kv16; j++) {
        const float *v = s0->v + j * ldkv + hb;
        if (j + ATT_PREFETCH < nk)
            for (size_t f = 0; f < span; f += 16)
                __builtin_prefetch(v + ATT_PREFETCH * ldkv + f);
        for (size_t hh = 0; hh < H; hh++, v += dh)
            for (size_t r = 0; r < R; r++) {
                if (j >= vis[r]) continue;
                const float p = sc[(hh * R + r) * nk + j];
                float *o = op[r] + hb + hh * dh;
                OMP(simd)
                for (size_t c = 0; c < dh; c++)
                    o[c] += p * v[c];
            }
    }
}

/* A unit of attention work: a row block of a many-query sequence, one
 * head (nb > 0); or heads [head, h1) of a few-query unit (gn members:
 * sequences sharing keys, or one causal sequence). */
typedef struct att_task {
    int seq;
    int head, h1;
    int i0, nb; /* row block */
    int g0, gn; /* members[g0 .. g0 + gn) */
} att_task;

/* The attention op over host sequences; kv16: their k / v point at
 * float16 elements (cast; ldkv in elements). */
static tolk_status attention_impl(tolk_ctx *ctx, const tolk_attn_seq *seqs, int n_seqs, int n_head,
                                  int d_head, size_t ldq, size_t ldkv, size_t ldo, float scale,
                                  int kv16) {
    if (n_seqs == 0) return TOLK_OK;
    if (!seqs || n_seqs < 0 || n_head < 1 || d_head < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attention: bad arguments");
    size_t width = (size_t)n_head * (size_t)d_head;
    if (ldq < width || ldkv < width || ldo < width || ldkv > INT32_MAX || ldq > INT32_MAX ||
        ldo > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attention: bad strides");
    size_t max_kv = 0, n_blocks = 0;
    for (int i = 0; i < n_seqs; i++) {
        const tolk_attn_seq *s = &seqs[i];
        if (!s->q || !s->k || !s->v || !s->out || s->n_q < 1 || s->n_kv < 1 ||
            (s->causal && (s->q_pos0 < 0 || (int64_t)s->q_pos0 + s->n_q > s->n_kv)))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "backend_cpu: attention: bad sequence %d (n_q %d, n_kv %d, pos0 %d)",
                             i, s->n_q, s->n_kv, s->q_pos0);
        if ((size_t)s->n_kv > max_kv) max_kv = (size_t)s->n_kv;
        if (s->n_q >= ATT_GEMM_MIN_Q)
            n_blocks += ((size_t)s->n_q + ATT_ROW_BLOCK - 1) / ATT_ROW_BLOCK;
    }
    /* at most n_seqs few-query units, each cut into at most n_head tasks */
    size_t cap = n_blocks * (size_t)n_head + (size_t)n_seqs * (size_t)n_head;
    att_task *units = malloc(((size_t)n_seqs + n_blocks) * sizeof *units);
    att_task *tasks = malloc(cap * sizeof *tasks);
    int *members = malloc((size_t)n_seqs * sizeof(int));
    char *grouped = calloc((size_t)n_seqs, 1);
    if (!units || !tasks || !members || !grouped) {
        free(units), free(tasks), free(members), free(grouped);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: attention: out of memory");
    }
    /* Units of work: row blocks (per head below); few-query units — a
     * group of sequences sharing keys, or one causal sequence — each
     * with its rows and widest key count (for the scratch). */
    size_t nu = 0, n_few = 0, few_rows = 0;
    int n_members = 0;
    for (int i = 0; i < n_seqs; i++) {
        const tolk_attn_seq *s = &seqs[i];
        if (s->n_q >= ATT_GEMM_MIN_Q) {
            for (int i0 = 0; i0 < s->n_q; i0 += ATT_ROW_BLOCK)
                units[nu++] = (att_task){
                    i, 0, 0, i0, s->n_q - i0 < ATT_ROW_BLOCK ? s->n_q - i0 : ATT_ROW_BLOCK, 0, 0};
            continue;
        }
        if (grouped[i]) continue;
        int g0 = n_members, rows = s->n_q;
        members[n_members++] = i;
        grouped[i] = 1;
        for (int j = i + 1; j < n_seqs && !s->causal; j++) {
            const tolk_attn_seq *t = &seqs[j];
            if (grouped[j] || t->causal || t->n_q >= ATT_GEMM_MIN_Q || t->k != s->k ||
                t->v != s->v || t->n_kv != s->n_kv || rows + t->n_q > ATT_GROUP_ROWS)
                continue;
            members[n_members++] = j;
            grouped[j] = 1;
            rows += t->n_q;
        }
        if ((size_t)rows > few_rows) few_rows = (size_t)rows;
        n_few++;
        units[nu++] = (att_task){i, 0, 0, 0, 0, g0, n_members - g0};
    }
    int nt = tolk_cpu_threads(ctx);
    /* Heads per few-query task: all of them while there are units enough
     * for every thread twice over; fewer (halving) otherwise. */
    int hc = n_head;
    while (hc > 1 && n_few * (size_t)((n_head + hc - 1) / hc) < 2 * (size_t)nt)
        hc = (hc + 1) / 2;
    size_t n_tasks = 0;
    for (size_t u = 0; u < nu; u++) {
        const int step = units[u].nb > 0 ? 1 : hc;
        for (int hh = 0; hh < n_head; hh += step) {
            tasks[n_tasks] = units[u];
            tasks[n_tasks].head = hh;
            tasks[n_tasks++].h1 = hh + step < n_head ? hh + step : n_head;
        }
    }
    tolk_cpu_blas_single();
    /* row blocks: the scores, and with kv16 the head's keys and values */
    size_t scratch =
        n_blocks ? ATT_ROW_BLOCK * max_kv + (kv16 ? 2 * max_kv * (size_t)d_head : 0) : 0;
    if (n_few && (size_t)hc * few_rows * max_kv > scratch) scratch = (size_t)hc * few_rows * max_kv;
    if ((size_t)nt > n_tasks) nt = (int)n_tasks;
    int failed = 0;
    OMP(parallel num_threads(nt)) {
        float *sc = tolk_thread_scratch(TOLK_SCRATCH_WORK, scratch * sizeof(float));
        if (!sc) {
            OMP(atomic write)
            failed = 1;
        }
        long long ti;
        OMP(for schedule(dynamic, 1))
        for (ti = 0; ti < (long long)n_tasks; ti++) {
            if (!sc) continue;
            const att_task *t = &tasks[ti];
            if (t->nb > 0)
                att_block(&seqs[t->seq], (size_t)t->head * (size_t)d_head, d_head, ldq, ldkv, ldo,
                          scale, (size_t)t->i0, (size_t)t->nb, kv16, sc);
            else
                att_few(seqs, members + t->g0, t->gn, t->head, t->h1, d_head, ldq, ldkv, ldo, scale,
                        kv16, sc);
        }
    }
    free(units), free(tasks), free(members), free(grouped);
    if (failed) return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: attention: out of memory");
    return TOLK_OK;
}

tolk_status tolk_cpu_attention(tolk_ctx *ctx, const tolk_backend *be, const tolk_attn_seq *seqs,
                               int n_seqs, int n_head, int d_head, size_t ldq, size_t ldkv,
                               size_t ldo, float scale, int flags) {
    if ((flags & ~(TOLK_ATTN_OUT_F16 | TOLK_ATTN_QKV_F16)) ||
        ((flags & TOLK_ATTN_QKV_F16) && !(flags & TOLK_ATTN_OUT_F16)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attention: flags %d", flags);
    if (flags) /* float16 operands through the host twin */
        return tolk_host_half_attention(ctx, be, seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo,
                                        scale, (flags & TOLK_ATTN_QKV_F16) != 0);
    return attention_impl(ctx, seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale, 0);
}

/* ------------------------------------------------------------------------ */
/* Attention over descriptors, attention weights                            */
/* ------------------------------------------------------------------------ */

/* Sequences per attention_impl call of attention_desc. */
#define DESC_BATCH 64

/* attention_desc: the descriptors (host memory
 * here) as host sequences, DESC_BATCH at a time; k / v of esz-byte
 * elements (4, or 2 for float16). */
static tolk_status attention_desc_impl(tolk_ctx *ctx, const float *q, size_t ldq, const void *k,
                                       const void *v, size_t ldkv, size_t esz, float *out,
                                       size_t ldo, const tolk_attn_desc *desc, int n_seqs,
                                       int n_head, int d_head, float scale) {
    if (n_seqs <= 0) return TOLK_OK;
    if (!q || !k || !v || !out || !desc)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attention_desc: NULL argument");
    tolk_attn_seq as[DESC_BATCH];
    for (int i0 = 0; i0 < n_seqs; i0 += DESC_BATCH) {
        int n = 0;
        for (int i = i0; i < n_seqs && i < i0 + DESC_BATCH; i++) {
            const tolk_attn_desc *d = &desc[i];
            if (d->n_q <= 0) continue;
            const size_t kv_off = (size_t)d->kv_row * ldkv * esz; /* bytes */
            as[n++] = (tolk_attn_seq){q + (size_t)d->q_row * ldq,
                                      (const float *)(const void *)((const char *)k + kv_off),
                                      (const float *)(const void *)((const char *)v + kv_off),
                                      out + (size_t)d->q_row * ldo,
                                      d->n_q,
                                      d->n_kv,
                                      d->causal,
                                      d->q_pos0};
        }
        tolk_status st =
            attention_impl(ctx, as, n, n_head, d_head, ldq, ldkv, ldo, scale, esz == 2);
        if (st) return st;
    }
    return TOLK_OK;
}

/* TOLK_ATTN_APPEND (backend.h): every causal sequence's new key and value
 * (columns [w, 2w) and [2w, 3w) of its fused q row, w = n_head d_head)
 * into key row q_pos0 of k and v (esz-byte elements: float32, or float16
 * rounded to nearest even), before the attention reads them. */
static tolk_status append_new_kv(tolk_ctx *ctx, const float *q, size_t ldq, const void *k,
                                 const void *v, size_t ldkv, size_t esz, const tolk_attn_desc *desc,
                                 int n_seqs, int max_n_q, int n_head, int d_head) {
    const size_t w = (size_t)n_head * (size_t)d_head;
    if (!q || !k || !v || !desc || max_n_q > 1 || ldq < 3 * w || ldkv < w)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "backend_cpu: attention_desc: bad K/V append (one new row per sequence, "
                         "fused q rows)");
    for (int i = 0; i < n_seqs; i++) {
        const tolk_attn_desc *d = &desc[i];
        if (!d->causal || d->n_q != 1) continue;
        const float *src = q + (size_t)d->q_row * ldq + w;
        const size_t row = (size_t)d->kv_row + (size_t)d->q_pos0;
        char *kr = (char *)(uintptr_t)k + row * ldkv * esz,
             *vr = (char *)(uintptr_t)v + row * ldkv * esz;
        if (esz == sizeof(float)) {
            memcpy(kr, src, w * sizeof(float));
            memcpy(vr, src + w, w * sizeof(float));
        } else {
            tolk_f32_to_f16_n(src, (uint16_t *)(void *)kr, w);
            tolk_f32_to_f16_n(src + w, (uint16_t *)(void *)vr, w);
        }
    }
    return TOLK_OK;
}

/* backend.h attention_desc: the K/V append first; a float16 output through
 * the host twin. */
tolk_status tolk_cpu_attention_desc(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                    size_t ldq, const void *k, const void *v, size_t ldkv,
                                    void *out, size_t ldo, const tolk_attn_desc *desc, int n_seqs,
                                    int max_n_q, int max_n_kv, int n_head, int d_head, float scale,
                                    int flags) {
    if (flags & ~(TOLK_ATTN_KV_F16 | TOLK_ATTN_OUT_F16 | TOLK_ATTN_APPEND))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attention_desc: flags %d", flags);
    if ((flags & TOLK_ATTN_APPEND) && n_seqs > 0 && max_n_q > 0) {
        tolk_status st = append_new_kv(
            ctx, q, ldq, k, v, ldkv, (flags & TOLK_ATTN_KV_F16) ? sizeof(uint16_t) : sizeof(float),
            desc, n_seqs, max_n_q, n_head, d_head);
        if (st) return st;
    }
    flags &= ~TOLK_ATTN_APPEND;
    if (flags & TOLK_ATTN_OUT_F16)
        return tolk_host_half_attention_desc(ctx, be, q, ldq, k, v, ldkv, out, ldo, desc, n_seqs,
                                             max_n_q, max_n_kv, n_head, d_head, scale, flags);
    return attention_desc_impl(ctx, q, ldq, k, v, ldkv,
                               (flags & TOLK_ATTN_KV_F16) ? sizeof(uint16_t) : sizeof(float), out,
                               ldo, desc, n_seqs, n_head, d_head, scale);
}

/* Query rows one attn_weights task scores at a time (one sgemm). */
#define AW_ROW_BLOCK 32

/* attn_weights (backend.h): per (head, block of rows) one sgemm of scaled
 * dot products straight into out, then a softmax per row. The plain
 * reference loop is ref_attn_weights in tests/test_align.c. */
tolk_status tolk_cpu_attn_weights(tolk_ctx *ctx, const tolk_backend *be, const float *q, size_t ldq,
                                  const float *k, size_t ldk, int n_q, int n_keys, const int *heads,
                                  int n_heads, int d_head, float scale, float *out) {
    (void)be;
    if (n_q == 0 || n_heads == 0) return TOLK_OK;
    if (!q || !k || !out || !heads || n_q < 0 || n_keys < 1 || n_heads < 0 || d_head < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attn_weights: bad arguments");
    for (int p = 0; p < n_heads; p++)
        if (heads[p] < 0 || (size_t)(heads[p] + 1) * (size_t)d_head > ldq ||
            (size_t)(heads[p] + 1) * (size_t)d_head > ldk)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: attn_weights: bad head %d",
                             heads[p]);
    const int blocks = (n_q + AW_ROW_BLOCK - 1) / AW_ROW_BLOCK;
    long long t;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(dynamic))
    for (t = 0; t < (long long)n_heads * blocks; t++) {
        const int p = (int)(t / blocks), i0 = (int)(t % blocks) * AW_ROW_BLOCK;
        const int nb = n_q - i0 < AW_ROW_BLOCK ? n_q - i0 : AW_ROW_BLOCK;
        const size_t h = (size_t)heads[p] * (size_t)d_head;
        float *o = out + ((size_t)p * (size_t)n_q + (size_t)i0) * (size_t)n_keys;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, n_keys, d_head, scale,
                    q + (size_t)i0 * ldq + h, (int)ldq, k + h, (int)ldk, 0.0f, o, n_keys);
        for (int r = 0; r < nb; r++)
            tolk_cpu_softmax_row(o + (size_t)r * (size_t)n_keys, (size_t)n_keys);
    }
    return TOLK_OK;
}
