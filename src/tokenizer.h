/*
 * tokenizer.h — the Whisper tokenizer: byte-level BPE encode/decode and the
 * special-token layout of every Whisper vocabulary (51864 English-only,
 * 51865 multilingual, 51866 large-v3).
 *
 * It reproduces openai-whisper's tokenizer (tiktoken with the GPT-2
 * pre-tokenizer expression): token ids are byte-pair ranks, a pair of
 * adjacent parts is merged when its concatenation is a token, lowest rank
 * first, leftmost on ties. Special-token ids follow the reference layout:
 *   eot = number of ordinary tokens (50256 English-only, 50257 otherwise),
 *   sot = eot + 1, languages sot + 1 ... (99 or 100 of them), then
 *   translate, transcribe, startoflm, startofprev, nospeech, notimestamps,
 *   and 1501 timestamps <|0.00|> ... <|30.00|>.
 *
 * A tokenizer is built from any of the model's own files (tokenizer.json,
 * CTranslate2 vocabulary.txt / vocabulary.json, the ggml embedded
 * vocabulary, a .tiktoken rank file) and gives the same ids from each. It
 * is immutable after creation and may be shared by any number of threads.
 */
#ifndef TOLK_TOKENIZER_H
#define TOLK_TOKENIZER_H

#include "tolk.h"
#include "weights.h"

#include <stddef.h>
#include <stdint.h>

#define TOLK_TOK_MAX_LANGUAGES 100
#define TOLK_TOK_N_TIMESTAMPS 1501 /* <|0.00|> ... <|30.00|> in 0.02 s steps */

typedef struct tolk_tokenizer tolk_tokenizer;

/* Special token ids of one vocabulary. */
typedef struct tolk_special_tokens {
    int eot;             /* <|endoftext|> */
    int sot;             /* <|startoftranscript|> */
    int translate;       /* <|translate|> */
    int transcribe;      /* <|transcribe|> */
    int sot_lm;          /* <|startoflm|> */
    int sot_prev;        /* <|startofprev|> */
    int no_speech;       /* <|nospeech|> (older files name it <|nocaptions|>) */
    int no_timestamps;   /* <|notimestamps|> */
    int timestamp_begin; /* <|0.00|>; timestamp i (i * 0.02 s) is timestamp_begin + i */
    int timestamp_end;   /* <|30.00|> = timestamp_begin + 1500 */
    int n_languages;     /* 99 or 100 (English-only vocabularies carry 99 too) */
    int lang[TOLK_TOK_MAX_LANGUAGES]; /* token id of language i (table order) */
} tolk_special_tokens;

/* ---- creation ----------------------------------------------------------- */

/* n_vocab: the model's vocabulary size (51864 / 51865 / 51866) from which
 * the special layout is derived exactly as the reference does
 * (multilingual = n_vocab >= 51865; languages = n_vocab - 51765 -
 * multilingual), or 0 to derive it from the file (its special tokens, or 99
 * languages when it has none). A file whose tokens disagree with the layout
 * fails with TOLK_ERR_FORMAT naming the file and the token. *out is owned by
 * the caller (tolk_tokenizer_free); NULL on failure. */

/* A model directory: tokenizer.json, else vocabulary.json, else
 * vocabulary.txt. */
tolk_status tolk_tokenizer_new_from_dir(tolk_ctx *ctx, const char *dir, int n_vocab,
                                        tolk_tokenizer **out);

/* One file, kind found from its name and content: *.tiktoken (base64 token,
 * rank per line), a JSON object with "model" (tokenizer.json), a JSON array
 * (vocabulary.json), anything else one token per line (vocabulary.txt). */
tolk_status tolk_tokenizer_new_from_file(tolk_ctx *ctx, const char *path, int n_vocab,
                                         tolk_tokenizer **out);

/* A .tiktoken rank file (multilingual.tiktoken / gpt2.tiktoken). multilingual
 * must agree with the file (and n_vocab when not 0): 1 for multilingual. */
tolk_status tolk_tokenizer_new_from_tiktoken(tolk_ctx *ctx, const char *path, int multilingual,
                                             int n_vocab, tolk_tokenizer **out);

/* A vocabulary carried by a model file (weights.h): raw bytes (ggml) or GPT-2
 * byte-to-unicode text (CT2). It may hold the ordinary tokens only. */
tolk_status tolk_tokenizer_new_from_vocab(tolk_ctx *ctx, const tolk_vocab *vocab, int n_vocab,
                                          tolk_tokenizer **out);

void tolk_tokenizer_free(tolk_tokenizer *tok);

/* ---- properties --------------------------------------------------------- */

int tolk_tokenizer_n_vocab(const tolk_tokenizer *tok);
int tolk_tokenizer_is_multilingual(const tolk_tokenizer *tok);
const tolk_special_tokens *tolk_tokenizer_special(const tolk_tokenizer *tok);

