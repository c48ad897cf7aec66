/*
 * asr.c — the transcription objects a model shares between all its
 * requests (asr.h): the tokenizer built from the model's files (a
 * tokenizer.json, a CTranslate2 vocabulary, a ggml vocabulary, or the
 * directory's tiktoken ranks), openai-whisper's special token ids
 * (Tokenizer: sot, eot, timestamps, languages, the non-speech set) and the
 * mel filterbank and FFT plans for the model's n_mels.
 */
#include "asr.h"
#include "model.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static pthread_mutex_t g_asr_lock = PTHREAD_MUTEX_INITIALIZER;

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

static void fill_tokens(tolk_asr *a) {
    const tolk_special_tokens *sp = tolk_tokenizer_special(a->tok);
    tolk_dec_tokens *t = &a->dt;
    t->n_vocab = a->hp.n_vocab;
    t->eot = sp->eot;
    t->sot = sp->sot;
    t->sot_prev = sp->sot_prev;
    t->sot_lm = sp->sot_lm;
    t->no_speech = sp->no_speech;
    t->no_timestamps = sp->no_timestamps;
    t->timestamp_begin = sp->timestamp_begin;
    t->transcribe = sp->transcribe;
    t->translate = sp->translate;
    t->blank = tolk_tokenizer_token_id(a->tok, " ", 1);
    int n = sp->n_languages;
    if (n > 100) n = 100;
    for (int i = 0; i < n; i++)
        a->lang[i] = sp->lang[i];
    t->lang_ids = a->lang;
    t->n_languages = a->multilingual ? n : 0;
    size_t nn = 0;
    a->non_speech = tolk_tokenizer_non_speech(a->tok, &nn);
    a->n_non_speech = (int)nn;
}

void tolk_asr_free(tolk_asr *a) {
    if (!a) return;
    tolk_mel_free(a->mel);
    tolk_tokenizer_free(a->tok);
    free(a);
}

static tolk_status asr_new(tolk_ctx *ctx, const tolk_model *model, tolk_asr **out) {
    tolk_asr *a = calloc(1, sizeof *a);
    if (!a) return tolk_fail(ctx, TOLK_ERR_NOMEM, "model: out of memory");
    a->hp = model->w->hp;
    a->multilingual = a->hp.n_vocab >= 51865;
    tolk_status s = make_tokenizer(ctx, model->w, &a->tok);
    if (s == TOLK_OK && tolk_tokenizer_n_vocab(a->tok) != a->hp.n_vocab)
        s = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tokenizer has %d tokens, the model %d",
                      model->w->path ? model->w->path : "model", tolk_tokenizer_n_vocab(a->tok),
                      a->hp.n_vocab);
    if (s == TOLK_OK) {
        fill_tokens(a);
        s = tolk_mel_new(ctx, a->hp.n_mels, &a->mel);
    }
    if (s != TOLK_OK) {
        tolk_asr_free(a);
        return s;
    }
    *out = a;
    return TOLK_OK;
}

tolk_status tolk_asr_of(tolk_ctx *ctx, const tolk_model *model, const tolk_asr **out) {
    *out = NULL;
    if (!model || !model->w) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "NULL model");
    tolk_status s = TOLK_OK;
    pthread_mutex_lock(&g_asr_lock);
    if (!model->asr) {
        tolk_asr *a = NULL;
        s = asr_new(ctx, model, &a);
        /* the model is immutable to its users; this cache is the exception */
        if (s == TOLK_OK) ((tolk_model *)model)->asr = a;
    }
    *out = model->asr;
    pthread_mutex_unlock(&g_asr_lock);
    return s;
}

char *tolk_asr_text(void *user, const int *tokens, int n_tokens) {
    const tolk_asr *a = user;
    char *text = NULL;
    size_t len = 0;
    if (tolk_tokenizer_decode_ex(a->tok, tokens, (size_t)(n_tokens > 0 ? n_tokens : 0),
                                 TOLK_DECODE_DEFAULT, &text, &len) != TOLK_OK)
        return NULL;
    /* the search frees with free(); tolk_free is free() */
    return text;
}

const char *tolk_asr_lang_code(const tolk_asr *a, int lang_token) {
    return tolk_tokenizer_lang_code(a->tok, lang_token);
}
