/*
 * progress.h — progress reporting for long CLI commands on stderr: a
 * redrawn bar with the audio position and the real-time factor when stderr
 * is a terminal, plain throttled lines otherwise, nothing when disabled.
 */
#ifndef TOLK_CLI_PROGRESS_H
#define TOLK_CLI_PROGRESS_H

#include <stdio.h>

typedef struct cli_progress {
    FILE *out;         /* stderr */
    int enabled;       /* 0: silent */
    int tty;           /* out is a terminal: draw a bar */
    const char *name;  /* the input being processed (borrowed) */
    double t0;         /* monotonic seconds at cli_progress_start */
    double last_draw;  /* monotonic seconds of the last bar / line */
    double last_pos;   /* audio seconds at the last line */
    double pos, total; /* latest audio position and total, seconds (total < 0: unknown) */
    int bar_shown;     /* a bar is on the screen now (must be erased first) */
} cli_progress;

/* Monotonic wall-clock seconds. */
double cli_now(void);

/* Start reporting on input name (stored, not copied) to out. enabled = 0
 * makes every call a no-op. */
void cli_progress_start(cli_progress *p, FILE *out, int enabled, const char *name);

/* A tolk_progress_fn: user is a cli_progress. Updates the bar (at most ten
 * times a second) or prints a plain line (at most once a second). Never
 * cancels: returns 0. */
int cli_progress_update(void *user, double position_s, double total_s);

/* Erase the bar, if drawn, so other output can be printed on a terminal;
 * the next update redraws it. */
void cli_progress_clear(cli_progress *p);

/* Finish: erase the bar and print one summary line,
 * "tolk: NAME: D s of audio in T s (RTF R)[, language L]" (extra may be
 * NULL). */
void cli_progress_done(cli_progress *p, double duration_s, const char *extra);

#endif
