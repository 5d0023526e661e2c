/* The events process (see events_child.h).
 *
 * The master sends IPC_JOB frames over the socket pair; the child answers with
 * IPC_PUBLISH frames (event publications, QoS 0) and one IPC_DONE per finished job.
 * Told to stop (SIGTERM, on reload or shutdown), it finishes what it holds. */
#include "events_child.h"
#include "butlerd.h"
#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "stats.h"
#include "task.h"
#include "taskevent.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS EVENTS_MAX_THREADS

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

void events_child_main(const struct cfg *c, int fd)
{
    /* The process table's after-fork routine has set the log role, the parent-death
     * signal and an empty signal mask. */
    pid_t master = getppid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);

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
