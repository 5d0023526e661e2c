/* Counters every process can read: they live in the shared segment and are only
 * ever changed with atomic adds, so a process killed at any instant leaves them
 * valid. `butlerd -S` prints them from the running instance. */
#ifndef STATS_H
#define STATS_H

#include "metrics.h"
#include "shm_region.h"

#include <stdint.h>

/* UDP sockets, indexed by enum udp_sock. */
enum { UDP_TASK, UDP_SESSION, UDP_NSOCK };

struct udp_counters {
    uint64_t received;        /* datagrams read from the socket */
    uint64_t dropped_source;  /* sender not in the allow-list */
    uint64_t dropped_size;    /* longer than maxMessageSize */
    uint64_t dropped_rate;    /* over the per-minute budget */
    uint64_t dropped_queue;   /* processing queue full */
    uint64_t duplicates;      /* execution ID seen before */
    uint64_t malformed;       /* too few fields, bad GUID, unknown type, empty user */
    uint64_t accepted;        /* passed every check and dispatched */
};

struct stats {
    struct metrics_shm metrics; /* GET /metrics (metrics.h) */
    struct udp_counters udp[UDP_NSOCK];
    uint64_t users_full;          /* active-user entries not added: table full */
    uint64_t mqtt_connects;       /* successful connects to the broker */
    uint64_t mqtt_published;      /* messages handed to the broker connection */
    uint64_t mqtt_not_connected;  /* publications dropped or refused: not connected */
    uint64_t mqtt_publish_failed; /* library errors and acknowledgement timeouts */
    uint64_t mqtt_received;       /* messages received on the subscription */
    uint64_t mqtt_task_starts;    /* start-task messages acted on */
    uint64_t events_done;         /* task events fully handled by the events process */
    uint64_t events_failed;       /* task events whose QRS lookups failed */
    uint64_t sched_fired;         /* schedule firings whose task start QRS accepted */
    uint64_t sched_failed;        /* schedule firings whose task start failed */
    uint64_t sched_skipped;       /* firings skipped: too late, or too many waiting */
    uint64_t sched_delay_ms_sum;  /* planned second to the start request, summed */
    uint64_t http_refused;        /* connections closed at accept: not in http.allowFrom */
    uint64_t http_rate_limited;   /* 429s of the rate limit */
    uint64_t http_unauthorized;   /* 401s: no, wrong or untrusted credentials */
    uint64_t http_forbidden;      /* 403s: scope or the token's allowFrom */
    /* Alerts per destination x kind x counter (outbox.h: OB_*, OBC_*). */
    uint64_t notify[4][3][7];
    /* Alert rate-limit windows (notify.c): key hash (0 = free), end (monotonic ms). */
    struct {
        uint64_t key;
        int64_t until_ms;
    } notify_rl[4096];
};

static inline struct stats *stats(void)
{
    return (struct stats *)(void *)(shm.base + shm.hdr->stats_off);
}

#define STAT_ADD(field, n) __atomic_add_fetch(&stats()->field, (n), __ATOMIC_RELAXED)
#define STAT_INC(field) STAT_ADD(field, 1)
#define STAT_GET(field) __atomic_load_n(&stats()->field, __ATOMIC_RELAXED)

#endif
