/* UDP intake (butlerd-api(7), UDP EVENTS). Everything runs in the master's loop and never
 * waits: session
 * events update the shared active-user table directly; task events that need QRS are
 * handed to the events process. Datagrams are read in batches with recvmmsg. The
 * three aggregate active-user topics are published at most ten times a second, each
 * time with the current state (so a burst does not republish the user list per
 * event), and again after every reconnect to the broker. */
#include "udp.h"
#include "cfg.h"
#include "events.h"
#include "guid.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "mqtt.h"
#include "stats.h"
#include "users.h"
#include "utf8.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define BUFSZ 65536          /* more than any UDP payload: truncation is detected */
#define FIELD_MAX_CP 500
#define DEDUP_CAP 65536      /* remembered execution IDs; the oldest go first */
#define MAX_HOSTS 10000      /* proxy hosts remembered for per-server counts */
#define WARN_BUDGET 60       /* intake warnings per minute before they are summarised */
#define AGGREGATE_MS 100     /* at most ten sets of active-user aggregates a second */
#define AGGREGATE_SHARE 10   /* ... and at most a tenth of the master's time on them */
#define AGGREGATE_MAX_MS 5000

struct addr {
    int family;
    unsigned char a[16];
};

static struct {
    const struct cfg *cfg;
    int fd[UDP_NSOCK];
    unsigned char *bufs;
    struct addr *allowed;
    size_t nallowed;
    int validate;
    int64_t window_start[UDP_NSOCK];
    unsigned window_count[UDP_NSOCK];
    /* rejected senders, warned about at most once a minute each */
    struct {
        struct addr a;
        int64_t at;
    } rejected[64];
    /* per-minute summary and warning budget */
    int64_t minute_start;
    unsigned warnings, suppressed;
    struct udp_counters last[UDP_NSOCK];
    int backpressure_warned;
    /* proxy hosts seen since startup */
    char **hosts;
    size_t nhosts;
    int users_dirty;
    int64_t next_expiry, full_warned_at, last_aggregate;
    int64_t aggregate_gap; /* ms between two sets of aggregates (publish_users) */
} u = {.fd = {-1, -1}};

/* ------------------------------------------------------------ text */

/* Printable ASCII within MAX_CP characters - nearly every field - is left as it is
 * without the code point by code point rewrite. */
void udp_sanitise(char *s, size_t max_cp)
{
    size_t i = 0;
    while ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7F)
        i++;
    if (s[i] || i > max_cp)
        utf8_strip_controls(s, max_cp);
}

