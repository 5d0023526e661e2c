/* The process table (see proc.h). Everything about a child's life happens here:
 * fork and the after-fork routine, the start line, the exit line, the respawn
 * decision and its backoff, drain deadlines. Roles only say what differs.
 *
 * Respawn throttling: a child that lived less than its role's stable_ms is replaced
 * after a wait that doubles from backoff_min_ms up to backoff_max_ms, so a crashing
 * child never becomes a fork storm; one that lived longer resets the wait. */
#include "proc.h"
#include "butlerd.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 1100 /* 512 workers of two generations, and the rest */
#define MAX_SLOTS 600

struct slot {
    const struct proc_role *role; /* NULL: unused */
    int slot;
    unsigned gen;
    int active;         /* 0: the role no longer serves this slot */
    int64_t respawn_at; /* 0: nothing pending */
    int backoff_ms;
    int fatal;
};

static struct proc procs[MAX_PROCS];
static struct slot slots[MAX_SLOTS];
static int listen_fd = -1, health_fd = -1;
static int stopping;

void proc_set_listen_fd(int fd) { listen_fd = fd; }
void proc_set_health_fd(int fd) { health_fd = fd; }

static struct slot *slot_of(const struct proc_role *r, int n, int create)
{
    struct slot *free_s = NULL;
    for (int i = 0; i < MAX_SLOTS; i++) {
        if (slots[i].role == r && slots[i].slot == n)
            return &slots[i];
        if (!slots[i].role && !free_s)
            free_s = &slots[i];
    }
    if (!create || !free_s)
        return NULL;
    memset(free_s, 0, sizeof *free_s);
    free_s->role = r;
    free_s->slot = n;
    return free_s;
}

/* "worker 2 pid 42 gen 3" or "events process pid 42" */
static const char *who(const struct proc *p, char *b, size_t n)
{
    if (p->role->numbered)
        snprintf(b, n, "%s %d pid %ld gen %u", p->role->label, p->slot, (long)p->pid, p->gen);
    else
        snprintf(b, n, "%s pid %ld", p->role->label, (long)p->pid);
    return b;
}

static const char *what(const struct proc_role *r, int slot, char *b, size_t n)
{
    if (r->numbered)
        snprintf(b, n, "%s %d", r->label, slot);
    else
        snprintf(b, n, "%s", r->label);
    return b;
}

/* The child's side of every fork: no handler of the master's may run here, nothing
 * of the master's stays open but what the role needs, and the child dies with the
 * master. */
static void after_fork(const struct proc *p, int keep_fd, int master_end, pid_t master)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    int dfl[] = {SIGTERM, SIGINT, SIGQUIT, SIGCHLD};
    for (size_t i = 0; i < sizeof dfl / sizeof dfl[0]; i++)
        sigaction(dfl[i], &sa, NULL);
    sa.sa_handler = SIG_IGN; /* until the role installs its own */
    int ign[] = {SIGHUP, SIGUSR1, SIGPIPE};
    for (size_t i = 0; i < sizeof ign / sizeof ign[0]; i++)
        sigaction(ign[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    log_set_role(p->role->name);
    if (master_end >= 0)
        close(master_end);
    loop_close_in_child(); /* the self-pipe, MQTT, UDP, every other child's socket */
    if (!p->role->keep_listen && listen_fd >= 0 && listen_fd != keep_fd)
        close(listen_fd);
    if (!p->role->keep_listen && health_fd >= 0 && health_fd != keep_fd)
        close(health_fd);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) /* it died before the prctl took effect */
        _exit(EXIT_OK);
}

static void on_fd(int fd, short revents, void *arg)
{
    struct proc *p = arg;
    if (p->pid && p->fd == fd && p->role->on_input)
        p->role->on_input(p, revents);
}

static void retry_later(const struct proc_role *r, int slot)
{
    struct slot *s = slot_of(r, slot, 0);
    if (s && r->policy == PROC_RESPAWN)
        s->respawn_at = now_ms() + r->backoff_max_ms;
}

static struct proc *free_entry(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (!procs[i].pid)
            return &procs[i];
    return NULL;
}

