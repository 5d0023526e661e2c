/* The schedule list (butlerd-api(7), Scheduler): one list every process shares.
 *
 * The list lives in a shared mapping the master creates before the first fork: a
 * robust process-shared mutex, two buffers and a generation. The committed list is
 * the compact JSON array of the schedule objects in one buffer; a change is built
 * in the other buffer and committed by flipping one index, so a process killed at
 * any instant leaves the last committed list intact. No process keeps a parsed
 * copy: each operation reads the list one schedule at a time (jsonarr.h), so
 * 10,000 schedules cost each process nothing until it reads them, and then about
 * one schedule's parse tree. Every change writes the
 * schedule file first (temporary file, fsync, rename) and is committed only if
 * that worked: the file and the list never disagree about an acknowledged change.
 *
 * Workers change the list (the REST routes); the scheduler process (scheduler.c)
 * reads it whenever its generation moves, and claims each firing second with a
 * compare-and-swap on a shared watermark, so a second fires once however many
 * scheduler processes overlap (reload, respawn).
 *
 * With butlerd.store.backend = "redis" the list of record is the one in Redis
 * (sched_redis.h), shared by every instance: each change is made there, and the
 * shared mapping becomes this instance's copy of it, brought up to date whenever
 * Redis holds a newer version: by every route before it answers, and by the
 * scheduler process at least every second (butlerd(8), SCHEDULER, "Several
 * instances"). The schedule file is then a local backup of the shared list. */
#ifndef SCHED_LIST_H
#define SCHED_LIST_H

#include "util.h"

#include <json-c/json.h>
#include <stdint.h>
#include <time.h>

struct cfg;

enum sched_rc {
    SCHED_OK,
    SCHED_NOT_FOUND, /* no schedule with that id */
    SCHED_INVALID,   /* the schedule cannot run (invalid expression, zone or task ID) */
    SCHED_FULL,      /* butlerd.scheduler.maxSchedules, or the list's byte budget */
    SCHED_IO,        /* the schedule file could not be written: nothing changed */
    SCHED_UNAVAIL,   /* butlerd.store.backend "redis": Redis cannot be reached */
};

/* Master, before the first fork: maps the shared list and, when the scheduler is
 * enabled, loads the schedule file. 0, or -1 (logged) if butlerd cannot start. */
int sched_init(const struct cfg *c);
/* butlerd -t: checks the schedule file as a start would; messages go to ERRS
 * (fatal) and WARNS (schedules that will not run). 0 or -1. */
int sched_check_file(const struct cfg *c, struct strlist *errs, struct strlist *warns);
/* The mapping exists (the scheduler is enabled and sched_init() ran). */
int sched_available(void);

/* ---- the REST routes (any worker, any job thread) */

/* GET: the array of every schedule (ID NULL), or of the one with ID, into OUT. */
enum sched_rc sched_get(const char *id, struct buf *out);
/* POST: BODY was checked by the caller against the schema (types, required
 * members, enum). SCHED_INVALID with the message in ERR ("Invalid cron
 * expression: ..."); SCHED_OK with the new schedule object in *OUT. */
enum sched_rc sched_create(const struct cfg *c, json_object *body, json_object **out, char *err,
                           size_t errsz);
enum sched_rc sched_delete(const char *id);
/* Start (ON 1) or stop one schedule (ID) or all (ID NULL; schedules that cannot
 * run are left stopped); OUT gets the array of the changed schedule or of all. */
enum sched_rc sched_set_running(const char *id, int on, struct buf *out);
/* The text of GET /v4/schedules/status. */
enum sched_rc sched_status_text(struct buf *out);

/* ---- the scheduler process */

/* The list is kept in Redis (butlerd.store.backend = "redis"). */
int sched_on_redis(void);
/* On Redis: brings this instance's copy up to date if Redis's version is not VER
 * (0: read the version), seeding Redis from the copy if it holds no list. */
enum sched_rc sched_refresh(uint64_t ver);

/* The committed list (the compact JSON array, appended to OUT) and its generation. */
void sched_snapshot(struct buf *out, uint64_t *gen);
uint64_t sched_generation(void);
/* A descriptor that becomes readable when the list changed (an eventfd shared by
 * every process); sched_wake_drain() empties it. */
int sched_wake_fd(void);
void sched_wake_drain(void);
/* Every firing second up to and including the watermark has been handled. */
int64_t sched_watermark(void);
/* Claims every firing second up to T: 1 if this caller handles them (the watermark
 * moved to T from *PREV, if PREV is not NULL: the seconds after *PREV are the
 * caller's), 0 if T was handled already. */
int sched_claim(int64_t t, int64_t *prev);

/* ---- shared by the routes and the scheduler */

/* Can schedule object S fire (its expression, zone and task ID are valid)? A
 * reason in WHY (may be NULL) when it cannot. */
int sched_runnable(json_object *s, char *why, size_t whysz);
/* Zone NAME, loaded once per process and kept (zones are immutable), or NULL if
 * the tz database does not know it. Any thread. */
struct tz;
const struct tz *sched_zone(const char *name);
/* The members of a schedule object, in the order they are written. */
#define SCHED_NMEMBERS 9
extern const char *const sched_members[SCHED_NMEMBERS];
/* The schedule file's text for LIST (an array of schedule objects whose members are
 * strings, tags an array of strings): members in the order above, 2-space
 * indentation, as JSON.stringify(x, null, 2) writes it (butlerd-api(7), Scheduler).
 * butlerd-import writes converted files with it too. Appends to OUT. */
void sched_file_text(json_object *list, struct buf *out);
/* A member of schedule S, or "" (never NULL). */
const char *sched_str(json_object *s, const char *member);

#endif
