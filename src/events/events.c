/* The events process as the master runs it (see events.h): its role in the process
 * table, job submission and the queue accounting.
 *
 * The master hands jobs over as IPC_JOB frames and never waits: what the socket does
 * not take now is written when it becomes writable. The child sends IPC_PUBLISH
 * frames, which the master publishes on its broker connection, and one IPC_DONE per
 * finished job. On reload the running child drains (it finishes what it holds)
 * while a new one takes the new jobs; the master reads the old child's publications
 * until it exits. */
#include "events.h"
#include "butlerd.h"
#include "events_jobs.h"
#include "ipc.h"
#include "log.h"
#include "mqtt.h"
#include "proc.h"
#include "util.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The master's state for one events process. */
struct evconn {
    struct ipc_reader rd;
    struct buf out;
    size_t out_pos;
    unsigned outstanding[3];
};

static const struct cfg *ev_cfg;

static void __attribute__((noreturn)) events_child(const struct proc *p, int fd)
{
    events_child_main(ev_cfg, fd, events_jobs_run);
}
static void on_spawn(struct proc *p) { p->data = xcalloc(1, sizeof(struct evconn)); }
static void on_input(struct proc *p, short revents);
static int on_exit_(struct proc *p, int status, char *note, size_t notelen);

/* Respawned 1 s after a clean exit; otherwise the wait starts at 1 s and doubles
 * with every death, up to 30 s, and a process that ran a minute resets it. */
static const struct proc_role events_role = {
    .name = "events",
    .label = "events process",
    .policy = PROC_RESPAWN,
    .backoff_min_ms = 1000,
    .backoff_max_ms = 30000,
    .stable_ms = 60000,
    .after_stable_ms = 1000,
    .after_clean_ms = 1000,
    .ctl = 1,
    .child_main = events_child,
    .on_spawn = on_spawn,
    .on_input = on_input,
    .on_exit = on_exit_,
};

/* The process that takes new jobs: the newest one that is not draining. */
static struct proc *current(void)
{
    for (struct proc *p = proc_next(&events_role, NULL); p; p = proc_next(&events_role, p))
        if (!p->draining && p->data)
            return p;
    return NULL;
}

void events_start(const struct cfg *c, unsigned gen)
{
    ev_cfg = c;
    proc_start(&events_role, 1, gen);
}

void events_reload(const struct cfg *c, unsigned gen)
{
    ev_cfg = c;
    for (struct proc *p = proc_next(&events_role, NULL); p; p = proc_next(&events_role, p)) {
        if (p->draining) { /* a third generation: the oldest gets no more time */
            kill(p->pid, SIGKILL);
            log_warnx("events process pid %ld killed: reloaded again before it finished",
                      (long)p->pid);
        } else {
            proc_drain(p, SIGTERM, -1);
        }
    }
    proc_start(&events_role, 1, gen);
}

int events_running(void)
{
    struct proc *p = current();
    return p && p->fd >= 0;
}

void events_stop(void)
{
    for (struct proc *p = proc_next(&events_role, NULL); p; p = proc_next(&events_role, p))
        kill(p->pid, SIGTERM);
}

/* Writes what the socket takes of the queued jobs, without blocking. */
static void flush(struct proc *p)
{
    struct evconn *e = p->data;
    while (e->out_pos < e->out.len) {
        ssize_t w = write(p->fd, e->out.p + e->out_pos, e->out.len - e->out_pos);
        if (w <= 0)
            break;
        e->out_pos += (size_t)w;
    }
    if (e->out_pos == e->out.len)
        e->out.len = e->out_pos = 0;
    proc_want_write(p, e->out_pos < e->out.len);
}

int events_submit(enum ev_kind kind, const void *data, size_t len)
{
    struct proc *p = current();
    if (!p || p->fd < 0)
        return -1;
    struct evconn *e = p->data;
    unsigned char k = (unsigned char)kind;
    ipc_frame(&e->out, IPC_JOB, &k, 1, data, len, NULL, 0);
    e->outstanding[kind]++;
    flush(p); /* whatever does not fit now waits for POLLOUT */
    return 0;
}

unsigned events_outstanding(enum ev_kind kind)
{
    unsigned n = 0;
    for (struct proc *p = proc_next(&events_role, NULL); p; p = proc_next(&events_role, p))
        if (p->data)
            n += ((struct evconn *)p->data)->outstanding[kind];
    return n;
}

static void on_input(struct proc *p, short revents)
{
    struct evconn *e = p->data;
    if (revents & POLLOUT)
        flush(p);
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    int eof = ipc_fill(&e->rd, p->fd) < 0;
    int type;
    const unsigned char *d;
    size_t len;
    while (ipc_take(&e->rd, &type, &d, &len)) {
        if (type == IPC_DONE && len == 1 && d[0] >= EV_START_TASK && d[0] <= EV_TASK_EVENT) {
            if (e->outstanding[d[0]])
                e->outstanding[d[0]]--;
        } else if (type == IPC_PUBLISH && len >= 8) {
            uint32_t tlen;
            memcpy(&tlen, d + 4, 4);
            if (tlen <= len - 8) {
                char *topic = xmalloc(tlen + 1);
                memcpy(topic, d + 8, tlen);
                topic[tlen] = '\0';
                mqtt_event(topic, d + 8 + tlen, len - 8 - tlen);
                free(topic);
            }
        } else {
            log_warnx("events process sent a bad frame");
            eof = 1;
            break;
        }
    }
    if (eof) /* the child exits or is broken: stop reading, reaping follows */
        proc_close_fd(p);
}

/* Reads the last publications and says how many jobs died with the process. */
static int on_exit_(struct proc *p, int status, char *note, size_t notelen)
{
    struct evconn *e = p->data;
    if (p->fd >= 0)
        on_input(p, POLLIN);
    unsigned lost = e->outstanding[EV_START_TASK] + e->outstanding[EV_TASK_EVENT];
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK;
    if (!clean || lost)
        snprintf(note, notelen, ", %u jobs lost", lost);
    ipc_reader_free(&e->rd);
    buf_free(&e->out);
    free(e);
    p->data = NULL;
    return lost > 0;
}
