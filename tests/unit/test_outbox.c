/* The outbox's files (src/events/outbox.h): the spool layout and its lock, entries
 * written through tmp/ and read back, the queue limit, ids that cannot name a file
 * elsewhere, and the RFC 3339 times. Runs in a temporary directory under $TMPDIR
 * (or /tmp), removed at the end. */
#include "outbox.h"
#include "unit.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int files(const char *dir, const char *sub)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static json_object *entry(void)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "method", json_object_new_string("POST"));
    return outbox_new(OB_WEBHOOK, OB_FAILED, "task", "exec", "http://h/x", req);
}

int main(void)
{
    char base[512], dir[560], err[300], name[700];
    snprintf(base, sizeof base, "%s/outbox-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(base) != NULL);
    snprintf(dir, sizeof dir, "%s/spool", base);
    CHECK(outbox_prepare(dir, err, sizeof err) == 0);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    int fd = outbox_lock(dir, err, sizeof err);
    CHECK(fd >= 0);
    CHECK(outbox_lock(dir, err, sizeof err) < 0); /* a second open file description */
    CHECK(strstr(err, "is in use by another butlerd") != NULL);

    json_object *e = entry();
    const char *id = json_object_get_string(json_object_object_get(e, "id"));
    CHECK(strlen(id) == 37 && id[8] == 'T' && id[19] == 'Z' && id[20] == '-');
    CHECK(outbox_write(dir, "queue", e, 2, err, sizeof err) == 0);
    snprintf(name, sizeof name, "%s.json", id);
    json_object *back = outbox_read(dir, "queue", name);
    CHECK(back && !strcmp(json_object_get_string(json_object_object_get(back, "target")),
                          "http://h/x"));
    CHECK(json_object_get_int(json_object_object_get(back, "v")) == 1);
    json_object_put(back);
    snprintf(name, sizeof name, "%s/queue/%s.json", dir, id);
    CHECK(stat(name, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* an update replaces the file; the queue limit counts files */
    CHECK(outbox_write(dir, "queue", e, 0, err, sizeof err) == 0);
    json_object *f = entry();
    CHECK(outbox_write(dir, "queue", f, 2, err, sizeof err) == 0);
    json_object *g = entry();
    CHECK(outbox_write(dir, "queue", g, 2, err, sizeof err) == 1);
    CHECK(strstr(err, "maxQueueEntries (2)") != NULL);
    CHECK(files(dir, "queue") == 2 && files(dir, "tmp") == 0);
    /* an id that would name a file elsewhere is refused */
    json_object_object_add(g, "id", json_object_new_string("../x"));
    CHECK(outbox_write(dir, "dead", g, 0, err, sizeof err) < 0);
    CHECK(outbox_remove(dir, "queue", id) == 0 && files(dir, "queue") == 1);

    char t[32];
    outbox_time(1795387690123LL, t);
    CHECK_STR(t, "2026-11-22T22:48:10.123Z");
    CHECK(outbox_parse_time(t) == 1795387690123LL);
    CHECK(outbox_parse_time("yesterday") == -1);

    json_object_put(e);
    json_object_put(f);
    json_object_put(g);
    close(fd);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
    return UNIT_DONE();
}