/* Splits TEXT on ';' into at most MAX fields, the last one keeping the rest. */
static size_t split(char *text, char **f, size_t max)
{
    size_t n = 0;
    char *p = text;
    while (n < max - 1) {
        char *semi = strchr(p, ';');
        f[n++] = p;
        if (!semi)
            return n;
        *semi = '\0';
        p = semi + 1;
    }
    f[n++] = p;
    return n;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* ------------------------------------------------------------ logging */

static void new_minute(int64_t now)
{
    if (now - u.minute_start < 60000)
        return;
    if (u.minute_start) {
        for (int s = 0; s < UDP_NSOCK; s++) {
            struct udp_counters *c = &stats()->udp[s], *l = &u.last[s], cur;
            cur.dropped_size = __atomic_load_n(&c->dropped_size, __ATOMIC_RELAXED);
            cur.dropped_rate = __atomic_load_n(&c->dropped_rate, __ATOMIC_RELAXED);
            cur.dropped_queue = __atomic_load_n(&c->dropped_queue, __ATOMIC_RELAXED);
            cur.dropped_source = __atomic_load_n(&c->dropped_source, __ATOMIC_RELAXED);
            cur.duplicates = __atomic_load_n(&c->duplicates, __ATOMIC_RELAXED);
            uint64_t d[5] = {cur.dropped_size - l->dropped_size, cur.dropped_rate - l->dropped_rate,
                             cur.dropped_queue - l->dropped_queue,
                             cur.dropped_source - l->dropped_source,
                             cur.duplicates - l->duplicates};
            if (d[0] || d[1] || d[2] || d[3] || d[4])
                log_warnx("UDP %s socket, last minute: dropped %llu oversize, %llu over the rate "
                          "limit, %llu queue full, %llu from sources not allowed; %llu duplicates",
                          s == UDP_TASK ? "task event" : "session event",
                          (unsigned long long)d[0], (unsigned long long)d[1],
                          (unsigned long long)d[2], (unsigned long long)d[3],
                          (unsigned long long)d[4]);
            l->dropped_size = cur.dropped_size;
            l->dropped_rate = cur.dropped_rate;
            l->dropped_queue = cur.dropped_queue;
            l->dropped_source = cur.dropped_source;
            l->duplicates = cur.duplicates;
        }
        if (u.suppressed)
            log_warnx("UDP intake: %u more warnings in the last minute not logged", u.suppressed);
    }
    u.minute_start = now;
    u.warnings = 0;
    u.suppressed = 0;
}

/* Intake warnings are bounded: a flood of bad datagrams must not flood the log. */
static void __attribute__((format(printf, 1, 2))) warn(const char *fmt, ...)
{
    new_minute(now_ms());
    if (u.warnings >= WARN_BUDGET) {
        u.suppressed++;
        return;
    }
    u.warnings++;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_LV_WARN, 0, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ allow-list */

static int to_addr(const struct sockaddr *sa, struct addr *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            out->family = AF_INET;
            memcpy(out->a, a6->s6_addr + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->a, a6->s6_addr, 16);
        }
        return 0;
    }
    return -1;
}

static void addr_text(const struct addr *a, char *out, size_t n)
{
    if (!inet_ntop(a->family, a->a, out, (socklen_t)n))
        snprintf(out, n, "?");
}

static void resolve_allowed(const struct cfg *c)
{
    free(u.allowed);
    u.allowed = NULL;
    u.nallowed = 0;
    u.validate = c->udp.enableSourceValidation;
    if (!u.validate)
        return;
    for (size_t i = 0; i < c->udp.allowedSources.n; i++) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_DGRAM;
        int rc = getaddrinfo(c->udp.allowedSources.v[i], NULL, &hints, &res);
        if (rc != 0) {
            log_warnx("UDP allowed source %s does not resolve: %s", c->udp.allowedSources.v[i],
                      gai_strerror(rc));
            continue;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            struct addr a;
            if (to_addr(ai->ai_addr, &a) < 0)
                continue;
            u.allowed = xrealloc(u.allowed, (u.nallowed + 1) * sizeof *u.allowed);
            u.allowed[u.nallowed++] = a;
        }
        freeaddrinfo(res);
    }
    if (!u.nallowed) {
        log_warnx("udpServerConfig.enableSourceValidation is true but no allowed source %s: "
                  "source validation is switched off",
                  c->udp.allowedSources.n ? "resolves" : "is configured");
        u.validate = 0;
    }
}

static int allowed(const struct sockaddr *sa)
{
    struct addr a;
    if (!u.validate)
        return 1;
    if (to_addr(sa, &a) < 0)
        return 0;
    for (size_t i = 0; i < u.nallowed; i++)
        if (u.allowed[i].family == a.family &&
            !memcmp(u.allowed[i].a, a.a, a.family == AF_INET ? 4 : 16))
            return 1;
    char txt[INET6_ADDRSTRLEN];
    addr_text(&a, txt, sizeof txt);
    int64_t now = now_ms();
    size_t slot = 0;
    for (size_t i = 0; i < sizeof u.rejected / sizeof u.rejected[0]; i++) {
        if (u.rejected[i].a.family == a.family && !memcmp(u.rejected[i].a.a, a.a, 16)) {
            slot = i;
            goto found;
        }
        if (u.rejected[i].at < u.rejected[slot].at)
            slot = i; /* least recently warned: reused */
    }
    u.rejected[slot].a = a;
    u.rejected[slot].at = 0;
found:
    if (!u.rejected[slot].at || now - u.rejected[slot].at >= 60000) {
        log_warnx("UDP datagram from %s dropped: not an allowed source", txt);
        u.rejected[slot].at = now;
    } else {
        log_debug("UDP datagram from %s dropped: not an allowed source", txt);
    }
    return 0;
}

