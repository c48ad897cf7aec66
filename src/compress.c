/*
 * compress.c — the compression ratio of a text, exactly as openai-whisper's
 * utils.compression_ratio() (and faster-whisper's get_compression_ratio())
 * compute it: len(utf8 bytes) / len(zlib.compress(utf8 bytes)). Python's
 * zlib.compress uses the zlib format (2-byte header, Adler-32 trailer) at
 * Z_DEFAULT_COMPRESSION (level 6), window bits 15, memLevel 8, the default
 * strategy: the parameters of zlib's compress2(), which is used here.
 */
#include "decode.h"

#include <stdlib.h>
#include <zlib.h>

float tolk_compression_ratio(const char *text, size_t len) {
    if (!text) return -1.0f;
    if (len > (size_t)UINT32_MAX / 2) return -1.0f;
    uLong bound = compressBound((uLong)len);
    unsigned char stackbuf[4096];
    unsigned char *buf = stackbuf;
    if (bound > sizeof stackbuf) {
        buf = malloc(bound);
        if (!buf) return -1.0f;
    }
    uLongf out_len = bound;
    int rc = compress2(buf, &out_len, (const Bytef *)text, (uLong)len, Z_DEFAULT_COMPRESSION);
    if (buf != stackbuf) free(buf);
    if (rc != Z_OK || out_len == 0) return -1.0f;
    return (float)((double)len / (double)out_len);
}
