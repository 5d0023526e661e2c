/* Multi-process stress: children hammer the store with random operations for a
 * bounded time, each recording what was acknowledged; then every invariant and every
 * acknowledged final state is checked. Keys are private to a child (so its record
 * is the truth) except a shared namespace where any written value may win. */
#include "shm_fixture.h"
#include "unit.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define CHILDREN 6
#define KEYS 64
#define SECONDS 2

/* Per child, per key: the last acknowledged value (0 = absent), in shared memory. */
struct record {
    int value[CHILDREN][KEYS];
    long ops[CHILDREN];
};

static void child(int id, struct record *rec)
{
    char ns[16], key[16], val[32];
    unsigned seed = (unsigned)(getpid() * 2654435761u);
    time_t end = time(NULL) + SECONDS;
    snprintf(ns, sizeof ns, "child%d", id);
    long n = 0;
    while (time(NULL) < end) {
        int k = (int)(rand_r(&seed) % KEYS), op = (int)(rand_r(&seed) % 10);
        snprintf(key, sizeof key, "k%d", k);
        if (op < 6) {
            int v = (int)(rand_r(&seed) % 1000000) + 1;
            snprintf(val, sizeof val, "%d", v);
            if (kv_put(ns, strlen(ns), key, strlen(key), val, strlen(val), 0) == KV_OK)
                rec->value[id][k] = v;
        } else if (op < 8) {
            int rc = kv_del(ns, strlen(ns), key, strlen(key));
            if (rc == KV_OK || rc == KV_NO_KEY)
                rec->value[id][k] = 0;
        } else if (op < 9) {
            struct kv_value v;
            if (kv_get(ns, strlen(ns), key, strlen(key), &v) == KV_OK) {
                if (atoi(v.value) != rec->value[id][k])
                    _exit(3); /* read back something this child never wrote last */
                free(v.value);
            } else if (rec->value[id][k] != 0) {
                _exit(4);
            }
        } else {
            snprintf(val, sizeof val, "c%d-%ld", id, n);
            kv_put("shared", 6, key, strlen(key), val, strlen(val), (n % 3) ? 0 : 5);
            struct kv_list l;
            if (kv_keys("shared", 6, &l) == KV_OK)
                kv_list_free(&l);
        }
        n++;
    }
    rec->ops[id] = n;
    _exit(0);
}

int main(void)
{
    fixture_open(CHILDREN * KEYS + 2 * KEYS, 32, 64, 16, 1000);
    struct record *rec = mmap(NULL, sizeof *rec, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(rec, 0, sizeof *rec);
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++)
        if ((pids[i] = fork()) == 0)
            child(i, rec);
    alarm(60); /* a deadlock fails the test instead of hanging it */
    long total = 0;
    for (int i = 0; i < CHILDREN; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        total += rec->ops[i];
    }
    printf("%d children, %ld operations in %d s\n", CHILDREN, total, SECONDS);
    CHECK(total > 1000);
    CHECK(kv_check() == 0);
    char ns[16], key[16];
    int mismatches = 0;
    for (int i = 0; i < CHILDREN; i++) {
        snprintf(ns, sizeof ns, "child%d", i);
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "k%d", k);
            struct kv_value v;
            int rc = kv_get(ns, strlen(ns), key, strlen(key), &v);
            if (rec->value[i][k] == 0)
                mismatches += rc != KV_NO_KEY;
            else {
                mismatches += rc != KV_OK || atoi(v.value) != rec->value[i][k];
                if (rc == KV_OK)
                    free(v.value);
            }
        }
    }
    CHECK(mismatches == 0);
    fixture_close();
    return UNIT_DONE();
}
