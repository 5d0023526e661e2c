/* The master's loop registry (loop.c) and the process table (proc.c): an entry
 * removed by an earlier callback is not dispatched, timers bound the wait, sources
 * are handled after every poll; a child closes the master-only descriptors, a
 * respawning role backs off (doubling up to its maximum), the do-not-respawn code
 * is honoured, a one-shot child is not replaced, and the control socket carries the
 * ready byte. */
#include "butlerd.h"
#include "ipc.h"
#include "loop.h"
#include "proc.h"
#include "util.h"
#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------- loop */

static int a_calls, b_calls, src_fills, src_handles, src_ready;
static int pa[2], pb[2], pc[2];

static void cb_a(int fd, short revents, void *arg)
{
    a_calls++;
    loop_del(pb[0]); /* b is ready too, but must not be dispatched any more */
    close(pb[0]);
}

static void cb_b(int fd, short revents, void *arg) { b_calls++; }

static int src_fill(struct pollfd *p, int max)
{
    src_fills++;
    p[0] = (struct pollfd){pc[0], POLLIN, 0};
    return 1;
}

static void src_handle(const struct pollfd *p, int n)
{
    src_handles++;
    for (int i = 0; i < n; i++)
        src_ready += p[i].revents != 0;
}

static int timer_on = 1;
static int timer(void) { return timer_on ? 5 : -1; }

static void test_loop(void)
{
    if (pipe(pa) < 0 || pipe(pb) < 0 || pipe(pc) < 0)
        exit(2);
    static const struct loop_source src = {src_fill, src_handle, NULL, 1};
    loop_add(pa[0], POLLIN, cb_a, NULL);
    loop_add(pb[0], POLLIN, cb_b, NULL);
    loop_add_source(&src);
    loop_add_timer(timer);
    CHECK(write(pa[1], "x", 1) == 1 && write(pb[1], "x", 1) == 1);
    CHECK(loop_once(-1) == 0);
    CHECK(a_calls == 1 && b_calls == 0);
    CHECK(src_fills == 1 && src_handles == 1 && src_ready == 0);
    /* nothing ready: the timer bounds the wait */
    char c;
    CHECK(read(pa[0], &c, 1) == 1);
    int64_t t0 = now_ms();
    CHECK(loop_once(-1) == 0);
    CHECK(now_ms() - t0 < 1000);
    CHECK(a_calls == 1 && b_calls == 0 && src_handles == 2);
    CHECK(write(pc[1], "x", 1) == 1);
    CHECK(loop_once(-1) == 0);
    CHECK(src_ready == 1);
    CHECK(read(pc[0], &c, 1) == 1);
    timer_on = 0;
    loop_add_private(pc[1]); /* a child must close it (test_after_fork) */
}

/* ------------------------------------------------------------------- proc */

static int last_status = -1;
static int64_t spawned_at[8];
static int nspawned;

static int record_exit(struct proc *p, int status, char *note, size_t n)
{
    last_status = status;
    return 0;
}

static void record_spawn(struct proc *p)
{
    if (nspawned < 8)
        spawned_at[nspawned++] = now_ms();
}

/* Exits 3 if the master-only descriptors are closed in the child. */
static void __attribute__((noreturn)) check_fds_main(const struct proc *p, int fd)
{
    int closed = fcntl(pc[1], F_GETFD) < 0 && fcntl(pa[0], F_GETFD) < 0;
    _exit(closed ? 3 : 4);
}

static const struct proc_role oneshot = {
    .name = "t1", .label = "oneshot", .policy = PROC_ONESHOT,
    .child_main = check_fds_main, .on_exit = record_exit,
};

static void settle(int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        proc_reap();
        proc_timers();
        poll(NULL, 0, 2);
    }
}

static void test_after_fork_and_oneshot(void)
{
    CHECK(proc_start(&oneshot, 1, 0) != NULL);
    CHECK(proc_count(&oneshot) == 1);
    proc_wait(&oneshot);
    CHECK(proc_count(&oneshot) == 0);
    CHECK(WIFEXITED(last_status) && WEXITSTATUS(last_status) == 3);
    settle(50);
    CHECK(proc_count(&oneshot) == 0); /* not replaced */
}

static void __attribute__((noreturn)) fail_main(const struct proc *p, int fd) { _exit(1); }

static const struct proc_role crasher = {
    .name = "t2", .label = "crasher", .policy = PROC_RESPAWN,
    .backoff_min_ms = 40, .backoff_max_ms = 160, .stable_ms = 100000, .after_clean_ms = -1,
    .child_main = fail_main, .on_spawn = record_spawn,
};

static void test_backoff(void)
{
    nspawned = 0;
    proc_start(&crasher, 1, 1);
    int64_t end = now_ms() + 5000;
    while (nspawned < 5 && now_ms() < end)
        settle(5);
    CHECK(nspawned == 5);
    int want[] = {40, 80, 160, 160};
    for (int i = 0; i < 4; i++) {
        int64_t gap = spawned_at[i + 1] - spawned_at[i];
        CHECK(gap >= want[i]);
        CHECK(gap < want[i] + 1000);
    }
    proc_limit_slots(&crasher, 0); /* the slot is no longer served */
    settle(400);
    CHECK(proc_count(&crasher) == 0);
}

static void __attribute__((noreturn)) fatal_main(const struct proc *p, int fd)
{
    _exit(EXIT_WORKER_FATAL);
}

static const struct proc_role fatal = {
    .name = "t3", .label = "fatal", .policy = PROC_RESPAWN,
    .backoff_min_ms = 10, .backoff_max_ms = 10, .after_clean_ms = -1,
    .child_main = fatal_main, .on_exit = record_exit,
};

static void test_fatal_not_respawned(void)
{
    proc_start(&fatal, 1, 7);
    settle(200);
    CHECK(proc_count(&fatal) == 0);
    CHECK(proc_slot_fatal(&fatal, 1, 7));
    CHECK(!proc_slot_fatal(&fatal, 1, 8));
}

/* Sends the ready byte, then waits for the master's end to close or a signal. */
static void __attribute__((noreturn)) ready_main(const struct proc *p, int fd)
{
    char r = IPC_READY, b;
    if (write(fd, &r, 1) != 1)
        _exit(5);
    while (read(fd, &b, 1) > 0) {
    }
    _exit(0);
}

static void ready_input(struct proc *p, short revents)
{
    char b[8];
    ssize_t n = read(p->fd, b, sizeof b);
    if (n > 0 && b[0] == IPC_READY)
        p->ready = 1;
    else if (n == 0)
        proc_close_fd(p);
}

static const struct proc_role ctl = {
    .name = "t4", .label = "ctl", .policy = PROC_RESPAWN, .numbered = 1,
    .backoff_min_ms = 10, .backoff_max_ms = 10, .after_clean_ms = -1, .ctl = 1,
    .child_main = ready_main, .on_input = ready_input, .on_exit = record_exit,
};

static void test_ready_and_drain(void)
{
    struct proc *p = proc_start(&ctl, 1, 1);
    CHECK(p && p->fd >= 0);
    for (int i = 0; i < 100 && p && !p->ready; i++)
        loop_once(20);
    CHECK(p && p->ready);
    proc_drain(p, SIGTERM, -1);
    settle(300);
    CHECK(proc_count(&ctl) == 0); /* draining: not replaced */
    CHECK(WIFSIGNALED(last_status) && WTERMSIG(last_status) == SIGTERM);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_loop();
    test_after_fork_and_oneshot();
    test_backoff();
    test_fatal_not_respawned();
    test_ready_and_drain();
    return UNIT_DONE();
}
