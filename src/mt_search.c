/*
 * mt_search.c — greedy and beam search over the translation network, one
 * batch of sentences stepped together (see mt_search.h for the reference
 * behaviour, marian-dev translator/beam_search.cpp and history.h).
 *
 * Per step: one decoder step for all live rows (mt_net.c); then per
 * sentence the output layer over its own shortlist (the rows of the
 * output matrix gathered once per batch with copy_rows) and the backend's
 * `select` op (<unk> masked, top-k of the log-softmax); only the ids and
 * log-probabilities come back to the host, where the beams are updated.
 */
#include "mt_search.h"

#include "select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
    int tok;
    int prev; /* node index, -1 at the start */
} node;

typedef struct sent {
    node *nodes;
    int n_nodes, cap_nodes;
    int U;       /* output columns (shortlist size or the vocabulary) */
    int woff;    /* first row of its gathered output matrix */
    int unk_col; /* column of <unk>, -1 when not scored */
    int k;       /* candidates per row */
    int has_best, best_node;
    float best; /* normalised score of the best final hypothesis */
} sent;

/* Append a node to s; -1 when out of memory. */
static int add_node(sent *s, int tok, int prev) {
    if (s->n_nodes == s->cap_nodes) {
        int cap = s->cap_nodes ? 2 * s->cap_nodes : 64;
        node *n = realloc(s->nodes, (size_t)cap * sizeof *n);
        if (!n) return -1;
        s->nodes = n;
        s->cap_nodes = cap;
    }
    s->nodes[s->n_nodes] = (node){tok, prev};
    return s->n_nodes++;
}

/* A final hypothesis of length len (tokens, </s> included when it ended). */
static void final_hyp(sent *s, int nd, float score, int len, float alpha) {
    float norm = score / powf((float)len, alpha);
    if (!s->has_best || norm > s->best) {
        s->has_best = 1;
        s->best = norm;
        s->best_node = nd;
    }
}

typedef struct cand {
    float score;
    int row, rank;
} cand;

/* Best first; ties: lower row, then lower rank (a fixed order). */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->row != y->row) return x->row - y->row;
    return x->rank - y->rank;
}

typedef struct search {
    tolk_ctx *ctx;
    const tolk_mt_net *net;
    const tolk_mt_search_params *sp;
    const tolk_backend *be;
    int n, kmax, cap;
    sent *s;
    /* device */
    float *wsl, *bsl, *logits;
    int *d_list, *d_roff, *d_ranges, *d_idx;
    float *d_lp;
    size_t ld; /* logits row stride */
    /* host rows: current and next */
    int *r_sent, *r_node, *r_tok, *n_sent, *n_node, *n_tok, *n_parent, *h_ranges, *h_idx;
    float *r_score, *n_score, *h_lp;
    cand *cands;
} search;

static void search_free(search *S) {
    const tolk_backend *be = S->be;
    if (S->s)
        for (int i = 0; i < S->n; i++)
            free(S->s[i].nodes);
    free(S->s);
    be->free(be, S->wsl), be->free(be, S->bsl), be->free(be, S->logits);
    be->free(be, S->d_list), be->free(be, S->d_roff), be->free(be, S->d_ranges);
    be->free(be, S->d_idx), be->free(be, S->d_lp);
    free(S->r_sent), free(S->r_node), free(S->r_tok), free(S->n_sent), free(S->n_node);
    free(S->n_tok), free(S->n_parent), free(S->h_ranges), free(S->h_idx);
    free(S->r_score), free(S->n_score), free(S->h_lp), free(S->cands);
}

/* The output layer of every sentence: its shortlist (gathered rows of the
 * output matrix and bias) or the whole vocabulary. */