/* ------------------------------------------------------------ de-duplication */

/* Execution IDs are kept as the first 16 bytes of their SHA-256, so memory stays
 * fixed (2 MB) however long the IDs a sender makes up. */
struct dd_entry {
    unsigned char id[16];
    int64_t expires;
    uint32_t hash, next; /* next: 1-based index in the bucket chain, 0 = end */
    int used;
};

static struct {
    struct dd_entry *e; /* ring of DEDUP_CAP entries, in insertion order */
    uint32_t *bucket;   /* 1-based indexes */
    uint32_t head, count;
} dd;

static uint32_t dd_digest(const char *s, unsigned char id[16])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), md);
    memcpy(id, md, 16);
    uint32_t h;
    memcpy(&h, md + 16, 4);
    return h;
}

static void dd_unlink(uint32_t idx) /* 0-based */
{
    struct dd_entry *e = &dd.e[idx];
    uint32_t *link = &dd.bucket[e->hash & (DEDUP_CAP - 1)];
    while (*link && *link != idx + 1)
        link = &dd.e[*link - 1].next;
    if (*link)
        *link = e->next;
    e->used = 0;
}

/* 1 if KEY was processed less than the TTL ago. */
static int dd_seen(const char *key, int64_t now)
{
    if (!dd.e)
        return 0;
    unsigned char id[16];
    uint32_t h = dd_digest(key, id);
    for (uint32_t i = dd.bucket[h & (DEDUP_CAP - 1)]; i; i = dd.e[i - 1].next) {
        struct dd_entry *e = &dd.e[i - 1];
        if (e->hash == h && !memcmp(e->id, id, 16))
            return e->expires > now;
    }
    return 0;
}

static void dd_remember(const char *key, int64_t expires)
{
    if (!dd.e) {
        dd.e = xcalloc(DEDUP_CAP, sizeof *dd.e);
        dd.bucket = xcalloc(DEDUP_CAP, sizeof *dd.bucket);
    }
    unsigned char id[16];
    uint32_t h = dd_digest(key, id);
    for (uint32_t i = dd.bucket[h & (DEDUP_CAP - 1)]; i; i = dd.e[i - 1].next)
        if (dd.e[i - 1].hash == h && !memcmp(dd.e[i - 1].id, id, 16)) {
            dd.e[i - 1].expires = expires;
            return;
        }
    uint32_t idx = (dd.head + dd.count) % DEDUP_CAP;
    if (dd.count == DEDUP_CAP) { /* full: forget the oldest */
        dd_unlink(dd.head);
        dd.head = (dd.head + 1) % DEDUP_CAP;
        dd.count--;
    }
    struct dd_entry *e = &dd.e[idx];
    memcpy(e->id, id, 16);
    e->used = 1;
    e->expires = expires;
    e->hash = h;
    e->next = dd.bucket[h & (DEDUP_CAP - 1)];
    dd.bucket[h & (DEDUP_CAP - 1)] = idx + 1;
    dd.count++;
    /* expired entries at the old end are dropped as we go */
    while (dd.count && dd.e[dd.head].expires <= expires - (int64_t)u.cfg->udp.dedupTtlMinutes * 60000) {
        dd_unlink(dd.head);
        dd.head = (dd.head + 1) % DEDUP_CAP;
        dd.count--;
    }
}

/* ------------------------------------------------------------ session events */

static void topic_safe(char *s)
{
    for (; *s; s++)
        if (*s == '+' || *s == '#')
            *s = '_';
}

