/* The worker pool. Everything about a worker's life is here: fork, the ready report,
 * exit logging, respawn throttling and the draining of old generations.
 *
 * A worker that dies is respawned in its slot. If it lived less than STABLE_MS the
 * delay doubles from BACKOFF_MIN_MS up to BACKOFF_MAX_MS, so a crashing worker never
 * becomes a fork storm; a worker that exits with EXIT_WORKER_FATAL is not respawned. */
#include "master_spawn.h"
#include "butlerd.h"
#include "cfg.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 1024
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 10000

struct worker {
    pid_t pid;          /* 0: entry free */
    int slot;           /* 1-based within its generation */
    unsigned gen;
    int ctl_fd;         /* master end of the control socketpair */
    int ready;
    int draining;
    int64_t started_ms;
    int64_t kill_at_ms; /* draining: SIGKILL after this */
    int retired;        /* draining after a reload (SIGQUIT), not stopping */
};

struct slot_state {
    unsigned gen;
    int64_t respawn_at;  /* 0: nothing pending */
    int backoff_ms;
    int fatal;
};

static struct worker workers[MAX_WORKERS];
static struct slot_state slots[MAX_WORKERS / 2 + 1];
static int nslots;

int pool_size_for(const struct cfg *cfg)
{
    int n = cfg->workers;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    return n > MAX_WORKERS / 2 ? MAX_WORKERS / 2 : n;
}

static struct worker *free_entry(void)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (!workers[i].pid)
            return &workers[i];
    return NULL;
}

void pool_close_in_child(const struct pool_env *env)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (workers[i].pid && workers[i].ctl_fd >= 0)
            close(workers[i].ctl_fd);
    if (env && env->listen_fd >= 0)
        close(env->listen_fd);
}

static void spawn(const struct pool_env *env, int slot, unsigned gen)
{
    struct worker *w = free_entry();
    int sv[2];
    if (!w) {
        log_errorx("worker table full, not starting worker %d", slot);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("socketpair for worker %d", slot);
        slots[slot].respawn_at = now_ms() + BACKOFF_MAX_MS;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork for worker %d", slot);
        close(sv[0]);
        close(sv[1]);
        slots[slot].respawn_at = now_ms() + BACKOFF_MAX_MS;
        return;
    }
    if (pid == 0) {
        /* Child: keep nothing of the master's but the listen socket, so that the
         * master's death closes every control socket a worker waits on. */
        close(sv[0]);
        for (int i = 0; i < MAX_WORKERS; i++)
            if (workers[i].pid && workers[i].ctl_fd >= 0)
                close(workers[i].ctl_fd);
        for (const int *fd = env->close_in_child; fd && *fd >= 0; fd++)
            close(*fd);
        struct worker_args a = {env->cfg, env->listen_fd, sv[1], slot, gen,
                                env->tls_cert, env->tls_key};
        worker_main(&a);
    }
    close(sv[1]);
    set_nonblock(sv[0]);
    memset(w, 0, sizeof *w);
    w->pid = pid;
    w->slot = slot;
    w->gen = gen;
    w->ctl_fd = sv[0];
    w->started_ms = now_ms();
    slots[slot].respawn_at = 0;
    log_info("worker %d pid %ld started gen %u", slot, (long)pid, gen);
}

void pool_start_gen(const struct pool_env *env, unsigned gen)
{
    nslots = pool_size_for(env->cfg);
    for (int s = 1; s <= nslots; s++) {
        slots[s].gen = gen;
        slots[s].backoff_ms = 0;
        slots[s].fatal = 0;
        spawn(env, s, gen);
    }
}

static void log_exit(const struct worker *w, int status)
{
    if (WIFEXITED(status))
        log_info("worker %d pid %ld gen %u exited with code %d", w->slot, (long)w->pid, w->gen,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        log_warnx("worker %d pid %ld gen %u killed by signal %d (%s)%s", w->slot, (long)w->pid,
                  w->gen, WTERMSIG(status), strsignal(WTERMSIG(status)),
                  WCOREDUMP(status) ? ", core dumped" : "");
}

void pool_reap(const struct pool_env *env, int shutting_down, pool_other_fn other, void *arg)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct worker *w = NULL;
        for (int i = 0; i < MAX_WORKERS; i++)
            if (workers[i].pid == pid)
                w = &workers[i];
        if (!w) {
            if (other)
                other(pid, status, arg);
            else
                log_info("child pid %ld exited", (long)pid);
            continue;
        }
        log_exit(w, status);
        close(w->ctl_fd);
        struct worker dead = *w;
        memset(w, 0, sizeof *w);
        w->ctl_fd = -1;

        if (shutting_down || dead.draining || dead.slot > nslots ||
            slots[dead.slot].gen != dead.gen)
            continue;
        struct slot_state *s = &slots[dead.slot];
        if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_WORKER_FATAL) {
            log_errorx("worker %d cannot start; not respawning it", dead.slot);
            s->fatal = 1;
            continue;
        }
        int lived = (int)(now_ms() - dead.started_ms);
        if (lived >= STABLE_MS)
            s->backoff_ms = 0;
        else
            s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (s->backoff_ms > BACKOFF_MAX_MS)
            s->backoff_ms = BACKOFF_MAX_MS;
        s->respawn_at = now_ms() + s->backoff_ms;
        if (s->backoff_ms)
            log_info("respawning worker %d in %d ms", dead.slot, s->backoff_ms);
    }
    (void)env;
}

