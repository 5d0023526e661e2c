/* The master's poll loop (see loop.h). Registered descriptors are kept in an array
 * that is compacted only before a poll, so a callback may add or remove entries
 * while the results are being dispatched: each pollfd remembers which registration
 * it was built from, and a stale one is skipped. */
#include "loop.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_SOURCES 8
#define MAX_TIMERS 8

struct ent {
    int fd;         /* -1: removed */
    short events;   /* 0 with FN NULL: private, never polled */
    loop_fd_fn fn;
    void *arg;
    unsigned serial;
};

static struct ent *ents;
static int nents, capents;
static unsigned next_serial = 1;
static const struct loop_source *sources[MAX_SOURCES];
static int nsources;
static int (*timers[MAX_TIMERS])(void);
static int ntimers;

static struct ent *find(int fd)
{
    for (int i = 0; i < nents; i++)
        if (ents[i].fd == fd && fd >= 0)
            return &ents[i];
    return NULL;
}

static void add(int fd, short events, loop_fd_fn fn, void *arg)
{
    if (nents == capents) {
        capents = capents ? capents * 2 : 64;
        ents = xrealloc(ents, sizeof *ents * (size_t)capents);
    }
    ents[nents++] = (struct ent){fd, events, fn, arg, next_serial++};
}

void loop_add(int fd, short events, loop_fd_fn fn, void *arg) { add(fd, events, fn, arg); }

void loop_add_private(int fd) { add(fd, 0, NULL, NULL); }

void loop_mod(int fd, short events)
{
    struct ent *e = find(fd);
    if (e)
        e->events = events;
}

void loop_del(int fd)
{
    struct ent *e = find(fd);
    if (e)
        e->fd = -1;
}

void loop_add_source(const struct loop_source *s)
{
    if (nsources == MAX_SOURCES)
        abort();
    sources[nsources++] = s;
}

void loop_add_timer(int (*fn)(void))
{
    if (ntimers == MAX_TIMERS)
        abort();
    timers[ntimers++] = fn;
}

static void compact(void)
{
    int n = 0;
    for (int i = 0; i < nents; i++)
        if (ents[i].fd >= 0)
            ents[n++] = ents[i];
    nents = n;
}

/* The pollfd array of one round: registered descriptors first (with the entry and
 * registration each was built from), then each source's slice. */
static struct pollfd *p;
static unsigned *serial;
static int *index_of, cap;
static int nfd, start[MAX_SOURCES], count[MAX_SOURCES];

static int build(void)
{
    compact();
    int want = nents;
    for (int s = 0; s < nsources; s++)
        want += sources[s]->max;
    if (want > cap) {
        cap = want;
        p = xrealloc(p, sizeof *p * (size_t)cap);
        serial = xrealloc(serial, sizeof *serial * (size_t)cap);
        index_of = xrealloc(index_of, sizeof *index_of * (size_t)cap);
    }
    int n = 0;
    for (int i = 0; i < nents; i++)
        if (ents[i].fn) {
            p[n] = (struct pollfd){ents[i].fd, ents[i].events, 0};
            serial[n] = ents[i].serial;
            index_of[n++] = i;
        }
    nfd = n;
    for (int s = 0; s < nsources; s++) {
        start[s] = n;
        count[s] = sources[s]->fill(p + n, sources[s]->max);
        n += count[s];
    }
    return n;
}

static void dispatch(void)
{
    for (int s = 0; s < nsources; s++)
        sources[s]->handle(p + start[s], count[s]);
    for (int k = 0; k < nfd; k++) {
        /* The entry may have been removed by an earlier callback (ENTS may also have
         * grown, so it is looked up afresh each time). */
        struct ent *e = &ents[index_of[k]];
        if (p[k].revents && e->serial == serial[k] && e->fd == p[k].fd)
            e->fn(e->fd, p[k].revents, e->arg);
    }
}

int loop_once(int timeout_ms)
{
    int timeout = timeout_ms;
    for (int i = 0; i < ntimers; i++) {
        int t = timers[i]();
        if (t >= 0 && (timeout < 0 || t < timeout))
            timeout = t;
    }
    int n = build();
    if (poll(p, (nfds_t)n, timeout) < 0) {
        if (errno != EINTR) {
            log_error("poll");
            return -1;
        }
        for (int i = 0; i < n; i++)
            p[i].revents = 0;
    }
    dispatch();
    return 0;
}

void loop_close_in_child(void)
{
    for (int i = 0; i < nents; i++)
        if (ents[i].fd >= 0)
            close(ents[i].fd);
    for (int s = 0; s < nsources; s++) {
        int fds[8192];
        int n = sources[s]->child_fds ? sources[s]->child_fds(fds, 8192) : 0;
        for (int i = 0; i < n; i++)
            close(fds[i]);
    }
}
