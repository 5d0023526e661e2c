/* The shared schedule list (src/store/sched_list.c): every change is in the file
 * and in the list or in neither; a process SIGKILLed in the middle of a change
 * leaves the list as it was and nothing locked; concurrent changes from several
 * processes are all kept; each firing second is claimed exactly once. */
#include "cfg.h"
#include "sched_list.h"
#include "shm_lock.h"
#include "unit.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TASK "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"

static char dir[64], path[128];

static json_object *body(const char *name, const char *cron, const char *zone)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "name", json_object_new_string(name));
    json_object_object_add(b, "cronSchedule", json_object_new_string(cron));
    json_object_object_add(b, "timezone", json_object_new_string(zone));
    json_object_object_add(b, "qlikSenseTaskId", json_object_new_string(TASK));
    json_object_object_add(b, "startupState", json_object_new_string("started"));
    return b;
}

static enum sched_rc create(const char *name, char *id_out)
{
    json_object *b = body(name, "0 6 * * 1-5", "Europe/Stockholm"), *out = NULL;
    char err[200];
    enum sched_rc rc = sched_create(NULL, b, &out, err, sizeof err);
    if (rc == SCHED_OK && id_out)
        snprintf(id_out, 40, "%s", sched_str(out, "id"));
    json_object_put(out);
    json_object_put(b);
    return rc;
}

/* The ids in the list (GET), and in the file, as one comma-joined string each. */
static void ids(char *list, char *file, size_t n)
{
    struct buf b = {0};
    sched_get(NULL, &b);
    json_object *a = json_tokener_parse(b.p);
    buf_free(&b);
    list[0] = file[0] = '\0';
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        strncat(list, i ? "," : "", n - strlen(list) - 1);
        strncat(list, sched_str(json_object_array_get_idx(a, i), "name"), n - strlen(list) - 1);
    }
    json_object_put(a);
    json_object *f = json_object_from_file(path), *arr = NULL;
    if (f && json_object_object_get_ex(f, "butlerSchedule", &arr))
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            strncat(file, i ? "," : "", n - strlen(file) - 1);
            strncat(file, sched_str(json_object_array_get_idx(arr, i), "name"),
                    n - strlen(file) - 1);
        }
    json_object_put(f);
}

static void test_changes(void)
{
    char id[40], l[4096], f[4096];
    CHECK(create("a", id) == SCHED_OK);
    CHECK(create("b", NULL) == SCHED_OK);
    ids(l, f, sizeof l);
    CHECK_STR(l, "a,b");
    CHECK_STR(f, "a,b");
    struct buf b = {0};
    CHECK(sched_set_running(id, 0, &b) == SCHED_OK);
    CHECK(strstr(b.p, "\"lastKnownState\":\"stopped\"") != NULL);
    buf_free(&b);
    CHECK(sched_set_running("nope", 1, &b) == SCHED_NOT_FOUND);
    CHECK(sched_delete("nope") == SCHED_NOT_FOUND);
    CHECK(sched_delete(id) == SCHED_OK);
    ids(l, f, sizeof l);
    CHECK_STR(l, "b");
    CHECK_STR(f, "b");
    sched_status_text(&b);
    CHECK(!strncmp(b.p, "{\n'", 3) && strstr(b.p, "': 0 6 * * 1-5 status: Running\n}\n"));
    buf_free(&b);
}

/* A directory nobody can write to (as root: a schedule file whose directory is a
 * regular file): the change fails with SCHED_IO and changes nothing. */
static void test_unwritable(void)
{
    char l[4096], f[4096], l2[4096], f2[4096];
    ids(l, f, sizeof l);
    char saved[sizeof path];
    snprintf(saved, sizeof saved, "%s", path);
    /* Move the file away and put a plain file where its directory is expected. */
    CHECK(rename(dir, "/tmp/butlerd-sched-moved") == 0);
    int fd = open(dir, O_CREAT | O_WRONLY, 0600);
    close(fd);
    CHECK(create("c", NULL) == SCHED_IO);
    unlink(dir);
    CHECK(rename("/tmp/butlerd-sched-moved", dir) == 0);
    ids(l2, f2, sizeof l2);
    CHECK_STR(l2, l);
    CHECK_STR(f2, f);
}