static void remember_host(const char *host)
{
    static size_t last; /* bursts come from one proxy at a time */
    if (last < u.nhosts && !strcmp(u.hosts[last], host))
        return;
    for (size_t i = 0; i < u.nhosts; i++)
        if (!strcmp(u.hosts[i], host)) {
            last = i;
            return;
        }
    if (u.nhosts >= MAX_HOSTS)
        return;
    u.hosts = xrealloc(u.hosts, (u.nhosts + 1) * sizeof *u.hosts);
    u.hosts[u.nhosts++] = xstrdup(host);
}

/* The gap before the next set of aggregates. A set costs time in proportion to the
 * active users (the whole list is one message), so with many users the sets come
 * less often than every AGGREGATE_MS: at most an AGGREGATE_SHARE-th of the
 * master's time, which must go to reading datagrams (butlerd(8), ACTIVE USERS,
 * "MQTT messages"). */
static int64_t aggregate_gap(void) { return u.aggregate_gap ? u.aggregate_gap : AGGREGATE_MS; }

static void publish_users(void)
{
    const struct cfg *c = u.cfg;
    u.users_dirty = 0;
    u.last_aggregate = now_ms();
    u.aggregate_gap = AGGREGATE_MS;
    if (!c->mqtt.enable || !mqtt_connected())
        return; /* republished as a whole after the next connect (udp_on_connect) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct users_view v;
    users_view(&v);
    char num[32];
    snprintf(num, sizeof num, "%zu", v.nusers);
    mqtt_event_str(c->mqtt.activeUserCountTopic, num);
    size_t len;
    char *js = users_view_json_text(&v, &len); /* no tree of one object per user */
    mqtt_event(c->mqtt.activeUsersTopic, js, len);
    free(js);
    size_t *counts = xcalloc(u.nhosts + 1, sizeof *counts);
    users_view_host_counts(&v, (const char *const *)u.hosts, u.nhosts, counts);
    for (size_t i = 0; i < u.nhosts; i++) {
        char *t = xasprintf("qliksense/users/activeperserver/%s/count", u.hosts[i]);
        topic_safe(t + strlen("qliksense/users/activeperserver/"));
        snprintf(num, sizeof num, "%zu", counts[i]);
        mqtt_event_str(t, num);
        free(t);
    }
    free(counts);
    users_view_free(&v);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t took = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    int64_t gap = took * AGGREGATE_SHARE;
    u.aggregate_gap = gap < AGGREGATE_MS ? AGGREGATE_MS : gap > AGGREGATE_MAX_MS ? AGGREGATE_MAX_MS : gap;
}

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int session_event(char **f, size_t n)
{
    const struct cfg *c = u.cfg;
    if (strcmp(f[0], "/proxy-session/") && strcmp(f[0], "/proxy-connection/")) {
        warn("Unknown UDP message type: \"%s\"", f[0]);
        return -1;
    }
    if (n < 7) {
        warn("UDP session event with %zu fields (at least 7 needed): %.300s", n, f[0]);
        return -1;
    }
    const char *host = f[1], *cmd = f[2], *dir = f[3], *user = f[4];
    if (!*user) {
        warn("UDP session event without a user id ignored (%s on %s)", cmd, host);
        return -1;
    }
    const char *topic;
    int op; /* 1 add, -1 remove, 0 none */
    if (!strcasecmp(cmd, "Start session")) {
        topic = c->mqtt.sessionStartTopic;
        op = 1;
    } else if (!strcasecmp(cmd, "Open connection")) {
        topic = c->mqtt.connectionOpenTopic;
        op = 1;
    } else if (!strcasecmp(cmd, "Stop session")) {
        topic = c->mqtt.sessionStopTopic;
        op = -1;
    } else if (!strcasecmp(cmd, "Close connection")) {
        topic = c->mqtt.connectionCloseTopic;
        op = 0;
    } else {
        log_debug("UDP session event with command \"%s\" ignored", cmd);
        return 0;
    }
    log_verbose("%s: %s %s/%s", cmd, host, dir, user);
    remember_host(host);
    if (op > 0) {
        int rc = users_add(host, dir, user, realtime_ms());
        if (rc == USERS_FULL || rc == USERS_TOO_LONG) {
            STAT_INC(users_full);
            int64_t now = now_ms();
            if (rc == USERS_TOO_LONG)
                warn("active user %s/%s on %s not added: host, directory and id are longer "
                     "than %d bytes", dir, user, host, USERS_KEY_MAX - 2);
            else if (!u.full_warned_at || now - u.full_warned_at >= 60000) {
                log_warnx("active-user table full (butlerd.shm.maxActiveUsers = %d): new "
                          "sessions are not counted",
                          c->shm.maxActiveUsers);
                u.full_warned_at = now;
            }
        }
    } else if (op < 0) {
        users_remove(host, dir, user);
    }
    if (c->mqtt.enable) {
        char *text = xasprintf("%s: %s/%s", host, dir, user);
        mqtt_event_str(topic, text);
        free(text);
    }
    if (op)
        u.users_dirty = 1;
    return 0;
}

