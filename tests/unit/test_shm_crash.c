/* Crash injection: for every numbered step of every critical section, a child is
 * SIGKILLed at that step while holding the locks. The parent then uses the store:
 * the next locker must repair it without deadlock, every invariant must hold, and
 * every write the child had acknowledged before dying must be there. */
#include "shm_lock.h"
#include "shm_fixture.h"
#include "unit.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define ACKS 64

/* What the child had acknowledged, and the operation it was in when killed: that
 * one may or may not have taken effect. */
struct acks {
    int n;
    char key[ACKS][16];
    char val[ACKS][16];
    char pending_key[16], pending_val[16];
};

static void intent(struct acks *a, const char *key, const char *val)
{
    strcpy(a->pending_key, key);
    strcpy(a->pending_val, val);
}

static const int steps[] = {1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34};

/* The child's work reaches every step: a new namespace and keys (31, 11-15, 32),
 * overwrites (1-5), deletes (21-23, 33) and a namespace delete (34). */
static void child(int step, const char *ns, struct acks *a)
{
    char key[16], val[16];
    shm_crash_point = step;
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        intent(a, key, val);
        if (kv_put(ns, strlen(ns), key, strlen(key), val, strlen(val), 0) == KV_OK) {
            strcpy(a->key[a->n], key);
            strcpy(a->val[a->n], val);
            a->n++;
        }
    }
    for (int i = 0; i < 4; i++) { /* overwrite */
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "w%d", i);
        intent(a, key, val);
        if (kv_put(ns, strlen(ns), key, strlen(key), val, strlen(val), 0) == KV_OK) {
            strcpy(a->key[a->n], key);
            strcpy(a->val[a->n], val);
            a->n++;
        }
    }
    for (int i = 4; i < 6; i++) { /* delete */
        snprintf(key, sizeof key, "k%d", i);
        intent(a, key, "");
        if (kv_del(ns, strlen(ns), key, strlen(key)) == KV_OK) {
            strcpy(a->key[a->n], key);
            a->val[a->n][0] = '\0'; /* acknowledged as absent */
            a->n++;
        }
    }
    intent(a, "", "");
    kv_put("victim", 6, "x", 1, "y", 1, 0);
    kv_del_ns("victim", 6);
    _exit(0); /* the step was not reached */
}

int main(void)
{
    fixture_open(512, 32, 32, 64, 1000);
    struct acks *a = mmap(NULL, sizeof *a, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
    /* Keys of earlier rounds stay in the store, so repairs work on a populated table. */
    kv_put("keep", 4, "a", 1, "1", 1, 0);
    alarm(120);
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
        int step = steps[si];
        char ns[16];
        snprintf(ns, sizeof ns, "ns%d", step);
        memset(a, 0, sizeof *a);
        pid_t pid = fork();
        if (pid == 0)
            child(step, ns, a);
        int st;
        waitpid(pid, &st, 0);
        int killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        if (!killed)
            fprintf(stderr, "step %d: child was not killed at the step\n", step);
        CHECK(killed);

        /* The next locker repairs; the whole store must be consistent. */
        CHECK(kv_check() == 0);
        int lost = 0;
        for (int i = 0; i < a->n; i++) {
            /* the last acknowledgement for a key is the truth */
            int last = 1;
            for (int j = i + 1; j < a->n; j++)
                last &= strcmp(a->key[i], a->key[j]) != 0;
            if (!last)
                continue;
            struct kv_value v;
            int rc = kv_get(ns, strlen(ns), a->key[i], strlen(a->key[i]), &v);
            const char *got = rc == KV_OK ? v.value : "";
            int in_flight = !strcmp(a->key[i], a->pending_key);
            if (strcmp(got, a->val[i]) != 0 && !(in_flight && !strcmp(got, a->pending_val)))
                lost++;
            if (rc == KV_OK)
                free(v.value);
        }
        if (lost)
            fprintf(stderr, "step %d: %d acknowledged writes lost\n", step, lost);
        CHECK(lost == 0);
        /* and it keeps working: write, read, delete */
        CHECK(kv_put(ns, strlen(ns), "after", 5, "ok", 2, 0) == KV_OK);
        struct kv_value v;
        CHECK(kv_get("keep", 4, "a", 1, &v) == KV_OK && !strcmp(v.value, "1"));
        free(v.value);
        CHECK(kv_check() == 0);
    }
    fixture_close();
    return UNIT_DONE();
}
