/*
 * pystr.h — the few Python str semantics the writers and word timestamps
 * reproduce on UTF-8 bytes: decoding with errors="replace" subparts,
 * str.isspace(), str.strip(), len() in code points, `a in b`.
 */
#ifndef TOLK_PYSTR_H
#define TOLK_PYSTR_H

#include <stddef.h>
#include <stdint.h>

/* Decode the UTF-8 sequence at s[0..n), n >= 1. Returns its length (1..4)
 * and sets *cp, or, for ill-formed bytes, returns minus the length of the
 * maximal ill-formed subpart (the lead byte and the continuation bytes that
 * were still possible), which Python's errors="replace" turns into one
 * U+FFFD. */
int tolk_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether code point c is whitespace for Python's str.isspace() (and so
 * removed by str.strip(), matched by re's \s). */
int tolk_py_isspace(uint32_t c);

/* str.strip() of s[0, n) (valid UTF-8) as the byte range [*a, *b). */
void tolk_py_strip(const char *s, size_t n, size_t *a, size_t *b);

/* len() of valid UTF-8 s[0, n): code points (an ill-formed subpart counts
 * as one, as after decoding with errors="replace"). */
size_t tolk_py_len(const char *s, size_t n);

/* Python's `needle in hay` for NUL-terminated valid UTF-8 ("" is in
 * everything). */
int tolk_py_in(const char *needle, const char *hay);

#endif /* TOLK_PYSTR_H */