static tolk_status setup_outputs(search *S, const int *const *src, const int *len, int **lists) {
    const tolk_mt_net *net = S->net;
    const tolk_backend *be = S->be;
    const int V = net->vocab_tgt, d = net->d;
    const tolk_mt_shortlist *sl = S->sp->shortlist;
    size_t total = 0;
    int umax = 0;
    if (sl) {
        unsigned char *mark = malloc((size_t)V + (size_t)net->vocab_src + 1);
        if (!mark) return tolk_fail(S->ctx, TOLK_ERR_NOMEM, "mt: out of memory");
        for (int i = 0; i < S->n; i++) {
            lists[i] = malloc((size_t)V * sizeof(int));
            if (!lists[i]) {
                free(mark);
                return tolk_fail(S->ctx, TOLK_ERR_NOMEM, "mt: out of memory");
            }
            S->s[i].U = tolk_mt_shortlist_generate(sl, src[i], len[i], S->sp->shortlist_shared,
                                                   mark, lists[i]);
            S->s[i].woff = (int)total;
            total += (size_t)S->s[i].U;
        }
        free(mark);
    } else {
        for (int i = 0; i < S->n; i++) {
            S->s[i].U = V;
            S->s[i].woff = 0;
        }
    }
    for (int i = 0; i < S->n; i++) {
        sent *s = &S->s[i];
        if (s->U > umax) umax = s->U;
        s->unk_col = -1;
        if (S->sp->unk_id >= 0) {
            if (!sl)
                s->unk_col = S->sp->unk_id;
            else
                for (int j = 0; j < s->U; j++)
                    if (lists[i][j] == S->sp->unk_id) s->unk_col = j;
        }
        s->k = S->sp->beam < s->U ? S->sp->beam : s->U;
    }
    S->ld = (size_t)umax;
    S->logits = be->alloc(S->ctx, be, (size_t)S->cap * S->ld * sizeof(float));
    if (!S->logits) return TOLK_ERR_NOMEM;
    if (!sl) return TOLK_OK;
    S->wsl = be->alloc(S->ctx, be, total * (size_t)d * sizeof(float));
    S->bsl = be->alloc(S->ctx, be, total * sizeof(float));
    S->d_list = be->alloc(S->ctx, be, total * sizeof(int));
    if (!S->wsl || !S->bsl || !S->d_list) return TOLK_ERR_NOMEM;
    tolk_status st;
    for (int i = 0; i < S->n; i++) {
        const sent *s = &S->s[i];
        if ((st =
                 be->upload(S->ctx, be, S->d_list + s->woff, lists[i], (size_t)s->U * sizeof(int))))
            return st;
    }
    if ((st = be->copy_rows(S->ctx, be, S->wsl, (size_t)d, NULL, (const float *)net->out.data,
                            (size_t)d, S->d_list, total, (size_t)d)) ||
        (st = be->copy_rows(S->ctx, be, S->bsl, 1, NULL, net->out_b, 1, S->d_list, total, 1)))
        return st;
    return TOLK_OK;
}

/* Logits and selection for rows [r0, r0 + m) of sentence i. */
static tolk_status score_rows(search *S, tolk_mt_work *w, int i, int r0, int m) {
    const tolk_backend *be = S->be;
    const tolk_mt_net *net = S->net;
    const sent *s = &S->s[i];
    const size_t d = (size_t)net->d;
    tolk_bweight W = net->out;
    const float *bias = net->out_b;
    if (S->sp->shortlist) {
        memset(&W, 0, sizeof W);
        W.dtype = TOLK_DT_F32;
        W.rows = s->U;
        W.cols = net->d;
        W.data = S->wsl + (size_t)s->woff * d;
        bias = S->bsl + s->woff;
    }
    float *lg = S->logits + (size_t)r0 * S->ld;
    tolk_status st =
        be->linear(S->ctx, be, lg, S->ld, w->y + (size_t)r0 * d, d, (size_t)m, &W, bias, 0);
    if (st) return st;
    return be->select(S->ctx, be, lg, S->ld, m, s->U, S->d_roff + r0, S->d_ranges, NULL, s->k,
                      S->d_idx + (size_t)r0 * (size_t)S->kmax,
                      S->d_lp + (size_t)r0 * (size_t)S->kmax);
}

/* Expand the m live rows [r0, r0 + m) of sentence i at step t (ids of its
 * columns: list, NULL for the whole vocabulary) into the next rows,
 * appended at *nb; finished hypotheses go to the sentence's best. */
static tolk_status expand(search *S, int i, const int *list, int r0, int m, int t, int src_len,
                          int *nb) {
    sent *s = &S->s[i];
    const tolk_mt_search_params *sp = S->sp;
    const int keep = t == 0 ? sp->beam : m; /* Marian: beam-size start hypotheses */
    int nc = 0;
    for (int r = r0; r < r0 + m; r++)
        for (int j = 0; j < s->k; j++) {
            float lp = S->h_lp[(size_t)r * (size_t)S->kmax + (size_t)j];
            if (!(lp > -INFINITY)) continue; /* masked (<unk>) */
            S->cands[nc++] = (cand){S->r_score[r] + lp, r, j};
        }
    qsort(S->cands, (size_t)nc, sizeof *S->cands, cand_cmp);
    /* Marian: at max-length-factor x source length every hypothesis is final */
    const int last =
        (float)(t + 1) >= sp->max_length_factor * (float)src_len || t + 2 >= TOLK_MT_MAX_POS;
    for (int c = 0; c < nc && c < keep; c++) {
        const cand *x = &S->cands[c];
        const int col = S->h_idx[(size_t)x->row * (size_t)S->kmax + (size_t)x->rank];
        const int tok = list ? list[col] : col;
        const int nd = add_node(s, tok, S->r_node[x->row]);
        if (nd < 0) return tolk_fail(S->ctx, TOLK_ERR_NOMEM, "mt: out of memory");
        if (tok == sp->eos_id || last) {
            final_hyp(s, nd, x->score, t + 1, sp->normalize);
            continue;
        }
        S->n_node[*nb] = nd;
        S->n_score[*nb] = x->score;
        S->n_tok[*nb] = tok;
        S->n_sent[*nb] = i;
        S->n_parent[*nb] = x->row;
        (*nb)++;
    }
    return TOLK_OK;
}