/* Killed at the commit step (file renamed, list not yet flipped), and anywhere
 * else by a timer: the lock is recovered and the list is whole. */
static void test_crash(void)
{
    char l[4096], f[4096];
    pid_t pid = fork();
    if (pid == 0) {
        shm_crash_point = 61;
        create("crash", NULL);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK(create("after", NULL) == SCHED_OK); /* the lock was recovered */
    ids(l, f, sizeof l);
    CHECK(strstr(l, "crash") == NULL); /* never acknowledged, never committed */
    CHECK_STR(f, l);                    /* the next change rewrote the file */
    for (int i = 0; i < 20; i++) {      /* SIGKILL at random instants */
        pid = fork();
        if (pid == 0) {
            for (int k = 0;; k++) {
                char n[32];
                snprintf(n, sizeof n, "r%d", k);
                create(n, NULL);
                sched_delete("x");
            }
        }
        usleep(2000 + (unsigned)(rand() % 20000));
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        struct buf b = {0};
        CHECK(sched_get(NULL, &b) == SCHED_OK);
        json_object *a = json_tokener_parse(b.p);
        CHECK(json_object_is_type(a, json_type_array));
        json_object_put(a);
        buf_free(&b);
    }
}

/* Four processes create 25 schedules each at once: all 100 acknowledged ones are
 * in the list and the file. */
static void test_concurrent(void)
{
    char l[65536], f[65536];
    for (int p = 0; p < 4; p++)
        if (fork() == 0) {
            int bad = 0;
            for (int i = 0; i < 25; i++) {
                char n[32];
                snprintf(n, sizeof n, "p%d-%d", p, i);
                bad += create(n, NULL) != SCHED_OK;
            }
            _exit(bad);
        }
    int st, bad = 0;
    while (wait(&st) > 0)
        bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    CHECK(bad == 0);
    ids(l, f, sizeof l);
    CHECK_STR(f, l);
    int found = 0;
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < 25; i++) {
            char n[40];
            snprintf(n, sizeof n, ",p%d-%d,", p, i);
            char wrapped[sizeof l + 2];
            snprintf(wrapped, sizeof wrapped, ",%s,", l);
            found += strstr(wrapped, n) != NULL;
        }
    CHECK(found == 100);
}

/* Two processes claim seconds 1..20000 in the same order: every second once. */
static void test_claims(void)
{
    unsigned char *mine = mmap(NULL, 20001, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                               -1, 0);
    memset(mine, 0, 20001);
    int64_t base = sched_watermark();
    for (int p = 0; p < 2; p++)
        if (fork() == 0) {
            for (int t = 1; t <= 20000; t++)
                if (sched_claim(base + t, NULL))
                    __atomic_add_fetch(&mine[t], 1, __ATOMIC_RELAXED);
            _exit(0);
        }
    while (wait(NULL) > 0) {
    }
    int once = 0;
    for (int t = 1; t <= 20000; t++)
        once += mine[t] == 1;
    CHECK(once == 20000);
    CHECK(!sched_claim(base + 5, NULL)); /* behind the watermark */
    munmap(mine, 20001);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/butlerd-sched-%ld", (long)getpid());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/schedule.json", dir);
    struct cfg c;
    memset(&c, 0, sizeof c);
    c.scheduler.enable = true;
    c.scheduler.configfile = path;
    c.scheduler.maxSchedules = 1000;
    alarm(120);
    CHECK(sched_init(&c) == 0);
    test_changes();
    test_unwritable();
    test_crash();
    test_concurrent();
    test_claims();
    unlink(path);
    rmdir(dir);
    return UNIT_DONE();
}
