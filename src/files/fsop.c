/* File operations confined to an approved directory. The approved directory is
 * opened as configured; everything below it is resolved by the kernel with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), and every change is made with
 * *at() calls relative to the directory descriptor that resolution returned. So
 * the location that was checked is the one that is changed, whatever renames or
 * symbolic links appear meanwhile.
 *
 * Symbolic links: one below the approved directory is followed while its target
 * stays inside that directory (relative links only: RESOLVE_BENEATH refuses
 * absolute ones); a link that leads out is FSOP_ESCAPE. The last component of a
 * copy source is followed; that of a move source, a delete target or any
 * destination is never followed: the link itself is moved, removed or replaced.
 * Directories created on the way are opened with RESOLVE_NO_SYMLINKS, so a link
 * swapped in after mkdir is not followed either. */
#include "fsop.h"
#include "cfg.h"
#include "log.h"
#include "newfile.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_DEPTH 256 /* directory levels a recursive copy or removal descends */
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* A file or symbolic link as a move across file systems read it. */
struct seen {
    dev_t dev;
    ino_t ino;
    struct timespec ctim, mtim;
    off_t size;
    nlink_t nlink;
};

/* Everything a move across file systems copied, so that removing the source
 * removes only that: an entry added, replaced or changed meanwhile is kept. */
struct seenlist {
    struct seen *v;
    size_t n, cap;
};

struct copy_opts {
    int preserve; /* copy access and modification times */
    int move;     /* half of a move: directories are fsync'ed too, since the source
                     goes afterwards, and nothing may be left behind */
    struct seenlist *seen; /* a move: what was copied (NULL for a copy) */
};

static void seen_add(struct seenlist *l, const struct stat *st)
{
    if (!l)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] =
        (struct seen){st->st_dev, st->st_ino, st->st_ctim, st->st_mtim, st->st_size, st->st_nlink};
}

static int seen_cmp(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* True if ST is a file or link that was copied and has not changed since: same
 * inode, same size and the same change time (any write, chmod, rename or link
 * moves it). A file with several hard links gets a new change time when the move
 * unlinks one of its names, so for it the modification time is compared instead.
 * For a directory: it was copied (its entries are checked one by one). */
static int seen_unchanged(const struct seenlist *l, const struct stat *st)
{
    struct seen key = {st->st_dev, st->st_ino, {0, 0}, {0, 0}, 0, 0};
    const struct seen *s = bsearch(&key, l->v, l->n, sizeof *l->v, seen_cmp);
    /* hard links inside the tree give equal keys next to each other: any will do,
     * they share the inode and so its times and size */
    if (!s || S_ISDIR(st->st_mode))
        return s != NULL;
    return s->size == st->st_size &&
           (s->nlink > 1 ? same_time(s->mtim, st->st_mtim) : same_time(s->ctim, st->st_ctim));
}

static int fail(const char *call, const char *arg)
{
    log_warn("%s(%s) failed", call, arg);
    return FSOP_FAIL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static const struct timespec *times_of(const struct stat *st, struct timespec ts[2])
{
    ts[0] = st->st_atim;
    ts[1] = st->st_mtim;
    return ts;
}

/* One name below DIRFD, never through a symbolic link: EXDEV if it is one. */
static int walk_one(int dirfd, const char *name, int flags)
{
    struct stat st;
    if (!strcmp(name, "..")) {
        errno = EXDEV;
        return -1;
    }
    int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && (flags & O_PATH) && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
        close(fd); /* O_PATH | O_NOFOLLOW opened the link itself */
        errno = EXDEV;
        return -1;
    }
    if (fd < 0 && (errno == ENOTDIR || errno == ELOOP)) {
        int e = errno;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
            e = EXDEV;
        errno = e;
    }
    return fd;
}

/* resolve() without openat2 (a kernel before 5.6, a seccomp filter, valgrind): one
 * name at a time, following no symbolic link at all when confined, which is
 * stricter than RESOLVE_BENEATH. Paths here are normalised: no "." or "..". */
static int resolve_walk(int dirfd, const char *path, int flags, int confined, uint64_t extra)
{
    if (!confined)
        return openat(dirfd, path, flags | O_CLOEXEC |
                                       ((extra & RESOLVE_NO_SYMLINKS) ? O_NOFOLLOW : 0));
    char *copy = xstrdup(path), *name = copy, *slash;
    int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0), fd = -1;
    while (cur >= 0 && (slash = strchr(name, '/'))) {
        *slash = '\0';
        fd = walk_one(cur, name, O_PATH | O_DIRECTORY);
        close(cur);
        cur = fd;
        name = slash + 1;
    }
    if (cur >= 0) {
        fd = walk_one(cur, name, flags);
        int e = errno;
        close(cur);
        errno = e;
    }
    int e = errno;
    free(copy);
    errno = e;
    return fd;
}

