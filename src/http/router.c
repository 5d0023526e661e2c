/* The route table. Routing uses the raw path, before percent-decoding: /v4 paths
 * match exactly and case-sensitively, /v2 paths case-insensitively. */
#include "router.h"
#include "api.h"
#include "cfg.h"
#include "metrics.h"
#include "scope.h"

#include <string.h>
#include <strings.h>

#define F(x) offsetof(struct cfg, ep.x)
#define OPS(x) offsetof(struct cfg, x) /* butlerd.metrics, .health, .documentation */

static const struct route routes[] = {
    {"GET", "/v4/configfile/endpointsenabled", api_endpointsenabled, F(apiListEnabledEndpoints), 0, JP_NONE, "config:read"},
    {"GET", "/v4/butlerping", api_ping, F(butlerping), 0, JP_NONE, "ping"},
    {"GET", "/v4/base62tobase16", api_base62tobase16, F(base62ToBase16), 0, JP_NONE, "convert"},
    {"GET", "/v4/base16tobase62", api_base16tobase62, F(base16ToBase62), 0, JP_NONE, "convert"},
    {"PUT", "/v4/filecopy", api_filecopy, F(fileCopy), 0, JP_FILES, "files"},
    {"PUT", "/v4/filemove", api_filemove, F(fileMove), 0, JP_FILES, "files"},
    {"DELETE", "/v4/filedelete", api_filedelete, F(fileDelete), 0, JP_FILES, "files"},
    {"POST", "/v4/createdir", api_createdir, F(createDir), 0, JP_FILES, "files"},
    {"POST", "/v4/createdirqvd", api_createdirqvd, F(createDirQVD), 0, JP_FILES, "files"},
    {"GET", "/v4/keyvaluesnamespaces", api_kv_namespaces, F(keyValueStore), 0, JP_STORE, "keyvalues:read"},
    {"GET", "/v4/keyvalues/:namespace", api_kv_get, F(keyValueStore), 0, JP_STORE, "keyvalues:read"},
    {"GET", "/v4/keyvalues/:namespace/keyexists", api_kv_exists, F(keyValueStore), 0, JP_STORE, "keyvalues:read"},
    {"POST", "/v4/keyvalues/:namespace", api_kv_post, F(keyValueStore), R_KVBODY, JP_STORE, "keyvalues:write"},
    {"DELETE", "/v4/keyvalues/:namespace/:key", api_kv_del, F(keyValueStore), 0, JP_STORE, "keyvalues:write"},
    {"DELETE", "/v4/keyvalues/:namespace", api_kv_del_ns, F(keyValueStore), 0, JP_STORE, "keyvalues:write"},
    {"GET", "/v4/keylist/:namespace", api_kv_keylist, F(keyValueStore), 0, JP_LOCAL, "keyvalues:read"},
    {"PUT", "/v4/slackpostmessage", api_slack_post, F(slackPostMessage), 0, JP_OUTBOUND, "slack"},
    {"POST", "/v4/newrelic/event", api_newrelic_event, F(nrEvent), 0, JP_OUTBOUND, "newrelic"},
    {"POST", "/v4/newrelic/metric", api_newrelic_metric, F(nrMetric), 0, JP_OUTBOUND, "newrelic"},
    {"PUT", "/v4/app/:appId/reload", api_app_reload, F(senseAppReload), 0, JP_QLIK, "apps:reload"},
    {"GET", "/v4/app/:appId/dump", api_app_dump, F(senseAppDump), 0, JP_QLIK, "apps:read"},
    {"GET", "/v4/senseappdump/:appId", api_app_dump, F(senseAppDump), 0, JP_QLIK, "apps:read"},
    {"GET", "/v4/apps/list", api_apps_list, F(senseListApps), 0, JP_QLIK, "apps:read"},
    {"GET", "/v4/senselistapps", api_apps_list, F(senseListApps), 0, JP_QLIK, "apps:read"},
    {"PUT", "/v4/reloadtask/:taskId/start", api_task_start, F(senseStartTask), 0, JP_QLIK, "tasks:start"},
    {"POST", "/v4/reloadtask/:taskId/start", api_task_start, F(senseStartTask), 0, JP_QLIK, "tasks:start"},
    {"PUT", "/v4/mqttpublishmessage", api_mqtt_publish, F(mqttPublishMessage), 0, JP_OUTBOUND, "mqtt:publish"},
    {"GET", "/v4/activeusercount", api_active_user_count, F(activeUserCount), 0, JP_STORE, "users:read"},
    {"GET", "/v4/activeusers", api_active_users, F(activeUsers), 0, JP_STORE, "users:read"},
    {"GET", "/v4/schedules", api_sched_get, F(schedGet), R_SCHED, JP_LOCAL, "schedules:read"},
    {"POST", "/v4/schedules", api_sched_create, F(schedCreate), R_SCHED, JP_LOCAL, "schedules:write"},
    {"DELETE", "/v4/schedules/:scheduleId", api_sched_delete, F(schedDelete), R_SCHED, JP_LOCAL, "schedules:write"},
    {"PUT", "/v4/schedules/:scheduleId/start", api_sched_start, F(schedStart), R_SCHED, JP_LOCAL, "schedules:write"},
    {"PUT", "/v4/schedules/startall", api_sched_startall, F(schedStart), R_SCHED, JP_LOCAL, "schedules:write"},
    {"PUT", "/v4/schedules/:scheduleId/stop", api_sched_stop, F(schedStop), R_SCHED, JP_LOCAL, "schedules:write"},
    {"PUT", "/v4/schedules/stopall", api_sched_stopall, F(schedStop), R_SCHED, JP_LOCAL, "schedules:write"},
    {"GET", "/v4/schedules/status", api_sched_status, F(schedStatusAll), R_SCHED, JP_LOCAL, "schedules:read"},
    {"GET", "/v2/mqttPublishMessage", api_v2_mqtt_publish, F(mqttPublishMessage), R_V2, JP_OUTBOUND, "mqtt:publish"},
    {"GET", "/v2/activeUserCount", api_v2_active_user_count, F(activeUserCount), R_V2, JP_STORE, "users:read"},
    {"GET", "/v2/activeUsers", api_active_users, F(activeUsers), R_V2, JP_STORE, "users:read"},
    {"GET", "/v2/senseListApps", api_apps_list, F(senseListApps), R_V2, JP_QLIK, "apps:read"},
    {"GET", "/v2/senseStartTask", api_v2_start_task, F(senseStartTask), R_V2, JP_QLIK, "tasks:start"},
    {"GET", "/v2/senseAppDump", api_v2_app_dump, F(senseAppDump), R_V2, JP_QLIK, "apps:read"},
    {"GET", "/v2/base16ToBase62", api_v2_base16tobase62, F(base16ToBase62), R_V2, JP_NONE, "convert"},
    {"GET", "/v2/base62ToBase16", api_v2_base62tobase16, F(base62ToBase16), R_V2, JP_NONE, "convert"},
    {"GET", "/v2/butlerPing", api_v2_ping, F(butlerping), R_V2, JP_NONE, "ping"},
    {"GET", "/v2/createDir", api_v2_createdir, F(createDir), R_V2, JP_FILES, "files"},
    {"GET", "/v2/createDirQVD", api_v2_createdirqvd, F(createDirQVD), R_V2, JP_FILES, "files"},
    {"GET", "/v2/slackPostMessage", api_v2_slack_post, F(slackPostMessage), R_V2, JP_OUTBOUND, "slack"},
    {"GET", "/metrics", api_metrics, OPS(metrics.enable), 0, JP_STORE, "metrics"},
    {"GET", "/health", api_health, OPS(health.enable), R_OPEN, JP_NONE, NULL},
    {"GET", "/ready", api_ready, OPS(health.enable), R_OPEN, JP_QLIK, NULL},
    {"GET", "/documentation", api_docs_html, OPS(documentation.enable), R_OPEN, JP_NONE, NULL},
    {"GET", "/documentation/json", api_docs_json, OPS(documentation.enable), R_OPEN, JP_NONE, NULL},
    {"GET", "/documentation/yaml", api_docs_yaml, OPS(documentation.enable), R_OPEN, JP_NONE, NULL},
};
#define NROUTES (sizeof routes / sizeof routes[0])
_Static_assert(NROUTES < METRICS_ROUTES, "metrics.h: METRICS_ROUTES too small");

