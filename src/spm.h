/*
 * spm.h — a small C interface to SentencePiece (Debian libsentencepiece,
 * the library Marian and Bergamot tokenize with), implemented in the
 * project's one C++ file, spm.cpp. Encoding and decoding are exactly the
 * library's: Marian's SentencePieceVocab::encode (Encode to ids, no
 * sampling) and decode (Decode of the ids).
 *
 * A tolk_spm is immutable after loading and may be used by several
 * threads at once (the library's Encode / Decode are const). No function
 * throws, prints or aborts: failures return a status and a message in the
 * caller's buffer.
 */
#ifndef TOLK_SPM_H
#define TOLK_SPM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tolk_spm tolk_spm;

/* Load a SentencePiece model file. Returns 0 and *out, or -1 with a message
 * (naming path) in err[err_cap]. */
int tolk_spm_load(const char *path, tolk_spm **out, char *err, size_t err_cap);
/* The same from a serialized model in memory (fuzzing, tests). */
int tolk_spm_load_memory(const void *data, size_t size, tolk_spm **out, char *err, size_t err_cap);
void tolk_spm_free(tolk_spm *s);

/* Vocabulary size; ids of </s> and <unk> (-1 when the model has none). */
int tolk_spm_size(const tolk_spm *s);
int tolk_spm_eos_id(const tolk_spm *s);
int tolk_spm_unk_id(const tolk_spm *s);
/* The piece of id (static for the model's lifetime), NULL out of range. */
const char *tolk_spm_piece(const tolk_spm *s, int id);

/* Encode UTF-8 text [len] to ids: *ids (malloc'd, caller frees with free)
 * holds *n ids. Returns 0, or -1 with a message in err (invalid UTF-8 is
 * not an error: the library maps it as it does). */
int tolk_spm_encode(const tolk_spm *s, const char *text, size_t len, int **ids, int *n, char *err,
                    size_t err_cap);

/* Decode ids [n] to UTF-8 text: *text (malloc'd, NUL-terminated, caller
 * frees with free). Returns 0 or -1 with a message (an id out of range). */
int tolk_spm_decode(const tolk_spm *s, const int *ids, int n, char **text, char *err,
                    size_t err_cap);

#ifdef __cplusplus
}
#endif

#endif /* TOLK_SPM_H */
