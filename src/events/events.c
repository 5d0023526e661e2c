/* The events process and its management by the master (see events.h).
 *
 * Master and child talk over a socketpair: the master sends IPC_JOB frames, the
 * child sends IPC_PUBLISH frames (event publications, QoS 0) and one IPC_DONE per
 * finished job. On reload the running child is told to stop: it finishes what it
 * holds while a new child takes the new jobs; the master keeps reading the old
 * child's publications until it exits. */
#include "events.h"
#include "butlerd.h"
#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "master_spawn.h"
#include "mqtt.h"
#include "stats.h"
#include "task.h"
#include "taskevent.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_THREADS EVENTS_MAX_THREADS
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

struct evproc {
    pid_t pid;
    int fd; /* master's end, -1 once the child is gone */
    struct ipc_reader rd;
    struct buf out;
    size_t out_pos;
    unsigned outstanding[3];
    int draining;
    int64_t started_ms;
};

static struct {
    const struct cfg *cfg;
    const int *close_in_child;
    const struct pool_env *env;
    struct evproc p[2]; /* [0] current, [1] draining after a reload */
    int64_t respawn_at;
    int backoff;
    int stopping;
} ev = {.p = {{.fd = -1}, {.fd = -1}}};

/* =================================================================== child */

struct job {
    struct job *next;
    int kind;
    size_t len;
    char data[];
};

static struct {
    int fd;
    const struct cfg *cfg;
    pthread_mutex_t mu, wmu;
    pthread_cond_t cv;
    struct job *head, *tail;
    int stop, busy;
} cq = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .wmu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER};

static volatile sig_atomic_t child_term, child_usr1;

static void on_term(int sig)
{
    if (sig == SIGUSR1)
        child_usr1 = 1;
    else
        child_term = 1;
}

/* Sends one frame to the master; the socket is non-blocking, so wait when full. */
static void child_send(int type, const void *a, size_t alen, const void *b, size_t blen,
                       const void *c, size_t clen)
{
    struct buf f = {0};
    ipc_frame(&f, type, a, alen, b, blen, c, clen);
    pthread_mutex_lock(&cq.wmu);
    size_t off = 0;
    while (off < f.len) {
        ssize_t w = write(cq.fd, f.p + off, f.len - off);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {cq.fd, POLLOUT, 0};
            if (poll(&pf, 1, 1000) < 0 && errno != EINTR)
                break;
        } else {
            break; /* master gone */
        }
    }
    pthread_mutex_unlock(&cq.wmu);
    buf_free(&f);
}

void events_publish(const char *topic, const void *payload, size_t len)
{
    unsigned char h[8] = {0, 0, 0, 0};
    uint32_t tlen = (uint32_t)strlen(topic);
    memcpy(h + 4, &tlen, 4);
    child_send(IPC_PUBLISH, h, 8, topic, tlen, payload, len);
}

/* A message on the start topic: a bare task ID, or a start-task body (spec 3.1). The
 * start-task filter applies either way (Butler skipped it on this path). */
static void start_from_mqtt(const struct cfg *c, char *p, size_t len)
{
    while (len && (p[len - 1] == ' ' || (p[len - 1] >= '\t' && p[len - 1] <= '\r')))
        p[--len] = '\0';
    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    if (*p == '[' || *p == '{') {
        json_tokener *tok = json_tokener_new();
        json_object *body = json_tokener_parse_ex(tok, p, (int)strlen(p));
        int bad = json_tokener_get_error(tok) != json_tokener_success ||
                  tok->char_offset != (int)strlen(p);
        json_tokener_free(tok);
        char *verr = NULL, err[128];
        json_object *items = bad ? NULL : task_items_validate(body, c->startTaskMaxItems, &verr);
        json_object_put(body);
        if (!items) {
            log_warnx("MQTT start task: invalid message: %s", verr ? verr : "not valid JSON");
            free(verr);
            return;
        }
        json_object *res = task_start_run(c, "-", items, 0, NULL, err, sizeof err);
        json_object_put(items);
        if (!res) {
            log_errorx("MQTT start task: QRS lookup failed (%s), no task started", err);
            return;
        }
        log_info("MQTT start task: %s",
                 json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(res);
        return;
    }
    char id[37], msg[200];
    long st;
    if (!task_loose_id(p, id)) {
        log_warnx("MQTT start task: Invalid task ID: %.100s", p);
        return;
    }
    if (c->startTaskFilter.enable && !task_allowed_id(c, id)) {
        log_warnx("MQTT start task: task %s is not allowed by the start task filter", id);
        return;
    }
    if (task_start_one(c, id, &st, msg, sizeof msg) == 0)
        log_info("MQTT start task: started task %s", id);
    else
        log_warnx("MQTT start task: starting task %s failed: %s", id, msg);
}

static void *child_thread(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&cq.mu);
        while (!cq.head && !cq.stop)
            pthread_cond_wait(&cq.cv, &cq.mu);
        struct job *j = cq.head;
        if (!j) {
            pthread_mutex_unlock(&cq.mu);
            return NULL;
        }
        cq.head = j->next;
        if (!cq.head)
            cq.tail = NULL;
        cq.busy++;
        pthread_mutex_unlock(&cq.mu);

        if (j->kind == EV_START_TASK) {
            STAT_INC(mqtt_task_starts);
            start_from_mqtt(cq.cfg, j->data, j->len);
        } else if (j->kind == EV_TASK_EVENT) {
            taskevent_handle(cq.cfg, j->data);
        }
        unsigned char k = (unsigned char)j->kind;
        free(j);
        child_send(IPC_DONE, &k, 1, NULL, 0, NULL, 0);
        pthread_mutex_lock(&cq.mu);
        cq.busy--;
        pthread_cond_broadcast(&cq.cv);
        pthread_mutex_unlock(&cq.mu);
    }
}

