/* The worker pool: the worker role of the process table (proc.c, which forks,
 * logs, reaps and respawns), the ready report, and generations: on reload a new
 * generation starts and the older ones drain once it is ready.
 *
 * Workers are respawned in their slot; the first quick death waits 100 ms, each
 * further one doubles the wait up to 30 s, and a worker that lived 10 s resets it.
 * A worker that exits with EXIT_WORKER_FATAL is not respawned. */
#include "pool.h"
#include "butlerd.h"
#include "cfg.h"
#include "ipc.h"
#include "proc.h"
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 1024

static const struct pool_env *env;
static int nslots;
static int ready_changed;

static void __attribute__((noreturn)) worker_child(const struct proc *p, int fd)
{
    struct worker_args a = {env->cfg, env->listen_fd, fd, p->slot, p->gen,
                            env->tls_cert, env->tls_key, env->tls_client_ca, env->health_fd};
    worker_main(&a);
}

static void worker_input(struct proc *p, short revents)
{
    char b[16];
    ssize_t r = read(p->fd, b, sizeof b);
    if (r > 0 && memchr(b, IPC_READY, (size_t)r) && !p->ready) {
        p->ready = 1;
        ready_changed = 1;
    } else if (r == 0) {
        /* The worker closed its end: it is exiting; the reaper logs it. */
        proc_close_fd(p);
    }
}

static const struct proc_role worker_role = {
    .name = "worker",
    .label = "worker",
    .numbered = 1,
    .policy = PROC_RESPAWN,
    .backoff_min_ms = 100,
    .backoff_max_ms = 30000,
    .stable_ms = 10000,
    .after_stable_ms = 0,
    .after_clean_ms = -1,
    .ctl = 1,
    .keep_listen = 1,
    .child_main = worker_child,
    .on_input = worker_input,
};

static int size_for(const struct cfg *cfg)
{
    int n = cfg->workers;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    return n > MAX_WORKERS / 2 ? MAX_WORKERS / 2 : n;
}

void pool_start_gen(const struct pool_env *e, unsigned gen)
{
    env = e;
    nslots = size_for(env->cfg);
    proc_limit_slots(&worker_role, nslots);
    for (int s = 1; s <= nslots; s++)
        proc_start(&worker_role, s, gen);
}

int pool_gen_ready(unsigned gen)
{
    if (!ready_changed)
        return 0;
    ready_changed = 0;
    for (int s = 1; s <= nslots; s++) {
        int ok = proc_slot_fatal(&worker_role, s, gen);
        for (struct proc *p = proc_next(&worker_role, NULL); p && !ok;
             p = proc_next(&worker_role, p))
            if (p->gen == gen && p->slot == s && p->ready)
                ok = 1;
        if (!ok)
            return 0;
    }
    return 1;
}

/* SIGTERM: drain within TIMEOUT_S and exit (stop). A worker that was retired
 * (SIGQUIT) gets the SIGTERM too, so a stop never waits for app reloads. */
static void term(struct proc *w, int timeout_s)
{
    if (w->draining && !w->retired)
        return;
    int64_t before = w->kill_at_ms;
    int was = w->draining;
    proc_drain(w, SIGTERM, timeout_s * 1000 + 2000);
    if (was && before && before < w->kill_at_ms)
        w->kill_at_ms = before;
    w->retired = 0;
}

int pool_drain_older(unsigned gen, int timeout_s, int background_s)
{
    int n = 0;
    for (struct proc *w = proc_next(&worker_role, NULL); w; w = proc_next(&worker_role, w)) {
        if (w->gen >= gen || w->draining)
            continue;
        /* SIGQUIT: drain like SIGTERM, then let running app reloads end. */
        w->retired = 1;
        proc_drain(w, SIGQUIT, (timeout_s + background_s) * 1000 + 2000);
        n++;
    }
    return n;
}

void pool_stop_all(int timeout_s)
{
    for (struct proc *w = proc_next(&worker_role, NULL); w; w = proc_next(&worker_role, w))
        term(w, timeout_s);
}

int pool_count_gen(unsigned gen)
{
    int n = 0;
    for (struct proc *w = proc_next(&worker_role, NULL); w; w = proc_next(&worker_role, w))
        n += w->gen == gen;
    return n;
}

int pool_gen_dead(unsigned gen)
{
    for (int s = 1; s <= nslots; s++)
        if (!proc_slot_fatal(&worker_role, s, gen))
            return 0;
    return nslots > 0;
}
