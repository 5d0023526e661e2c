/* Crash injection on the active-user table, whose slots are split into a head and a
 * tail (USERS_SLOT_HEAD): for every numbered step of insert, replace and delete, a
 * child is SIGKILLed at that step while holding the lock, with keys that fit in the
 * head and keys whose bytes reach into the tail. The parent then reads the table:
 * the next locker repairs it, the table is valid, every entry the child had
 * acknowledged is there with its whole key, and the table keeps working. */
#include "users.h"
#include "shm_region.h"
#include "shm_table.h"
#include "shm_fixture.h"
#include "unit.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define NUSERS 4

struct acks {
    int present[NUSERS]; /* 1 acknowledged added, 0 acknowledged removed, -1 never */
    int pending;         /* the user of the operation in flight, or -1 */
};

/* User I of round R: even ones fit in the head, odd ones spill into the tail. */
static void user_name(int r, int i, char *out, size_t n)
{
    int len = i % 2 ? 300 : 10;
    snprintf(out, n, "r%02du%d-", r, i);
    size_t l = strlen(out);
    memset(out + l, 'a' + i, (size_t)len - l);
    out[len] = '\0';
}

static const int steps[] = {1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 21, 22, 23};

static void child(int r, int step, struct acks *a)
{
    char u[400];
    shm_crash_point = step;
    for (int i = 0; i < NUSERS; i++) { /* inserts: 11-15 */
        user_name(r, i, u, sizeof u);
        a->pending = i;
        if (users_add("host", "DIR", u, 1000) == USERS_NEW)
            a->present[i] = 1;
    }
    for (int i = 0; i < NUSERS; i++) { /* refreshes, a fresh slot each: 1-5 */
        user_name(r, i, u, sizeof u);
        a->pending = i;
        users_add("host", "DIR", u, 2000);
    }
    for (int i = 0; i < NUSERS; i += 2) { /* removes: 21-23 */
        user_name(r, i + 1, u, sizeof u);
        a->pending = i + 1;
        if (users_remove("host", "DIR", u) == 1)
            a->present[i + 1] = 0;
    }
    a->pending = -1;
    _exit(0); /* the step was not reached */
}

int main(void)
{
    fixture_open(100, 32, 32, 8, 100);
    shm_reset_volatile();
    struct shm_table *t = shm_ptr(shm.hdr->users_off);
    CHECK(t->head_size == USERS_SLOT_HEAD);
    struct acks *a = mmap(NULL, sizeof *a, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
    CHECK(users_add("keep", "DIR", "kept-user-whose-key-is-longer-than-the-head-of-its-slot-"
                                   "so-that-it-has-a-tail-too-0123456789",
                    500) == USERS_NEW);
    alarm(120);
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
        int step = steps[si];
        for (int i = 0; i < NUSERS; i++)
            a->present[i] = -1;
        a->pending = -1;
        pid_t pid = fork();
        if (pid == 0)
            child((int)si, step, a);
        int st;
        waitpid(pid, &st, 0);
        int killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        if (!killed)
            fprintf(stderr, "step %d: child was not killed at the step\n", step);
        CHECK(killed);

        /* the view takes the lock: the repair runs, then every key reads back whole */
        struct users_view v;
        CHECK(users_view(&v) == 0);
        CHECK(shm_table_check(t, 0) == 0);
        int lost = 0;
        for (int i = 0; i < NUSERS; i++) {
            char u[400], want[420];
            user_name((int)si, i, u, sizeof u);
            snprintf(want, sizeof want, "DIR/%s", u);
            int found = 0;
            for (size_t j = 0; j < v.nusers; j++)
                found |= !strcmp(v.names[j], want);
            if (a->present[i] >= 0 && found != a->present[i] && a->pending != i)
                lost++;
        }
        int kept = 0;
        for (size_t j = 0; j < v.nusers; j++)
            kept |= !strncmp(v.names[j], "DIR/kept-user-", 14);
        CHECK(kept);
        users_view_free(&v);
        if (lost)
            fprintf(stderr, "step %d: %d acknowledged changes lost\n", step, lost);
        CHECK(lost == 0);

        /* and it keeps working; the round's users go, to leave room for the next */
        for (int i = 0; i < NUSERS; i++) {
            char u[400];
            user_name((int)si, i, u, sizeof u);
            users_remove("host", "DIR", u);
        }
        CHECK(users_add("host", "DIR", "after", 3000) != USERS_FULL);
        CHECK(users_remove("host", "DIR", "after") == 1);
        CHECK(shm_table_check(t, 0) == 0);
    }
    fixture_close();
    return UNIT_DONE();
}