/* openat2(2) of PATH ("" is DIRFD itself) below DIRFD. The kernel answers EAGAIN
 * when a concurrent rename keeps it from proving that ".." stayed inside: retry. */
static int resolve(int dirfd, const char *path, int flags, int confined, uint64_t extra)
{
    static int no_openat2;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_NO_MAGICLINKS | (confined ? RESOLVE_BENEATH : 0) | extra,
    };
    if (!*path)
        path = ".";
    if (__atomic_load_n(&no_openat2, __ATOMIC_RELAXED))
        return resolve_walk(dirfd, path, flags, confined, extra);
    for (int i = 0; i < 64; i++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOSYS) {
            if (!__atomic_exchange_n(&no_openat2, 1, __ATOMIC_RELAXED))
                log_warnx("openat2 is not available: symbolic links below approved "
                          "directories are not followed at all");
            return resolve_walk(dirfd, path, flags, confined, extra);
        }
        if (errno != EAGAIN && errno != EINTR)
            break;
    }
    return -1;
}

/* Maps a failed resolution of a path that should exist (errno from resolve). */
static int unresolved(const struct fsop_loc *l)
{
    if (errno == EXDEV && l->confined) {
        log_warnx("%s leads outside %s (symbolic link?): refused", l->abs, l->root);
        return FSOP_ESCAPE;
    }
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
        return FSOP_NOENT;
    return fail("openat2", l->abs);
}

/* ----------------------------------------------------------------- places */

/* The parent directory of a location, opened as far as it exists. */
struct place {
    int root;         /* the approved directory, -1 if it does not exist yet */
    int dir;          /* deepest existing directory on the way to the parent */
    char *path;       /* copy of rel, cut into parent and name */
    char *rest;       /* first missing component of the parent; NULL if none is */
    const char *name; /* the last component; NULL when the place is a directory */
};
#define PLACE_INIT {-1, -1, NULL, NULL, NULL}

static void place_close(struct place *pl)
{
    close_fd(&pl->root);
    close_fd(&pl->dir);
    free(pl->path);
    pl->path = NULL;
}

/* Opens the parent of L (all of L when WHOLE) as deep as it exists; creates nothing.
 * FSOP_NOENT means a component exists but is no directory. */
static int place_open(struct place *pl, const struct fsop_loc *l, int whole)
{
    pl->path = xstrdup(l->rel);
    char *parent = pl->path;
    if (!whole) {
        char *slash = strrchr(pl->path, '/');
        if (slash) {
            *slash = '\0';
            pl->name = slash + 1;
        } else {
            pl->name = pl->path;
            parent = pl->path + strlen(pl->path);
        }
        if (!*pl->name) /* the approved directory itself is no file inside it */
            return FSOP_ESCAPE;
    }
    pl->root = open(l->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pl->root < 0) {
        if (errno != ENOENT)
            return fail("open", l->root);
        pl->rest = parent; /* created later, approved directory first */
        return FSOP_OK;
    }
    pl->dir = resolve(pl->root, parent, O_PATH | O_DIRECTORY, l->confined, 0);
    if (pl->dir >= 0)
        return FSOP_OK;
    if (errno != ENOENT)
        return unresolved(l);

    /* Something on the way is missing: walk down to the deepest directory that
     * exists, each prefix resolved below the approved directory again. */
    pl->dir = fcntl(pl->root, F_DUPFD_CLOEXEC, 0);
    if (pl->dir < 0)
        return fail("fcntl", l->root);
    for (char *p = parent; *p;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        int fd = resolve(pl->root, parent, O_PATH | O_DIRECTORY, l->confined, 0);
        if (slash)
            *slash = '/';
        if (fd < 0) {
            if (errno != ENOENT)
                return unresolved(l);
            pl->rest = p;
            return FSOP_OK;
        }
        close(pl->dir);
        pl->dir = fd;
        p = slash ? slash + 1 : p + strlen(p);
    }
    return FSOP_OK;
}

