/* App reload (butlerd-api(7), app reload) through the Qlik Engine, and the tasks started after it.
 * Knows nothing about HTTP. */
#ifndef APPRELOAD_H
#define APPRELOAD_H

#include "util.h"

#include <stddef.h>

struct cfg;

struct appreload_opts {
    int mode;                              /* qMode of DoReload: 0, 1 or 2 */
    int partial;                           /* qPartial */
    struct strlist on_success, on_failure; /* task IDs to start afterwards */
};

enum appreload_rc {
    APPRELOAD_STARTED,   /* the app is open and DoReload runs on its own thread */
    APPRELOAD_NOT_FOUND, /* the engine knows no such app */
    APPRELOAD_FAILED,    /* no session, EngineVersion or OpenDoc (logged) */
    APPRELOAD_NO_THREAD, /* the thread could not be created: WHY says why */
};

/* Called once with the outcome (WHY is NULL but for APPRELOAD_NO_THREAD): when the
 * reload runs, or before a failed start's engine session is closed, so the answer
 * need not wait for the polite close. */
typedef void (*appreload_done_fn)(void *arg, enum appreload_rc rc, const char *why);

/* Opens APP and starts its reload; takes O's task lists (O's are emptied), and calls
 * DONE(ARG, ...). BG, if not NULL, is called with +1 before the thread starts and -1
 * when it has finished, so a draining process can wait for reloads still running. */
void appreload_start(const struct cfg *c, const char *app, struct appreload_opts *o,
                     void (*bg)(int delta), appreload_done_fn done, void *arg);

#endif
