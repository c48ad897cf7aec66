/*
 * result.h — the library's side of the public, opaque tolk_result (tolk.h):
 * its layout and the builder longform.c / engine.c (and tests) fill it with. Not a
 * public header.
 *
 * Layout: the result owns an array of segment records; each record starts
 * with the public tolk_segment (so tolk_segment_word can find the record
 * from the pointer the caller holds) and owns that segment's text, tokens
 * and words (tolk_word, each word string owned). The public structs'
 * pointers point into the record's own buffers. struct_size is set by the
 * builder; callers only ever see pointers (tolk_result_segment), so the
 * array may be an array of records.
 */
#ifndef TOLK_RESULT_H
#define TOLK_RESULT_H

#include "internal.h"
#include "tolk.h"

typedef struct tolk_seg_rec {
    tolk_segment pub; /* first member: see tolk_segment_word */
    char *text;       /* owned; pub.text */
    int *tokens;      /* owned; pub.tokens (never NULL once built) */
    tolk_word *words; /* owned [pub.n_words]; each .word owned */
} tolk_seg_rec;

struct tolk_result {
    char *text;          /* owned; all segments' text */
    char language[8];    /* NUL-terminated code */
    float language_prob; /* 1 when given */
    double duration;     /* seconds */
    int has_words;       /* word timestamps were computed */
    tolk_seg_rec *segs;  /* owned [n_segs] */
    int n_segs, cap;
    tolk_input_facts input; /* tolk_result_input_truncated (audio.c) */
};

/* A new empty result (text "", language ""), or NULL when out of memory.
 * Release with tolk_result_free. */
tolk_result *tolk_result_new(void);

/* Fill rec (any prior content is NOT freed) from fields (the numbers:
 * id, seek, start, end, temperature, avg_logprob, compression_ratio,
 * no_speech_prob; its text / tokens / words are ignored) with copies of
 * text (NULL = "") and tokens[0, n_tokens). Returns 1, or 0 when out of
 * memory (rec is then empty and needs no clearing). */
int tolk_seg_rec_init(tolk_seg_rec *rec, const tolk_segment *fields, const char *text,
                      const int *tokens, int n_tokens);

/* Replace rec's words with copies of words[0, n) (word strings copied;
 * struct_size set). Returns 1, or 0 when out of memory (rec's words are
 * then cleared). */
int tolk_seg_rec_set_words(tolk_seg_rec *rec, const tolk_word *words, int n);

/* dst = a deep copy of src (text, tokens, words). Returns 1, or 0 when out
 * of memory (dst is then empty). */
int tolk_seg_rec_copy(tolk_seg_rec *dst, const tolk_seg_rec *src);

/* Free everything rec owns and zero it. */
void tolk_seg_rec_clear(tolk_seg_rec *rec);

/* Append rec to res, taking what it owns (rec is zeroed). Returns the
 * stored record (valid until the next push), or NULL when out of memory
 * (rec untouched). */
tolk_seg_rec *tolk_result_push(tolk_result *res, tolk_seg_rec *rec);

/* Append a copy of one segment (tolk_seg_rec_init + tolk_result_push).
 * Returns the stored record or NULL when out of memory. */
tolk_seg_rec *tolk_result_add_segment(tolk_result *res, const tolk_segment *fields,
                                      const char *text, const int *tokens, int n_tokens);

/* Replace res's text with a copy of text (NULL = ""), or take ownership of
 * a malloc'd string (tolk_result_take_text). Return 1, or 0 when out of
 * memory. */
int tolk_result_set_text(tolk_result *res, const char *text);
void tolk_result_take_text(tolk_result *res, char *text);

/* Set the language code (truncated to 7 bytes). */
void tolk_result_set_language(tolk_result *res, const char *code);

#endif /* TOLK_RESULT_H */
