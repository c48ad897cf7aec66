/*
 * audio.c — audio input: decode any file libsndfile reads (WAV, FLAC,
 * OGG/Vorbis, Opus, MP3, AIFF, ...) or, as a fallback when the build has it,
 * anything FFmpeg reads (m4a/AAC, mp4, webm, mkv, ...), then mix to mono and
 * resample to 16 kHz float32 with libsoxr (very high quality).
 *
 * Reference behaviour: openai-whisper's load_audio(), which runs
 * `ffmpeg -i FILE -ac 1 -ar 16000 -f s16le -` and divides the int16 samples
 * by 32768. Here 16-bit PCM becomes sample / 32768 too (libsndfile's
 * normalised float read), channels are averaged in float, and 16 kHz input
 * passes through bit-exactly (no resampler at all), so mel fixtures made
 * from 16 kHz FLAC/WAV match the reference exactly.
 *
 * Everything is built on one streaming reader (tolk_audio_open/read):
 * decode a block of frames -> average channels -> feed libsoxr -> hand out
 * 16 kHz samples. Memory is constant for files of any length, except for
 * standard input and other non-seekable inputs, which are read into memory
 * first (libsndfile and FFmpeg both need to seek). The whole-file loaders
 * drive the same reader, so streaming and whole-file output are identical.
 */
#include "audio_internal.h"

#include <sndfile.h>
#include <soxr.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Floats decoded per block (all channels together): 256 KiB of buffer. */
#define AUDIO_BLOCK_FLOATS 65536

enum source_kind { SRC_SNDFILE = 1, SRC_FFMPEG = 2 };

/* A file (read with pread, so the descriptor's offset never matters) or
 * bytes in memory, seen as a file by libsndfile's virtual I/O. */
typedef struct mem_file {
    int fd; /* >= 0: read the file; else data */
    const unsigned char *data;
    sf_count_t size;
    sf_count_t pos;
} mem_file;

struct tolk_audio_reader {
    char *name;           /* for messages: the path, "<stdin>" or the caller's name */
    int kind;             /* enum source_kind */
    int fd;               /* open file when reading a regular file, else -1 */
    unsigned char *owned; /* bytes read from stdin / a pipe, else NULL */
    mem_file mem;         /* memory view for sf_open_virtual */
    SF_VIRTUAL_IO vio;
    SNDFILE *sf;
#ifdef TOLK_HAVE_FFMPEG
    tolk_ff_source *ff;
#endif
    int rate;            /* source sample rate, Hz */
    int channels;        /* source channels */
    int64_t frames;      /* source frames, -1 when unknown */
    int64_t frames_read; /* source frames decoded so far */
    int exact_frames;    /* frames is exact: decoding fewer is an error */
    size_t block;        /* frames decoded per block */
    float *ibuf;         /* [block, channels] interleaved; NULL when mono */
    float *mono;         /* [block] mono samples at the source rate */
    size_t mono_pos, mono_len;
    soxr_t soxr;       /* NULL when the source is already 16 kHz */
    int eof;           /* source exhausted (resampler being flushed) */
    int done;          /* nothing more to hand out */
    tolk_status error; /* sticky: a failed read fails every later read */
};

/* ------------------------------------------------------------------------ */
/* libsndfile virtual I/O over bytes in memory                               */
/* ------------------------------------------------------------------------ */

static sf_count_t mem_get_filelen(void *user) {
    return ((mem_file *)user)->size;
}

static sf_count_t mem_seek(sf_count_t offset, int whence, void *user) {
    mem_file *m = user;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return -1;
    /* Overflow-safe: both operands are bounded by the buffer size or caller. */
    if (offset < -base || offset > m->size - base) return -1;
    m->pos = base + offset;
    return m->pos;
}

