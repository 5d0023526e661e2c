/* Configuration text in, struct cfg out, for the unit tests that check keys:
 * load() writes TEXT to a temporary file and loads it; has() finds a message. */
#ifndef CFG_FIXTURE_H
#define CFG_FIXTURE_H

#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cfg *load(const char *text, struct cfg_msgs *m)
{
    char path[64] = "/tmp/butlerd-test-cfg-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
    memset(m, 0, sizeof *m);
    struct cfg *c = cfg_load(path, m);
    unlink(path);
    return c;
}

/* True if some message in L contains both ":LINE:" and TEXT (any line for 0). */
static int has(const struct strlist *l, int line, const char *text)
{
    char tag[32];
    snprintf(tag, sizeof tag, ":%d: ", line);
    for (size_t i = 0; i < l->n; i++)
        if ((line == 0 || strstr(l->v[i], tag)) && strstr(l->v[i], text))
            return 1;
    return 0;
}

#endif
