/* The route table: method + path pattern -> handler + enable flag, in one place. */
#ifndef ROUTER_H
#define ROUTER_H

#include <stddef.h>

struct req;
struct cfg;
typedef void (*api_handler)(struct req *r);

#define R_V2 1u    /* legacy /v2 route: case-insensitive, needs butlerd.v2Api.enable */
#define R_SCHED 2u /* scheduler route: needs Butler.scheduler.enable */
#define R_OPEN 4u  /* no authentication, even when butlerd.auth is on (/health, /ready) */
#define R_KVBODY 8u /* a flat JSON body is read into req.kvbody (http.c), not json-c */

/* The job pool a route's handler runs on when it defers (http_defer): one pool per
 * kind of waiting, so that one kind stuck (a hung QRS) never delays another. */
enum job_pool {
    JP_NONE = 0,  /* answers on the MHD thread, never defers */
    JP_QLIK,      /* QRS and the engine */
    JP_FILES,     /* file copy, move, delete, directories */
    JP_OUTBOUND,  /* Slack, the MQTT broker */
    JP_LOCAL,     /* long local work: the key list */
    JP_STORE,     /* shared state when it is on Redis: key-value store, active users, metrics */
    JP_COUNT
};

struct route {
    const char *method;
    const char *pattern; /* segments; ":name" is a parameter */
    api_handler fn;
    size_t flag; /* offsetof(struct cfg, ep.<flag>) */
    unsigned opts;
    enum job_pool pool;
    /* The API token scope the route needs when butlerd.auth is on (the names are in
     * src/common/scope.c and butlerd-api(7), "Authentication"). A route without one
     * (NULL) can only be called with a "*" token. */
    const char *scope;
};

#define ROUTE_MAX_PARAMS 4
struct route_params {
    int n;
    struct {
        const char *p; /* points into the raw path, not decoded */
        size_t len;
    } v[ROUTE_MAX_PARAMS];
};

/* Finds the route for METHOD and the raw PATH (no query), ignoring enable flags.
 * A static segment wins over a parameter at the same position. */
const struct route *router_match(const char *method, const char *path, size_t pathlen,
                                 struct route_params *params);
/* True if the route's enable flags are on in CFG. */
int router_enabled(const struct route *rt, const struct cfg *cfg);

/* The table itself, for GET /metrics: the number of routes, route I, the index of a
 * route, and its family (the metrics label "family": its scope, or "none" for no
 * route or no scope) as a number below METRICS_FAMILIES and as a name. */
size_t router_count(void);
const struct route *router_at(size_t i);
unsigned router_index(const struct route *rt);
unsigned router_family(const struct route *rt);
const char *router_family_name(unsigned family);

#endif