/* The tokens of sentence i's best hypothesis, </s> dropped. */
static tolk_status traceback(search *S, int i, int **out, int *out_len) {
    const sent *s = &S->s[i];
    int n = 0;
    for (int nd = s->has_best ? s->best_node : -1; nd >= 0; nd = s->nodes[nd].prev)
        n++;
    int *ids = malloc((size_t)(n ? n : 1) * sizeof(int));
    if (!ids) return tolk_fail(S->ctx, TOLK_ERR_NOMEM, "mt: out of memory");
    int k = n;
    for (int nd = s->has_best ? s->best_node : -1; nd >= 0; nd = s->nodes[nd].prev)
        ids[--k] = s->nodes[nd].tok;
    if (n > 0 && ids[n - 1] == S->sp->eos_id) n--;
    *out = ids;
    *out_len = n;
    return TOLK_OK;
}

#define ALLOC_N(p, n) ((p) = malloc((size_t)(n) * sizeof *(p)))

tolk_status tolk_mt_search(tolk_ctx *ctx, const tolk_mt_net *net, const tolk_mt_search_params *sp,
                           int n, const int *const *src, const int *len, int **out, int *out_len) {
    if (!net || !sp || n < 1 || !src || !len || !out || !out_len || sp->beam < 1 ||
        sp->beam > TOLK_SELECT_MAX_K)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mt: bad search arguments");
    for (int i = 0; i < n; i++)
        out[i] = NULL, out_len[i] = 0;
    search S;
    memset(&S, 0, sizeof S);
    S.ctx = ctx, S.net = net, S.sp = sp, S.be = net->be, S.n = n;
    S.kmax = sp->beam;
    S.cap = n * sp->beam;
    const tolk_backend *be = net->be;
    tolk_mt_work *w = NULL;
    int **lists = calloc((size_t)n, sizeof *lists);
    int *ids = NULL;
    tolk_status st = TOLK_OK;
    S.s = calloc((size_t)n, sizeof *S.s);
    ALLOC_N(S.r_sent, S.cap), ALLOC_N(S.r_node, S.cap), ALLOC_N(S.r_tok, S.cap);
    ALLOC_N(S.n_sent, S.cap), ALLOC_N(S.n_node, S.cap), ALLOC_N(S.n_tok, S.cap);
    ALLOC_N(S.n_parent, S.cap), ALLOC_N(S.h_ranges, 2 * S.cap), ALLOC_N(S.h_idx, S.cap * S.kmax);
    ALLOC_N(S.r_score, S.cap), ALLOC_N(S.n_score, S.cap), ALLOC_N(S.h_lp, S.cap * S.kmax);
    ALLOC_N(S.cands, S.cap * S.kmax);
    size_t T = 0;
    for (int i = 0; i < n; i++)
        T += (size_t)len[i];
    ALLOC_N(ids, T);
    if (!lists || !S.s || !S.r_sent || !S.r_node || !S.r_tok || !S.n_sent || !S.n_node ||
        !S.n_tok || !S.n_parent || !S.h_ranges || !S.h_idx || !S.r_score || !S.n_score || !S.h_lp ||
        !S.cands || !ids) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
        goto done;
    }
    for (int i = 0, o = 0; i < n; i++) {
        memcpy(ids + o, src[i], (size_t)len[i] * sizeof(int));
        o += len[i];
    }
    /* device buffers: the selection's outputs and the <unk> mask ranges */
    S.d_idx = be->alloc(ctx, be, (size_t)S.cap * (size_t)S.kmax * sizeof(int));
    S.d_lp = be->alloc(ctx, be, (size_t)S.cap * (size_t)S.kmax * sizeof(float));
    S.d_roff = be->alloc(ctx, be, (size_t)(S.cap + 1) * sizeof(int));
    S.d_ranges = be->alloc(ctx, be, (size_t)S.cap * 2 * sizeof(int));
    if (!S.d_idx || !S.d_lp || !S.d_roff || !S.d_ranges) {
        st = TOLK_ERR_NOMEM;
        goto done;
    }
    {
        int *roff = malloc((size_t)(S.cap + 1) * sizeof(int));
        if (!roff) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "mt: out of memory");
            goto done;
        }
        for (int r = 0; r <= S.cap; r++)
            roff[r] = r;
        st = be->upload(ctx, be, S.d_roff, roff, (size_t)(S.cap + 1) * sizeof(int));
        free(roff);
        if (st) goto done;
    }
    if ((st = setup_outputs(&S, src, len, lists))) goto done;
    if ((st = tolk_mt_work_new(ctx, net, n, len, S.cap, &w))) goto done;
    if ((st = tolk_mt_encode(ctx, w, ids))) goto done;

    int B = n;
    for (int r = 0; r < n; r++) {
        S.r_sent[r] = r, S.r_node[r] = -1, S.r_tok[r] = 0, S.r_score[r] = 0.0f;
        S.n_parent[r] = r;
    }
    for (int t = 0; B > 0; t++) {
        if ((st = tolk_mt_step(ctx, w, B, t, S.r_tok, S.r_sent, t ? S.n_parent : NULL))) goto done;
        for (int r = 0; r < B; r++) {
            const sent *s = &S.s[S.r_sent[r]];
            S.h_ranges[2 * r] = s->unk_col < 0 ? 0 : s->unk_col;
            S.h_ranges[2 * r + 1] = s->unk_col < 0 ? 0 : s->unk_col + 1;
        }
        if ((st = be->upload(ctx, be, S.d_ranges, S.h_ranges, (size_t)B * 2 * sizeof(int))))
            goto done;
        /* the output layer and selection: all rows at once over the whole
         * vocabulary, or per sentence over its shortlist (rows adjacent) */
        if (!sp->shortlist) {
            if ((st = score_rows(&S, w, S.r_sent[0], 0, B))) goto done;
        } else
            for (int r0 = 0; r0 < B;) {
                int r1 = r0 + 1;
                while (r1 < B && S.r_sent[r1] == S.r_sent[r0])
                    r1++;
                if ((st = score_rows(&S, w, S.r_sent[r0], r0, r1 - r0))) goto done;
                r0 = r1;
            }
        const size_t nk = (size_t)B * (size_t)S.kmax;
        if ((st = be->download(ctx, be, S.h_idx, S.d_idx, nk * sizeof(int))) ||
            (st = be->download(ctx, be, S.h_lp, S.d_lp, nk * sizeof(float))))
            goto done;
        /* select wrote k_i per row contiguously from each group's start:
         * spread them to kmax slots per row (backwards, k_i <= kmax) */
        for (int r0 = 0; r0 < B;) {
            int r1 = r0 + 1;
            while (r1 < B && S.r_sent[r1] == S.r_sent[r0])
                r1++;
            const int k = S.s[S.r_sent[r0]].k;
            if (k < S.kmax)
                for (int r = r1 - 1; r >= r0; r--)
                    for (int j = k - 1; j >= 0; j--) {
                        size_t from =
                            (size_t)r0 * (size_t)S.kmax + (size_t)(r - r0) * (size_t)k + (size_t)j;
                        size_t to = (size_t)r * (size_t)S.kmax + (size_t)j;
                        S.h_idx[to] = S.h_idx[from];
                        S.h_lp[to] = S.h_lp[from];
                    }
            r0 = r1;
        }
        int nb = 0;
        for (int r0 = 0; r0 < B;) {
            int r1 = r0 + 1, i = S.r_sent[r0];
            while (r1 < B && S.r_sent[r1] == i)
                r1++;
            if ((st = expand(&S, i, lists[i], r0, r1 - r0, t, len[i], &nb))) goto done;
            r0 = r1;
        }
        /* the next rows */
        memcpy(S.r_sent, S.n_sent, (size_t)nb * sizeof(int));
        memcpy(S.r_node, S.n_node, (size_t)nb * sizeof(int));
        memcpy(S.r_tok, S.n_tok, (size_t)nb * sizeof(int));
        memcpy(S.r_score, S.n_score, (size_t)nb * sizeof(float));
        B = nb;
    }
    for (int i = 0; i < n; i++)
        if ((st = traceback(&S, i, &out[i], &out_len[i]))) goto done;
done:
    if (st)
        for (int i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL, out_len[i] = 0;
        }
    tolk_mt_work_free(w);
    if (lists)
        for (int i = 0; i < n; i++)
            free(lists[i]);
    free(lists);
    free(ids);
    search_free(&S);
    return st;
}