static void log_started(const struct proc *p)
{
    const struct proc_role *r = p->role;
    if (r->numbered)
        log_info("%s %d pid %ld started gen %u", r->label, p->slot, (long)p->pid, p->gen);
    else if (r->quiet)
        log_debug("%s pid %ld started", r->label, (long)p->pid);
    else
        log_info("%s pid %ld started", r->label, (long)p->pid);
}

static struct proc *spawn(const struct proc_role *r, int slot, unsigned gen)
{
    char b[64];
    struct proc *p = free_entry();
    int sv[2] = {-1, -1};
    if (!p) {
        log_errorx("process table full, not starting %s", what(r, slot, b, sizeof b));
        return NULL;
    }
    if (r->ctl && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("socketpair for %s", what(r, slot, b, sizeof b));
        retry_later(r, slot);
        return NULL;
    }
    memset(p, 0, sizeof *p);
    p->role = r;
    p->slot = slot;
    p->gen = gen;
    p->fd = -1;
    pid_t master = getpid(), pid = fork();
    if (pid < 0) {
        log_error("fork for %s", what(r, slot, b, sizeof b));
        if (r->ctl) {
            close(sv[0]);
            close(sv[1]);
        }
        retry_later(r, slot);
        return NULL;
    }
    if (pid == 0) {
        after_fork(p, sv[1], sv[0], master);
        r->child_main(p, sv[1]);
    }
    p->pid = pid;
    p->started_ms = now_ms();
    if (r->ctl) {
        close(sv[1]);
        set_nonblock(sv[0]);
        p->fd = sv[0];
        loop_add(p->fd, POLLIN, on_fd, p);
    }
    struct slot *s = slot_of(r, slot, 0);
    if (s)
        s->respawn_at = 0;
    log_started(p);
    if (r->on_spawn)
        r->on_spawn(p);
    return p;
}

struct proc *proc_start(const struct proc_role *r, int slot, unsigned gen)
{
    if (r->policy == PROC_RESPAWN) {
        struct slot *s = slot_of(r, slot, 1);
        if (!s) {
            log_errorx("slot table full, not starting %s %d", r->label, slot);
            return NULL;
        }
        s->gen = gen;
        s->active = 1;
        s->backoff_ms = 0;
        s->fatal = 0;
        s->respawn_at = 0;
    }
    return spawn(r, slot, gen);
}

void proc_limit_slots(const struct proc_role *r, int n)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        if (slots[i].role == r && slots[i].slot > n) {
            slots[i].active = 0;
            slots[i].respawn_at = 0;
        }
}

int proc_slot_fatal(const struct proc_role *r, int slot, unsigned gen)
{
    struct slot *s = slot_of(r, slot, 0);
    return s && s->active && s->gen == gen && s->fatal;
}

void proc_close_fd(struct proc *p)
{
    if (p->fd < 0)
        return;
    loop_del(p->fd);
    close(p->fd);
    p->fd = -1;
}

void proc_want_write(struct proc *p, int on)
{
    if (p->fd >= 0)
        loop_mod(p->fd, (short)(POLLIN | (on ? POLLOUT : 0)));
}

/* The exit line, the same for every role. */
static void log_exit(const struct proc *p, int status, int lost, const char *note)
{
    char b[96];
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK && !lost;
    if (WIFEXITED(status)) {
        if (clean && p->role->quiet)
            log_debug("%s exited with code %d%s", who(p, b, sizeof b), WEXITSTATUS(status), note);
        else if (clean || (p->role->numbered && !lost)) /* workers: as ever, info */
            log_info("%s exited with code %d%s", who(p, b, sizeof b), WEXITSTATUS(status), note);
        else
            log_warnx("%s exited with code %d%s", who(p, b, sizeof b), WEXITSTATUS(status), note);
    } else if (WIFSIGNALED(status)) {
        log_warnx("%s killed by signal %d (%s)%s%s", who(p, b, sizeof b), WTERMSIG(status),
                  strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "", note);
    }
}

