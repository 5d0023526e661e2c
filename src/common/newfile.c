/* New files written beside their final name and put in place atomically.
 *
 * Where the file system has O_TMPFILE (ext4, xfs, btrfs, tmpfs...) the file has no
 * name while it is written: a process killed meanwhile leaves nothing, and no
 * symbolic link planted at a predictable name can redirect the write. It gets a
 * name only when complete: linkat(2) straight to its final name when it must not
 * replace anything, or to a temporary name and rename(2) over the old file, so
 * only a process killed between those two calls leaves a complete temporary file.
 * Elsewhere (NFS, SMB/CIFS, older kernels) the file is created under a temporary
 * name with O_CREAT | O_EXCL | O_NOFOLLOW, which never opens an existing entry. */
#include "newfile.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int force_named;

void newfile_force_named(int on) { force_named = on; }

void newfile_random_name(char out[32])
{
    static unsigned counter;
    unsigned char r[6];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)now_ms() * 2654435761u ^ (uint64_t)getpid() << 20 ^
                     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        memcpy(r, &x, sizeof r);
    }
    snprintf(out, 32, ".butlerd-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
}

static void next_name(struct newfile *f)
{
    if (f->fixed)
        snprintf(f->name, sizeof f->name, "%s", f->fixed);
    else
        newfile_random_name(f->name);
}

/* O_TMPFILE is missing: EOPNOTSUPP from the file system, EISDIR from a kernel
 * that predates it (it contains O_DIRECTORY), EINVAL from some. */
static int no_tmpfile(int e) { return e == EOPNOTSUPP || e == EISDIR || e == EINVAL; }

int newfile_open(struct newfile *f, int dirfd, const char *fixed, mode_t mode)
{
    memset(f, 0, sizeof *f);
    f->dirfd = dirfd;
    f->fixed = fixed;
    f->fd = -1;
    if (!__atomic_load_n(&force_named, __ATOMIC_RELAXED)) {
        f->fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
        if (f->fd >= 0)
            return 0;
        if (!no_tmpfile(errno))
            return -1;
    }
    f->named = 1;
    for (int i = 0; i < 16; i++) {
        next_name(f);
        f->fd = openat(dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       mode);
        if (f->fd >= 0)
            return 0;
        if (errno != EEXIST)
            break;
        /* A fixed name is the caller's own in a directory nobody else can write:
         * what is there was left by a process of ours that died. unlinkat removes
         * a symbolic link itself, never its target. */
        if (fixed && (unlinkat(dirfd, f->name, 0) < 0 && errno != ENOENT))
            break;
    }
    f->named = 0;
    return -1;
}

int newfile_rename(int sdir, const char *sname, int ddir, const char *dname, int replace)
{
    if (replace)
        return renameat(sdir, sname, ddir, dname);
    if (renameat2(sdir, sname, ddir, dname, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
    /* A file system without RENAME_NOREPLACE: check, then rename. */
    struct stat st;
    if (fstatat(ddir, dname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        errno = EEXIST;
        return -1;
    }
    return errno == ENOENT ? renameat(sdir, sname, ddir, dname) : -1;
}

/* Gives the unnamed file F the name NAME: through /proc/self/fd, which needs no
 * privilege, else with AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH). */
static int link_unnamed(struct newfile *f, const char *name)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    if (linkat(AT_FDCWD, proc, f->dirfd, name, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != ENOENT)
        return -1;
    return linkat(f->fd, "", f->dirfd, name, AT_EMPTY_PATH);
}

static void close_file(struct newfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

int newfile_commit(struct newfile *f, const char *dest, int replace)
{
    int rc = -1, e;
    if (f->named) {
        close_file(f);
        rc = newfile_rename(f->dirfd, f->name, f->dirfd, dest, replace);
        e = errno;
        if (rc < 0 && unlinkat(f->dirfd, f->name, 0) < 0 && errno != ENOENT)
            log_warn("unlinkat(%s) failed; a temporary file is left behind", f->name);
        f->named = 0;
        errno = e;
        return rc;
    }
    if (!replace) { /* linkat never replaces: EEXIST if DEST exists */
        rc = link_unnamed(f, dest);
        e = errno;
        close_file(f);
        errno = e;
        return rc;
    }
    for (int i = 0; i < 16 && rc < 0; i++) {
        next_name(f);
        rc = link_unnamed(f, f->name);
        if (rc < 0 && (errno != EEXIST ||
                       (f->fixed && unlinkat(f->dirfd, f->name, 0) < 0 && errno != ENOENT)))
            break;
    }
    e = errno;
    close_file(f);
    if (rc < 0) {
        errno = e;
        return -1;
    }
    rc = renameat(f->dirfd, f->name, f->dirfd, dest);
    e = errno;
    if (rc < 0 && unlinkat(f->dirfd, f->name, 0) < 0 && errno != ENOENT)
        log_warn("unlinkat(%s) failed; a temporary file is left behind", f->name);
    errno = e;
    return rc;
}

void newfile_abort(struct newfile *f)
{
    close_file(f);
    if (f->named && unlinkat(f->dirfd, f->name, 0) < 0 && errno != ENOENT)
        log_warn("unlinkat(%s) failed; a temporary file is left behind", f->name);
    f->named = 0;
}
