/*
 * realtime.h — the Realtime API's transcription session as a protocol
 * object without I/O (realtime_proto.c): client events in (JSON text),
 * server events out through a send function. realtime.c runs one per
 * WebSocket connection; tests and the fuzz target drive it directly.
 */
#ifndef TOLK_SERVE_REALTIME_H
#define TOLK_SERVE_REALTIME_H

#include "serve.h"

#include <stddef.h>

typedef struct rt_session rt_session;

/* Send one server event (JSON text, n bytes); returns 0, or -1 when the
 * connection cannot take it. */
typedef int (*rt_send_fn)(void *io, const char *json, size_t n);

/* A session transcribing with model m of server s (both NULL: a session
 * that runs the protocol but transcribes nothing, for tests and fuzzing). wake_fd (an eventfd, or
 * -1) gets written when the engine has new results: the owner then calls rt_poll. NULL when out of
 * memory. */
rt_session *rt_new(srv_server *s, srv_model *m, const char *id, rt_send_fn send, void *io,
                   int wake_fd);
/* Cancel the items in flight, wait for them, free. */
void rt_free(rt_session *rt);
/* Send session.created. */
void rt_start(rt_session *rt);
/* A client text message. Returns 0, or -1 when the session should close
 * (the error was sent). */
int rt_on_text(rt_session *rt, const char *msg, size_t n);
/* A client binary message (not part of the protocol: an error event). */
void rt_on_binary(rt_session *rt);
/* Deliver the results of the items in flight (deltas, completions). */
void rt_poll(rt_session *rt);
/* Items in flight. */
int rt_pending(const rt_session *rt);
/* Shutting down: commit what the input buffer holds (if it is long
 * enough), accept no more audio. */
void rt_flush(rt_session *rt);
/* Items transcribed and their seconds of audio. */
void rt_counts(const rt_session *rt, int *items, double *audio_s);

#endif