static sf_count_t mem_read(void *ptr, sf_count_t count, void *user) {
    mem_file *m = user;
    if (count <= 0) return 0;
    sf_count_t left = m->size - m->pos;
    if (count > left) count = left;
    if (count <= 0) return 0;
    if (m->fd >= 0) {
        ssize_t r;
        do {
            r = pread(m->fd, ptr, (size_t)count, (off_t)m->pos);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) return 0;
        count = (sf_count_t)r;
    } else {
        memcpy(ptr, m->data + m->pos, (size_t)count);
    }
    m->pos += count;
    return count;
}

static sf_count_t mem_write(const void *ptr, sf_count_t count, void *user) {
    return 0; /* read-only */
}

static sf_count_t mem_tell(void *user) {
    return ((mem_file *)user)->pos;
}

/* ------------------------------------------------------------------------ */
/* Recognising what libsndfile could not open                               */
/* ------------------------------------------------------------------------ */

/* Name of a container libsndfile does not read but FFmpeg does, from the
 * first n bytes h, or NULL when none is recognised. */
static const char *container_by_magic(const unsigned char *h, size_t n) {
    if (n >= 12 && memcmp(h + 4, "ftyp", 4) == 0) {
        if (memcmp(h + 8, "M4A ", 4) == 0 || memcmp(h + 8, "M4B ", 4) == 0) return "M4A/MP4 audio";
        if (memcmp(h + 8, "qt  ", 4) == 0) return "QuickTime (MOV)";
        if (memcmp(h + 8, "3gp", 3) == 0 || memcmp(h + 8, "3g2", 3) == 0) return "3GP";
        return "MP4";
    }
    if (n >= 8 && (memcmp(h + 4, "moov", 4) == 0 || memcmp(h + 4, "mdat", 4) == 0 ||
                   memcmp(h + 4, "wide", 4) == 0 || memcmp(h + 4, "free", 4) == 0))
        return "MP4/QuickTime";
    if (n >= 4 && h[0] == 0x1A && h[1] == 0x45 && h[2] == 0xDF && h[3] == 0xA3)
        return "Matroska/WebM";
    if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "AVI ", 4) == 0) return "AVI";
    if (n >= 4 && h[0] == 0x30 && h[1] == 0x26 && h[2] == 0xB2 && h[3] == 0x75) return "ASF/WMA";
    if (n >= 3 && memcmp(h, "FLV", 3) == 0) return "FLV";
    if (n >= 5 && memcmp(h, "#!AMR", 5) == 0) return "AMR";
    if (n >= 4 && h[0] == 0 && h[1] == 0 && h[2] == 1 && h[3] == 0xBA) return "MPEG program stream";
    if (n >= 377 && h[0] == 0x47 && h[188] == 0x47 && h[376] == 0x47)
        return "MPEG transport stream";
    if (n >= 2 && h[0] == 0x0B && h[1] == 0x77) return "AC-3";
    /* ADTS: 12-bit sync 0xFFF, then layer bits 00 (MP3 frames have layer != 00). */
    if (n >= 7 && h[0] == 0xFF && (h[1] & 0xF6) == 0xF0) return "ADTS AAC";
    if (n >= 4 && memcmp(h, "ADIF", 4) == 0) return "ADIF AAC";
    return NULL;
}

#ifdef TOLK_HAVE_FFMPEG
/* Read n bytes at offset off of the input (file or memory); 1 when all n
 * were read. */
static int input_pread(const mem_file *m, void *buf, size_t n, sf_count_t off) {
    if (off < 0 || off > m->size || (sf_count_t)n > m->size - off) return 0;
    if (m->fd < 0) {
        memcpy(buf, m->data + off, n);
        return 1;
    }
    ssize_t r;
    do {
        r = pread(m->fd, buf, n, (off_t)off);
    } while (r < 0 && errno == EINTR);
    return r == (ssize_t)n;
}

/* For a RIFF file (WAV) that libsndfile refused: whether every chunk before
 * "data" fits in the file. FFmpeg's WAV demuxer trusts chunk sizes enough
 * to allocate them (a 114-byte file can ask for 1.3 GB), so a RIFF file
 * whose chunks overrun it is refused before FFmpeg sees it. On failure the
 * offending chunk is described in why. */
