/* The events process itself (the child side; the master's side is events.h): one
 * thread per concurrently handled job (udpServerConfig.messageQueue.maxConcurrent),
 * and the channel back to the master through which the jobs publish on MQTT. What
 * the jobs do is events_jobs.h.
 * Domain modules run in it (taskevent.c) include only this header. */
#ifndef EVENTS_CHILD_H
#define EVENTS_CHILD_H

#include "ipc.h" /* enum ev_kind */

#include <stddef.h>

struct cfg;

/* The most threads the events process runs (messageQueue.maxConcurrent above this
 * counts as this). */
#define EVENTS_MAX_THREADS 64

/* Runs one job on one of the threads (events_jobs_run). */
typedef void (*events_job_fn)(const struct cfg *c, int kind, char *data, size_t len);

/* Runs the events process on FD, its end of the socket pair to the master, until
 * told to stop, handing each job to RUN; finishes the jobs it holds, then exits. */
void events_child_main(const struct cfg *cfg, int fd, events_job_fn run)
    __attribute__((noreturn));

/* Sends an event publication (QoS 0) to the master's MQTT client. */
void events_publish(const char *topic, const void *payload, size_t len);

#endif
