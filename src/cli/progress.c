/*
 * progress.c — progress on stderr for `tolk transcribe` and friends (see
 * progress.h). openai-whisper shows a tqdm bar counted in frames; tolk
 * shows seconds of audio and the real-time factor (processing time / audio
 * time, lower is faster).
 */
#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, FILE *out, int enabled, const char *name) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->enabled = enabled && out;
    p->tty = p->enabled && isatty(fileno(out));
    p->name = name;
    p->t0 = cli_now();
    p->last_draw = -1e9;
    p->total = -1.0;
}

/* The last path component of name, at most max bytes shown (the tail). */
static const char *short_name(const char *name, int *len, int max) {
    const char *s = strrchr(name, '/');
    s = s ? s + 1 : name;
    int n = (int)strlen(s);
    if (n > max) {
        s += n - max;
        n = max;
    }
    *len = n;
    return s;
}

static void draw_bar(cli_progress *p, double elapsed) {
    int nlen;
    const char *nm = short_name(p->name, &nlen, 24);
    char bar[BAR_WIDTH + 1];
    double frac = p->total > 0 ? p->pos / p->total : 0.0;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    int fill = p->total > 0 ? (int)(frac * BAR_WIDTH + 0.5) : 0;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(p->out, "\r\033[K%.*s %3d%% [%s] %.1f", nlen, nm, (int)(frac * 100.0 + 0.5), bar,
            p->pos);
    if (p->total >= 0) fprintf(p->out, "/%.1f", p->total);
    fprintf(p->out, " s");
    if (p->pos > 0) fprintf(p->out, "  RTF %.3f", elapsed / p->pos);
    fflush(p->out);
    p->bar_shown = 1;
}

int cli_progress_update(void *user, double position_s, double total_s) {
    cli_progress *p = user;
    if (!p || !p->enabled) return 0;
    p->pos = position_s;
    p->total = total_s;
    double now = cli_now();
    double elapsed = now - p->t0;
    if (p->tty) {
        if (now - p->last_draw >= 0.1 || (total_s > 0 && position_s >= total_s)) {
            draw_bar(p, elapsed);
            p->last_draw = now;
        }
    } else if (now - p->last_draw >= 1.0 && position_s > p->last_pos) {
        fprintf(p->out, "tolk: %s: %.1f", p->name, position_s);
        if (total_s > 0)
            fprintf(p->out, "/%.1f s (%.0f%%)", total_s, 100.0 * position_s / total_s);
        else
            fprintf(p->out, " s");
        if (position_s > 0) fprintf(p->out, ", RTF %.3f", elapsed / position_s);
        fputc('\n', p->out);
        fflush(p->out);
        p->last_draw = now;
        p->last_pos = position_s;
    }
    return 0;
}

void cli_progress_clear(cli_progress *p) {
    if (!p || !p->bar_shown) return;
    fputs("\r\033[K", p->out);
    fflush(p->out);
    p->bar_shown = 0;
    p->last_draw = -1e9; /* redraw on the next update */
}

void cli_progress_done(cli_progress *p, double duration_s, const char *extra) {
    if (!p || !p->enabled) return;
    cli_progress_clear(p);
    double elapsed = cli_now() - p->t0;
    fprintf(p->out, "tolk: %s: %.1f s of audio in %.1f s", p->name, duration_s, elapsed);
    if (duration_s > 0) fprintf(p->out, " (RTF %.3f)", elapsed / duration_s);
    if (extra && *extra) fprintf(p->out, ", %s", extra);
    fputc('\n', p->out);
    fflush(p->out);
}
