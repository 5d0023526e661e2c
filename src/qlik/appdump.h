/* App dump (butlerd-api(7), app dump): every part of an app, as JSON text, through the Qlik
 * Engine.
 * Blocks on the engine; knows nothing about HTTP. */
#ifndef APPDUMP_H
#define APPDUMP_H

struct buf;
struct cfg;

enum appdump_rc {
    APPDUMP_OK,
    APPDUMP_NOT_FOUND, /* the engine knows no such app */
    APPDUMP_FAILED,    /* no session, or an answer missing (logged) */
};

/* Called once with the outcome; with APPDUMP_OK, OUT holds the dump and DONE takes its
 * text (frees it or passes it on). It runs before the engine session is closed, so
 * the answer need not wait for the polite close. */
typedef void (*appdump_done_fn)(void *arg, enum appdump_rc rc, struct buf *out);

/* Dumps APP and calls DONE(ARG, ...). */
void appdump_run(const struct cfg *c, const char *app, appdump_done_fn done, void *arg);

#endif
