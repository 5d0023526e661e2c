/* The process table: every child of the master (workers, the events process, the
 * key-value snapshot child, and the roles to come) is one entry, and what happens
 * when a child starts, sends something or dies is decided here, in one place.
 *
 * A role is one descriptor (struct proc_role) plus its child_main: its name, its
 * exit policy and backoff bounds, and hooks for its control socket and its exit.
 * A role's children live in numbered slots; a slot remembers the generation it
 * serves and its respawn backoff, an entry is one running process.
 *
 * Adding a role (the alert delivery process, the scheduler): in the file that owns
 * it, one static const struct proc_role and its child_main, then proc_start(&role,
 * slot, gen) where it should run, and a call in master.c's start-up, reload and
 * stop if it has any. pool.c (workers), events.c (the events process) and
 * snapshot.c (a one-shot child) are the models; proc.c does not change. */
#ifndef PROC_H
#define PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc;

enum proc_policy {
    PROC_RESPAWN, /* a child that dies is replaced in its slot, with backoff, unless it
                     exits with EXIT_WORKER_FATAL ("never start me again") */
    PROC_ONESHOT, /* runs once; its exit is logged and handed to on_exit */
};

struct proc_role {
    const char *name;  /* log role in the child: "worker", "events", "snapshot" */
    const char *label; /* in the master's lifecycle lines: "worker", "events process" */
    int numbered;      /* lines carry slot and generation: "worker 2 pid 42 gen 3 ..." */
    enum proc_policy policy;
    int backoff_min_ms, backoff_max_ms; /* quick deaths: min, doubling up to max */
    int stable_ms;       /* a child that lived this long was fine: the backoff resets */
    int after_stable_ms; /* ...and the replacement starts after this */
    int after_clean_ms;  /* wait after a clean exit (code 0); -1: as after any death */
    int quiet;           /* start and clean exit are logged at debug level */
    int ctl;             /* the child gets a control socket (the master's end is polled) */
    int keep_listen;     /* the child keeps the HTTP listen socket */
    /* Runs in the child, after proc's after-fork routine; FD is the child's end of
     * the control socket (-1 if none). Never returns. */
    void (*child_main)(const struct proc *p, int fd) __attribute__((noreturn));
    /* In the master: the child was forked (P->pid set); may be NULL. */
    void (*on_spawn)(struct proc *p);
    /* In the master: the control socket is readable or writable. */
    void (*on_input)(struct proc *p, short revents);
    /* In the master, before the exit is logged: a role may read the child's last
     * messages, free its state and add NOTE to the line. Returns 1 if work was lost
     * (the line is then a warning). May be NULL. */
    int (*on_exit)(struct proc *p, int status, char *note, size_t notelen);
};

struct proc {
    const struct proc_role *role;
    pid_t pid; /* 0: entry free */
    int slot;  /* 1-based within its role */
    unsigned gen;
    int fd; /* master's end of the control socket, -1 if none or closed */
    int ready;
    int draining;       /* told to finish (not replaced when it exits) */
    int retired;        /* draining after a reload (SIGQUIT for workers), not a stop */
    int64_t started_ms;
    int64_t kill_at_ms; /* draining: SIGKILL after this; 0: no deadline */
    void *data;         /* the role's own state */
};

/* Starts a child of role R in SLOT for generation GEN; the slot now serves GEN and
 * its backoff starts over. NULL if it could not be forked (a retry is scheduled
 * for respawning roles). */
struct proc *proc_start(const struct proc_role *r, int slot, unsigned gen);
/* Slots of R above N are no longer served (pending respawns are dropped). */
void proc_limit_slots(const struct proc_role *r, int n);
/* 1 if SLOT of R serves GEN and its child exited with the do-not-respawn code. */
int proc_slot_fatal(const struct proc_role *r, int slot, unsigned gen);

/* Reaps every exited child: logs the exit and applies the role's policy. */
void proc_reap(void);
/* Waits for every child of role R to exit, and reaps them (the final snapshot). */
void proc_wait(const struct proc_role *r);
/* Timer for the loop: due respawns, drain deadlines; ms to the next one or -1. */
int proc_timers(void);

/* Iterates over live entries of R (every role if NULL): start with PREV NULL. */
struct proc *proc_next(const struct proc_role *r, struct proc *prev);
int proc_count(const struct proc_role *r);
/* Tells P to finish with SIG; it is not replaced when it exits. KILL_AFTER_MS >= 0
 * sets a deadline after which it is killed. */
void proc_drain(struct proc *p, int sig, int kill_after_ms);
void proc_signal_all(int sig);
/* Shutdown has begun: nothing is respawned from now on. */
void proc_shutdown(void);

/* The control socket: watch for POLLOUT too (ON) or not; close the master's end. */
void proc_want_write(struct proc *p, int on);
void proc_close_fd(struct proc *p);

/* The HTTP listen socket, which children of roles without keep_listen close. */
void proc_set_listen_fd(int fd);
/* Butler's health port (Butler.dockerHealthCheck), kept like the listen socket. */
void proc_set_health_fd(int fd);

#endif
