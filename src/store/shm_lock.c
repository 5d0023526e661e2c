/* Robust mutexes. A process may die at any instant while holding a lock (SIGKILL,
 * OOM killer). The next locker gets EOWNERDEAD, repairs the guarded data through the
 * caller's repair function, then marks the mutex consistent. Repairs are counted in
 * shared memory and logged later, because nothing may log while a lock is held. */
#include "shm_lock.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile int shm_crash_point;
static unsigned pending_recovered, pending_rebuilt;

void shm_crash_now(void)
{
    raise(SIGKILL);
}

int shm_mutex_init(struct shm_mutex *m)
{
    pthread_mutexattr_t a;
    memset(m, 0, sizeof *m);
    if (pthread_mutexattr_init(&a) != 0)
        return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (!rc)
        rc = pthread_mutex_init(&m->mu, &a);
    pthread_mutexattr_destroy(&a);
    return rc ? -1 : 0;
}

void shm_lock(struct shm_mutex *m, shm_repair_fn repair, void *arg)
{
    int rc = pthread_mutex_lock(&m->mu);
    if (rc == 0)
        return;
    if (rc == EOWNERDEAD) {
        int rebuilt = repair ? repair(arg) : 0;
        m->recoveries++;
        pending_recovered++;
        if (rebuilt) {
            m->rebuilds++;
            pending_rebuilt++;
        }
        rc = pthread_mutex_consistent(&m->mu);
        if (rc == 0)
            return;
    }
    /* ENOTRECOVERABLE cannot happen as every EOWNERDEAD is made consistent above;
     * EDEADLK means this process locked twice. Both are broken invariants. */
    log_errorx("shared-memory lock failed: %s", strerror(rc));
    abort();
}

void shm_unlock(struct shm_mutex *m)
{
    pthread_mutex_unlock(&m->mu);
}

void shm_log_repairs(void)
{
    if (!pending_recovered)
        return;
    if (pending_rebuilt)
        log_warnx("shared memory: repaired %u locks left by dead processes, rebuilt %u "
                  "damaged stripes",
                  pending_recovered, pending_rebuilt);
    else
        log_warnx("shared memory: repaired %u locks left by dead processes", pending_recovered);
    pending_recovered = pending_rebuilt = 0;
}
