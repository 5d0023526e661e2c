/* The durable outbox's files (butlerd(8), "Outbox"): the spool directory with
 * tmp/, queue/, dead/ and lock, one compact JSON object per message. Every write
 * goes through tmp/ (O_EXCL, fsync, rename, fsync of the directory), so a process
 * killed at any instant leaves either the old file or the new one. Used by the
 * events process (new messages) and the delivery process (updates, dead letters). */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <json-c/json.h>

#include <stddef.h>
#include <stdint.h>

struct cfg;

/* Destinations and kinds, for entries and counters. */
enum { OB_SLACK, OB_TEAMS, OB_WEBHOOK, OB_EMAIL, OB_NDEST };
enum { OB_FAILED, OB_ABORTED, OB_SUCCESS, OB_NKIND };
extern const char *const outbox_dest_names[OB_NDEST];
extern const char *const outbox_kind_names[OB_NKIND];
int outbox_dest_of(const char *name);
int outbox_kind_of(const char *name);

/* Creates DIR and its subdirectories (mode 0700) if missing; -1 with ERR. */
int outbox_prepare(const char *dir, char *err, size_t errlen);
/* Takes the lock of DIR (flock, non-blocking): the fd, or -1 with ERR ("in use by
 * another butlerd" when another process holds it). */
int outbox_lock(const char *dir, char *err, size_t errlen);

/* A new entry: fills v, id, created, nextAttempt, attempts, lastError. */
json_object *outbox_new(int dest, int kind, const char *task, const char *exec,
                        const char *target, json_object *request);

/* Writes entry E into SUB ("queue" or "dead") of DIR under its id. With
 * QUEUE_MAX > 0, a queue/ already holding that many files refuses it (returns 1).
 * 0 done, -1 on a write error (ERR), 1 queue full. */
int outbox_write(const char *dir, const char *sub, json_object *e, int queue_max, char *err,
                 size_t errlen);
/* Removes SUB/ID.json and syncs SUB. */
int outbox_remove(const char *dir, const char *sub, const char *id);
/* Reads SUB/NAME: the entry, or NULL. */
json_object *outbox_read(const char *dir, const char *sub, const char *name);

/* RFC 3339 UTC with milliseconds, and back (-1 if unreadable). */
void outbox_time(int64_t ms, char out[32]);
int64_t outbox_parse_time(const char *s);

/* Counters per destination x kind (shared memory, butlerd -S). */
enum { OBC_QUEUED, OBC_DELIVERED, OBC_RETRIED, OBC_DEAD, OBC_RATE_LIMITED, OBC_RENDER_FAILED,
       OBC_DROPPED, OBC_N };
extern const char *const outbox_counter_names[OBC_N];
void outbox_count(int dest, int kind, int counter);
struct stats;
/* {"slack": {"reloadTaskFailure": {"queued": n, ...}, ...}, ...} for butlerd -S. */
json_object *outbox_stats_json(const struct stats *st);

#endif