static int riff_chunks_fit(const mem_file *m, char why[TOLK_AUDIO_WHY_MAX]) {
    unsigned char h[12];
    if (!input_pread(m, h, 12, 0) || memcmp(h, "RIFF", 4) != 0) return 1;
    sf_count_t off = 12;
    for (int k = 0; k < 100000 && off + 8 <= m->size; k++) {
        unsigned char c[8];
        if (!input_pread(m, c, 8, off)) return 1;
        uint32_t len =
            (uint32_t)c[4] | (uint32_t)c[5] << 8 | (uint32_t)c[6] << 16 | (uint32_t)c[7] << 24;
        if (memcmp(c, "data", 4) == 0) return 1; /* samples may be cut short */
        if ((sf_count_t)len > m->size - off - 8) {
            char id[5];
            for (int i = 0; i < 4; i++)
                id[i] = c[i] >= 0x20 && c[i] < 0x7F ? (char)c[i] : '?';
            id[4] = '\0';
            snprintf(why, TOLK_AUDIO_WHY_MAX,
                     "RIFF chunk '%s' at byte %lld claims %u bytes, the file has %lld left", id,
                     (long long)off, len, (long long)(m->size - off - 8));
            return 0;
        }
        off += 8 + (sf_count_t)len + (len & 1);
    }
    return 1;
}
#endif /* TOLK_HAVE_FFMPEG */

/* Whether the first n bytes look like text (printable ASCII / UTF-8 and
 * whitespace only), to say so in the error message. */
static int looks_like_text(const unsigned char *h, size_t n) {
    if (n < 8) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = h[i];
        if (c >= 0x20 && c != 0x7F) continue;
        if (c == '\n' || c == '\r' || c == '\t' || c == '\f') continue;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* Read everything from fd into a new buffer (*out, free()); for stdin and
 * pipes. Returns 0, or an errno value (ENOMEM when too big). */
static int slurp_fd(int fd, unsigned char **out, size_t *size) {
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    *out = NULL;
    *size = 0;
    if (!buf) return ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                return ENOMEM;
            }
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            return e;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    *out = buf;
    *size = len;
    return 0;
}

void tolk_audio_close(tolk_audio_reader *r) {
    if (!r) return;
    if (r->sf) sf_close(r->sf);
#ifdef TOLK_HAVE_FFMPEG
    tolk_ff_close(r->ff);
#endif
    if (r->soxr) soxr_delete(r->soxr);
    if (r->fd >= 0) close(r->fd);
    free(r->owned);
    free(r->ibuf);
    free(r->mono);
    free(r->name);
    free(r);
}

/* Open the decoder of r: libsndfile first, FFmpeg second when built with it.
 * head/n_head: the first bytes of the input, to name what failed. */