/* Creates what place_open found missing (mode 0777 minus umask). */
static int place_create(struct place *pl, const struct fsop_loc *l)
{
    if (!pl->rest)
        return FSOP_OK;
    if (pl->root < 0) {
        /* The approved directory is configuration, not request input: made freely. */
        struct fsop_loc r = {"/", l->root + 1, l->root, 0};
        int rc = fsop_mkdirs(&r);
        if (rc != FSOP_OK)
            return rc;
        if ((pl->root = open(l->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            return fail("open", l->root);
        if ((pl->dir = fcntl(pl->root, F_DUPFD_CLOEXEC, 0)) < 0)
            return fail("fcntl", l->root);
    }
    for (char *p = pl->rest; *p;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        int fd = -1, rc = FSOP_OK;
        if (mkdirat(pl->dir, p, 0777) < 0 && errno != EEXIST)
            rc = fail("mkdirat", l->abs);
        else if ((fd = resolve(pl->dir, p, O_PATH | O_DIRECTORY, l->confined,
                               RESOLVE_NO_SYMLINKS)) < 0)
            rc = fail("openat2", l->abs);
        if (slash)
            *slash = '/';
        if (rc != FSOP_OK)
            return rc;
        close(pl->dir);
        pl->dir = fd;
        p = slash ? slash + 1 : p + strlen(p);
    }
    pl->rest = NULL;
    return FSOP_OK;
}

/* FSOP_INSIDE if directory DIRFD is the directory ST or lies below it. */
static int check_not_inside(int dirfd, const struct stat *st)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0), rc = FSOP_FAIL;
    if (fd < 0)
        return fail("fcntl", "directory");
    for (int i = 0; i < PATH_MAX; i++) {
        struct stat cur, up;
        if (fstat(fd, &cur) < 0) {
            rc = fail("fstat", "directory");
            break;
        }
        if (same_file(&cur, st)) {
            rc = FSOP_INSIDE;
            break;
        }
        int p = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (p < 0) {
            rc = fail("openat", "..");
            break;
        }
        close(fd);
        fd = p;
        if (fstat(fd, &up) < 0) {
            rc = fail("fstat", "..");
            break;
        }
        if (same_file(&cur, &up)) { /* reached "/" */
            rc = FSOP_OK;
            break;
        }
    }
    close(fd);
    return rc;
}

/* ------------------------------------------------------------- primitives */

/* A new directory with a random name (newfile_random_name) in DFD. */
static int temp_dir(int dfd, char name[32])
{
    for (int i = 0; i < 16; i++) {
        newfile_random_name(name);
        if (mkdirat(dfd, name, 0700) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

/* Result of a failed newfile_rename or newfile_commit for the destination WHAT. */
static int rename_rc(const char *what)
{
    switch (errno) {
    case EEXIST:
    case ENOTEMPTY:
        return FSOP_EXISTS;
    case EISDIR:
        return FSOP_ISDIR;
    case ENOTDIR:
        return FSOP_NOTDIR;
    case EINVAL: /* a directory into itself */
        return FSOP_INSIDE;
    default:
        return fail("renameat", what);
    }
}

static int sync_dir(int dirfd, const char *what)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail("openat", what);
    int rc = fsync(fd) < 0 ? fail("fsync", what) : FSOP_OK;
    close(fd);
    return rc;
}

/* Names in directory DIRFD, without "." and "..". 0, or -1 with errno. */
static int list_dir(int dirfd, struct strlist *out)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            strlist_add(out, xstrdup(de->d_name));
        errno = 0;
    }
    int e = errno;
    closedir(d);
    errno = e;
    return e ? -1 : 0;
}

/* rm -r of NAME in DFD, without following links. 0, or -1 with errno. */
static int remove_tree(int dfd, const char *name, int depth)
{
    if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
        return 0;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return -1;
    if (depth > MAX_DEPTH) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(dfd, name, DIR_FLAGS);
    if (fd < 0)
        return -1;
    struct strlist names = {0};
    int r = list_dir(fd, &names);
    for (size_t i = 0; r == 0 && i < names.n; i++) {
        struct stat st;
        if (fstatat(fd, names.v[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            r = errno == ENOENT ? 0 : -1;
        else if (S_ISDIR(st.st_mode))
            r = remove_tree(fd, names.v[i], depth + 1);
        else
            r = unlinkat(fd, names.v[i], 0);
    }
    int e = errno;
    strlist_free(&names);
    close(fd);
    errno = e;
    return r < 0 ? -1 : unlinkat(dfd, name, AT_REMOVEDIR);
}

/* ------------------------------------------------------------------- copy */

/* All bytes of IN to OUT: copy_file_range(2) where the file systems allow it
 * (reflinks, server-side copies), read/write otherwise. 0, or -1 with errno. */
static int copy_data(int in, int out, off_t size)
{
    off_t done = 0;
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
        if (n > 0) {
            done += n;
            continue;
        }
        if (n == 0 && (done > 0 || size == 0))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
            errno != EOPNOTSUPP && errno != EBADF && errno != EPERM)
            return -1;
        break; /* not supported here, or 0 bytes from a file that has some */
    }
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            off += w;
        }
    }
}

