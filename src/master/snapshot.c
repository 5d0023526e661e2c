/* The key-value snapshot as the master runs it (see snapshot.h). The periodic
 * snapshot is written by a one-shot child that reads the shared segment under the
 * same locks as a worker. */
#include "snapshot.h"
#include "butlerd.h"
#include "cfg.h"
#include "kv.h"
#include "kv_snapshot.h"
#include "kvstore.h"
#include "log.h"
#include "proc.h"
#include "util.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct cfg *cfg;
static uint64_t saved_mutations; /* what the last snapshot holds */
static uint64_t snap_mutations;  /* what the running child is saving */
static int64_t next_snapshot;

static void __attribute__((noreturn)) snapshot_child(const struct proc *p, int fd)
{
    _exit(kv_snapshot_save(cfg->kvPersistence.file) == 0 ? EXIT_OK : EXIT_FATAL);
}

static int snapshot_exit(struct proc *p, int status, char *note, size_t notelen)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK) {
        saved_mutations = snap_mutations;
        log_debug("key-value snapshot written to %s", cfg->kvPersistence.file);
    } else {
        log_warnx("key-value snapshot to %s failed", cfg->kvPersistence.file);
    }
    return 0;
}

static const struct proc_role snapshot_role = {
    .name = "snapshot",
    .label = "snapshot process",
    .policy = PROC_ONESHOT,
    .quiet = 1, /* one every intervalSeconds: a clean one is logged at debug level */
    .child_main = snapshot_child,
    .on_exit = snapshot_exit,
};

static void print_msgs(const struct strlist *l, void (*fn)(const char *, ...))
{
    for (size_t i = 0; i < l->n; i++)
        fn("%s", l->v[i]);
}

int snapshot_check(const struct cfg *c)
{
    struct strlist errs = {0}, warns = {0};
    if (!*c->kvPersistence.file)
        return 0;
    int rc = kv_snapshot_check(c, &errs, &warns);
    print_msgs(&errs, log_errorx);
    print_msgs(&warns, log_warnx);
    strlist_free(&errs);
    strlist_free(&warns);
    if (rc < 0)
        return -1;
    kv_snapshot_cleanup(c->kvPersistence.file, kv_snapshot_uid(c));
    return 0;
}

void snapshot_init(const struct cfg *c, int attached)
{
    cfg = c;
    saved_mutations = attached ? 0 : kv_mutations();
    next_snapshot = now_ms() + (int64_t)c->kvPersistence.intervalSeconds * 1000;
}

void snapshot_set_cfg(const struct cfg *c) { cfg = c; }

static void snapshot_bg(void)
{
    uint64_t mut = kv_mutations();
    if (!*cfg->kvPersistence.file || kvstore_is_redis() || proc_count(&snapshot_role) || mut == saved_mutations)
        return;
    if (proc_start(&snapshot_role, 1, 0))
        snap_mutations = mut;
}

int snapshot_timer(void)
{
    int iv = cfg->kvPersistence.intervalSeconds;
    if (iv <= 0)
        return -1;
    int64_t now = now_ms();
    if (now >= next_snapshot) {
        snapshot_bg();
        next_snapshot = now + (int64_t)iv * 1000;
    }
    return next_snapshot > now ? (int)(next_snapshot - now) : 0;
}

int snapshot_final(void)
{
    const char *file = cfg->kvPersistence.file;
    proc_wait(&snapshot_role);
    uint64_t mut = kv_mutations();
    /* With the Redis backend the shared-memory store is unused: its (empty) contents
     * must not replace a snapshot a site may still want to migrate (butlerd(8)). */
    if (!*file || kvstore_is_redis())
        return 0;
    if (kv_snapshot_save(file) < 0)
        return -1;
    saved_mutations = mut;
    log_debug("key-value snapshot written to %s", file);
    return 0;
}
