/* Scope names. A route whose scope is not in this list (or has none) needs a token
 * with "*": a route added without a scope is closed to ordinary tokens. */
#include "scope.h"

#include <string.h>

const char *const scope_names[] = {
    "ping",            /* GET /v4/butlerping, /v2/butlerPing */
    "convert",         /* base62 <-> base16 */
    "config:read",     /* GET /v4/configfile/endpointsenabled */
    "keyvalues:read",  /* GET key-value routes */
    "keyvalues:write", /* POST and DELETE key-value routes */
    "tasks:start",     /* start reload tasks */
    "apps:read",       /* app list and dump */
    "apps:reload",     /* PUT /v4/app/:appId/reload */
    "files",           /* copy, move, delete, create directories */
    "mqtt:publish",    /* PUT /v4/mqttpublishmessage */
    "slack",           /* PUT /v4/slackpostmessage */
    "users:read",      /* active users and their count */
    "schedules:read",  /* scheduler: GET routes */
    "schedules:write", /* scheduler: create, update, delete, start, stop */
    "newrelic",        /* POST /v4/newrelic/event and /metric */
    "metrics",         /* GET /metrics */
    NULL,
};

unsigned scope_bit(const char *name)
{
    if (!name)
        return 0;
    if (!strcmp(name, "*"))
        return SCOPE_ALL;
    for (unsigned i = 0; scope_names[i]; i++)
        if (!strcmp(scope_names[i], name))
            return 1u << i;
    return 0;
}

int scope_changes(const char *name)
{
    static const char *const readonly[] = {"ping",      "convert",    "config:read",
                                           "keyvalues:read", "apps:read", "users:read",
                                           "schedules:read", "metrics", NULL};
    if (!name)
        return 1;
    for (unsigned i = 0; readonly[i]; i++)
        if (!strcmp(readonly[i], name))
            return 0;
    return 1;
}
