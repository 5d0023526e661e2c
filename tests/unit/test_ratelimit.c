/* The rate-limit counters (src/store/ratelimit.c): fixed windows, the reset in whole
 * seconds rounded up, exact least-recently-seen eviction in a one-stripe table, and
 * crash injection: a child SIGKILLed at every step of every critical section the
 * counters use (insert, replace, the eviction's delete) leaves a table the next
 * locker repairs, and counting goes on. */
#include "ratelimit.h"
#include "shm_fixture.h"
#include "shm_lock.h"
#include "shm_region.h"
#include "shm_table.h"
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CLIENTS 4

static void key(uint8_t k[5], int n)
{
    k[0] = 4;
    k[1] = 10;
    k[2] = 0;
    k[3] = (uint8_t)(n >> 8);
    k[4] = (uint8_t)n;
}

/* rl_hit reads its clock under the stripe lock; here the clock is the NOW of each
 * call, plus a nanosecond more per call so that the last-seen order stays exact. */
static int64_t fake_ms, fake_ticks;

static int64_t fake_clock(void) { return fake_ms * 1000000 + ++fake_ticks % 1000000; }

static struct rl_verdict hit(int client, int max, int64_t now)
{
    uint8_t k[5];
    struct rl_verdict v;
    key(k, client);
    fake_ms = now;
    rl_hit(k, sizeof k, max, 60, &v);
    return v;
}

static void windows(void)
{
    struct rl_verdict v = hit(100, 3, 1000);
    CHECK(!v.limited && v.limit == 3 && v.remaining == 2 && v.reset_s == 60);
    v = hit(100, 3, 1001);
    CHECK(v.remaining == 1 && v.reset_s == 60); /* 59.999 s left: rounded up */
    v = hit(100, 3, 60001);
    CHECK(!v.limited && v.remaining == 0 && v.reset_s == 1); /* 1 ms left */
    v = hit(100, 3, 60500);
    CHECK(v.limited && v.remaining == 0 && v.reset_s == 1);
    v = hit(100, 3, 61000); /* the window that began at 1000 ended */
    CHECK(!v.limited && v.remaining == 2 && v.reset_s == 60);
    v = hit(100, 3, 500); /* a clock before the window (a reboot): start again */
    CHECK(!v.limited && v.remaining == 2);
}

static void eviction(void)
{
    /* fills the table: 100 is in it from windows() */
    for (int c = 1; c < MAX_CLIENTS; c++)
        CHECK(hit(c, 1, 2000).remaining == 0);
    CHECK(rl_clients() == MAX_CLIENTS);
    CHECK(hit(100, 1, 2000).limited); /* 100 is now the most recently seen */
    CHECK(!hit(50, 1, 2000).limited);  /* drops 1, the least recently seen */
    CHECK(rl_clients() == MAX_CLIENTS);
    CHECK(hit(100, 1, 2000).limited);
    CHECK(hit(2, 1, 2000).limited);
    CHECK(!hit(1, 1, 2000).limited); /* 1 was dropped: a new window; 3 goes */
    CHECK(!hit(3, 1, 2000).limited);
    CHECK(rl_clients() == MAX_CLIENTS);
    CHECK(rl_check() == 0);
}

/* The clock is read with the client's stripe locked. Read before, a worker that
 * waited for the lock could hold a time earlier than the window another worker had
 * just opened and would start the count again (CI saw 52 of a budget of 50 pass). */
static int clock_reads, clock_unlocked;

static int64_t locked_clock(void)
{
    struct shm_table *t = shm_ptr(shm.hdr->rl_off);
    pthread_mutex_t *mu = &shm_table_stripe(t, 0)->lock.mu; /* the one stripe */
    clock_reads++;
    /* a robust error-checking mutex (shm_lock.c): glibc answers EDEADLK when this
     * thread holds it (POSIX leaves it open; another libc fails here, never passes) */
    if (pthread_mutex_trylock(mu) != EDEADLK) {
        clock_unlocked++;
        pthread_mutex_unlock(mu);
    }
    return fake_clock();
}

static void clock_under_lock(void)
{
    struct shm_table *t = shm_ptr(shm.hdr->rl_off);
    CHECK(t->nstripes == 1);
    rl_clock_ns = locked_clock;
    fake_ms = 5000;
    uint8_t k[5];
    struct rl_verdict v;
    key(k, 100);
    rl_hit(k, sizeof k, 3, 60, &v);
    rl_hit(k, sizeof k, 3, 60, &v);
    CHECK(clock_reads >= 2);
    CHECK(clock_unlocked == 0);
    rl_clock_ns = fake_clock;
}

static const int steps[] = {1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 21, 22, 23};

/* Reaches every step: inserts (11-15), a repeated client (1-5) and, past
 * MAX_CLIENTS clients, the eviction's delete (21-23). */
static void child(int step, int base)
{
    shm_crash_point = step;
    hit(base, 100, 3000);
    hit(base, 100, 3000);
    for (int c = 1; c <= MAX_CLIENTS + 1; c++)
        hit(base + c, 100, 3000);
    _exit(0); /* the step was not reached */
}

static void crashes(void)
{
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int step = steps[i], base = 1000 + 10 * step;
        pid_t pid = fork();
        if (pid == 0)
            child(step, base);
        int st;
        waitpid(pid, &st, 0);
        int killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        if (!killed)
            fprintf(stderr, "step %d: child was not killed at the step\n", step);
        CHECK(killed);
        /* the next locker repairs; the table is sound, bounded and counts on */
        CHECK(rl_check() == 0);
        CHECK(rl_clients() <= MAX_CLIENTS);
        CHECK(hit(7, 2, 4000).remaining == 1);
        CHECK(hit(7, 2, 4000).remaining == 0);
        CHECK(hit(7, 2, 4000).limited);
        CHECK(hit(7, 2, 64000).remaining == 1); /* next window */
        CHECK(rl_check() == 0);
    }
}

int main(void)
{
    fixture_rl_clients = MAX_CLIENTS;
    rl_clock_ns = fake_clock;
    fixture_open(16, 16, 16, 4, 16);
    shm_reset_volatile(); /* as the master does: builds the rate-limit table */
    alarm(120);
    windows();
    eviction();
    clock_under_lock();
    crashes();
    fixture_close();
    return UNIT_DONE();
}