/* Regular file IN (stat ST) to NAME in DFD: written to a new file without a name
 * where the file system allows it, else to a temporary name, fsync'ed, then put
 * in place over NAME (REPLACE) or into a free NAME only (newfile.h). A worker
 * killed meanwhile leaves no partial copy behind on most file systems. */
static int copy_file(int in, const struct stat *st, int dfd, const char *name, int replace,
                     const struct copy_opts *o)
{
    struct newfile nf;
    struct timespec ts[2];
    if (newfile_open(&nf, dfd, NULL, 0600) < 0)
        return fail("openat", name);
    int rc = FSOP_OK, out = nf.fd;
    if (copy_data(in, out, st->st_size) < 0)
        rc = fail("copy", name);
    else if (fchmod(out, st->st_mode & 0777) < 0)
        rc = fail("fchmod", name);
    else if (o->preserve && futimens(out, times_of(st, ts)) < 0)
        rc = fail("futimens", name);
    else if (fsync(out) < 0)
        rc = fail("fsync", name);
    if (rc != FSOP_OK)
        newfile_abort(&nf);
    else if (newfile_commit(&nf, name, replace) < 0)
        rc = rename_rc(name);
    return rc;
}

/* Opens regular file SNAME in SDIR (not followed) and copies it, if it is still the
 * file ST describes. */