static tolk_status open_decoder(tolk_ctx *ctx, tolk_audio_reader *r, const unsigned char *head,
                                size_t n_head) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    r->mem.pos = 0;
    r->sf = sf_open_virtual(&r->vio, SFM_READ, &info, &r->mem);
    if (r->sf) {
        r->kind = SRC_SNDFILE;
        r->rate = info.samplerate;
        r->channels = info.channels;
        r->frames = info.frames >= 0 && info.frames != SF_COUNT_MAX ? info.frames : -1;
        /* Normalised float reads: 16-bit PCM becomes sample / 32768 exactly. */
        sf_command(r->sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
        /* FLAC's STREAMINFO count is exact (when set), so decoding fewer
         * frames means a truncated or corrupt file. Other formats' counts
         * can be estimates (MP3 without a Xing header) or are already
         * clamped to the file (WAV, AIFF). */
        r->exact_frames = (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC;
#ifdef TOLK_HAVE_FFMPEG
        if (r->frames == 0) {
            /* A header that says "no samples" (a WAV whose recorder never
             * finalised its data size): FFmpeg may still find the samples. */
            char ff_why[TOLK_AUDIO_WHY_MAX];
            if (tolk_ff_open(r->fd, r->mem.data, (size_t)r->mem.size, &r->ff, &r->rate,
                             &r->channels, ff_why) == TOLK_OK) {
                sf_close(r->sf);
                r->sf = NULL;
                r->kind = SRC_FFMPEG;
                r->frames = -1;
                r->exact_frames = 0;
            }
        }
#endif
        return TOLK_OK;
    }
    int sf_code = sf_error(NULL);
    char sf_why[TOLK_AUDIO_WHY_MAX];
    snprintf(sf_why, sizeof sf_why, "%s", sf_strerror(NULL));
    const char *container = container_by_magic(head, n_head);

#ifdef TOLK_HAVE_FFMPEG
    char ff_why[TOLK_AUDIO_WHY_MAX] = "";
    if (!riff_chunks_fit(&r->mem, ff_why))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: corrupt WAV file: %s (libsndfile: %s)", r->name,
                         ff_why, sf_why);
    tolk_status fst = tolk_ff_open(r->fd, r->mem.data, (size_t)r->mem.size, &r->ff, &r->rate,
                                   &r->channels, ff_why);
    if (fst == TOLK_OK) {
        r->kind = SRC_FFMPEG;
        r->frames = -1;
        return TOLK_OK;
    }
    if (fst == TOLK_ERR_EMPTY)
        return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: no audio samples (FFmpeg: %s)", r->name, ff_why);
    if (fst == TOLK_ERR_NOMEM)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory (FFmpeg: %s)", r->name, ff_why);
    if (container || fst == TOLK_ERR_UNSUPPORTED)
        return tolk_fail(ctx, fst == TOLK_ERR_UNSUPPORTED ? fst : TOLK_ERR_FORMAT,
                         "%s: cannot decode %s (FFmpeg: %s; libsndfile: %s)", r->name,
                         container ? container : "the audio", ff_why, sf_why);
    if (looks_like_text(head, n_head))
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a recognised audio format (looks like a text file)", r->name);
    if (sf_code == SF_ERR_UNRECOGNISED_FORMAT)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a recognised audio format (libsndfile: %s; FFmpeg: %s)", r->name,
                         sf_why, ff_why);
    return tolk_fail(ctx, TOLK_ERR_FORMAT,
                     "%s: corrupt or unsupported audio data (libsndfile: %s; FFmpeg: %s)", r->name,
                     sf_why, ff_why);
#else
    if (container)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: unsupported container (%s); libsndfile cannot read it, "
                         "build tolk with FFmpeg support to decode it",
                         r->name, container);
    if (looks_like_text(head, n_head))
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a recognised audio format (looks like a text file)", r->name);
    if (sf_code == SF_ERR_UNRECOGNISED_FORMAT)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not a recognised audio format (libsndfile: %s)",
                         r->name, sf_why);
    return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: corrupt or unsupported audio data (libsndfile: %s)",
                     r->name, sf_why);
#endif
}

/* Make a libsoxr stream resampler from in_rate to out_rate, mono float32,
 * very high quality, one thread. *err gets libsoxr's message on failure. */
static soxr_t make_soxr(double in_rate, double out_rate, const char **err) {
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_error_t e = NULL;
    soxr_t s = soxr_create(in_rate, out_rate, 1, &e, &io, &q, &rt);
    if (!s || e) {
        if (s) soxr_delete(s);
        *err = e ? e : "soxr_create failed";
        return NULL;
    }
    return s;
}

/* Common tail of opening: check what the decoder declared, size buffers,
 * make the resampler. */
