/*
 * state.c — tolk_state: the per-stream working state of transcription (its
 * own context for error messages, the model's network, a tokenizer built
 * from the model's files, the mel front end, the decoder KV cache and the
 * per-window buffers), and the glue that lets the search (decode.h) drive
 * the network: a logits provider over tolk_net_decode and the KV cache,
 * and a detokenizer for the compression ratio.
 */
#include "decode.h"
#include "model.h"
#include "net.h"
#include "timings.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static tolk_status make_tokenizer(tolk_ctx *ctx, const tolk_weights *w, tolk_tokenizer **out) {
    const int nv = w->hp.n_vocab;
    if (w->tokenizer_path) return tolk_tokenizer_new_from_file(ctx, w->tokenizer_path, nv, out);
    if (w->vocab.n > 0) return tolk_tokenizer_new_from_vocab(ctx, &w->vocab, nv, out);
    struct stat sb;
    if (w->path && stat(w->path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return tolk_tokenizer_new_from_dir(ctx, w->path, nv, out);
    return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: the model carries no vocabulary",
                     w->path ? w->path : "model");
}

static void fill_tokens(tolk_state *st) {
    const tolk_special_tokens *sp = tolk_tokenizer_special(st->tok);
    tolk_dec_tokens *t = &st->dt;
    t->n_vocab = st->hp.n_vocab;
    t->eot = sp->eot;
    t->sot = sp->sot;
    t->sot_prev = sp->sot_prev;
    t->sot_lm = sp->sot_lm;
    t->no_speech = sp->no_speech;
    t->no_timestamps = sp->no_timestamps;
    t->timestamp_begin = sp->timestamp_begin;
    t->transcribe = sp->transcribe;
    t->translate = sp->translate;
    t->blank = tolk_tokenizer_token_id(st->tok, " ", 1);
    int n = sp->n_languages;
    if (n > 100) n = 100;
    for (int i = 0; i < n; i++)
        st->lang[i] = sp->lang[i];
    t->lang_ids = st->lang;
    t->n_languages = st->multilingual ? n : 0;
    size_t nn = 0;
    st->non_speech = tolk_tokenizer_non_speech(st->tok, &nn);
    st->n_non_speech = (int)nn;
}

tolk_status tolk_state_new(tolk_ctx *ctx, const tolk_model *model, tolk_state **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_state_new: NULL out");
    *out = NULL;
    if (!model || !model->w)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_state_new: NULL model");
    tolk_state *st = calloc(1, sizeof *st);
    if (!st) return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_state_new: out of memory");
    tolk_ctx_params cp = ctx ? ctx->params : tolk_ctx_default_params();
    tolk_status s = tolk_ctx_new(&cp, &st->ctx);
    if (s != TOLK_OK) {
        free(st);
        return tolk_fail(ctx, s, "tolk_state_new: cannot create a context");
    }
    st->model = model;
    st->hp = model->w->hp;
    st->multilingual = st->hp.n_vocab >= 51865;
    if (model->net) {
        st->net = (tolk_net *)model->net;
    } else {
        s = tolk_net_new(st->ctx, model->w, &st->owned_net);
        if (s != TOLK_OK) goto fail;
        st->net = st->owned_net;
    }
    s = make_tokenizer(st->ctx, model->w, &st->tok);
    if (s != TOLK_OK) goto fail;
    if (tolk_tokenizer_n_vocab(st->tok) != st->hp.n_vocab) {
        s = tolk_fail(st->ctx, TOLK_ERR_FORMAT, "%s: tokenizer has %d tokens, the model %d",
                      model->w->path ? model->w->path : "model", tolk_tokenizer_n_vocab(st->tok),
                      st->hp.n_vocab);
        goto fail;
    }
    fill_tokens(st);
    s = tolk_mel_new(st->ctx, st->hp.n_mels, &st->mel);
    if (s != TOLK_OK) goto fail;
    size_t nw;
    if (!tolk_mul_size((size_t)st->hp.n_mels, TOLK_N_FRAMES, &nw)) {
        s = tolk_fail(st->ctx, TOLK_ERR_NOMEM, "tolk_state_new: absurd model dimensions");
        goto fail;
    }
    st->window = tolk_malloc_array(nw, sizeof(float));
    if (!st->window) {
        s = tolk_fail(st->ctx, TOLK_ERR_NOMEM, "tolk_state_new: out of memory");
        goto fail;
    }
    s = tolk_state_reserve(st, 1);
    if (s != TOLK_OK) goto fail;
    *out = st;
    return TOLK_OK;
fail:
    if (ctx) tolk_fail(ctx, s, "%s", tolk_ctx_last_error(st->ctx));
    tolk_state_free(st);
    return s;
}

void tolk_state_free(tolk_state *st) {
    if (!st) return;
    tolk_kvcache_free(st->kv);
    tolk_mel_free(st->mel);
    tolk_tokenizer_free(st->tok);
    tolk_net_free(st->owned_net);
    free(st->window);
    tolk_ctx_free(st->ctx);
    free(st);
}