static int copy_regular(int sdir, const char *sname, const struct stat *st, int ddir,
                        const char *dname, int replace, const struct copy_opts *o)
{
    int in = openat(sdir, sname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (in < 0)
        return fail("openat", sname);
    struct stat now;
    int rc;
    if (fstat(in, &now) < 0)
        rc = fail("fstat", sname);
    else if (!same_file(&now, st) || !S_ISREG(now.st_mode))
        rc = (log_warnx("%s changed while being copied", sname), FSOP_FAIL);
    else if ((rc = copy_file(in, &now, ddir, dname, replace, o)) == FSOP_OK)
        seen_add(o->seen, &now); /* as it was before its bytes were read */
    close(in);
    return rc;
}

/* Symbolic link SNAME in SDIR recreated as DNAME in DDIR, target unchanged. */
static int copy_link(int sdir, const char *sname, const struct stat *st, int ddir,
                     const char *dname, int replace, const struct copy_opts *o)
{
    size_t cap = st->st_size > 0 && st->st_size < PATH_MAX ? (size_t)st->st_size + 1 : PATH_MAX;
    char *target = xmalloc(cap), tmp[32];
    struct timespec ts[2];
    int rc = FSOP_OK;
    ssize_t n = readlinkat(sdir, sname, target, cap);
    if (n < 0 || (size_t)n >= cap) {
        free(target);
        return n < 0 ? fail("readlinkat", sname)
                     : (log_warnx("%s changed while being copied", sname), FSOP_FAIL);
    }
    target[n] = '\0';
    seen_add(o->seen, st); /* removed later only if still this link, unchanged */
    int made = -1;
    for (int i = 0; i < 16 && made < 0; i++) {
        newfile_random_name(tmp);
        made = symlinkat(target, ddir, tmp);
        if (made < 0 && errno != EEXIST)
            break;
    }
    free(target);
    if (made < 0)
        return fail("symlinkat", dname);
    if (o->preserve && utimensat(ddir, tmp, times_of(st, ts), AT_SYMLINK_NOFOLLOW) < 0)
        rc = fail("utimensat", dname);
    else if (newfile_rename(ddir, tmp, ddir, dname, replace) < 0)
        rc = rename_rc(dname);
    if (rc != FSOP_OK && unlinkat(ddir, tmp, 0) < 0)
        log_warn("unlinkat(%s) failed", tmp);
    return rc;
}

/* Mode and times of a copied directory, once its entries are in. */
static int finish_dir(int d, const struct stat *st, int created, const char *name,
                      const struct copy_opts *o)
{
    struct timespec ts[2];
    if (created && fchmod(d, st->st_mode & 03777) < 0)
        return fail("fchmod", name);
    if (o->preserve && futimens(d, times_of(st, ts)) < 0)
        return fail("futimens", name);
    if (o->move && fsync(d) < 0)
        return fail("fsync", name);
    return FSOP_OK;
}

static int copy_entries(int sfd, int dfd, const struct copy_opts *o, int depth);

/* Directory NAME of SDIR (stat ST) merged into NAME of DDIR, made if missing. */
static int copy_subdir(int sdir, const char *name, const struct stat *st, int ddir,
                       const struct copy_opts *o, int depth)
{
    struct stat cur;
    int created = 0, s = -1, d = -1, rc;
    if (fstatat(ddir, name, &cur, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT || mkdirat(ddir, name, 0700) < 0)
            return fail(errno == ENOENT ? "mkdirat" : "fstatat", name);
        created = 1;
    } else if (!S_ISDIR(cur.st_mode)) {
        log_warnx("cannot copy directory %s onto an existing non-directory", name);
        return FSOP_FAIL;
    }
    if ((s = openat(sdir, name, DIR_FLAGS)) < 0 || fstat(s, &cur) < 0)
        rc = fail("openat", name);
    else if (!same_file(&cur, st))
        rc = (log_warnx("%s changed while being copied", name), FSOP_FAIL);
    else if (seen_add(o->seen, &cur), (d = openat(ddir, name, DIR_FLAGS)) < 0)
        rc = fail("openat", name);
    else if ((rc = copy_entries(s, d, o, depth + 1)) == FSOP_OK)
        rc = finish_dir(d, st, created, name, o);
    close_fd(&s);
    close_fd(&d);
    return rc;
}

/* Every entry of directory SFD into directory DFD: files replaced, directories
 * merged, symbolic links copied as links, other file types skipped (a move fails
 * on them instead, so that removing the source cannot lose them). */
static int copy_entries(int sfd, int dfd, const struct copy_opts *o, int depth)
{
    if (depth > MAX_DEPTH) {
        log_warnx("directory tree deeper than %d levels: not copied", MAX_DEPTH);
        return FSOP_FAIL;
    }
    struct strlist names = {0};
    if (list_dir(sfd, &names) < 0)
        return fail("readdir", "source directory");
    int rc = FSOP_OK;
    for (size_t i = 0; rc == FSOP_OK && i < names.n; i++) {
        const char *n = names.v[i];
        struct stat st;
        if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) /* gone meanwhile: nothing to copy */
                rc = fail("fstatat", n);
        } else if (S_ISDIR(st.st_mode)) {
            rc = copy_subdir(sfd, n, &st, dfd, o, depth);
        } else if (S_ISREG(st.st_mode)) {
            rc = copy_regular(sfd, n, &st, dfd, n, 1, o);
        } else if (S_ISLNK(st.st_mode)) {
            rc = copy_link(sfd, n, &st, dfd, n, 1, o);
        } else if (o->move) {
            log_warnx("cannot move %s: not a regular file, directory or symbolic link", n);
            rc = FSOP_FAIL;
        } else {
            log_warnx("not copying %s: not a regular file, directory or symbolic link", n);
        }
        if (rc != FSOP_OK && rc != FSOP_FAIL) {
            log_warnx("cannot copy %s: the destination holds something else", n);
            rc = FSOP_FAIL;
        }
    }
    strlist_free(&names);
    return rc;
}

/* Directory IN (stat ST) to NAME in DDIR: merged into the existing directory when
 * MERGE, else built under a temporary name and renamed into a free NAME, so the
 * directory appears complete or not at all. */