/* Matches one route; returns a score (higher = more static segments earlier) or -1. */
static long match(const struct route *rt, const char *path, size_t len,
                  struct route_params *pp)
{
    const char *pat = rt->pattern;
    const char *p = path, *end = path + len;
    int ci = (rt->opts & R_V2) != 0;
    long score = 0;
    int seg = 0;
    pp->n = 0;

    while (*pat) {
        if (*pat != '/' || p >= end || *p != '/')
            return -1;
        pat++;
        p++;
        const char *pe = strchr(pat, '/');
        size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);
        const char *se = memchr(p, '/', (size_t)(end - p));
        size_t slen = se ? (size_t)(se - p) : (size_t)(end - p);

        if (*pat == ':') {
            if (pp->n >= ROUTE_MAX_PARAMS)
                return -1;
            pp->v[pp->n].p = p;
            pp->v[pp->n].len = slen;
            pp->n++;
        } else {
            if (plen != slen ||
                (ci ? strncasecmp(pat, p, plen) : strncmp(pat, p, plen)) != 0)
                return -1;
            if (seg < 30)
                score |= 1L << (30 - seg);
        }
        pat += plen;
        p += slen;
        seg++;
    }
    return p == end ? score : -1;
}

/* The literal start of each pattern (up to its first parameter) and whether it is
 * all of it: every request is checked against every route, and this rules out
 * nearly all of them with one comparison (butlerd(8), PERFORMANCE). */
