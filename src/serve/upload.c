/*
 * upload.c — the body of an audio request: a multipart/form-data form (RFC
 * 7578, as OpenAI's API takes it) parsed by libmicrohttpd's post
 * processor. The `file` part goes into an anonymous in-memory file
 * (memfd), which the audio decoder reads as a path (/proc/self/fd/N) and
 * can stream without a second copy; the other fields are kept as strings.
 * Bounds: 32 fields of 64 KiB each, one file part; the body as a whole is
 * bounded by the server (--max_body_mb).
 */
#include "serve.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FIELD_MAX (64 * 1024)

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void set_error(srv_upload *u, const char *msg) {
    if (!u->error) snprintf(u->errmsg, sizeof u->errmsg, "%s", msg);
    u->error = 1;
}

/* Append size bytes at off to the field named key (a new field at off 0). */
static int add_field(srv_upload *u, const char *key, const char *data, uint64_t off, size_t size) {
    srv_field *f = NULL;
    /* later chunks of the last field; also its real first chunk when the
     * parser opened it with an empty one (MHD may, at a buffer boundary) */
    if ((off > 0 || u->empty_open) && u->n_fields > 0 &&
        !strcmp(u->fields[u->n_fields - 1].name, key))
        f = &u->fields[u->n_fields - 1];
    u->empty_open = off == 0 && size == 0 && !f;
    if (!f) {
        if (u->n_fields >= SRV_MAX_FIELDS) {
            set_error(u, "too many form fields");
            return -1;
        }
        f = &u->fields[u->n_fields];
        f->name = strdup(key);
        f->value = calloc(1, 1);
        f->len = 0;
        if (!f->name || !f->value) {
            free(f->name);
            free(f->value);
            f->name = f->value = NULL;
            set_error(u, "out of memory");
            return -1;
        }
        u->n_fields++;
    }
    if (f->len + size > FIELD_MAX) {
        set_error(u, "a form field is longer than 64 KiB");
        return -1;
    }
    char *v = realloc(f->value, f->len + size + 1);
    if (!v) {
        set_error(u, "out of memory");
        return -1;
    }
    memcpy(v + f->len, data, size);
    f->len += size;
    v[f->len] = '\0';
    f->value = v;
    return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
    srv_upload *u = cls;
    if (u->error || !key) return u->error ? MHD_NO : MHD_YES;
    if (!strcmp(key, "file")) {
        if (off == 0) {
            if (u->n_files++ > 0) {
                set_error(u, "more than one file part in the form");
                return MHD_NO;
            }
            if (filename && !u->file_name) u->file_name = strdup(filename);
        }
        if (u->file_fd < 0) {
            u->file_fd = memfd_create("tolk-upload", MFD_CLOEXEC);
            if (u->file_fd < 0) {
                set_error(u, "cannot store the upload");
                return MHD_NO;
            }
        }
        if (size > 0 && write_all(u->file_fd, data, size) != 0) {
            set_error(u, "cannot store the upload");
            return MHD_NO;
        }
        u->file_bytes += size;
        return MHD_YES;
    }
    return add_field(u, key, data ? data : "", off, size) == 0 ? MHD_YES : MHD_NO;
}

int srv_upload_begin(srv_upload *u, struct MHD_Connection *c) {
    memset(u, 0, sizeof *u);
    u->file_fd = -1;
    u->pp = MHD_create_post_processor(c, 64 * 1024, on_part, u);
    return u->pp ? 0 : -1;
}

int srv_upload_feed(srv_upload *u, const char *data, size_t n) {
    if (u->error) return -1;
    if (MHD_post_process(u->pp, data, n) != MHD_YES) {
        set_error(u, "the multipart/form-data body is malformed");
        return -1;
    }
    return u->error ? -1 : 0;
}

int srv_upload_end(srv_upload *u) {
    if (!u->pp) return -1;
    enum MHD_Result r = MHD_destroy_post_processor(u->pp);
    u->pp = NULL;
    if (r != MHD_YES) set_error(u, "the multipart/form-data body is malformed or incomplete");
    return u->error ? -1 : 0;
}

void srv_upload_free(srv_upload *u) {
    if (u->pp) MHD_destroy_post_processor(u->pp);
    for (int i = 0; i < u->n_fields; i++) {
        free(u->fields[i].name);
        free(u->fields[i].value);
    }
    if (u->file_fd >= 0) close(u->file_fd);
    free(u->file_name);
    memset(u, 0, sizeof *u);
    u->file_fd = -1;
}

const char *srv_upload_field(const srv_upload *u, const char *name) {
    for (int i = u->n_fields - 1; i >= 0; i--)
        if (!strcmp(u->fields[i].name, name)) return u->fields[i].value;
    return NULL;
}

int srv_upload_fields(const srv_upload *u, const char *name, const char **out, int max) {
    char br[128];
    snprintf(br, sizeof br, "%s[]", name);
    int n = 0;
    for (int i = 0; i < u->n_fields && n < max; i++)
        if (!strcmp(u->fields[i].name, name) || !strcmp(u->fields[i].name, br))
            out[n++] = u->fields[i].value;
    return n;
}