static tolk_status finish_open(tolk_ctx *ctx, tolk_audio_reader *r) {
    if (r->channels < 1 || r->channels > TOLK_AUDIO_MAX_CHANNELS)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: absurd channel count %d (supported: 1..%d)",
                         r->name, r->channels, TOLK_AUDIO_MAX_CHANNELS);
    if (r->rate < TOLK_AUDIO_MIN_RATE || r->rate > TOLK_AUDIO_MAX_RATE)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: unsupported sample rate %d Hz (supported: %d..%d Hz)", r->name,
                         r->rate, TOLK_AUDIO_MIN_RATE, TOLK_AUDIO_MAX_RATE);
    if (r->frames == 0)
        return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: the file holds no audio samples", r->name);
    r->block = AUDIO_BLOCK_FLOATS / (size_t)r->channels;
    if (r->block < 64) r->block = 64;
    r->mono = tolk_malloc_array(r->block, sizeof(float));
    if (r->channels > 1) r->ibuf = tolk_malloc_array(r->block * (size_t)r->channels, sizeof(float));
    if (!r->mono || (r->channels > 1 && !r->ibuf))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory for decode buffers", r->name);
    if (r->rate != TOLK_SAMPLE_RATE) {
        const char *err = NULL;
        r->soxr = make_soxr((double)r->rate, (double)TOLK_SAMPLE_RATE, &err);
        if (!r->soxr)
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: cannot make a %d -> %d Hz resampler (%s)",
                             r->name, r->rate, TOLK_SAMPLE_RATE, err);
    }
    return TOLK_OK;
}

/* Open a reader over either a path (path != NULL) or bytes (data/size,
 * borrowed for the reader's life). name: for messages. */
static tolk_status reader_open(tolk_ctx *ctx, const char *path, const void *data, size_t size,
                               const char *name, tolk_audio_reader **out) {
    *out = NULL;
    tolk_audio_reader *r = calloc(1, sizeof *r);
    if (!r) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    r->fd = -1;
    r->mem.fd = -1;
    r->name = strdup(name);
    if (!r->name) {
        free(r);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    }
    r->vio.get_filelen = mem_get_filelen;
    r->vio.seek = mem_seek;
    r->vio.read = mem_read;
    r->vio.write = mem_write;
    r->vio.tell = mem_tell;

    tolk_status st;
    unsigned char head[512];
    size_t n_head = 0;
    if (path) {
        int fd;
        if (strcmp(path, "-") == 0) {
            fd = STDIN_FILENO;
            if (isatty(fd)) {
                /* Reading would wait for someone to type audio. */
                st = tolk_fail(ctx, TOLK_ERR_IO,
                               "%s: standard input is a terminal; pipe or redirect audio into it",
                               name);
                goto fail;
            }
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                int e = errno;
                st = tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", name,
                               e == ENOENT ? "no such file" : strerror(e));
                goto fail;
            }
        }
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            st = tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", name, strerror(errno));
            if (fd != STDIN_FILENO) close(fd);
            goto fail;
        }
        if (S_ISDIR(sb.st_mode)) {
            st = tolk_fail(ctx, TOLK_ERR_IO, "%s: is a directory, not an audio file", name);
            if (fd != STDIN_FILENO) close(fd);
            goto fail;
        }
        if (S_ISREG(sb.st_mode) && fd != STDIN_FILENO) {
            r->fd = fd;
            r->mem.fd = fd;
            r->mem.size = (sf_count_t)sb.st_size;
            if (sb.st_size == 0) {
                st = tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: empty file (0 bytes)", name);
                goto fail;
            }
            ssize_t got = pread(fd, head, sizeof head, 0);
            if (got < 0) {
                st = tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", name, strerror(errno));
                goto fail;
            }
            n_head = (size_t)got;
        } else {
            /* stdin, a pipe or a device: not seekable, so read it all. */
            size_t n = 0;
            int e = slurp_fd(fd, &r->owned, &n);
            if (fd != STDIN_FILENO) close(fd);
            if (e != 0) {
                st = tolk_fail(ctx, e == ENOMEM ? TOLK_ERR_NOMEM : TOLK_ERR_IO, "%s: %s", name,
                               e == ENOMEM ? "out of memory reading the stream" : strerror(e));
                goto fail;
            }
            data = r->owned;
            size = n;
            path = NULL;
        }
    }
    if (!path) {
        if (size == 0 || !data) {
            st = tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: empty input (0 bytes)", name);
            goto fail;
        }
        if ((uint64_t)size > (uint64_t)INT64_MAX) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: input too large", name);
            goto fail;
        }
        r->mem.data = data;
        r->mem.size = (sf_count_t)size;
        n_head = size < sizeof head ? size : sizeof head;
        memcpy(head, data, n_head);
    }
    st = open_decoder(ctx, r, head, n_head);
    if (st != TOLK_OK) goto fail;
    st = finish_open(ctx, r);
    if (st != TOLK_OK) goto fail;
    *out = r;
    return TOLK_OK;
