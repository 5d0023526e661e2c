/* The worker pool: the worker role of the process table, generations and the
 * draining of old ones. */
#ifndef POOL_H
#define POOL_H

struct cfg;

struct pool_env {
    const struct cfg *cfg; /* current configuration, for new workers */
    int listen_fd;
    int health_fd; /* Butler.dockerHealthCheck port, or -1 */
    const char *tls_cert, *tls_key;
    const char *tls_client_ca;
};

/* Starts generation GEN with cfg->workers (or one per CPU) workers. ENV stays the
 * caller's and is read at every (re)spawn. */
void pool_start_gen(const struct pool_env *env, unsigned gen);
/* 1 once every worker of GEN is ready (or its slot failed for good), reported once
 * after each change: the caller then announces readiness or drains older ones. */
int pool_gen_ready(unsigned gen);
/* Retires every worker older than GEN (SIGQUIT): each drains its connections within
 * TIMEOUT_S, then waits up to BACKGROUND_S for the app reloads it runs; returns how
 * many. */
int pool_drain_older(unsigned gen, int timeout_s, int background_s);
/* Sends SIGTERM to all workers (shutdown). */
void pool_stop_all(int timeout_s);
int pool_count_gen(unsigned gen);
/* True if every slot of GEN failed with the do-not-respawn code. */
int pool_gen_dead(unsigned gen);

#endif