static void enqueue(int kind, const unsigned char *d, size_t len)
{
    struct job *j = xmalloc(sizeof *j + len + 1);
    j->next = NULL;
    j->kind = kind;
    j->len = len;
    memcpy(j->data, d, len);
    j->data[len] = '\0';
    pthread_mutex_lock(&cq.mu);
    if (cq.tail)
        cq.tail->next = j;
    else
        cq.head = j;
    cq.tail = j;
    pthread_cond_signal(&cq.cv);
    pthread_mutex_unlock(&cq.mu);
}

static void __attribute__((noreturn)) child_main(const struct cfg *c, int fd)
{
    pid_t master = getppid();
    log_set_role("events");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(EXIT_OK);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    cq.fd = fd;
    cq.cfg = c;
    set_nonblock(fd);
    int n = c->udp.mqMaxConcurrent < MAX_THREADS ? c->udp.mqMaxConcurrent : MAX_THREADS;
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[started], NULL, child_thread, NULL) == 0)
            started++;
    if (!started) {
        log_errorx("events process: no thread could be started");
        _exit(EXIT_WORKER_FATAL);
    }
    struct ipc_reader rd = {0};
    int gone = 0;
    while (!child_term && !gone) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 250) > 0) {
            if (ipc_fill(&rd, fd) < 0)
                gone = 1;
            int type;
            const unsigned char *d;
            size_t len;
            while (ipc_take(&rd, &type, &d, &len))
                if (type == IPC_JOB && len >= 1)
                    enqueue(d[0], d + 1, len - 1);
        }
        if (getppid() != master)
            gone = 1;
        if (child_usr1) {
            child_usr1 = 0;
            if (log_reopen() < 0)
                log_warn("cannot reopen the log file");
        }
    }
    /* Finish what was handed over (each job is bounded by the QRS timeouts). */
    int64_t deadline = now_ms() + (int64_t)c->shutdownTimeout * 1000;
    pthread_mutex_lock(&cq.mu);
    while ((cq.head || cq.busy) && now_ms() < deadline) {
        pthread_mutex_unlock(&cq.mu);
        poll(NULL, 0, 20);
        pthread_mutex_lock(&cq.mu);
    }
    int left = cq.busy;
    for (struct job *j = cq.head; j; j = j->next)
        left++;
    cq.stop = 1;
    pthread_cond_broadcast(&cq.cv);
    pthread_mutex_unlock(&cq.mu);
    if (left)
        log_warnx("events process exiting with %d jobs unfinished", left);
    _exit(EXIT_OK);
}

/* =================================================================== master */

static void spawn(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("socketpair for the events process");
        ev.respawn_at = now_ms() + BACKOFF_MAX_MS;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork for the events process");
        close(sv[0]);
        close(sv[1]);
        ev.respawn_at = now_ms() + ev.backoff;
        return;
    }
    if (pid == 0) {
        close(sv[0]);
        for (const int *fd = ev.close_in_child; fd && *fd >= 0; fd++)
            if (*fd != sv[1])
                close(*fd);
        for (int i = 0; i < 2; i++)
            if (ev.p[i].fd >= 0)
                close(ev.p[i].fd);
        pool_close_in_child(ev.env);
        child_main(ev.cfg, sv[1]);
    }
    close(sv[1]);
    set_nonblock(sv[0]);
    struct evproc *e = &ev.p[0];
    memset(e, 0, sizeof *e);
    e->pid = pid;
    e->fd = sv[0];
    e->started_ms = now_ms();
    ev.respawn_at = 0;
    log_info("events process pid %ld started", (long)pid);
}

void events_start(const struct cfg *c, const int *close_in_child, const struct pool_env *env)
{
    ev.cfg = c;
    ev.close_in_child = close_in_child;
    ev.env = env;
    ev.backoff = BACKOFF_MIN_MS;
    ev.p[0].fd = ev.p[1].fd = -1;
    spawn();
}

static void retire(struct evproc *e)
{
    if (e->fd >= 0)
        close(e->fd);
    ipc_reader_free(&e->rd);
    buf_free(&e->out);
    memset(e, 0, sizeof *e);
    e->fd = -1;
}

