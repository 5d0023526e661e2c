/* The counters behind GET /metrics (butlerd(8), "MONITORING") that stats.h does not
 * hold: requests per route and status class, request durations per route family,
 * QRS calls by outcome, and a few gauges the master keeps (generation, workers,
 * respawns, MQTT connection, start time). They live in the shared segment, after
 * struct stats. Nothing on the request path takes a lock: each worker adds to a slot
 * of its own (slot = worker number modulo METRICS_SLOTS, atomically, since an old
 * and a new generation may share one), and a scrape sums the slots. */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

#define METRICS_SLOTS 32
#define METRICS_ROUTES 96   /* route table entries, plus one for "no route" */
#define METRICS_FAMILIES 32 /* route families: the scope names, plus "none" */
#define METRICS_BOUNDS 13   /* finite histogram bounds; one more bucket is +Inf */

/* Upper bounds of the duration buckets, in microseconds (and as Prometheus "le"). */
extern const uint64_t metrics_bounds_us[METRICS_BOUNDS];
extern const char *const metrics_bounds_le[METRICS_BOUNDS];

struct metrics_hist {
    uint64_t bucket[METRICS_BOUNDS + 1]; /* not cumulative: the scrape adds them up */
    uint64_t count, sum_us;
};

enum qrs_outcome { QRS_OK, QRS_HTTP_ERROR, QRS_TIMEOUT, QRS_FAILED, QRS_NOUTCOMES };
extern const char *const metrics_qrs_outcome[QRS_NOUTCOMES];
/* Engine JSON-RPC requests: answered, answered with an error, no answer in time,
 * session lost; and sessions opened or not. */
enum engine_outcome { ENG_OK, ENG_RPC_ERROR, ENG_TIMEOUT, ENG_FAILED, ENG_NOUTCOMES };
extern const char *const metrics_engine_outcome[ENG_NOUTCOMES];

struct metrics_slot {
    uint64_t req[METRICS_ROUTES][5]; /* status classes 1xx..5xx */
    struct metrics_hist family[METRICS_FAMILIES];
    uint64_t qrs[QRS_NOUTCOMES];
    struct metrics_hist qrs_time;
    uint64_t engine[ENG_NOUTCOMES];
    uint64_t engine_sessions[2]; /* opened, failed */
    struct metrics_hist engine_time;
} __attribute__((aligned(64)));

struct metrics_shm {
    struct metrics_slot slot[METRICS_SLOTS];
    /* written by the master */
    int64_t start_time_ms;
    uint64_t generation, workers, respawns, mqtt_connected;
    /* QRS health for GET /ready: the time of the last success and the start of
     * the current run of failures (0 = the last call succeeded). CLOCK_REALTIME ms. */
    int64_t qrs_last_ok_ms, qrs_failing_since_ms, qrs_last_call_ms;
    /* The key-value usage as last counted (a walk of every key), and when
     * (CLOCK_MONOTONIC ms, system-wide): scrapes share one count for a while. */
    int64_t kv_counted_ms;
    uint64_t kv_keys, kv_namespaces, kv_bytes;
};

/* The block in the shared segment (after struct stats, see stats.h). */
struct metrics_shm *metrics_shm(void);
/* This process's slot: workers call it with their number once after fork. */
void metrics_set_slot(int n);
/* A request answered with STATUS after DUR_US, on route index ROUTE (METRICS_ROUTES-1
 * for no route) of FAMILY. */
void metrics_request(unsigned route, unsigned family, unsigned status, uint64_t dur_us);
void metrics_qrs(enum qrs_outcome o, uint64_t dur_us);
/* An engine request ended with O, DUR_US after it was queued. */
void metrics_engine(enum engine_outcome o, uint64_t dur_us);
void metrics_engine_session(int opened);
/* CLOCK_MONOTONIC in microseconds, for the durations above. */
int64_t metrics_now_us(void);
/* Master side: a child is being respawned; the generation and its worker count. */
void metrics_note_respawn(void);
void metrics_note_gen(unsigned gen, int workers);
void metrics_note_mqtt(int connected);

#endif
