/* The events process (see events_child.h): the job queue, its threads and the
 * channel to the master. What a job does is events_jobs.c's business.
 *
 * The master sends IPC_JOB frames over the socket pair; the child answers with
 * IPC_PUBLISH frames (event publications, QoS 0) and one IPC_DONE per finished job.
 * Told to stop (SIGTERM, on reload or shutdown), it finishes what it holds. */
#include "events_child.h"
#include "butlerd.h"
#include "cfg.h"
#include "ipc.h"
#include "log.h"
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
    events_job_fn run;
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

        cq.run(cq.cfg, j->kind, j->data, j->len);
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

void events_child_main(const struct cfg *c, int fd, events_job_fn run)
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
    cq.run = run;
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
