/*
 * mapfile.h — read-only file mappings, whole-file reads and small JSON
 * helpers for the model loaders (model_ct2.c, model_safetensors.c, model_ggml.c). A mapping is
 * either an mmap of the file (use_mmap) or a heap copy; callers treat both
 * the same and hand them to the weights table for release.
 */
#ifndef TOLK_MAPFILE_H
#define TOLK_MAPFILE_H

#include "tolk.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tolk_mapfile {
    void *data;  /* first byte of the file; NULL for an empty file */
    size_t size; /* bytes */
    int mapped;  /* 1: munmap(data, size); 0: free(data) */
} tolk_mapfile;

/* Map (use_mmap = 1) or read (0) the whole regular file at path. Fails with
 * TOLK_ERR_IO (missing, unreadable, a directory) naming path. An empty file
 * gives data = NULL, size = 0. *out is zeroed on failure. */
tolk_status tolk_mapfile_open(tolk_ctx *ctx, const char *path, int use_mmap, tolk_mapfile *out);

/* Release a mapping made by tolk_mapfile_open (safe on a zeroed one). */
void tolk_mapfile_close(tolk_mapfile *m);

/* Read a whole small file (JSON, vocabulary) into a NUL-terminated heap
 * buffer (*out, caller frees with free); *len = bytes without the NUL.
 * Files larger than max_bytes fail with TOLK_ERR_FORMAT. */
tolk_status tolk_read_text_file(tolk_ctx *ctx, const char *path, size_t max_bytes, char **out,
                                size_t *len);

/* 1 if path names an existing regular file / directory, else 0. */
int tolk_is_file(const char *path);
int tolk_is_dir(const char *path);

/* The size in bytes of a regular file, or -1. */
int64_t tolk_file_size(const char *path);

/* "dir/name" in a new heap string (caller frees), NULL when out of memory. */
char *tolk_path_join(const char *dir, const char *name);

/* JSON helpers shared by the loaders (cJSON). */
struct cJSON;

/* An int array from a JSON array of integers (NULL/absent: empty). *out is
 * heap (caller frees), NULL when empty; TOLK_ERR_FORMAT naming path and key
 * for a non-array or a non-integer element. */
tolk_status tolk_json_int_array(tolk_ctx *ctx, const char *path, const struct cJSON *a,
                                const char *key, int **out, int *n);

/* alignment_heads: [[layer, head], ...] -> *out heap [n][2] (NULL if empty). */
tolk_status tolk_json_alignment_heads(tolk_ctx *ctx, const char *path, const struct cJSON *a,
                                      int (**out)[2], int *n);

#endif /* TOLK_MAPFILE_H */