static int copy_dir_top(int in, const struct stat *st, int ddir, const char *name, int merge,
                        const struct copy_opts *o)
{
    char tmp[32];
    int d, rc;
    if (merge) {
        if ((d = openat(ddir, name, DIR_FLAGS)) < 0)
            return fail("openat", name);
        if ((rc = copy_entries(in, d, o, 1)) == FSOP_OK)
            rc = finish_dir(d, st, 0, name, o);
        close(d);
        return rc;
    }
    if (temp_dir(ddir, tmp) < 0)
        return fail("mkdirat", name);
    if ((d = openat(ddir, tmp, DIR_FLAGS)) < 0)
        rc = fail("openat", tmp);
    else if ((rc = copy_entries(in, d, o, 1)) == FSOP_OK)
        rc = finish_dir(d, st, 1, name, o);
    if (d >= 0)
        close(d);
    if (rc == FSOP_OK && newfile_rename(ddir, tmp, ddir, name, 0) < 0)
        rc = rename_rc(name);
    if (rc != FSOP_OK && remove_tree(ddir, tmp, 0) < 0)
        log_warn("cannot remove %s, the unfinished copy of %s", tmp, name);
    return rc;
}

/* The checks copy and move share once both ends are resolved, in the order of
 * 2.4.2: approval (a path leading out), the source, the destination's parents, and
 * the same path given twice. */
static int both_ends(int src_rc, int dst_rc, const struct fsop_loc *from,
                     const struct fsop_loc *to)
{
    if (src_rc == FSOP_ESCAPE || dst_rc == FSOP_ESCAPE)
        return FSOP_ESCAPE;
    if (src_rc != FSOP_OK)
        return src_rc;
    if (dst_rc == FSOP_NOENT) {
        log_warnx("%s: a parent exists and is not a directory", to->abs);
        return FSOP_FAIL;
    }
    if (dst_rc != FSOP_OK)
        return dst_rc;
    return strcmp(from->abs, to->abs) ? FSOP_OK : FSOP_SAME;
}

