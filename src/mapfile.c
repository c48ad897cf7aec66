/*
 * mapfile.c — read-only file mappings (mmap or a heap copy) and small
 * whole-file reads used by the model loaders. All sizes are checked; errors
 * name the file.
 */
#include "mapfile.h"

#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int tolk_is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tolk_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int64_t tolk_file_size(const char *path) {
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    return (int64_t)st.st_size;
}

char *tolk_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* Open path read-only and check that it is a regular file; returns the fd
 * or -1 with the failure recorded on ctx. *size gets the file size. */
static int open_regular(tolk_ctx *ctx, const char *path, size_t *size, tolk_status *st) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *st = tolk_fail(ctx, TOLK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        *st = tolk_fail(ctx, TOLK_ERR_IO, "%s: not a regular file", path);
        return -1;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        *st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: file too large", path);
        return -1;
    }
    *size = (size_t)sb.st_size;
    return fd;
}

/* Read exactly n bytes from fd into dst; 0 on success, -1 with errno set
 * (0 when the file ended early). */
static int read_all(int fd, void *dst, size_t n) {
    char *p = dst;
    while (n > 0) {
        ssize_t r = read(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) errno = 0;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

tolk_status tolk_mapfile_open(tolk_ctx *ctx, const char *path, int use_mmap, tolk_mapfile *out) {
    memset(out, 0, sizeof *out);
    tolk_status st = TOLK_OK;
    size_t size = 0;
    int fd = open_regular(ctx, path, &size, &st);
    if (fd < 0) return st;
    if (size == 0) {
        close(fd);
        return TOLK_OK;
    }
    if (use_mmap) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            out->data = p;
            out->size = size;
            out->mapped = 1;
            return TOLK_OK;
        }
        /* fall back to reading (e.g. a file system without mmap) */
    }
    void *buf = malloc(size);
    if (!buf) {
        close(fd);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    if (read_all(fd, buf, size) != 0) {
        int e = errno;
        free(buf);
        close(fd);
        return tolk_fail(ctx, TOLK_ERR_IO,
                         "%s: read failed: %s (expected %zu bytes; changed while loading?)", path,
                         e ? strerror(e) : "the file ended early", size);
    }
    close(fd);
    out->data = buf;
    out->size = size;
    out->mapped = 0;
    return TOLK_OK;
}

void tolk_mapfile_close(tolk_mapfile *m) {
    if (!m || !m->data) return;
    if (m->mapped)
        munmap(m->data, m->size);
    else
        free(m->data);
    memset(m, 0, sizeof *m);
}

tolk_status tolk_read_text_file(tolk_ctx *ctx, const char *path, size_t max_bytes, char **out,
                                size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    tolk_status st = TOLK_OK;
    size_t size = 0;
    int fd = open_regular(ctx, path, &size, &st);
    if (fd < 0) return st;
    if (size > max_bytes) {
        close(fd);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: file too large (%zu bytes, at most %zu)", path,
                         size, max_bytes);
    }
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    if (size > 0 && read_all(fd, buf, size) != 0) {
        free(buf);
        close(fd);
        return tolk_fail(ctx, TOLK_ERR_IO, "%s: read failed", path);
    }
    close(fd);
    buf[size] = '\0';
    *out = buf;
    if (len) *len = size;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* JSON helpers                                                             */
/* ------------------------------------------------------------------------ */

/* An int array from a JSON array of integers; *out heap (NULL when empty). */
tolk_status tolk_json_int_array(tolk_ctx *ctx, const char *path, const cJSON *a, const char *key,
                                int **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!a || cJSON_IsNull(a)) return TOLK_OK;
    if (!cJSON_IsArray(a))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s is not an array", path, key);
    int cnt = cJSON_GetArraySize(a);
    if (cnt <= 0) return TOLK_OK;
    if (cnt > (1 << 20)) return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s is too long", path, key);
    int *v = malloc(sizeof(int) * (size_t)cnt);
    if (!v) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || e->valuedouble < -2147483648.0 || e->valuedouble > 2147483647.0 ||
            e->valuedouble != (double)(int)e->valuedouble) {
            free(v);
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s holds a value that is not an integer",
                             path, key);
        }
        v[i++] = (int)e->valuedouble;
    }
    *out = v;
    *n = i;
    return TOLK_OK;
}

/* alignment_heads: [[layer, head], ...] */
tolk_status tolk_json_alignment_heads(tolk_ctx *ctx, const char *path, const cJSON *a,
                                      int (**out)[2], int *n) {
    *out = NULL;
    *n = 0;
    if (!a || cJSON_IsNull(a)) return TOLK_OK;
    if (!cJSON_IsArray(a))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: alignment_heads is not an array", path);
    int cnt = cJSON_GetArraySize(a);
    if (cnt <= 0) return TOLK_OK;
    if (cnt > (1 << 16))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: too many alignment heads", path);
    int(*h)[2] = malloc(sizeof(int[2]) * (size_t)cnt);
    if (!h) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const cJSON *l = cJSON_GetArrayItem(e, 0), *k = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(l) ||
            !cJSON_IsNumber(k) || l->valuedouble < 0 || l->valuedouble > 1e6 ||
            k->valuedouble < 0 || k->valuedouble > 1e6) {
            free(h);
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: alignment_heads entry %d is not a pair "
                             "of small integers",
                             path, i);
        }
        h[i][0] = (int)l->valuedouble;
        h[i][1] = (int)k->valuedouble;
        i++;
    }
    *out = h;
    *n = i;
    return TOLK_OK;
}
