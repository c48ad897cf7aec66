/*
 * pystr.c — Python str semantics on UTF-8 bytes (see pystr.h), shared by
 * the writers (writers.c) and word timestamps (words.c).
 */
#include "pystr.h"

#include <string.h>

/* Decode the UTF-8 sequence at s[0..n), n >= 1. Returns its length (1..4)
 * and sets *cp, or, for ill-formed bytes, returns minus the length of the
 * maximal ill-formed subpart (the lead byte and the continuation bytes that
 * were still possible), which Python's errors="replace" turns into one
 * U+FFFD. */
int tolk_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) return -i;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* Whether code point c is whitespace for Python's str.isspace() (and so
 * removed by str.strip()). */
int tolk_py_isspace(uint32_t c) {
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    switch (c) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

void tolk_py_strip(const char *s, size_t n, size_t *a, size_t *b) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, end = 0;
    int seen = 0;
    *a = n;
    while (i < n) {
        uint32_t cp = 0xFFFD;
        int d = tolk_utf8_decode(u + i, n - i, &cp);
        size_t len = (size_t)(d < 0 ? -d : d);
        if (d < 0 || !tolk_py_isspace(cp)) {
            if (!seen) *a = i;
            seen = 1;
            end = i + len;
        }
        i += len;
    }
    if (!seen) *a = end = n;
    *b = end;
}

size_t tolk_py_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        int d = tolk_utf8_decode(u + i, n - i, &cp);
        i += (size_t)(d < 0 ? -d : d);
        k++;
    }
    return k;
}

int tolk_py_in(const char *needle, const char *hay) {
    /* valid UTF-8 is self-synchronising: a byte match starts on a
     * character boundary, so the byte test equals the code-point test */
    return strstr(hay, needle) != NULL;
}
