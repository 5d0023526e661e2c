/* GET /metrics, /health and /ready (butlerd(8), "MONITORING"). /metrics renders the
 * Prometheus text exposition format 0.0.4 from the shared counters: stats.h for
 * what `butlerd -S` prints, metrics.h for requests, QRS calls and the master's
 * gauges (per-worker slots, summed here). Label values come from fixed lists -
 * route patterns, scope names, status classes - never from a request. */
#include "api.h"
#include "butlerd.h"
#include "cfg.h"
#include "http.h"
#include "kv.h"
#include "kv_redis_count.h"
#include "kvstore.h"
#include "metrics.h"
#include "outbox.h"
#include "qrs.h"
#include "redis_conn.h"
#include "router.h"
#include "stats.h"
#include "users.h"
#include "util.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

static void out(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t ld(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/* The counter at byte offset OFF of struct metrics_slot, summed over the slots. */
static uint64_t slot_sum(const struct metrics_shm *m, size_t off)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < METRICS_SLOTS; i++)
        v += ld((const uint64_t *)(const void *)((const char *)&m->slot[i] + off));
    return v;
}

/* A counter family NAME{outcome} from the array of N counters at offset OFF of
 * struct metrics_slot, labelled with NAMES. */
static void by_outcome(struct buf *b, const struct metrics_shm *m, const char *name,
                       const char *help, size_t off, const char *const *names, unsigned n)
{
    family(b, name, "counter", help);
    for (unsigned o = 0; o < n; o++)
        out(b, "%s{outcome=\"%s\"} %" PRIu64 "\n", name, names[o],
            slot_sum(m, off + o * sizeof(uint64_t)));
}

/* Sums histogram H over the slots into S (the caller passes the offset of H). */
static void hist_sum(const struct metrics_shm *m, size_t off, struct metrics_hist *s)
{
    memset(s, 0, sizeof *s);
    for (unsigned i = 0; i < METRICS_SLOTS; i++) {
        const struct metrics_hist *h =
            (const struct metrics_hist *)(const void *)((const char *)&m->slot[i] + off);
        for (unsigned k = 0; k <= METRICS_BOUNDS; k++)
            s->bucket[k] += ld(&h->bucket[k]);
        s->count += ld(&h->count);
        s->sum_us += ld(&h->sum_us);
    }
}

/* The samples of one histogram; LABELS is "" or `name="value",`. The count is the
 * +Inf bucket, so the two always agree even while workers are adding. */