/* ------------------------------------------------------------ task events */

static enum udp_ttype task_type(const char *t)
{
    static const struct {
        const char *name;
        enum udp_ttype type;
    } map[] = {
        {"/scheduler-task-failed/", UDP_T_FAILED},        {"/scheduler-reload-failed/", UDP_T_FAILED},
        {"/scheduler-reloadtask-failed/", UDP_T_FAILED},  {"/scheduler-task-aborted/", UDP_T_ABORTED},
        {"/scheduler-reload-aborted/", UDP_T_ABORTED},    {"/scheduler-task-success/", UDP_T_SUCCESS},
        {"/scheduler-task-success//", UDP_T_SUCCESS},     {"/scheduler-reloadtask-success/", UDP_T_SUCCESS},
        {"/scheduler-distribute/", UDP_T_DISTRIBUTE},     {"/engine-reload-failed/", UDP_T_ENGINE},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(t, map[i].name))
            return map[i].type;
    return UDP_T_NONE;
}

/* Steps 6-8 for a scheduler event whose fields are sanitised; 0 if dispatched. */
static int task_event(enum udp_ttype t, char **f, size_t n)
{
    const struct cfg *c = u.cfg;
    char tid[37], aid[37];
    if (n < 11) {
        warn("UDP task event with %zu fields (11 needed): %.300s", n, f[0]);
        return -1;
    }
    if (!guid_loose(f[5], tid)) {
        warn("UDP task event with an invalid task ID \"%.100s\"", f[5]);
        return -1;
    }
    if (*f[6] && !guid_loose(f[6], aid)) {
        warn("UDP task event with an invalid app ID \"%.100s\"", f[6]);
        return -1;
    }
    if (!*f[6])
        aid[0] = '\0';
    if (t == UDP_T_SUCCESS || t == UDP_T_DISTRIBUTE) {
        log_info("%s: host %s, task %s (%s), execution %s",
                 t == UDP_T_SUCCESS ? "reload task succeeded" : "distribution task finished", f[1],
                 f[2], tid, f[9]);
        if (t == UDP_T_DISTRIBUTE || !notify_wanted(c, OB_SUCCESS))
            return 0; /* success: e-mail only (butlerd(8), Alerts) */
    } else {
        log_info("reload task %s: host %s, task %s (%s), app %s, execution %s: %s",
                 t == UDP_T_FAILED ? "failed" : "aborted", f[1], f[2], tid, aid, f[9], f[10]);
        if (!c->mqtt.enable && !notify_wanted(c, t == UDP_T_ABORTED ? OB_ABORTED : OB_FAILED))
            return 0; /* no destination */
    }
    unsigned out = events_outstanding(EV_TASK_EVENT);
    unsigned conc = (unsigned)c->udp.mqMaxConcurrent, max = (unsigned)c->udp.mqMaxSize;
    if (conc > EVENTS_MAX_THREADS)
        conc = EVENTS_MAX_THREADS;
    if (!events_running()) {
        STAT_INC(udp[UDP_TASK].dropped_queue);
        warn("UDP task event dropped: the events process is not running (restarting)");
        return 1;
    }
    if (out >= conc + max) {
        STAT_INC(udp[UDP_TASK].dropped_queue);
        warn("UDP task event dropped: the processing queue is full (%u waiting)", max);
        return 1;
    }
    json_object *job = json_object_new_object(), *fa = json_object_new_array();
    json_object_object_add(job, "outcome", json_object_new_string(t == UDP_T_FAILED    ? "failed"
                                                          : t == UDP_T_SUCCESS ? "success"
                                                                               : "aborted"));
    for (int i = 0; i < 11; i++)
        json_object_array_add(fa, json_object_new_string(i == 5 ? tid : i == 6 ? aid : f[i]));
    json_object_object_add(job, "fields", fa);
    size_t len;
    const char *js = json_object_to_json_string_length(job, JSON_C_TO_STRING_PLAIN, &len);
    events_submit(EV_TASK_EVENT, js, len);
    json_object_put(job);
    unsigned waiting = out + 1 > conc ? out + 1 - conc : 0;
    unsigned thr = (unsigned)((uint64_t)max * (unsigned)c->udp.mqBackpressure / 100);
    if (!u.backpressure_warned && waiting > thr) {
        log_warnx("UDP task event queue above %d%% of its %u places", c->udp.mqBackpressure, max);
        u.backpressure_warned = 1;
    } else if (u.backpressure_warned && waiting < thr * 8 / 10) {
        u.backpressure_warned = 0;
    }
    return 0;
}

