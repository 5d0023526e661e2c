/* Robust process-shared mutexes: the one lock wrapper and its recovery hook. */
#ifndef SHM_LOCK_H
#define SHM_LOCK_H

#include <pthread.h>
#include <stdint.h>

struct shm_mutex {
    pthread_mutex_t mu;
    uint32_t recoveries; /* times a dead owner's lock was repaired */
    uint32_t rebuilds;   /* times repair found damage and rebuilt */
};

/* Repairs the data the mutex guards after its owner died; returns 0 if the data was
 * consistent or rolled to a consistent state, 1 if it had to be rebuilt. */
typedef int (*shm_repair_fn)(void *arg);

int shm_mutex_init(struct shm_mutex *m);
/* Locks M; if the previous owner died, runs REPAIR(ARG) and marks M consistent. */
void shm_lock(struct shm_mutex *m, shm_repair_fn repair, void *arg);
void shm_unlock(struct shm_mutex *m);
/* Logs the repairs this process made since the last call (call with no lock held). */
void shm_log_repairs(void);

/* Test hook: a test sets shm_crash_point = k to SIGKILL the process when it reaches
 * step k of a critical section. 0 (the default) never fires. */
extern volatile int shm_crash_point;
void shm_crash_now(void);
#define SHM_STEP(k)                                                                         \
    do {                                                                                    \
        if (__builtin_expect(shm_crash_point == (k), 0))                                    \
            shm_crash_now();                                                                \
    } while (0)

#endif