int fsop_copy(const struct fsop_loc *from, const struct fsop_loc *to, int overwrite,
              int preserve)
{
    struct place dp = PLACE_INIT;
    struct stat sst, dst;
    struct copy_opts o = {preserve, 0, NULL};
    int sroot = -1, src = -1, in = -1, exists = 0, rc, drc;

    /* The source is followed to its end, below its approved directory. */
    if ((sroot = open(from->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        rc = errno == ENOENT || errno == ENOTDIR ? FSOP_NOENT : fail("open", from->root);
    else if ((src = resolve(sroot, from->rel, O_PATH, from->confined, 0)) < 0)
        rc = unresolved(from);
    else
        rc = fstat(src, &sst) < 0 ? fail("fstat", from->abs) : FSOP_OK;
    drc = place_open(&dp, to, 0);
    if ((rc = both_ends(rc, drc, from, to)) != FSOP_OK)
        goto out;
    if (!S_ISREG(sst.st_mode) && !S_ISDIR(sst.st_mode)) {
        log_warnx("%s is not a regular file or directory: not copied", from->abs);
        rc = FSOP_FAIL;
        goto out;
    }
    if (!dp.rest) {
        if (fstatat(dp.dir, dp.name, &dst, AT_SYMLINK_NOFOLLOW) == 0)
            exists = 1;
        else if (errno != ENOENT) {
            rc = fail("fstatat", to->abs);
            goto out;
        }
    }
    if (exists) {
        rc = same_file(&sst, &dst)                          ? FSOP_SAME
             : !overwrite                                   ? FSOP_EXISTS
             : S_ISREG(sst.st_mode) && S_ISDIR(dst.st_mode) ? FSOP_ISDIR
             : S_ISDIR(sst.st_mode) && !S_ISDIR(dst.st_mode) ? FSOP_NOTDIR
                                                             : FSOP_OK;
        if (rc != FSOP_OK)
            goto out;
    }
    if (S_ISDIR(sst.st_mode) && dp.dir >= 0 && (rc = check_not_inside(dp.dir, &sst)) != FSOP_OK)
        goto out;
    if ((rc = place_create(&dp, to)) != FSOP_OK)
        goto out;

    /* Reopen for reading what was checked: O_PATH cannot be read. */
    in = resolve(sroot, from->rel,
                 S_ISDIR(sst.st_mode) ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK | O_NOCTTY,
                 from->confined, 0);
    struct stat now;
    if (in < 0 || fstat(in, &now) < 0)
        rc = fail("openat2", from->abs);
    else if (!same_file(&now, &sst))
        rc = (log_warnx("%s changed while being copied", from->abs), FSOP_FAIL);
    else if (S_ISREG(sst.st_mode))
        rc = copy_file(in, &now, dp.dir, dp.name, overwrite, &o);
    else
        rc = copy_dir_top(in, &now, dp.dir, dp.name, exists, &o);
out:
    close_fd(&in);
    close_fd(&src);
    close_fd(&sroot);
    place_close(&dp);
    return rc;
}

/* ------------------------------------------------------------ move, delete */

/* rm -r of the source tree NAME in DFD after its copy is in place, removing only
 * entries SEEN says were copied and have not changed since: a file written,
 * added or replaced in the source while the copy ran stays (and so do the
 * directories holding it). Every other entry is removed. 0, or -1 with errno
 * (ENOTEMPTY when something was kept). */
static int remove_moved(int dfd, const char *name, const struct seenlist *seen, int depth,
                        size_t *kept)
{
    if (depth > MAX_DEPTH) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(dfd, name, DIR_FLAGS);
    if (fd < 0)
        return -1;
    struct strlist names = {0};
    int r = list_dir(fd, &names), e = errno;
    for (size_t i = 0; r == 0 && i < names.n; i++) {
        const char *n = names.v[i];
        struct stat st;
        if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                r = -1, e = errno;
        } else if (!seen_unchanged(seen, &st)) {
            log_warnx("%s changed or appeared in the source during the move: kept", n);
            ++*kept;
        } else if (S_ISDIR(st.st_mode)) {
            if (remove_moved(fd, n, seen, depth + 1, kept) < 0 && errno != ENOTEMPTY)
                r = -1, e = errno;
        } else if (unlinkat(fd, n, 0) < 0 && errno != ENOENT) {
            r = -1, e = errno;
        }
    }
    strlist_free(&names);
    close(fd);
    if (r < 0) {
        errno = e;
        return -1;
    }
    return unlinkat(dfd, name, AT_REMOVEDIR);
}

/* The EXDEV half of a move, first part: copy with times, make it durable and put
 * it in place. */
static int move_across_copy(int sdir, const char *sname, const struct stat *st, int ddir,
                            const char *dname, int replace, const char *what,
                            const struct copy_opts *o)
{
    int rc, in;
    if (S_ISREG(st->st_mode)) {
        rc = copy_regular(sdir, sname, st, ddir, dname, replace, o);
    } else if (S_ISLNK(st->st_mode)) {
        rc = copy_link(sdir, sname, st, ddir, dname, replace, o);
    } else if (S_ISDIR(st->st_mode)) {
        struct stat now;
        if ((in = openat(sdir, sname, DIR_FLAGS)) < 0 || fstat(in, &now) < 0)
            rc = fail("openat", what);
        else if (!same_file(&now, st))
            rc = (log_warnx("%s changed while being moved", what), FSOP_FAIL);
        else
            rc = copy_dir_top(in, st, ddir, dname, 0, o);
        if (in >= 0)
            close(in);
    } else {
        log_warnx("%s is not a regular file, directory or symbolic link: not moved", what);
        rc = FSOP_FAIL;
    }
    if (rc != FSOP_OK)
        return rc;
    return sync_dir(ddir, dname);
}

/* Second part: remove the source as far as it is still what was copied. */
static int move_across_remove(int sdir, const char *sname, const struct stat *st,
                              const char *what, struct seenlist *seen)
{
    struct stat now;
    size_t kept = 0;
    qsort(seen->v, seen->n, sizeof *seen->v, seen_cmp);
    if (fstatat(sdir, sname, &now, AT_SYMLINK_NOFOLLOW) < 0 || !same_file(&now, st) ||
        (!S_ISDIR(st->st_mode) && !seen_unchanged(seen, &now))) {
        log_warnx("%s changed while being moved: the copy is in place, the source is kept",
                  what);
        return FSOP_FAIL;
    }
    if (S_ISDIR(st->st_mode) ? remove_moved(sdir, sname, seen, 0, &kept) < 0
                             : unlinkat(sdir, sname, 0) < 0) {
        if (kept)
            log_warnx("%s: %zu entries changed or appeared during the move; the copy is "
                      "in place, they are kept in the source",
                      what, kept);
        else
            log_warn("%s was copied but cannot be removed", what);
        return FSOP_FAIL;
    }
    (void)sync_dir(sdir, sname); /* logged if it fails; the move itself is done */
    return FSOP_OK;
}

/* The EXDEV half of a move: copy with times, make it durable, put it in place,
 * and remove the source only as far as it is still what was copied: an entry
 * added or changed in the source meanwhile is kept there. If anything fails, the
 * source stays. */
static int move_across(int sdir, const char *sname, const struct stat *st, int ddir,
                       const char *dname, int replace, const char *what)
{
    struct seenlist seen = {NULL, 0, 0};
    struct copy_opts o = {1, 1, &seen};
    int rc = move_across_copy(sdir, sname, st, ddir, dname, replace, what, &o);
    if (rc == FSOP_OK)
        rc = move_across_remove(sdir, sname, st, what, &seen);
    free(seen.v);
    return rc;
}

int fsop_move(const struct fsop_loc *from, const struct fsop_loc *to, int overwrite)
{
    struct place sp = PLACE_INIT, dp = PLACE_INIT;
    struct stat sst, dst;
    int rc = place_open(&sp, from, 0), drc = place_open(&dp, to, 0);
    if (rc == FSOP_OK && sp.rest)
        rc = FSOP_NOENT;
    if (rc == FSOP_OK && fstatat(sp.dir, sp.name, &sst, AT_SYMLINK_NOFOLLOW) < 0)
        rc = errno == ENOENT ? FSOP_NOENT : fail("fstatat", from->abs);
    if ((rc = both_ends(rc, drc, from, to)) != FSOP_OK)
        goto out;
    if (!dp.rest) {
        if (fstatat(dp.dir, dp.name, &dst, AT_SYMLINK_NOFOLLOW) == 0) {
            rc = same_file(&sst, &dst)     ? FSOP_SAME
                 : S_ISDIR(dst.st_mode)    ? FSOP_ISDIR
                 : !overwrite              ? FSOP_EXISTS
                 : S_ISDIR(sst.st_mode)    ? FSOP_NOTDIR
                                           : FSOP_OK;
            if (rc != FSOP_OK)
                goto out;
        } else if (errno != ENOENT) {
            rc = fail("fstatat", to->abs);
            goto out;
        }
    }
    if (S_ISDIR(sst.st_mode) && dp.dir >= 0 && (rc = check_not_inside(dp.dir, &sst)) != FSOP_OK)
        goto out;
    if ((rc = place_create(&dp, to)) != FSOP_OK)
        goto out;
    /* A directory only ever moves to a free name: rename(2) would replace an empty
     * directory that appeared at TO since it was checked. */
    if (newfile_rename(sp.dir, sp.name, dp.dir, dp.name, overwrite && !S_ISDIR(sst.st_mode)) == 0)
        rc = FSOP_OK;
    else if (errno == EXDEV)
        rc = move_across(sp.dir, sp.name, &sst, dp.dir, dp.name, overwrite, from->abs);
    else if ((rc = rename_rc(to->abs)) == FSOP_EXISTS && overwrite)
        rc = fstatat(dp.dir, dp.name, &dst, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(dst.st_mode)
                 ? FSOP_NOTDIR
                 : FSOP_ISDIR;
out:
    place_close(&sp);
    place_close(&dp);
    return rc;
}

int fsop_delete(const struct fsop_loc *l)
{
    struct place pl = PLACE_INIT;
    struct stat st;
    int rc = place_open(&pl, l, 0);
    if (rc == FSOP_OK && pl.rest)
        rc = FSOP_NOENT;
    if (rc == FSOP_OK) {
        if (fstatat(pl.dir, pl.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            rc = errno == ENOENT ? FSOP_NOENT : fail("fstatat", l->abs);
        else if (S_ISDIR(st.st_mode))
            rc = FSOP_ISDIR;
        else if (unlinkat(pl.dir, pl.name, 0) < 0)
            rc = errno == ENOENT   ? FSOP_NOENT
                 : errno == EISDIR ? FSOP_ISDIR
                                   : fail("unlinkat", l->abs);
    }
    place_close(&pl);
    return rc;
}

int fsop_mkdirs(const struct fsop_loc *l)
{
    struct place pl = PLACE_INIT;
    int rc = place_open(&pl, l, 1);
    if (rc == FSOP_NOENT) {
        log_warnx("cannot create %s: a component exists and is not a directory", l->abs);
        rc = FSOP_FAIL;
    }
    if (rc == FSOP_OK)
        rc = place_create(&pl, l);
    place_close(&pl);
    return rc;
}