static size_t lit_len[NROUTES];
static unsigned char lit_all[NROUTES];
static unsigned char family[NROUTES];

static unsigned family_of(const struct route *rt)
{
    for (unsigned i = 0; rt->scope && scope_names[i]; i++)
        if (!strcmp(scope_names[i], rt->scope))
            return i + 1;
    return 0;
}

__attribute__((constructor)) static void router_init(void)
{
    for (size_t i = 0; i < NROUTES; i++) {
        lit_len[i] = strcspn(routes[i].pattern, ":");
        lit_all[i] = routes[i].pattern[lit_len[i]] == '\0';
        family[i] = (unsigned char)family_of(&routes[i]);
    }
}

/* A route can only match PATH if PATH starts with its literal part (and is no more
 * than that, for a route without parameters); match() decides the rest. */
static int may_match(size_t i, const char *path, size_t len)
{
    size_t n = lit_len[i];
    if (lit_all[i] ? len != n : len < n)
        return 0;
    return (routes[i].opts & R_V2) ? !strncasecmp(routes[i].pattern, path, n)
                                   : !memcmp(routes[i].pattern, path, n);
}

/* The last lookup of this thread: a client on a keep-alive connection mostly asks
 * for the same path again, and the answer depends on the method and the path only,
 * so the table is not walked again for it (butlerd(8), PERFORMANCE). */
#define LAST_PATH 96
static __thread struct {
    char method[16];
    char path[LAST_PATH];
    size_t len; /* 0: nothing kept */
    const struct route *rt;
} last;

static const struct route *walk(const char *method, const char *path, size_t pathlen,
                                struct route_params *params)
{
    const struct route *best = NULL;
    long best_score = -1;
    struct route_params tmp;
    for (size_t i = 0; i < NROUTES; i++) {
        const struct route *rt = &routes[i];
        if (rt->method[0] != method[0] || strcmp(rt->method, method) != 0 ||
            !may_match(i, path, pathlen))
            continue;
        long s = match(rt, path, pathlen, &tmp);
        if (s > best_score) {
            best_score = s;
            best = rt;
            if (params)
                *params = tmp;
        }
    }
    return best;
}

const struct route *router_match(const char *method, const char *path, size_t pathlen,
                                 struct route_params *params)
{
    size_t mlen = strlen(method);
    if (last.len && last.len == pathlen && mlen < sizeof last.method &&
        !memcmp(last.path, path, pathlen) && !strcmp(last.method, method)) {
        if (last.rt && params)
            match(last.rt, path, pathlen, params);
        return last.rt;
    }
    const struct route *rt = walk(method, path, pathlen, params);
    if (pathlen && pathlen <= LAST_PATH && mlen < sizeof last.method) {
        memcpy(last.method, method, mlen + 1);
        memcpy(last.path, path, pathlen);
        last.len = pathlen;
        last.rt = rt;
    } else {
        last.len = 0;
    }
    return rt;
}

int router_enabled(const struct route *rt, const struct cfg *cfg)
{
    if (!cfg->rest.enable || !cfg_flag(cfg, rt->flag))
        return 0;
    if ((rt->opts & R_V2) && !cfg->v2Enable)
        return 0;
    if ((rt->opts & R_SCHED) && !cfg->scheduler.enable)
        return 0;
    return 1;
}

size_t router_count(void) { return NROUTES; }

const struct route *router_at(size_t i) { return i < NROUTES ? &routes[i] : NULL; }

unsigned router_index(const struct route *rt) { return (unsigned)(rt - routes); }

unsigned router_family(const struct route *rt) { return rt ? family[rt - routes] : 0; }

const char *router_family_name(unsigned f)
{
    for (unsigned i = 0; scope_names[i]; i++)
        if (i + 1 == f)
            return scope_names[i];
    return "none";
}
