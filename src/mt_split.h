/*
 * mt_split.h — sentence splitting of the text given to the translation
 * models, which were trained on single sentences. A simplification of
 * Bergamot's ssplit-cpp (paragraph mode with per-language non-breaking
 * prefix lists): a sentence ends after . ! ? or … (and any closing quotes
 * or brackets) followed by white space and a character that can start a
 * sentence (an upper-case or non-ASCII letter, a digit, an opening quote
 * or bracket, ¿ or ¡), or after 。！？ — except after a known abbreviation
 * (Mr. Dr. Sr. etc. e.g. in several languages) or a single letter (an
 * initial: "J. F. Kennedy", "U.S.").
 */
#ifndef TOLK_MT_SPLIT_H
#define TOLK_MT_SPLIT_H

#include <stddef.h>

/* Split text [len] (UTF-8) into sentences: *spans (malloc'd, caller frees)
 * receives 2 * n byte offsets, start and end of each sentence, leading and
 * trailing white space excluded; the bytes between two sentences are white
 * space only. Returns n (0 for blank text), or -1 when out of memory. */
int tolk_mt_split_sentences(const char *text, size_t len, size_t **spans);

#endif /* TOLK_MT_SPLIT_H */