/* Steps 4 and 7 of butlerd-api(7), Processing of a datagram, pure: the datagram as valid
 * UTF-8, its type, its fields
 * split on ';' (the last one keeping the rest) and sanitised, field 0 lower-cased. */
void udp_parse(int sock, const void *p, size_t len, struct udp_msg *m)
{
    size_t tlen;
    char *text;
    const unsigned char *b = p;
    size_t ascii = 0;
    while (ascii < len && b[ascii] < 0x80)
        ascii++;
    if (ascii == len) { /* ASCII: nothing to repair, one copy */
        text = xmalloc(len + 1);
        memcpy(text, p, len);
        text[len] = '\0';
        tlen = len;
    } else {
        text = utf8_repair(p, len, &tlen);
    }
    char *semi = strchr(text, ';');
    size_t t0 = semi ? (size_t)(semi - text) : tlen;
    char type[64];
    snprintf(type, sizeof type, "%.*s", (int)(t0 < sizeof type ? t0 : sizeof type - 1), text);
    udp_sanitise(type, FIELD_MAX_CP);
    lower(type);
    m->text = text;
    m->type = sock == UDP_TASK ? task_type(type) : UDP_T_NONE;
    size_t maxf = m->type == UDP_T_ENGINE ? 9 : sock == UDP_TASK ? 11 : 8;
    m->n = split(text, m->f, maxf);
    for (size_t i = 0; i < m->n; i++)
        udp_sanitise(m->f[i], FIELD_MAX_CP);
    lower(m->f[0]);
}

/* ------------------------------------------------------------ the pipeline */

