/* The events process: a child of the master that does the work which waits on Qlik
 * Sense, so the master's loop never does. It starts tasks asked for over MQTT and
 * enriches task failed/aborted events from QRS before they fan out to their
 * destinations. The master keeps the queue accounting; the child has one thread per
 * concurrently handled event (udpServerConfig.messageQueue.maxConcurrent). */
#ifndef EVENTS_H
#define EVENTS_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

struct cfg;

/* The most threads the events process runs (messageQueue.maxConcurrent above this
 * counts as this). */
#define EVENTS_MAX_THREADS 64

enum ev_kind {
    EV_START_TASK = 1, /* data: the MQTT message payload */
    EV_TASK_EVENT = 2, /* data: JSON {"outcome": "failed"|"aborted", "fields": [11 strings]} */
};

/* ---- master side ---- */
struct pool_env;
/* CLOSE_IN_CHILD: master-only fds (-1 terminated, kept up to date by the master);
 * ENV: the worker pool, whose sockets the child closes too. */
void events_start(const struct cfg *cfg, const int *close_in_child, const struct pool_env *env);
/* New configuration: the running child finishes its jobs and a new one starts. */
void events_reload(const struct cfg *cfg);
/* Queues a job; -1 if the child is not running. */
int events_submit(enum ev_kind kind, const void *data, size_t len);
/* Jobs of KIND handed over and not yet finished. */
unsigned events_outstanding(enum ev_kind kind);
int events_pollfds(struct pollfd *p, int max);
void events_handle(const struct pollfd *p, int n);
int events_timers(void);
/* 1 if PID was an events process (then it has been accounted for). */
int events_reaped(pid_t pid, int status);
int events_child_fds(int *out, int max);
/* Orderly stop: TERM to the child (it finishes its jobs); returns its pid or 0. */
pid_t events_stop(void);
int events_running(void);
/* True while any events process (current or draining) has not been reaped. */
int events_running_any(void);
void events_kill(void);
void events_signal(int sig);

/* ---- child side ---- */
/* Sends an event publication (QoS 0) to the master's MQTT client. */
void events_publish(const char *topic, const void *payload, size_t len);

#endif
