/* The worker pool: spawning, reaping, respawn with backoff, generations, draining. */
#ifndef MASTER_SPAWN_H
#define MASTER_SPAWN_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

struct cfg;

struct pool_env {
    const struct cfg *cfg;       /* current configuration, for new workers */
    int listen_fd;
    const char *tls_cert, *tls_key;
    const int *close_in_child;   /* master-only fds, -1 terminated */
};

/* Starts generation GEN with cfg->workers (or one per CPU) workers. */
void pool_start_gen(const struct pool_env *env, unsigned gen);
/* Reaps exited children, logs each worker exit and schedules respawns. Children
 * that are not workers are passed to OTHER (may be NULL). */
typedef void (*pool_other_fn)(pid_t pid, int status, void *arg);
void pool_reap(const struct pool_env *env, int shutting_down, pool_other_fn other, void *arg);
/* Runs due respawns and drain deadlines; returns ms until the next timer (or -1). */
int pool_timers(const struct pool_env *env);
/* Fills pollfds for worker control sockets; returns how many. */
int pool_pollfds(struct pollfd *p, int max);
/* Handles readiness on worker control sockets. Returns 1 once every worker of the
 * newest generation is ready (the caller then drains older generations). */
int pool_ctl_event(struct pollfd *p, int n, unsigned gen);
/* Retires every worker older than GEN (SIGQUIT): each drains its connections within
 * TIMEOUT_S, then waits up to BACKGROUND_S for the app reloads it runs; returns how
 * many. */
int pool_drain_older(unsigned gen, int timeout_s, int background_s);
/* Sends SIGTERM to all workers (shutdown). */
void pool_stop_all(int timeout_s);
void pool_kill_all(void);
/* Forwards SIG to every worker (log reopening). */
void pool_signal_all(int sig);
int pool_count(void);
int pool_count_gen(unsigned gen);
/* True if every slot of GEN failed with the do-not-respawn code. */
int pool_gen_dead(unsigned gen);
int pool_size_for(const struct cfg *cfg);
/* In a forked child that is not a worker: closes the worker control sockets and the
 * listen socket, so that the child never keeps them open. */
void pool_close_in_child(const struct pool_env *env);

#endif