static void datagram(int s, const unsigned char *p, size_t len, int truncated,
                     const struct sockaddr *from)
{
    const struct cfg *c = u.cfg;
    struct udp_counters *cnt = &stats()->udp[s];
    __atomic_add_fetch(&cnt->received, 1, __ATOMIC_RELAXED);
    if (!allowed(from)) {
        __atomic_add_fetch(&cnt->dropped_source, 1, __ATOMIC_RELAXED);
        return;
    }
    if (truncated || len > (size_t)c->udp.maxMessageSize) {
        __atomic_add_fetch(&cnt->dropped_size, 1, __ATOMIC_RELAXED);
        return;
    }
    if (c->udp.rateEnable) {
        int64_t now = now_ms();
        if (now - u.window_start[s] >= 60000) {
            u.window_start[s] = now;
            u.window_count[s] = 0;
        }
        if (u.window_count[s] >= (unsigned)c->udp.rateMaxPerMinute) {
            __atomic_add_fetch(&cnt->dropped_rate, 1, __ATOMIC_RELAXED);
            return;
        }
        u.window_count[s]++;
    }
    struct udp_msg m;
    udp_parse(s, p, len, &m);
    char **f = m.f, *text = m.text;
    size_t n = m.n;
    enum udp_ttype tt = m.type;
    int rc;
    if (s == UDP_SESSION) {
        rc = session_event(f, n);
    } else if (tt == UDP_T_NONE) {
        warn("Unknown UDP message type: \"%s\"", f[0]);
        rc = -1;
    } else if (tt == UDP_T_ENGINE) {
        char id[37];
        if (n < 9 || !guid_loose(f[2], id)) {
            warn("UDP engine event with %zu fields or a bad app ID: %.300s", n, f[0]);
            rc = -1;
        } else {
            log_info("engine reload failed: host %s, app %s: %s", f[1], id, f[8]);
            rc = 0;
        }
    } else {
        /* Step 5: the execution ID, once processed, is remembered for the TTL. */
        int dedup = c->udp.dedupEnable && n > 9 && *f[9];
        int64_t now = now_ms();
        if (dedup && dd_seen(f[9], now)) {
            __atomic_add_fetch(&cnt->duplicates, 1, __ATOMIC_RELAXED);
            log_debug("duplicate UDP task event, execution %s", f[9]);
            free(text);
            return;
        }
        rc = task_event(tt, f, n);
        if (rc == 0 && dedup)
            dd_remember(f[9], now + (int64_t)c->udp.dedupTtlMinutes * 60000);
    }
    if (rc < 0)
        __atomic_add_fetch(&cnt->malformed, 1, __ATOMIC_RELAXED);
    else if (rc == 0)
        __atomic_add_fetch(&cnt->accepted, 1, __ATOMIC_RELAXED);
    free(text);
}

static void drain_batches(int s)
{
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
    for (int round = 0; round < 64; round++) { /* then let the rest of the loop run */
        memset(mm, 0, sizeof mm);
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = u.bufs + (size_t)i * BUFSZ;
            iov[i].iov_len = BUFSZ;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
            mm[i].msg_hdr.msg_name = &from[i];
            mm[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(u.fd[s], mm, BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_warn("UDP receive failed");
                mqtt_event_str(s == UDP_TASK ? u.cfg->mqtt.taskFailureServerStatusTopic
                                             : u.cfg->mqtt.sessionServerStatusTopic,
                               "error");
            }
            return;
        }
        if (n == BATCH && u.cfg->mqtt.enable)
            mqtt_batch(1); /* a burst: its publications leave together */
        for (int i = 0; i < n; i++) {
            size_t len = mm[i].msg_len;
            int trunc = (mm[i].msg_hdr.msg_flags & MSG_TRUNC) || len > BUFSZ;
            datagram(s, u.bufs + (size_t)i * BUFSZ, trunc ? BUFSZ : len, trunc,
                     (struct sockaddr *)&from[i]);
        }
        if (n < BATCH)
            return;
    }
}

static void drain_socket(int s)
{
    drain_batches(s);
    mqtt_batch(0); /* nothing to do unless a burst was corked */
}

/* ------------------------------------------------------------ sockets */