int pool_timers(const struct pool_env *env)
{
    int64_t now = now_ms(), next = -1;
    for (int s = 1; s <= nslots; s++) {
        if (!slots[s].respawn_at)
            continue;
        if (slots[s].respawn_at <= now)
            spawn(env, s, slots[s].gen);
        else if (next < 0 || slots[s].respawn_at < next)
            next = slots[s].respawn_at;
    }
    for (int i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &workers[i];
        if (!w->pid || !w->draining)
            continue;
        if (w->kill_at_ms <= now) {
            log_warnx("worker %d pid %ld gen %u did not finish draining, killing it", w->slot,
                      (long)w->pid, w->gen);
            kill(w->pid, SIGKILL);
            w->kill_at_ms = now + 1000;
        }
        if (next < 0 || w->kill_at_ms < next)
            next = w->kill_at_ms;
    }
    return next < 0 ? -1 : (int)(next - now > 0 ? next - now : 0);
}

int pool_pollfds(struct pollfd *p, int max)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS && n < max; i++)
        if (workers[i].pid && workers[i].ctl_fd >= 0) {
            p[n].fd = workers[i].ctl_fd;
            p[n].events = POLLIN;
            p[n].revents = 0;
            n++;
        }
    return n;
}

int pool_ctl_event(struct pollfd *p, int n, unsigned gen)
{
    int changed = 0;
    for (int k = 0; k < n; k++) {
        if (!p[k].revents)
            continue;
        for (int i = 0; i < MAX_WORKERS; i++) {
            struct worker *w = &workers[i];
            if (!w->pid || w->ctl_fd != p[k].fd)
                continue;
            char b[16];
            ssize_t r = read(w->ctl_fd, b, sizeof b);
            if (r > 0 && memchr(b, 'R', (size_t)r) && !w->ready) {
                w->ready = 1;
                changed = 1;
            } else if (r == 0) {
                /* The worker closed its end: it is exiting; the reaper logs it. */
                close(w->ctl_fd);
                w->ctl_fd = -1;
            }
        }
    }
    if (!changed)
        return 0;
    for (int s = 1; s <= nslots; s++) {
        int ok = slots[s].fatal;
        for (int i = 0; i < MAX_WORKERS && !ok; i++)
            if (workers[i].pid && workers[i].gen == gen && workers[i].slot == s &&
                workers[i].ready)
                ok = 1;
        if (!ok)
            return 0;
    }
    return 1;
}

/* SIGTERM: drain within TIMEOUT_S and exit (stop). A worker that was retired
 * (SIGQUIT) gets the SIGTERM too, so a stop never waits for app reloads. */
static void term(struct worker *w, int timeout_s)
{
    if (w->draining && !w->retired)
        return;
    int64_t at = now_ms() + (int64_t)timeout_s * 1000 + 2000;
    if (!w->draining || at < w->kill_at_ms)
        w->kill_at_ms = at;
    w->draining = 1;
    w->retired = 0;
    if (kill(w->pid, SIGTERM) < 0)
        log_warn("kill(%ld, SIGTERM)", (long)w->pid);
}

int pool_drain_older(unsigned gen, int timeout_s, int background_s)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &workers[i];
        if (!w->pid || w->gen >= gen || w->draining)
            continue;
        /* SIGQUIT: drain like SIGTERM, then let running app reloads end. */
        w->draining = 1;
        w->retired = 1;
        w->kill_at_ms = now_ms() + ((int64_t)timeout_s + background_s) * 1000 + 2000;
        if (kill(w->pid, SIGQUIT) < 0)
            log_warn("kill(%ld, SIGQUIT)", (long)w->pid);
        n++;
    }
    return n;
}

void pool_stop_all(int timeout_s)
{
    for (int s = 1; s <= nslots; s++)
        slots[s].respawn_at = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        if (workers[i].pid)
            term(&workers[i], timeout_s);
}

void pool_kill_all(void)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (workers[i].pid)
            kill(workers[i].pid, SIGKILL);
}

void pool_signal_all(int sig)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (workers[i].pid)
            kill(workers[i].pid, sig);
}

int pool_count(void)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        n += workers[i].pid != 0;
    return n;
}

int pool_count_gen(unsigned gen)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        n += workers[i].pid != 0 && workers[i].gen == gen;
    return n;
}

int pool_gen_dead(unsigned gen)
{
    for (int s = 1; s <= nslots; s++)
        if (!slots[s].fatal || slots[s].gen != gen)
            return 0;
    return nslots > 0;
}