/* Replace the dead child in its slot, or not. */
static void respawn_policy(const struct proc *dead, int status)
{
    const struct proc_role *r = dead->role;
    struct slot *s = slot_of(r, dead->slot, 0);
    if (r->policy != PROC_RESPAWN || stopping || dead->draining || !s || !s->active ||
        s->gen != dead->gen)
        return;
    char b[64];
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_WORKER_FATAL) {
        log_errorx("%s cannot start; not respawning it", what(r, dead->slot, b, sizeof b));
        s->fatal = 1;
        return;
    }
    int lived = (int)(now_ms() - dead->started_ms);
    if (lived >= r->stable_ms)
        s->backoff_ms = r->after_stable_ms;
    else
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : r->backoff_min_ms;
    if (s->backoff_ms > r->backoff_max_ms)
        s->backoff_ms = r->backoff_max_ms;
    int wait = s->backoff_ms;
    if (r->after_clean_ms >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK)
        wait = r->after_clean_ms;
    s->respawn_at = now_ms() + wait;
    metrics_note_respawn();
    if (wait)
        log_info("respawning %s in %d ms", what(r, dead->slot, b, sizeof b), wait);
}

static void reap_one(struct proc *p, int status)
{
    char note[128] = "";
    int lost = p->role->on_exit ? p->role->on_exit(p, status, note, sizeof note) : 0;
    log_exit(p, status, lost, note);
    proc_close_fd(p);
    struct proc dead = *p;
    memset(p, 0, sizeof *p);
    p->fd = -1;
    respawn_policy(&dead, status);
}

static struct proc *by_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    return NULL;
}

void proc_reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct proc *p = by_pid(pid);
        if (p)
            reap_one(p, status);
        else
            log_info("child pid %ld exited", (long)pid);
    }
}

void proc_wait(const struct proc_role *r)
{
    for (struct proc *p = proc_next(r, NULL); p; p = proc_next(r, p)) {
        int status;
        pid_t pid;
        while ((pid = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR) {
        }
        if (pid == p->pid)
            reap_one(p, status);
    }
}

int proc_timers(void)
{
    int64_t now = now_ms(), next = -1;
    for (int i = 0; i < MAX_SLOTS; i++) {
        struct slot *s = &slots[i];
        if (!s->role || !s->active || !s->respawn_at || stopping)
            continue;
        if (s->respawn_at <= now)
            spawn(s->role, s->slot, s->gen);
        else if (next < 0 || s->respawn_at < next)
            next = s->respawn_at;
    }
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        if (!p->pid || !p->draining || !p->kill_at_ms)
            continue;
        if (p->kill_at_ms <= now) {
            char b[96];
            log_warnx("%s did not finish draining, killing it", who(p, b, sizeof b));
            kill(p->pid, SIGKILL);
            p->kill_at_ms = now + 1000;
        }
        if (next < 0 || p->kill_at_ms < next)
            next = p->kill_at_ms;
    }
    return next < 0 ? -1 : (int)(next - now > 0 ? next - now : 0);
}

struct proc *proc_next(const struct proc_role *r, struct proc *prev)
{
    for (int i = prev ? (int)(prev - procs) + 1 : 0; i < MAX_PROCS; i++)
        if (procs[i].pid && (!r || procs[i].role == r))
            return &procs[i];
    return NULL;
}

int proc_count(const struct proc_role *r)
{
    int n = 0;
    for (struct proc *p = proc_next(r, NULL); p; p = proc_next(r, p))
        n++;
    return n;
}

void proc_drain(struct proc *p, int sig, int kill_after_ms)
{
    p->draining = 1;
    if (kill_after_ms >= 0)
        p->kill_at_ms = now_ms() + kill_after_ms;
    if (kill(p->pid, sig) < 0)
        log_warn("kill(%ld, SIG%s)", (long)p->pid, sigabbrev_np(sig));
}

void proc_signal_all(int sig)
{
    for (struct proc *p = proc_next(NULL, NULL); p; p = proc_next(NULL, p))
        kill(p->pid, sig);
}

void proc_shutdown(void)
{
    stopping = 1;
    for (int i = 0; i < MAX_SLOTS; i++)
        slots[i].respawn_at = 0;
}