fail:
    tolk_audio_close(r);
    return st;
}

tolk_status tolk_audio_open(tolk_ctx *ctx, const char *path, tolk_audio_reader **out) {
    if (out) *out = NULL;
    if (!path || !out)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_open: NULL argument");
    tolk_clear_error(ctx);
    return reader_open(ctx, path, NULL, 0, strcmp(path, "-") == 0 ? "<stdin>" : path, out);
}

void tolk_audio_source_info(const tolk_audio_reader *r, int *sample_rate, int *channels,
                            int64_t *frames) {
    if (sample_rate) *sample_rate = r ? r->rate : 0;
    if (channels) *channels = r ? r->channels : 0;
    if (frames) *frames = r ? r->frames : -1;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* Decode the next block into r->mono (mono at the source rate). Sets
 * r->eof when the source is exhausted. */
static tolk_status fill_mono(tolk_ctx *ctx, tolk_audio_reader *r) {
    const size_t C = (size_t)r->channels;
    float *dst = C == 1 ? r->mono : r->ibuf; /* [block, C] */
    size_t n = 0;
    if (r->kind == SRC_SNDFILE) {
        sf_count_t got = sf_readf_float(r->sf, dst, (sf_count_t)r->block);
        if (got < 0 || (size_t)got > r->block) got = 0;
        n = (size_t)got;
        if (n == 0) {
            int code = sf_error(r->sf);
            if (code != SF_ERR_NO_ERROR)
                return tolk_fail(ctx, TOLK_ERR_FORMAT,
                                 "%s: decoding failed after %lld frames (libsndfile: %s)", r->name,
                                 (long long)r->frames_read, sf_strerror(r->sf));
        }
    }
#ifdef TOLK_HAVE_FFMPEG
    else {
        char why[TOLK_AUDIO_WHY_MAX] = "";
        tolk_status st = tolk_ff_read(r->ff, dst, r->block, &n, why);
        if (st != TOLK_OK)
            return tolk_fail(ctx, st, "%s: decoding failed after %lld frames (FFmpeg: %s)", r->name,
                             (long long)r->frames_read, why);
    }
#endif
    if (n == 0) {
        r->eof = 1;
        if (r->exact_frames && r->frames > 0 && r->frames_read < r->frames)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: truncated or corrupt: the header promises %lld frames, only "
                             "%lld decode",
                             r->name, (long long)r->frames, (long long)r->frames_read);
        r->mono_pos = r->mono_len = 0;
        return TOLK_OK;
    }
    r->frames_read += (int64_t)n;
    if (C > 1) {
        /* Average the channels in float: mono[i] = sum_c x[i, c] / C. */
        const float inv = 1.0f / (float)C;
        for (size_t i = 0; i < n; i++) {
            const float *x = dst + i * C;
            float s = 0.0f;
            for (size_t c = 0; c < C; c++)
                s += x[c];
            r->mono[i] = C == 2 ? s * 0.5f : s * inv;
        }
    }
    r->mono_pos = 0;
    r->mono_len = n;
    return TOLK_OK;
}