static void hist_out(struct buf *b, const char *name, const char *labels,
                     const struct metrics_hist *h)
{
    uint64_t cum = 0;
    for (unsigned k = 0; k < METRICS_BOUNDS; k++) {
        cum += h->bucket[k];
        out(b, "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n", name, labels, metrics_bounds_le[k], cum);
    }
    cum += h->bucket[METRICS_BOUNDS];
    out(b, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
    size_t n = strlen(labels);
    out(b, "%s_sum%s%.*s%s %.6f\n", name, n ? "{" : "", n ? (int)n - 1 : 0, labels,
        n ? "}" : "", (double)h->sum_us / 1e6);
    out(b, "%s_count%s%.*s%s %" PRIu64 "\n", name, n ? "{" : "", n ? (int)n - 1 : 0, labels,
        n ? "}" : "", cum);
}

static void render_http(struct buf *b, const struct metrics_shm *m)
{
    static const char *const cls[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    family(b, "butlerd_http_requests_total", "counter",
           "HTTP requests answered, by route pattern, method and status class.");
    size_t nr = router_count();
    for (size_t i = 0; i <= nr; i++) {
        unsigned ri = i < nr ? (unsigned)i : METRICS_ROUTES - 1;
        const struct route *rt = router_at(i);
        for (unsigned c = 0; c < 5; c++) {
            uint64_t v = slot_sum(m, offsetof(struct metrics_slot, req) +
                                         (ri * 5 + c) * sizeof(uint64_t));
            if (v)
                out(b, "butlerd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                    rt ? rt->pattern : "unmatched", rt ? rt->method : "other", cls[c], v);
        }
    }
    family(b, "butlerd_http_request_duration_seconds", "histogram",
           "Time from the request line to the end of the response, by route family (the route's token scope).");
    for (unsigned f = 0; f < METRICS_FAMILIES; f++) {
        struct metrics_hist h;
        hist_sum(m, offsetof(struct metrics_slot, family) + f * sizeof h, &h);
        if (!h.count)
            continue;
        char labels[96];
        snprintf(labels, sizeof labels, "family=\"%s\",", router_family_name(f));
        hist_out(b, "butlerd_http_request_duration_seconds", labels, &h);
    }
    const struct stats *st = stats();
    family(b, "butlerd_http_refused_connections_total", "counter",
           "Connections closed at accept: not in butlerd.http.allowFrom.");
    out(b, "butlerd_http_refused_connections_total %" PRIu64 "\n", ld(&st->http_refused));
    family(b, "butlerd_http_rejected_requests_total", "counter",
           "Requests refused by the rate limit (429), for credentials (401) or scope (403).");
    out(b, "butlerd_http_rejected_requests_total{reason=\"rate_limited\"} %" PRIu64 "\n",
        ld(&st->http_rate_limited));
    out(b, "butlerd_http_rejected_requests_total{reason=\"unauthorized\"} %" PRIu64 "\n",
        ld(&st->http_unauthorized));
    out(b, "butlerd_http_rejected_requests_total{reason=\"forbidden\"} %" PRIu64 "\n",
        ld(&st->http_forbidden));
}

/* A histogram family without labels from the histogram at offset OFF of a slot. */
static void hist_family(struct buf *b, const struct metrics_shm *m, const char *name,
                        const char *help, size_t off)
{
    family(b, name, "histogram", help);
    struct metrics_hist h;
    hist_sum(m, off, &h);
    hist_out(b, name, "", &h);
}

static void render_qrs(struct buf *b, const struct metrics_shm *m)
{
    by_outcome(b, m, "butlerd_qrs_requests_total",
               "Calls to the Qlik Sense Repository Service, by outcome.",
               offsetof(struct metrics_slot, qrs), metrics_qrs_outcome, QRS_NOUTCOMES);
    hist_family(b, m, "butlerd_qrs_request_duration_seconds",
                "Duration of calls to the Qlik Sense Repository Service.",
                offsetof(struct metrics_slot, qrs_time));
}

static void render_engine(struct buf *b, const struct metrics_shm *m)
{
    by_outcome(b, m, "butlerd_engine_requests_total",
               "JSON-RPC requests to the Qlik Sense engine (app dump, app reload), by outcome.",
               offsetof(struct metrics_slot, engine), metrics_engine_outcome, ENG_NOUTCOMES);
    hist_family(b, m, "butlerd_engine_request_duration_seconds",
                "From queuing an engine request to its answer.",
                offsetof(struct metrics_slot, engine_time));
    static const char *const so[2] = {"opened", "failed"};
    by_outcome(b, m, "butlerd_engine_sessions_total",
               "Engine WebSocket sessions, by outcome of the opening.",
               offsetof(struct metrics_slot, engine_sessions), so, 2);
}

static void counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    out(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct buf *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    out(b, "%s %.17g\n", name, v);
}

static void render_events(struct buf *b, const struct metrics_shm *m)
{
    const struct stats *st = stats();
    gauge(b, "butlerd_mqtt_connected", "1 while connected to the MQTT broker.",
          (double)ld(&m->mqtt_connected));
    counter(b, "butlerd_mqtt_connects_total", "Successful connects to the MQTT broker.",
            ld(&st->mqtt_connects));
    counter(b, "butlerd_mqtt_published_total", "Messages handed to the broker connection.",
            ld(&st->mqtt_published));
    family(b, "butlerd_mqtt_publish_failures_total", "counter",
           "Publications that failed: not connected, or a library error or timeout.");
    out(b, "butlerd_mqtt_publish_failures_total{reason=\"not_connected\"} %" PRIu64 "\n",
        ld(&st->mqtt_not_connected));
    out(b, "butlerd_mqtt_publish_failures_total{reason=\"error\"} %" PRIu64 "\n",
        ld(&st->mqtt_publish_failed));
    counter(b, "butlerd_mqtt_received_total", "Messages received on the subscription.",
            ld(&st->mqtt_received));
    counter(b, "butlerd_mqtt_task_starts_total", "Start-task messages acted on.",
            ld(&st->mqtt_task_starts));

    static const char *const sock[UDP_NSOCK] = {"task", "session"};
    family(b, "butlerd_udp_received_total", "counter", "UDP datagrams read, by socket.");
    for (int i = 0; i < UDP_NSOCK; i++)
        out(b, "butlerd_udp_received_total{socket=\"%s\"} %" PRIu64 "\n", sock[i],
            ld(&st->udp[i].received));
    family(b, "butlerd_udp_accepted_total", "counter",
           "UDP datagrams that passed every check and were dispatched, by socket.");
    for (int i = 0; i < UDP_NSOCK; i++)
        out(b, "butlerd_udp_accepted_total{socket=\"%s\"} %" PRIu64 "\n", sock[i],
            ld(&st->udp[i].accepted));
    family(b, "butlerd_udp_dropped_total", "counter", "UDP datagrams dropped, by socket and reason.");
    for (int i = 0; i < UDP_NSOCK; i++) {
        const struct udp_counters *u = &st->udp[i];
        const struct {
            const char *reason;
            const uint64_t *v;
        } d[] = {{"source", &u->dropped_source}, {"size", &u->dropped_size},
                 {"rate", &u->dropped_rate},     {"queue", &u->dropped_queue},
                 {"duplicate", &u->duplicates},  {"malformed", &u->malformed}};
        for (size_t k = 0; k < sizeof d / sizeof d[0]; k++)
            out(b, "butlerd_udp_dropped_total{socket=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                sock[i], d[k].reason, ld(d[k].v));
    }
    family(b, "butlerd_task_events_total", "counter",
           "Task events handled by the events process, by outcome.");
    out(b, "butlerd_task_events_total{outcome=\"done\"} %" PRIu64 "\n", ld(&st->events_done));
    out(b, "butlerd_task_events_total{outcome=\"failed\"} %" PRIu64 "\n", ld(&st->events_failed));

    family(b, "butlerd_scheduler_firings_total", "counter", "Schedule firings, by outcome.");
    out(b, "butlerd_scheduler_firings_total{outcome=\"started\"} %" PRIu64 "\n", ld(&st->sched_fired));
    out(b, "butlerd_scheduler_firings_total{outcome=\"failed\"} %" PRIu64 "\n", ld(&st->sched_failed));
    out(b, "butlerd_scheduler_firings_total{outcome=\"skipped\"} %" PRIu64 "\n", ld(&st->sched_skipped));
    family(b, "butlerd_scheduler_firing_delay_seconds", "summary",
           "From the planned second to the start request, over started and failed firings.");
    out(b, "butlerd_scheduler_firing_delay_seconds_sum %.3f\n",
        (double)ld(&st->sched_delay_ms_sum) / 1e3);
    out(b, "butlerd_scheduler_firing_delay_seconds_count %" PRIu64 "\n",
        ld(&st->sched_fired) + ld(&st->sched_failed));
}

/* Files in DIR that are outbox entries (butlerd(8), Outbox): the queue's depth. */
static long spool_count(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' && strstr(e->d_name, ".json") != NULL;
    closedir(d);
    return n;
}

/* The alert pipeline's counters per destination x kind (the ones `butlerd -S`
 * prints), and the outbox's depth read from the spool. */
static void render_alerts(struct buf *b, const struct cfg *c)
{
    const struct stats *st = stats();
    family(b, "butlerd_alert_messages_total", "counter",
           "Alert messages by destination, kind and outcome (queued, delivered, retried, dead, "
           "rate_limited, render_failed, dropped).");
    for (int d = 0; d < OB_NDEST; d++)
        for (int k = 0; k < OB_NKIND; k++)
            for (int n = 0; n < OBC_N; n++)
                out(b, "butlerd_alert_messages_total{destination=\"%s\",kind=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                    outbox_dest_names[d], outbox_kind_names[k], outbox_counter_names[n],
                    ld(&st->notify[d][k][n]));
    family(b, "butlerd_alert_dead_letters_total", "counter",
           "Alert messages given up on (moved to dead/), by destination.");
    for (int d = 0; d < OB_NDEST; d++) {
        uint64_t dead = 0;
        for (int k = 0; k < OB_NKIND; k++)
            dead += ld(&st->notify[d][k][OBC_DEAD]);
        out(b, "butlerd_alert_dead_letters_total{destination=\"%s\"} %" PRIu64 "\n",
            outbox_dest_names[d], dead);
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/queue", c->notify.spoolDirectory);
    long depth = spool_count(dir);
    if (depth >= 0)
        gauge(b, "butlerd_alert_outbox_depth", "Alert messages waiting in the outbox's queue.",
              (double)depth);
}

/* Counting the store walks every key (0.3 ms at 10000 keys): one scrape in any
 * worker does it at most every KV_RECOUNT_MS, the others read its result. */
#define KV_RECOUNT_MS 5000

/* On Redis the counts are the shared store's, asked at every scrape (one script
 * that walks nothing); the bytes are not counted there (butlerd(8), MONITORING). */
static void render_store_redis(struct buf *b)
{
    uint64_t keys, nss;
    int up = kv_redis_usage(&keys, &nss) == 0;
    gauge(b, "butlerd_store_redis_up",
          "1 if Redis answered this scrape, 0 while it cannot be reached.", up);
    if (!up)
        return;
    gauge(b, "butlerd_kv_keys", "Live keys in the key-value store (on Redis: of every instance).",
          (double)keys);
    gauge(b, "butlerd_kv_namespaces",
          "Namespaces in the key-value store (on Redis: of every instance).", (double)nss);
}

static void render_store_shm(struct buf *b, struct metrics_shm *m)
{
    int64_t now = now_ms(), last = __atomic_load_n(&m->kv_counted_ms, __ATOMIC_ACQUIRE);
    if ((last == 0 || now - last >= KV_RECOUNT_MS) &&
        __atomic_compare_exchange_n(&m->kv_counted_ms, &last, now, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
        uint64_t k, n, by;
        kv_usage(&k, &n, &by);
        __atomic_store_n(&m->kv_keys, k, __ATOMIC_RELAXED);
        __atomic_store_n(&m->kv_namespaces, n, __ATOMIC_RELAXED);
        __atomic_store_n(&m->kv_bytes, by, __ATOMIC_RELAXED);
    }
    uint64_t keys = ld(&m->kv_keys), nss = ld(&m->kv_namespaces), bytes = ld(&m->kv_bytes);
    gauge(b, "butlerd_kv_keys", "Live keys in the key-value store.", (double)keys);
    gauge(b, "butlerd_kv_namespaces", "Namespaces in the key-value store.", (double)nss);
    gauge(b, "butlerd_kv_bytes", "Bytes of key names and values in the key-value store.",
          (double)bytes);
}

static void render_store(struct buf *b, struct metrics_shm *m)
{
    if (kvstore_is_redis())
        render_store_redis(b);
    else
        render_store_shm(b, m);
    struct users_view v;
    users_view(&v);
    gauge(b, "butlerd_active_users", "Active users (distinct directory and user).",
          (double)v.nusers);
    users_view_free(&v);
    counter(b, "butlerd_active_users_dropped_total",
            "Active-user entries not added: the table was full.", ld(&stats()->users_full));
}

static void render_process(struct buf *b, const struct metrics_shm *m)
{
    family(b, "butlerd_build_info", "gauge", "Always 1; the version is a label.");
    out(b, "butlerd_build_info{version=\"%s\"} 1\n", BUTLERD_VERSION);
    gauge(b, "butlerd_process_start_time_seconds",
          "Start time of the master process since the Unix epoch.",
          (double)m->start_time_ms / 1e3);
    gauge(b, "butlerd_generation", "Current worker generation (one more at each reload).",
          (double)ld(&m->generation));
    gauge(b, "butlerd_workers", "Workers of the current generation when it became ready.",
          (double)ld(&m->workers));
    counter(b, "butlerd_process_respawns_total", "Child processes respawned after they died.",
            ld(&m->respawns));
}

static void metrics_job(struct req *r)
{
    struct metrics_shm *m = metrics_shm();
    struct buf b = {0};
    render_process(&b, m);
    render_http(&b, m);
    render_qrs(&b, m);
    render_engine(&b, m);
    render_events(&b, m);
    render_store(&b, m);
    render_alerts(&b, r->cfg);
    http_reply_typed(r, 200, PROM_TYPE, b.p, b.len);
    buf_free(&b);
}

/* On Redis the store's gauges wait for the network: a "store" job thread then
 * renders the page, so a hung Redis never holds up the worker's MHD thread. */
void api_metrics(struct req *r)
{
    if (redis_in_use())
        http_defer(r, metrics_job);
    else
        metrics_job(r);
}

/* ------------------------------------------------------------ health, ready */

void api_health(struct req *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "statusCode", json_object_new_int(200));
    json_object_object_add(o, "status", json_object_new_string("ok"));
    http_reply_json(r, 200, o);
}

/* Without traffic nothing would tell us QRS is gone: a readiness check asks it
 * itself, at most every PROBE_MS (any HTTP answer means QRS is up). */
#define PROBE_MS 2000

static void ready_job(struct req *r)
{
    const struct cfg *c = r->cfg;
    struct metrics_shm *m = metrics_shm();
    json_object *reasons = json_object_new_array();
    int64_t now = now_real_ms();
    if (*c->qrs.host) {
        if (now - __atomic_load_n(&m->qrs_last_call_ms, __ATOMIC_RELAXED) >= PROBE_MS) {
            struct qrs_resp resp;
            qrs_call(c, "GET", "about", NULL, NULL, &resp);
            qrs_resp_free(&resp);
            now = now_real_ms();
        }
        int64_t since = __atomic_load_n(&m->qrs_failing_since_ms, __ATOMIC_RELAXED);
        if (since && now - since >= (int64_t)c->health.qrsFailSeconds * 1000) {
            char *s = xasprintf("QRS %s:%d has failed for %lld s", c->qrs.host, c->qrs.port,
                                (long long)((now - since) / 1000));
            json_object_array_add(reasons, json_object_new_string(s));
            free(s);
        }
    }
    if (c->mqtt.enable && !__atomic_load_n(&m->mqtt_connected, __ATOMIC_RELAXED)) {
        char *s = xasprintf("MQTT broker %s:%d is not connected", c->mqtt.brokerHost,
                            c->mqtt.brokerPort);
        json_object_array_add(reasons, json_object_new_string(s));
        free(s);
    }
    if (redis_in_use()) {
        char why[300];
        if (redis_ping(why, sizeof why) < 0)
            json_object_array_add(reasons, json_object_new_string(why));
    }
    int ok = json_object_array_length(reasons) == 0;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "statusCode", json_object_new_int(ok ? 200 : 503));
    json_object_object_add(o, "status", json_object_new_string(ok ? "ready" : "not ready"));
    json_object_object_add(o, "reasons", reasons);
    http_reply_json(r, ok ? 200 : 503, o);
}

void api_ready(struct req *r) { http_defer(r, ready_job); }
