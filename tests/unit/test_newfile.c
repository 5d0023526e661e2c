/* New files (src/newfile.h), both with O_TMPFILE and as on a file system without
 * it: committed in place or refused, aborted without a trace, and never written
 * through a symbolic link planted at the temporary name. Runs in a temporary
 * directory under $TMPDIR (or /tmp), removed at the end. */
#include "newfile.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int dirfd_;

/* Entries in the test directory, "." and ".." left out. */
static int entries(void)
{
    int n = 0, fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY);
    DIR *d = fdopendir(fd);
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

static char *slurp(const char *name)
{
    static char buf[256];
    int fd = openat(dirfd_, name, O_RDONLY | O_NOFOLLOW);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return n < 0 ? NULL : buf;
}

static void put(const char *name, const char *text)
{
    int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static int write_new(const char *fixed, const char *text, struct newfile *nf)
{
    if (newfile_open(nf, dirfd_, fixed, 0600) < 0)
        return -1;
    CHECK(write(nf->fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(fsync(nf->fd) == 0);
    return 0;
}

static void clear(void)
{
    const char *names[] = {"dest", "victim", "link.tmp", "other"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unlinkat(dirfd_, names[i], 0);
}

static void run(int named)
{
    struct newfile nf;
    struct stat st;
    newfile_force_named(named);

    /* commit into a free name */
    CHECK(write_new(NULL, "one", &nf) == 0);
    CHECK(nf.named == named);
    if (named)
        CHECK(entries() == 1); /* the temporary name exists while writing */
    else
        CHECK(entries() == 0); /* O_TMPFILE: nothing has a name yet */
    CHECK(newfile_commit(&nf, "dest", 0) == 0);
    CHECK_STR(slurp("dest"), "one");
    CHECK(fstatat(dirfd_, "dest", &st, 0) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(entries() == 1);

    /* no replace: EEXIST, the old file stays, nothing else is left */
    CHECK(write_new(NULL, "two", &nf) == 0);
    errno = 0;
    CHECK(newfile_commit(&nf, "dest", 0) == -1 && errno == EEXIST);
    CHECK_STR(slurp("dest"), "one");
    CHECK(entries() == 1);

    /* replace */
    CHECK(write_new(NULL, "three", &nf) == 0);
    CHECK(newfile_commit(&nf, "dest", 1) == 0);
    CHECK_STR(slurp("dest"), "three");
    CHECK(entries() == 1);

    /* abort leaves nothing */
    CHECK(write_new(NULL, "four", &nf) == 0);
    newfile_abort(&nf);
    CHECK(entries() == 1);
    CHECK_STR(slurp("dest"), "three");

    /* a symbolic link planted at the fixed temporary name: the victim is never
     * written, the link itself goes, the file lands where it should */
    put("victim", "precious");
    CHECK(symlinkat("victim", dirfd_, "link.tmp") == 0);
    CHECK(write_new("link.tmp", "five", &nf) == 0);
    CHECK_STR(slurp("victim"), "precious");
    CHECK(newfile_commit(&nf, "dest", 1) == 0);
    CHECK_STR(slurp("victim"), "precious");
    CHECK_STR(slurp("dest"), "five");
    CHECK(fstatat(dirfd_, "link.tmp", &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
    CHECK(entries() == 2); /* dest, victim */

    /* a stale file at the fixed name is replaced, not appended to */
    put("link.tmp", "stale stale stale");
    CHECK(write_new("link.tmp", "six", &nf) == 0);
    CHECK(newfile_commit(&nf, "other", 0) == 0);
    CHECK_STR(slurp("other"), "six");
    CHECK(entries() == 3 || entries() == 4); /* named: link.tmp was taken and renamed */
    clear();
    CHECK(entries() == 0);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/test_newfile.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(dirfd_ >= 0);
    int probe = openat(dirfd_, ".", O_TMPFILE | O_WRONLY, 0600);
    if (probe >= 0) {
        close(probe);
        run(0);
    } else {
        printf("no O_TMPFILE in %s: only the named fallback is tested\n", dir);
    }
    run(1);
    clear();
    close(dirfd_);
    rmdir(dir);
    return UNIT_DONE();
}
