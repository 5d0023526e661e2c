/* Active users on Redis (butlerd(8), ACTIVE USERS and "Several instances"): the
 * union over every instance sharing one Redis and key prefix. users.c calls these
 * when butlerd.store.backend is "redis".
 *
 * Writes come from the master's UDP intake, which must never wait: they are queued
 * for a thread of the master that applies them, expires idle entries every second
 * and keeps a copy of the whole list for the master's MQTT aggregates. Workers read
 * Redis directly. */
#ifndef USERS_REDIS_H
#define USERS_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct cfg;

/* Entries as read: KEYS holds each entry's "host\0dir\0user\0" one after another,
 * SEQ[i] its creation number; in no particular order. */
struct users_raw {
    char *keys;
    size_t klen;
    size_t n;
    uint64_t *seq;
    size_t *off; /* offset of entry i in KEYS */
};

/* The settings the thread uses (idle expiry, capacity); the master, at start and
 * on every reload. */
void users_redis_configure(const struct cfg *c);
/* Queues an add (OP 1) or a remove (OP -1) of KEY (KLEN bytes, "host\0dir\0user").
 * Never waits; a full queue drops the event (counted, logged once per overflow). */
void users_redis_queue(int op, const char *key, size_t klen);
/* The master's once-a-second call: starts the thread on first use; returns the
 * entries the thread expired since the last call and sets *CHANGED when the list
 * changed (here or on another instance) since then. */
unsigned users_redis_tick(int *changed);
/* The entries: from the thread's copy in the master, from Redis elsewhere.
 * 0, or -1 when Redis cannot be reached (R is then empty). */
int users_redis_read(struct users_raw *r);
void users_redis_raw_free(struct users_raw *r);

#endif