tolk_status tolk_audio_read(tolk_ctx *ctx, tolk_audio_reader *r, float *dst, size_t max,
                            size_t *got) {
    if (got) *got = 0;
    if (!r || !got || (!dst && max > 0))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_read: NULL argument");
    if (r->error != TOLK_OK)
        return tolk_fail(ctx, r->error, "%s: the stream failed earlier", r->name);
    size_t n = 0;
    int stalls = 0;
    while (n < max && !r->done) {
        if (r->mono_pos == r->mono_len && !r->eof) {
            tolk_status st = fill_mono(ctx, r);
            if (st != TOLK_OK) {
                r->error = st;
                return st;
            }
            continue;
        }
        size_t avail = r->mono_len - r->mono_pos;
        if (!r->soxr) {
            if (avail == 0) { /* eof */
                r->done = 1;
                break;
            }
            size_t k = avail < max - n ? avail : max - n;
            memcpy(dst + n, r->mono + r->mono_pos, k * sizeof(float));
            r->mono_pos += k;
            n += k;
            continue;
        }
        size_t idone = 0, odone = 0;
        soxr_error_t e;
        if (avail > 0)
            e = soxr_process(r->soxr, r->mono + r->mono_pos, avail, &idone, dst + n, max - n,
                             &odone);
        else /* eof: flush the resampler's tail */
            e = soxr_process(r->soxr, NULL, 0, NULL, dst + n, max - n, &odone);
        if (e) {
            r->error = TOLK_ERR_INTERNAL;
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: resampling failed (libsoxr: %s)", r->name,
                             e);
        }
        r->mono_pos += idone;
        n += odone;
        if (avail == 0 && odone == 0) r->done = 1;
        if (idone == 0 && odone == 0 && avail > 0 && ++stalls > 1000) {
            r->error = TOLK_ERR_INTERNAL;
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: the resampler stopped making progress",
                             r->name);
        }
    }
    *got = n;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Whole-file loading                                                       */
/* ------------------------------------------------------------------------ */

/* Drain reader r into a new buffer. */
static tolk_status read_all(tolk_ctx *ctx, tolk_audio_reader *r, float **samples,
                            size_t *n_samples) {
    size_t cap = (size_t)1 << 16;
    if (r->frames > 0) {
        /* A guess from the header, bounded so that a lying header costs
         * little (at most 16 MiB up front; beyond that the buffer grows). */
        double est = (double)r->frames * TOLK_SAMPLE_RATE / r->rate + 64.0;
        const double most = (double)((size_t)1 << 22);
        cap = est > most ? (size_t)most : est > (double)cap ? (size_t)est : cap;
    }
    float *buf = tolk_malloc_array(cap, sizeof(float));
    if (!buf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", r->name);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap;
            float *nb = NULL;
            size_t bytes;
            if (tolk_mul_size(cap, 2, &ncap) && tolk_mul_size(ncap, sizeof(float), &bytes))
                nb = realloc(buf, bytes);
            if (!nb) {
                free(buf);
                return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory after %zu samples",
                                 r->name, len);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = 0;
        tolk_status st = tolk_audio_read(ctx, r, buf + len, cap - len, &got);
        if (st != TOLK_OK) {
            free(buf);
            return st;
        }
        if (got == 0) break;
        len += got;
    }
    if (len == 0) {
        free(buf);
        return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: no audio samples", r->name);
    }
    float *shrunk = realloc(buf, len * sizeof(float));
    *samples = shrunk ? shrunk : buf;
    *n_samples = len;
    return TOLK_OK;
}

tolk_status tolk_audio_load(tolk_ctx *ctx, const char *path, float **samples, size_t *n_samples) {
    if (samples) *samples = NULL;
    if (n_samples) *n_samples = 0;
    if (!path || !samples || !n_samples)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_load: NULL argument");
    tolk_audio_reader *r = NULL;
    tolk_status st = tolk_audio_open(ctx, path, &r);
    if (st != TOLK_OK) return st;
    st = read_all(ctx, r, samples, n_samples);
    tolk_audio_close(r);
    return st;
}