static int open_socket(const struct cfg *c, int port, const char *what)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(*c->udp.serverHost ? c->udp.serverHost : NULL, ps, &hints, &res);
    if (rc != 0) {
        log_errorx("UDP %s socket: cannot resolve %s: %s", what, c->udp.serverHost,
                   gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            log_error("UDP %s socket: cannot bind %s port %d", what, c->udp.serverHost, port);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    /* A deep receive queue absorbs bursts while the loop is busy elsewhere. */
    int sz = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    log_info("UDP %s socket listening on %s port %d", what, c->udp.serverHost, port);
    return fd;
}

int udp_start(const struct cfg *c)
{
    u.cfg = c;
    users_configure(c);
    if (!c->udp.enable)
        return 0;
    u.fd[UDP_TASK] = open_socket(c, c->udp.portTaskFailure, "task event");
    if (u.fd[UDP_TASK] < 0)
        return -1;
    if (c->udp.portSessionConnectionEvents) {
        u.fd[UDP_SESSION] = open_socket(c, c->udp.portSessionConnectionEvents, "session event");
        if (u.fd[UDP_SESSION] < 0)
            return -1;
    }
    u.bufs = xmalloc((size_t)BATCH * BUFSZ);
    resolve_allowed(c);
    if (c->mqtt.enable) {
        mqtt_event_on_connect(c->mqtt.taskFailureServerStatusTopic, "start");
        if (u.fd[UDP_SESSION] >= 0)
            mqtt_event_on_connect(c->mqtt.sessionServerStatusTopic, "start");
    }
    u.next_expiry = now_ms() + 1000;
    return 0;
}

void udp_set_cfg(const struct cfg *c)
{
    u.cfg = c;
    users_configure(c);
    if (c->udp.enable)
        resolve_allowed(c);
}

int udp_pollfds(struct pollfd *p, int max)
{
    int n = 0;
    for (int s = 0; s < UDP_NSOCK && n < max; s++)
        if (u.fd[s] >= 0) {
            p[n].fd = u.fd[s];
            p[n].events = POLLIN;
            p[n++].revents = 0;
        }
    return n;
}

void udp_handle(const struct pollfd *p, int n)
{
    for (int i = 0; i < n; i++)
        for (int s = 0; s < UDP_NSOCK; s++)
            if (p[i].revents && p[i].fd == u.fd[s])
                drain_socket(s);
    if (u.users_dirty && now_ms() - u.last_aggregate >= aggregate_gap())
        publish_users();
}

int udp_timers(void)
{
    if (u.fd[UDP_TASK] < 0)
        return -1;
    int64_t now = now_ms();
    new_minute(now);
    if (now >= u.next_expiry) {
        u.next_expiry = now + 1000;
        int idle = u.cfg->activeUsersMaxIdleSeconds;
        if (idle > 0 && u.fd[UDP_SESSION] >= 0) {
            unsigned gone = users_expire(realtime_ms() - (int64_t)idle * 1000);
            if (gone) {
                log_info("%u active-user entries expired after %d s without activity", gone,
                         idle);
                u.users_dirty = 1;
            }
        }
        /* Redis: other instances change the list too (butlerd(8), ACTIVE USERS) */
        if (u.fd[UDP_SESSION] >= 0 && users_poll())
            u.users_dirty = 1;
    }
    if (u.users_dirty) {
        if (now - u.last_aggregate >= aggregate_gap())
            publish_users();
        else if (u.last_aggregate + aggregate_gap() < u.next_expiry)
            return (int)(u.last_aggregate + aggregate_gap() - now);
    }
    return (int)(u.next_expiry - now);
}

void udp_on_connect(void)
{
    if (u.nhosts)
        u.users_dirty = 1; /* the aggregates, current, at the next timer */
}

int udp_child_fds(int *out, int max)
{
    int n = 0;
    for (int s = 0; s < UDP_NSOCK && n < max; s++)
        if (u.fd[s] >= 0)
            out[n++] = u.fd[s];
    return n;
}

void udp_stop(void)
{
    for (int s = 0; s < UDP_NSOCK; s++)
        if (u.fd[s] >= 0) {
            close(u.fd[s]);
            u.fd[s] = -1;
        }
    free(u.bufs);
    u.bufs = NULL;
}
