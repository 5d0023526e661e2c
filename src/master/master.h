/* The master process: owns configuration, listen socket and the worker pool. */
#ifndef MASTER_H
#define MASTER_H

struct cfg;

struct master_opts {
    const char *conf_path;
    int foreground;
    int notify_fd; /* daemon start-up: write '0' when ready, '1' on failure; -1 if none */
    const char *pidfile; /* -p: replaces butlerd.pidfile, or NULL */
};

/* Applies what the command line overrides (PIDFILE: -p, or NULL) to CFG, which may
 * be NULL; done to every configuration loaded, at start and at each reload. */
void master_override(struct cfg *cfg, const char *pidfile);

/* Runs the master with an already validated configuration; returns the exit code. */
int master_run(struct cfg *cfg, const struct master_opts *o);

/* Applies the logging settings of CFG. */
int master_apply_logging(const struct cfg *cfg, int foreground);

#endif