/* The bytes of token id (special tokens: their text, e.g. "<|en|>", "<|1.08|>");
 * owned by tok. NULL (and *len 0) for an id outside [0, n_vocab). len may be
 * NULL. Ordinary tokens are arbitrary bytes, not necessarily UTF-8. */
const uint8_t *tolk_tokenizer_token_bytes(const tolk_tokenizer *tok, int id, size_t *len);

/* The id whose bytes are exactly bytes[0, len) (ordinary or special), -1
 * when none. */
int tolk_tokenizer_token_id(const tolk_tokenizer *tok, const void *bytes, size_t len);

/* The token id of a language given by code ("en", "yue") or English name or
 * alias ("english", "mandarin"), case-insensitive; -1 when unknown or not in
 * this vocabulary (yue needs 100 languages). */
int tolk_tokenizer_lang_token(const tolk_tokenizer *tok, const char *code_or_name);

/* The language code of a language token id ("de"), NULL when id is not one. */
const char *tolk_tokenizer_lang_code(const tolk_tokenizer *tok, int id);

/* The reference's non-speech symbol tokens (the suppress_tokens "-1" set):
 * sorted ascending, owned by tok, *n entries. */
const int *tolk_tokenizer_non_speech(const tolk_tokenizer *tok, size_t *n);

/* ---- the language table: tolk_language_* in tolk.h ------------------- */

/* ---- encoding / decoding ------------------------------------------------ */

/* Encode UTF-8 text[0, len) to token ids (special-token text such as
 * "<|en|>" is ordinary text here, as tiktoken's encode_ordinary). *ids
 * (caller frees with tolk_free; never NULL on success, even for empty text)
 * holds *n ids. Invalid UTF-8 fails with TOLK_ERR_INVALID_ARG. Thread-safe. */
tolk_status tolk_tokenizer_encode(const tolk_tokenizer *tok, const char *text, size_t len,
                                  int **ids, size_t *n);

enum {
    TOLK_DECODE_DEFAULT = 0,    /* reference decode(): timestamp tokens dropped,
                                   other special tokens written as their text */
    TOLK_DECODE_TIMESTAMPS = 1, /* decode_with_timestamps(): "<|1.08|>" kept */
    TOLK_DECODE_TEXT_ONLY = 2   /* every id >= eot dropped */
};

/* Decode ids[0, n) to UTF-8 text: token bytes concatenated, then invalid or
 * truncated UTF-8 replaced by U+FFFD as Python's errors="replace" does.
 * *text (caller frees with tolk_free) is NUL-terminated; *len (may be NULL)
 * its byte length. An id outside [0, n_vocab) fails with
 * TOLK_ERR_INVALID_ARG. */
tolk_status tolk_tokenizer_decode(const tolk_tokenizer *tok, const int *ids, size_t n, char **text,
                                  size_t *len);
tolk_status tolk_tokenizer_decode_ex(const tolk_tokenizer *tok, const int *ids, size_t n, int flags,
                                     char **text, size_t *len);

/* Streaming decode, one token at a time: text is emitted as soon as it is
 * complete UTF-8; an incomplete character split across tokens is held back
 * until its last byte arrives (invalid bytes become U+FFFD at once). The
 * concatenation of every push and the final flush equals
 * tolk_tokenizer_decode_ex of all ids. One stream per thread; the tokenizer
 * is shared. */
typedef struct tolk_detok {
    const tolk_tokenizer *tok;
    int flags;       /* TOLK_DECODE_* */
    uint8_t tail[4]; /* held-back start of a character */
    int n_tail;
    char *buf; /* output of the last push/flush (owned) */
    size_t cap;
} tolk_detok;

void tolk_detok_init(tolk_detok *d, const tolk_tokenizer *tok, int flags);
/* Add token id; *text (owned by d, valid until the next call, NUL-terminated)
 * receives the newly completed text, *len its bytes (may be 0). */
tolk_status tolk_detok_push(tolk_detok *d, int id, const char **text, size_t *len);
/* End of stream: a held-back incomplete character becomes U+FFFD. */
tolk_status tolk_detok_flush(tolk_detok *d, const char **text, size_t *len);
/* Release the buffer; d may be initialised again. */
void tolk_detok_free(tolk_detok *d);

/* Testing hook: BPE of one pre-token piece p[0, n) with a forced merge
 * strategy (mode 0 automatic, 1 tiktoken's linear loop, 2 the heap-ordered
 * loop used for long pieces); *ids as tolk_tokenizer_encode. */
tolk_status tolk_tokenizer_bpe_piece(const tolk_tokenizer *tok, const uint8_t *p, size_t n,
                                     int mode, int **ids, size_t *n_ids);

#endif /* TOLK_TOKENIZER_H */