const char *tolk_state_last_error(const tolk_state *st) {
    return st ? tolk_ctx_last_error(st->ctx) : "";
}

tolk_status tolk_state_reserve(tolk_state *st, int n_seqs) {
    if (n_seqs <= st->kv_seqs && st->kv) return TOLK_OK;
    if (n_seqs < 1 || n_seqs > 256)
        return tolk_fail(st->ctx, TOLK_ERR_INVALID_ARG, "decode: %d sequences is out of range",
                         n_seqs);
    tolk_kvcache_free(st->kv);
    st->kv = NULL;
    st->kv_seqs = 0;
    tolk_status s = tolk_kvcache_new(st->ctx, st->net, n_seqs, st->hp.n_text_ctx, 1, &st->kv);
    if (s != TOLK_OK) return s;
    st->kv_seqs = n_seqs;
    return TOLK_OK;
}

tolk_timings *tolk_state_timings_ref(tolk_state *st) {
    return st ? &st->timings : NULL;
}

/* Add the backend's slow-product count since f0 to the state's timings. */
static void add_fallbacks(tolk_state *st, uint64_t f0) {
    const uint64_t f = tolk_net_gemm_fallbacks(st->net);
    if (f > f0) st->timings.gemm_fallbacks += f - f0;
}

static tolk_status be_step(void *user, const int *seqs, int n_seqs, const int *const *tokens,
                           const int *n_tokens, float *logits) {
    tolk_state *st = user;
    double t0 = tolk_time_now();
    const uint64_t f0 = tolk_net_gemm_fallbacks(st->net);
    tolk_status s =
        tolk_net_decode(st->ctx, st->net, st->kv, seqs, n_seqs, tokens, n_tokens, logits);
    tolk_timings_since(&st->timings, TOLK_STAGE_DECODER, t0);
    tolk_timings_count(&st->timings, 0, 0, 1);
    add_fallbacks(st, f0);
    return s;
}
static tolk_status be_step_select(void *user, const int *seqs, int n_seqs, const int *const *tokens,
                                  const int *n_tokens, const tolk_dec_select *sel, int *out_idx,
                                  float *out_lp) {
    tolk_state *st = user;
    double t0 = tolk_time_now();
    const uint64_t f0 = tolk_net_gemm_fallbacks(st->net);
    const tolk_net_select ns = {sel->range_off, sel->ranges, sel->ts_begin, sel->k};
    tolk_status s = tolk_net_decode_select(st->ctx, st->net, st->kv, seqs, n_seqs, tokens, n_tokens,
                                           &ns, out_idx, out_lp);
    tolk_timings_since(&st->timings, TOLK_STAGE_DECODER, t0);
    tolk_timings_count(&st->timings, 0, 0, 1);
    add_fallbacks(st, f0);
    return s;
}

/* Whether the search hands the token selection to the network: on a GPU,
 * so only token ids cross the bus; on the CPU the logits are already where
 * the search is. TOLK_DEVICE_SELECT=1 / 0 in the environment forces it on
 * or off (the tests run the CPU through the device path this way). */
static int use_step_select(const tolk_state *st) {
    const char *e = getenv("TOLK_DEVICE_SELECT");
    if (e && strcmp(e, "1") == 0) return 1;
    if (e && strcmp(e, "0") == 0) return 0;
    return strcmp(tolk_net_device(st->net), "cpu") != 0;
}

static void be_reset(void *user, int seq) {
    tolk_state *st = user;
    tolk_kvcache_reset(st->kv, seq, 0);
}
static void be_copy(void *user, int dst, int src) {
    tolk_state *st = user;
    tolk_kvcache_copy(st->kv, dst, src);
}

tolk_dec_backend tolk_state_backend(tolk_state *st) {
    tolk_dec_backend be = {.user = st,
                           .n_vocab = st->hp.n_vocab,
                           .max_seqs = st->kv_seqs,
                           .step = be_step,
                           .reset = be_reset,
                           .copy = be_copy,
                           .step_select = use_step_select(st) ? be_step_select : NULL};
    return be;
}

tolk_status tolk_state_encode_window(tolk_state *st) {
    double t0 = tolk_time_now();
    const uint64_t f0 = tolk_net_gemm_fallbacks(st->net);
    tolk_status s = tolk_kvcache_encode_window(st->ctx, st->net, st->kv, 0, st->window, NULL);
    tolk_timings_since(&st->timings, TOLK_STAGE_ENCODER, t0);
    add_fallbacks(st, f0);
    return s;
}

char *tolk_state_text(void *user, const int *tokens, int n_tokens) {
    tolk_state *st = user;
    char *text = NULL;
    size_t len = 0;
    if (tolk_tokenizer_decode_ex(st->tok, tokens, (size_t)(n_tokens > 0 ? n_tokens : 0),
                                 TOLK_DECODE_DEFAULT, &text, &len) != TOLK_OK)
        return NULL;
    /* the search frees with free(); tolk_free is free() */
    return text;
}
