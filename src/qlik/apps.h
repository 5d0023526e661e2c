/* The list of apps from QRS (butlerd-api(7), apps list). Knows nothing about HTTP. */
#ifndef APPS_H
#define APPS_H

#include <stddef.h>

struct buf;
struct cfg;

enum apps_rc {
    APPS_OK,        /* OUT holds the JSON array [{"id", "name"}, ...] */
    APPS_FAILED,    /* no answer, or one without an app list (logged) */
    APPS_TOO_LARGE, /* the reply passed butlerd.qrs.maxReplyBytes: ERR says so */
};

/* Appends the list to OUT as JSON text; on failure OUT holds a partial text. */
enum apps_rc apps_list(const struct cfg *c, struct buf *out, char *err, size_t errsz);

#endif