void events_reload(const struct cfg *c)
{
    ev.cfg = c;
    if (ev.p[0].pid) {
        if (ev.p[1].pid) { /* a third generation: the oldest gets no more time */
            kill(ev.p[1].pid, SIGKILL);
            log_warnx("events process pid %ld killed: reloaded again before it finished",
                      (long)ev.p[1].pid);
        }
        retire(&ev.p[1]);
        kill(ev.p[0].pid, SIGTERM);
        ev.p[0].draining = 1;
        ev.p[1] = ev.p[0];
        memset(&ev.p[0], 0, sizeof ev.p[0]);
        ev.p[0].fd = -1;
    }
    spawn();
}

int events_running(void) { return ev.p[0].pid != 0 && ev.p[0].fd >= 0; }

int events_running_any(void) { return ev.p[0].pid != 0 || ev.p[1].pid != 0; }

void events_signal(int sig)
{
    for (int i = 0; i < 2; i++)
        if (ev.p[i].pid)
            kill(ev.p[i].pid, sig);
}

void events_kill(void) { events_signal(SIGKILL); }

/* Writes what the socket takes of the queued jobs, without blocking. */
static void flush(struct evproc *e)
{
    while (e->out_pos < e->out.len) {
        ssize_t w = write(e->fd, e->out.p + e->out_pos, e->out.len - e->out_pos);
        if (w <= 0)
            break;
        e->out_pos += (size_t)w;
    }
    if (e->out_pos == e->out.len)
        e->out.len = e->out_pos = 0;
}

int events_submit(enum ev_kind kind, const void *data, size_t len)
{
    struct evproc *e = &ev.p[0];
    if (!e->pid || e->fd < 0)
        return -1;
    unsigned char k = (unsigned char)kind;
    ipc_frame(&e->out, IPC_JOB, &k, 1, data, len, NULL, 0);
    e->outstanding[kind]++;
    flush(e); /* whatever does not fit now waits for POLLOUT */
    return 0;
}

unsigned events_outstanding(enum ev_kind kind)
{
    return ev.p[0].outstanding[kind] + ev.p[1].outstanding[kind];
}

int events_pollfds(struct pollfd *p, int max)
{
    int n = 0;
    for (int i = 0; i < 2 && n < max; i++)
        if (ev.p[i].fd >= 0 && ev.p[i].pid) {
            p[n].fd = ev.p[i].fd;
            p[n].events = POLLIN | (ev.p[i].out_pos < ev.p[i].out.len ? POLLOUT : 0);
            p[n++].revents = 0;
        }
    return n;
}

static void serve(struct evproc *e, short revents)
{
    if (revents & POLLOUT)
        flush(e);
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    int eof = ipc_fill(&e->rd, e->fd) < 0;
    int type;
    const unsigned char *d;
    size_t len;
    while (ipc_take(&e->rd, &type, &d, &len)) {
        if (type == IPC_DONE && len == 1 && d[0] >= 1 && d[0] <= 2) {
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
    if (eof) { /* the child exits or is broken: stop reading, reaping follows */
        close(e->fd);
        e->fd = -1;
    }
}

void events_handle(const struct pollfd *p, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i].revents)
            for (int j = 0; j < 2; j++)
                if (ev.p[j].fd == p[i].fd) {
                    serve(&ev.p[j], p[i].revents);
                    break;
                }
}

int events_timers(void)
{
    if (!ev.respawn_at || ev.stopping)
        return -1;
    int64_t now = now_ms();
    if (now >= ev.respawn_at && !ev.p[0].pid) {
        spawn();
        return -1;
    }
    return (int)(ev.respawn_at - now);
}

int events_reaped(pid_t pid, int status)
{
    for (int i = 0; i < 2; i++) {
        struct evproc *e = &ev.p[i];
        if (!pid || e->pid != pid)
            continue;
        if (e->fd >= 0)
            serve(e, POLLIN); /* its last publications */
        unsigned lost = e->outstanding[EV_START_TASK] + e->outstanding[EV_TASK_EVENT];
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK;
        if (clean && !lost)
            log_info("events process pid %ld exited", (long)pid);
        else if (WIFSIGNALED(status))
            log_warnx("events process pid %ld killed by signal %d, %u jobs lost", (long)pid,
                      WTERMSIG(status), lost);
        else
            log_warnx("events process pid %ld exited with code %d, %u jobs lost", (long)pid,
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1, lost);
        int was_current = i == 0 && !e->draining;
        if (now_ms() - e->started_ms >= 60000) /* it had been running fine */
            ev.backoff = BACKOFF_MIN_MS;
        retire(e);
        if (was_current && !ev.stopping) {
            ev.respawn_at = now_ms() + (clean ? BACKOFF_MIN_MS : ev.backoff);
            ev.backoff = ev.backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ev.backoff * 2;
        }
        return 1;
    }
    return 0;
}

int events_child_fds(int *out, int max)
{
    int n = 0;
    for (int i = 0; i < 2 && n < max; i++)
        if (ev.p[i].fd >= 0)
            out[n++] = ev.p[i].fd;
    return n;
}

pid_t events_stop(void)
{
    ev.stopping = 1;
    if (ev.p[1].pid)
        kill(ev.p[1].pid, SIGTERM);
    if (ev.p[0].pid)
        kill(ev.p[0].pid, SIGTERM);
    return ev.p[0].pid ? ev.p[0].pid : ev.p[1].pid;
}
