/* The master's poll loop: a registry of descriptors (each with the events it waits
 * for and a callback), of sources (modules that bring their own changing set of
 * descriptors, such as the MQTT client) and of timers. loop_once builds the pollfd
 * array from the registry, polls and dispatches; nobody counts offsets. */
#ifndef LOOP_H
#define LOOP_H

#include <poll.h>

typedef void (*loop_fd_fn)(int fd, short revents, void *arg);

/* A module with its own descriptors: FILL stores at most MAX pollfds and returns how
 * many; HANDLE gets them back after every poll (also when none is ready); CHILD_FDS
 * lists what a forked child must close (may be NULL). */
struct loop_source {
    int (*fill)(struct pollfd *p, int max);
    void (*handle)(const struct pollfd *p, int n);
    int (*child_fds)(int *out, int max);
    int max;
};

/* Polls FD for EVENTS and calls FN with what happened. */
void loop_add(int fd, short events, loop_fd_fn fn, void *arg);
void loop_mod(int fd, short events);
/* Forgets FD (the caller closes it). Safe from inside a callback. */
void loop_del(int fd);
/* A master-only descriptor that is not polled but that every child must close. */
void loop_add_private(int fd);
void loop_add_source(const struct loop_source *s);
/* FN returns ms until it wants to run again, or -1; it runs before every poll. */
void loop_add_timer(int (*fn)(void));

/* Runs the timers, polls for at most TIMEOUT_MS (-1: until a timer or an event)
 * and dispatches. -1 if poll failed (other than EINTR). */
int loop_once(int timeout_ms);

/* In a forked child: closes every descriptor the registry knows of. */
void loop_close_in_child(void);

#endif
