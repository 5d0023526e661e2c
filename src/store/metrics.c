/* Lock-free recording of the request and QRS metrics (metrics.h). */
#include "metrics.h"
#include "stats.h"

#include <sys/time.h>
#include <time.h>

const uint64_t metrics_bounds_us[METRICS_BOUNDS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000,
};
const char *const metrics_bounds_le[METRICS_BOUNDS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};
const char *const metrics_qrs_outcome[QRS_NOUTCOMES] = {"ok", "http_error", "timeout", "failed"};
const char *const metrics_engine_outcome[ENG_NOUTCOMES] = {"ok", "rpc_error", "timeout",
                                                           "failed"};

static unsigned my_slot;

/* NULL in a program that has not attached the segment (the unit tests). */
struct metrics_shm *metrics_shm(void) { return shm.hdr ? &stats()->metrics : NULL; }

void metrics_set_slot(int n) { my_slot = (unsigned)(n < 0 ? 0 : n) % METRICS_SLOTS; }

#define ADD(p, n) __atomic_add_fetch((p), (n), __ATOMIC_RELAXED)

static void observe(struct metrics_hist *h, uint64_t us)
{
    unsigned b = 0;
    while (b < METRICS_BOUNDS && us > metrics_bounds_us[b])
        b++;
    ADD(&h->bucket[b], 1);
    ADD(&h->sum_us, us);
    ADD(&h->count, 1);
}

void metrics_request(unsigned route, unsigned family, unsigned status, uint64_t dur_us)
{
    if (!metrics_shm())
        return;
    struct metrics_slot *s = &metrics_shm()->slot[my_slot];
    if (route >= METRICS_ROUTES)
        route = METRICS_ROUTES - 1;
    if (family >= METRICS_FAMILIES)
        family = 0;
    unsigned cls = status >= 100 && status < 600 ? status / 100 - 1 : 4;
    observe(&s->family[family], dur_us);
    ADD(&s->req[route][cls], 1);
}

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void metrics_qrs(enum qrs_outcome o, uint64_t dur_us)
{
    struct metrics_shm *m = metrics_shm();
    if (!m)
        return;
    struct metrics_slot *s = &m->slot[my_slot];
    ADD(&s->qrs[o], 1);
    observe(&s->qrs_time, dur_us);
    int64_t now = wall_ms();
    __atomic_store_n(&m->qrs_last_call_ms, now, __ATOMIC_RELAXED);
    /* An answer with an HTTP error status still means QRS is up. */
    if (o == QRS_OK || o == QRS_HTTP_ERROR) {
        __atomic_store_n(&m->qrs_last_ok_ms, now, __ATOMIC_RELAXED);
        __atomic_store_n(&m->qrs_failing_since_ms, 0, __ATOMIC_RELAXED);
    } else {
        int64_t zero = 0;
        __atomic_compare_exchange_n(&m->qrs_failing_since_ms, &zero, now, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
    }
}

void metrics_engine(enum engine_outcome o, uint64_t dur_us)
{
    struct metrics_shm *m = metrics_shm();
    if (!m)
        return;
    ADD(&m->slot[my_slot].engine[o], 1);
    observe(&m->slot[my_slot].engine_time, dur_us);
}

void metrics_engine_session(int opened)
{
    if (metrics_shm())
        ADD(&metrics_shm()->slot[my_slot].engine_sessions[opened ? 0 : 1], 1);
}

int64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void metrics_note_respawn(void)
{
    if (metrics_shm())
        ADD(&metrics_shm()->respawns, 1);
}

void metrics_note_gen(unsigned gen, int workers)
{
    struct metrics_shm *m = metrics_shm();
    if (!m)
        return;
    if (!m->start_time_ms)
        m->start_time_ms = wall_ms();
    __atomic_store_n(&m->generation, (uint64_t)gen, __ATOMIC_RELAXED);
    __atomic_store_n(&m->workers, (uint64_t)(workers < 0 ? 0 : workers), __ATOMIC_RELAXED);
}

void metrics_note_mqtt(int connected)
{
    if (metrics_shm())
        __atomic_store_n(&metrics_shm()->mqtt_connected, (uint64_t)!!connected, __ATOMIC_RELAXED);
}
