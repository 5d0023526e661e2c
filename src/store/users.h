/* Active users (butlerd(8), ACTIVE USERS): entries (host, user directory, user id) in a
 * shared-memory
 * table written by the master's UDP intake and read by every worker. A user is a
 * distinct (directory, id) pair; users are listed in the order they were first added. */
#ifndef USERS_H
#define USERS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

enum { USERS_NEW = 1, USERS_REFRESHED = 0, USERS_FULL = -1, USERS_TOO_LONG = -2,
       USERS_QUEUED = 2 /* Redis: applied later by the master's thread (users_redis.h) */ };

struct cfg;

/* The idle expiry and capacity for the Redis backend (butlerd(8), ACTIVE USERS);
 * the master, at start and on every reload. Nothing to do with shared memory. */
void users_configure(const struct cfg *c);
/* Redis: 1 if the list changed since the last call in a way this process did not
 * see happen (another instance, the thread applying queued events); else 0. */
int users_poll(void);

/* Bytes of each slot kept in the dense head array of the table (shm_table_split):
 * the slot header and 96 bytes of "host\0dir\0user" and last-seen time, which
 * holds most real keys. */
#define USERS_SLOT_HEAD 128

/* (Re)builds the empty shared-memory table; the master, before any other process
 * is attached (shm_reset_volatile). */
void users_table_init(void);

/* Adds (host, dir, user) or refreshes its last-seen time NOW (CLOCK_REALTIME ms). */
int users_add(const char *host, const char *dir, const char *user, int64_t now);
/* Removes that one entry; returns 1 if it was there. */
int users_remove(const char *host, const char *dir, const char *user);
/* Removes entries last seen before CUTOFF; returns how many. */
unsigned users_expire(int64_t cutoff);

/* A consistent copy of the table, taken under its lock. On Redis: read from Redis
 * in a worker, the master thread's copy in the master; -1 (and V empty) when Redis
 * cannot be reached. */
struct users_view {
    size_t nusers;   /* distinct (dir, user) pairs */
    char **names;    /* "dir/user", in order of first addition (in NAMES_MEM) */
    char *names_mem;
    size_t nentries; /* entries, i.e. (host, dir, user) triples */
    char **hosts;    /* host of each entry (pointers into the copy) */
    void *mem;
};
int users_view(struct users_view *v);
void users_view_free(struct users_view *v);
/* Entries of each of HOSTS[0..N) in the view, into COUNTS. */
void users_view_host_counts(const struct users_view *v, const char *const *hosts, size_t n,
                            size_t *counts);
/* ["dir/user", ...] */
json_object *users_view_json(const struct users_view *v);
/* The same as text, byte for byte what json-c writes with JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE, without a tree of objects; malloc'd, *LEN its
 * length. */
char *users_view_json_text(const struct users_view *v, size_t *len);

#endif