tolk_status tolk_audio_load_memory(tolk_ctx *ctx, const void *data, size_t size, const char *name,
                                   float **samples, size_t *n_samples) {
    if (samples) *samples = NULL;
    if (n_samples) *n_samples = 0;
    if (!name) name = "<memory>";
    if ((!data && size > 0) || !samples || !n_samples)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_load_memory: NULL argument");
    tolk_clear_error(ctx);
    tolk_audio_reader *r = NULL;
    tolk_status st = reader_open(ctx, NULL, data, size, name, &r);
    if (st != TOLK_OK) return st;
    st = read_all(ctx, r, samples, n_samples);
    tolk_audio_close(r);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Resampling, padding, build facts                                         */
/* ------------------------------------------------------------------------ */

tolk_status tolk_resample(tolk_ctx *ctx, const float *in, size_t n_in, double in_rate,
                          double out_rate, float **out, size_t *n_out) {
    if (out) *out = NULL;
    if (n_out) *n_out = 0;
    if (!out || !n_out || (!in && n_in > 0))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_resample: NULL argument");
    if (!(in_rate >= 1.0 && in_rate <= 1e8) || !(out_rate >= 1.0 && out_rate <= 1e8) ||
        in_rate / out_rate > 256.0 || out_rate / in_rate > 256.0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "tolk_resample: rates %g -> %g Hz out of range (1..1e8 Hz, ratio <= 256)",
                         in_rate, out_rate);
    if (n_in == 0) return tolk_fail(ctx, TOLK_ERR_EMPTY, "tolk_resample: no input samples");
    double est = ceil((double)n_in * (out_rate / in_rate)) + 64.0;
    if (!(est < (double)(SIZE_MAX / sizeof(float))) || est > 9e15)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_resample: output too large");
    size_t cap = (size_t)est;
    float *buf = tolk_malloc_array(cap, sizeof(float));
    if (!buf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_resample: out of memory");
    if (in_rate == out_rate) {
        memcpy(buf, in, n_in * sizeof(float));
        *out = buf;
        *n_out = n_in;
        return TOLK_OK;
    }
    const char *err = NULL;
    soxr_t s = make_soxr(in_rate, out_rate, &err);
    if (!s) {
        free(buf);
        return tolk_fail(ctx, TOLK_ERR_INTERNAL, "tolk_resample: %s", err);
    }
    size_t len = 0, pos = 0;
    int stalls = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap;
            float *nb = NULL;
            size_t bytes;
            if (tolk_mul_size(cap, 2, &ncap) && tolk_mul_size(ncap, sizeof(float), &bytes))
                nb = realloc(buf, bytes);
            if (!nb) {
                soxr_delete(s);
                free(buf);
                return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_resample: out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        size_t idone = 0, odone = 0;
        soxr_error_t e;
        if (pos < n_in)
            e = soxr_process(s, in + pos, n_in - pos, &idone, buf + len, cap - len, &odone);
        else
            e = soxr_process(s, NULL, 0, NULL, buf + len, cap - len, &odone);
        if (e) {
            soxr_delete(s);
            free(buf);
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "tolk_resample: libsoxr: %s", e);
        }
        int at_end = pos >= n_in;
        pos += idone;
        len += odone;
        if (at_end && odone == 0) break;
        if (idone == 0 && odone == 0 && !at_end && ++stalls > 1000) {
            soxr_delete(s);
            free(buf);
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "tolk_resample: no progress");
        }
    }
    soxr_delete(s);
    *out = buf;
    *n_out = len;
    return TOLK_OK;
}

void tolk_audio_pad_or_trim(const float *src, size_t n, float *dst) {
    if (!dst) return;
    size_t k = n < (size_t)TOLK_N_SAMPLES ? n : (size_t)TOLK_N_SAMPLES;
    if (k > 0 && src)
        memcpy(dst, src, k * sizeof(float));
    else
        k = 0;
    memset(dst + k, 0, ((size_t)TOLK_N_SAMPLES - k) * sizeof(float));
}

int tolk_audio_has_ffmpeg(void) {
#ifdef TOLK_HAVE_FFMPEG
    return 1;
#else
    return 0;
#endif
}
