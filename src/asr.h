/*
 * asr.h — what every transcription of a model shares besides the network:
 * the tokenizer, the special token ids the search needs, the language
 * table and the mel front end. Built once per model on first use
 * (tolk_asr_of) and immutable afterwards, so any number of engines, states
 * and threads read it at once.
 */
#ifndef TOLK_ASR_H
#define TOLK_ASR_H

#include "decode.h"
#include "tokenizer.h"

typedef struct tolk_asr {
    tolk_hparams hp;
    struct tolk_tokenizer *tok; /* owned */
    tolk_mel *mel;              /* owned; the model's n_mels */
    tolk_dec_tokens dt;         /* special ids; lang_ids points into lang */
    int lang[100];
    const int *non_speech; /* owned by tok */
    int n_non_speech;
    int multilingual;
} tolk_asr;

/* The model's shared transcription objects, made on the first call (the
 * model's vocabulary must be usable: tokenizer.json, a CT2 vocabulary, a
 * ggml vocab, ...). Thread-safe. *out is owned by the model. */
tolk_status tolk_asr_of(tolk_ctx *ctx, const tolk_model *model, const tolk_asr **out);
void tolk_asr_free(tolk_asr *a);

/* tolk_dec_text_fn over the asr's tokenizer (user = the asr): the
 * reference decode() (timestamps dropped). */
char *tolk_asr_text(void *user, const int *tokens, int n_tokens);

/* The language code of a language token ("en"), or NULL. */
const char *tolk_asr_lang_code(const tolk_asr *a, int lang_token);

#endif /* TOLK_ASR_H */
