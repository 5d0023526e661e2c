/* The key-value snapshot file. The format is described in butlerd(8),
 * "Persistence": a header, one record per namespace followed by its keys, and an
 * end record with the counts and a SHA-256 of everything before it. It is binary
 * so that loading a million keys is a single pass over length-prefixed records,
 * with nothing parsed into a tree and nothing left on the heap to be inherited by
 * every forked worker: the file is read through one buffer and each key goes
 * straight into shared memory. A file is checked whole (structure, counts,
 * checksum) before anything is loaded, so a damaged one loads nothing.
 *
 * The JSON format of older versions (version 1) is still loaded, with json-c's
 * whole-document parser; the next snapshot is written in this format.
 *
 * Every file operation goes through a descriptor of the directory, opened once
 * it passed the ownership and mode check, so the checked directory is the one
 * written; the temporary file is a newfile (newfile.h). */
#include "kv_snapshot.h"
#include "cfg.h"
#include "kv.h"
#include "log.h"
#include "newfile.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SNAP_MAGIC "BUTLERKV"
#define SNAP_VERSION 2
#define SNAP_HEADER 32        /* magic, version, header size, savedAt, reserved */
#define SNAP_HASH 32          /* SHA-256 */
#define SNAP_RECORD_MAX (64u << 20) /* larger than any key or value can be: damage */
#define IO_BUF (4u << 20)  /* also bounds a batch of keys (struct load) */

/* ------------------------------------------------------- the directory */

/* Splits PATH into a copy of its directory and its last component. */
static char *split(const char *path, const char **base)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        *base = path;
        return xstrdup(".");
    }
    *base = path + (slash - dir) + 1;
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return dir;
}

static int owner_ok(const struct stat *st, uid_t uid)
{
    return st->st_uid == 0 || st->st_uid == uid;
}

/* Why directory DIR (stat ST) may not hold the snapshot, or NULL if it may. The
 * directory itself must not be writable by group or others at all; a directory
 * above it may be if it has the sticky bit, as /tmp does, since then nobody else
 * can rename or remove what is in it. */
static char *unsafe(const char *dir, const struct stat *st, uid_t uid, int is_parent)
{
    if (!S_ISDIR(st->st_mode))
        return xasprintf("%s is not a directory", dir);
    if (!owner_ok(st, uid))
        return xasprintf("directory %s is owned by uid %ld, not by root or the user butlerd "
                         "runs as (uid %ld)",
                         dir, (long)st->st_uid, (long)uid);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(is_parent && (st->st_mode & S_ISVTX)))
        return xasprintf("directory %s is writable by group or others (mode %04o)", dir,
                         (unsigned)(st->st_mode & 07777));
    return NULL;
}

/* Opens the directory of PATH if it and every directory above it pass unsafe().
 * Returns the descriptor, or -1 with *WHY set (malloc'd), or -1 with *WHY NULL and
 * errno ENOENT if the directory does not exist. *BASE is PATH's last component. */
static int open_dir(const char *path, uid_t uid, const char **base, char **why)
{
    char *dir = split(path, base), *real = NULL;
    int fd = -1;
    struct stat st, fst;
    *why = NULL;
    if (!**base) {
        *why = xasprintf("%s names a directory, not a file", path);
        goto out;
    }
    real = realpath(dir, NULL);
    if (!real) {
        if (errno != ENOENT)
            *why = xasprintf("cannot resolve directory %s: %s", dir, strerror(errno));
        goto out;
    }
    /* The directory, then each one above it up to "/". */
    char *p = xstrdup(real);
    for (int parent = 0;; parent = 1) {
        if (stat(p, &st) < 0) {
            *why = xasprintf("cannot stat %s: %s", p, strerror(errno));
            break;
        }
        if ((*why = unsafe(p, &st, uid, parent)))
            break;
        char *slash = strrchr(p, '/');
        if (!slash || (slash == p && !p[1]))
            break;
        if (slash == p)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    free(p);
    if (*why)
        goto out;
    /* What is opened must be what was checked, even if the path changed since. */
    fd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        *why = xasprintf("cannot open directory %s: %s", real, strerror(errno));
    } else if (fstat(fd, &fst) < 0 || stat(real, &st) < 0 || fst.st_dev != st.st_dev ||
               fst.st_ino != st.st_ino || (*why = unsafe(real, &fst, uid, 0))) {
        if (!*why)
            *why = xasprintf("directory %s changed while being checked", real);
        close(fd);
        fd = -1;
    }
out:
    if (fd < 0 && !*why)
        errno = ENOENT;
    free(real);
    free(dir);
    return fd;
}

uid_t kv_snapshot_uid(const struct cfg *c)
{
    if (*c->user) {
        struct passwd *pw = getpwnam(c->user);
        if (pw)
            return pw->pw_uid;
    }
    return geteuid();
}

int kv_snapshot_check(const struct cfg *c, struct strlist *errs, struct strlist *warns)
{
    const char *file = c->kvPersistence.file, *base;
    if (!*file)
        return 0;
    /* A relative file is resolved against the working directory the start changes
     * to; -t runs before that. Joined only when absolute, so it means the same
     * before and after the chdir. */
    char *path = file[0] != '/' && c->workingDirectory[0] == '/'
                     ? xasprintf("%s/%s", c->workingDirectory, file)
                     : xstrdup(file);
    char *why;
    int fd = open_dir(path, kv_snapshot_uid(c), &base, &why), rc = 0;
    if (fd >= 0) {
        close(fd);
    } else if (why) {
        strlist_add(errs, xasprintf("butlerd.kvPersistence.file %s: %s; refusing to use it "
                                    "(make the directory belong to root or the user butlerd "
                                    "runs as, writable by its owner only)",
                                    file, why));
        free(why);
        rc = -1;
    } else {
        char *dir = split(path, &base);
        strlist_add(warns, xasprintf("butlerd.kvPersistence.file %s: directory %s does not "
                                     "exist; snapshots fail until it is created",
                                     file, dir));
        free(dir);
    }
    free(path);
    return rc;
}

void kv_snapshot_cleanup(const char *path, uid_t uid)
{
    const char *base;
    char *why;
    int fd = open_dir(path, uid, &base, &why);
    if (fd < 0) {
        free(why);
        return;
    }
    char *prefix = xasprintf("%s.tmp.", base);
    size_t plen = strlen(prefix);
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* closedir closes its own */
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat st;
        if (strncmp(de->d_name, prefix, plen) != 0 || !de->d_name[plen] ||
            fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
            continue;
        if (unlinkat(fd, de->d_name, 0) < 0)
            log_warn("cannot remove %s.tmp.%s, left by an unfinished snapshot", path,
                     de->d_name + plen);
        else
            log_warnx("removed %s.tmp.%s (%lld bytes), left by an unfinished snapshot", path,
                      de->d_name + plen, (long long)st.st_size);
    }
    if (d)
        closedir(d);
    else if (dfd >= 0)
        close(dfd);
    free(prefix);
    close(fd);
}

/* ------------------------------------------------------------- writing */

struct writer {
    int fd;
    unsigned char *buf;
    size_t len;
    EVP_MD_CTX *md;
    int err; /* errno of the first failed write */
};

static void w_flush(struct writer *w)
{
    if (w->md)
        EVP_DigestUpdate(w->md, w->buf, w->len);
    for (size_t off = 0; off < w->len && !w->err;) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->err = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    w->len = 0;
}

static void w_put(struct writer *w, const void *p, size_t n)
{
    const unsigned char *s = p;
    while (n) {
        if (w->len == IO_BUF)
            w_flush(w);
        size_t k = IO_BUF - w->len < n ? IO_BUF - w->len : n;
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

/* Integers are little-endian in the file, whatever the host. */
static void w_u32(struct writer *w, uint32_t v)
{
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    w_put(w, b, 4);
}

static void w_u64(struct writer *w, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    w_put(w, b, 8);
}

static void write_all(struct writer *w, const struct kv_dump *d)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    w_put(w, SNAP_MAGIC, 8);
    w_u32(w, SNAP_VERSION);
    w_u32(w, SNAP_HEADER);
    w_u64(w, (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000);
    w_u64(w, 0);
    for (size_t i = 0; i < d->nns; i++) {
        const struct kv_dump_ns *ns = &d->ns[i];
        w_put(w, "N", 1);
        w_u32(w, ns->len);
        w_put(w, ns->name, ns->len);
        for (size_t k = ns->first; k < ns->first + ns->count; k++) {
            const struct kv_dump_key *e = &d->keys[k];
            w_put(w, "K", 1);
            w_u32(w, e->klen);
            w_u32(w, e->vlen);
            w_u64(w, (uint64_t)e->expires);
            w_put(w, e->key, e->klen);
            w_put(w, e->value, e->vlen);
        }
    }
    w_put(w, "E", 1);
    w_u64(w, d->nns);
    w_u64(w, d->nkeys);
    w_flush(w);
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned hlen = 0;
    EVP_DigestFinal_ex(w->md, hash, &hlen);
    EVP_MD_CTX_free(w->md);
    w->md = NULL;
    w_put(w, hash, SNAP_HASH);
    w_flush(w);
}

int kv_snapshot_save(const char *path)
{
    const char *base;
    char *why, tmp[256];
    int dirfd = open_dir(path, geteuid(), &base, &why);
    if (dirfd < 0) {
        if (why)
            log_errorx("snapshot %s not written: %s", path, why);
        else
            log_errorx("snapshot %s not written: its directory does not exist", path);
        free(why);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", base, (long)getpid());
    struct newfile nf;
    if (newfile_open(&nf, dirfd, tmp, 0600) < 0) {
        log_error("cannot create a snapshot file in the directory of %s", path);
        close(dirfd);
        return -1;
    }
    struct kv_dump d;
    kv_dump(&d);
    struct writer w = {nf.fd, xmalloc(IO_BUF), 0, EVP_MD_CTX_new(), 0};
    if (!w.md || !EVP_DigestInit_ex(w.md, EVP_sha256(), NULL))
        w.err = ENOMEM;
    else
        write_all(&w, &d);
    EVP_MD_CTX_free(w.md);
    free(w.buf);
    kv_dump_free(&d);
    int rc = -1;
    if (w.err) {
        errno = w.err;
        log_error("cannot write snapshot %s", path);
    } else if (fsync(nf.fd) < 0) {
        log_error("cannot flush snapshot %s", path);
    } else if (newfile_commit(&nf, base, 1) < 0) {
        log_error("cannot put snapshot %s in place", path);
    } else {
        /* The rename itself must reach the disk too. */
        if (fsync(dirfd) < 0)
            log_warn("fsync of the directory of %s", path);
        rc = 0;
    }
    if (rc < 0 && nf.fd >= 0)
        newfile_abort(&nf);
    close(dirfd);
    return rc;
}

/* ------------------------------------------------------------- reading */

struct reader {
    int fd;
    unsigned char *buf;
    size_t cap, pos, len; /* unread bytes: buf[pos, len) */
    uint64_t off;         /* file offset of buf[0] */
    uint64_t limit;       /* bytes before the checksum */
    EVP_MD_CTX *md;       /* pass 1: hashes every byte read */
    int err;
};

static uint64_t r_at(const struct reader *r) { return r->off + r->pos; }

/* The next N bytes, or NULL at the end of the records or on a read error. */
static const unsigned char *r_need(struct reader *r, size_t n)
{
    if (r->len - r->pos < n) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->off += r->pos;
        r->len -= r->pos;
        r->pos = 0;
        if (n > r->cap) {
            r->cap = n;
            r->buf = xrealloc(r->buf, r->cap);
        }
        while (r->len < n) {
            uint64_t left = r->limit - (r->off + r->len);
            size_t want = r->cap - r->len < left ? r->cap - r->len : (size_t)left;
            if (!want)
                return NULL;
            ssize_t got = read(r->fd, r->buf + r->len, want);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                r->err = got < 0 ? errno : EIO; /* shorter than fstat said */
                return NULL;
            }
            if (r->md)
                EVP_DigestUpdate(r->md, r->buf + r->len, (size_t)got);
            r->len += (size_t)got;
        }
    }
    const unsigned char *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

#define BATCH 65536

struct load {
    int apply; /* pass 2: write into the store */
    int64_t now;
    size_t keymax, valmax;
    uint64_t nns, nkeys; /* records seen */
    uint64_t live;       /* pass 1: keys not expired */
    long loaded, dropped;
    char *ns; /* current namespace (pass 2), NULL if it was dropped */
    size_t nslen;
    struct kv_dump_key batch[BATCH]; /* pass 2: keys not yet written, in the buffer */
    size_t nbatch;
};

/* Writes the batched keys. Their bytes are in the reader's buffer, so this runs
 * before anything that may refill it. */
static void flush(struct load *l)
{
    if (!l->nbatch)
        return;
    size_t ok = kv_restore_keys(l->ns, l->nslen, l->batch, l->nbatch);
    l->loaded += (long)ok;
    l->dropped += (long)(l->nbatch - ok);
    l->nbatch = 0;
}

static int r_has(const struct reader *r, size_t n) { return r->len - r->pos >= n; }

/* One pass over the records after the header; returns NULL if they are well-formed
 * and end with an end record whose counts match, else why not (malloc'd). */
static char *walk(struct reader *r, struct load *l)
{
    const unsigned char *p;
    for (;;) {
        uint64_t at = r_at(r);
        if (!r_has(r, 1 + 16))
            flush(l);
        if (!(p = r_need(r, 1)))
            return r->err ? xasprintf("read error: %s", strerror(r->err))
                          : xasprintf("truncated: no end record");
        switch (*p) {
        case 'N': {
            flush(l);
            if (!(p = r_need(r, 4)))
                return xasprintf("truncated namespace record at offset %llu",
                                 (unsigned long long)at);
            uint32_t len = get_u32(p);
            if (len > SNAP_RECORD_MAX || !(p = r_need(r, len)))
                return xasprintf("damaged namespace record at offset %llu",
                                 (unsigned long long)at);
            l->nns++;
            if (!l->apply)
                break;
            free(l->ns);
            l->ns = NULL;
            if (len && len <= l->keymax &&
                kv_restore((const char *)p, len, NULL, 0, NULL, 0, 0) == KV_OK) {
                l->ns = xmalloc(len);
                memcpy(l->ns, p, len);
                l->nslen = len;
            } else {
                l->dropped++;
            }
            break;
        }
        case 'K': {
            if (!l->nns)
                return xasprintf("key record before any namespace at offset %llu",
                                 (unsigned long long)at);
            if (!(p = r_need(r, 16)))
                return xasprintf("truncated key record at offset %llu", (unsigned long long)at);
            uint32_t klen = get_u32(p), vlen = get_u32(p + 4);
            int64_t exp = (int64_t)get_u64(p + 8);
            if (klen > SNAP_RECORD_MAX || vlen > SNAP_RECORD_MAX)
                return xasprintf("damaged key record at offset %llu", (unsigned long long)at);
            if (!r_has(r, (size_t)klen + vlen))
                flush(l);
            if (!(p = r_need(r, (size_t)klen + vlen)))
                return xasprintf("truncated key record at offset %llu", (unsigned long long)at);
            l->nkeys++;
            if (exp && exp <= l->now)
                break; /* expired while butlerd was down */
            l->live++;
            if (!l->apply)
                break;
            if (!l->ns || !klen || klen > l->keymax || vlen > l->valmax) {
                l->dropped++;
                break;
            }
            l->batch[l->nbatch++] =
                (struct kv_dump_key){(const char *)p, (const char *)p + klen, klen, vlen, exp};
            if (l->nbatch == BATCH)
                flush(l);
            break;
        }
        case 'E':
            flush(l);
            if (!(p = r_need(r, 16)))
                return xasprintf("truncated end record at offset %llu", (unsigned long long)at);
            if (get_u64(p) != l->nns || get_u64(p + 8) != l->nkeys)
                return xasprintf("the end record counts %llu namespaces and %llu keys, the "
                                 "file has %llu and %llu",
                                 (unsigned long long)get_u64(p), (unsigned long long)get_u64(p + 8),
                                 (unsigned long long)l->nns, (unsigned long long)l->nkeys);
            if (r_at(r) != r->limit)
                return xasprintf("data after the end record at offset %llu",
                                 (unsigned long long)r_at(r));
            return NULL;
        default:
            return xasprintf("unknown record type 0x%02x at offset %llu", *p,
                             (unsigned long long)at);
        }
    }
}

/* Checks the header; returns NULL or why not (malloc'd). */
static char *header(struct reader *r)
{
    const unsigned char *p = r_need(r, SNAP_HEADER);
    if (!p)
        return xasprintf("truncated header");
    if (memcmp(p, SNAP_MAGIC, 8) != 0)
        return xasprintf("not a butlerd-kv snapshot");
    uint32_t version = get_u32(p + 8), hsize = get_u32(p + 12);
    if (version != SNAP_VERSION)
        return xasprintf("format version %u, this butlerd reads versions 1 and %d", version,
                         SNAP_VERSION);
    if (hsize < SNAP_HEADER || hsize > SNAP_RECORD_MAX || !r_need(r, hsize - SNAP_HEADER))
        return xasprintf("damaged header");
    return NULL;
}

/* Pass 1 (checks everything, loads nothing) or pass 2 (loads) over FD of SIZE
 * bytes. Returns NULL or why the file is unusable (malloc'd). */
static char *pass(int fd, uint64_t size, struct load *l)
{
    struct reader r = {fd, xmalloc(IO_BUF), IO_BUF, 0, 0, 0, size - SNAP_HASH, NULL, 0};
    char *why = NULL;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        why = xasprintf("lseek: %s", strerror(errno));
        goto out;
    }
    if (!l->apply && (!(r.md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(r.md, EVP_sha256(), NULL))) {
        why = xasprintf("cannot compute SHA-256");
        goto out;
    }
    if ((why = header(&r)) || (why = walk(&r, l)) || l->apply)
        goto out;
    unsigned char want[EVP_MAX_MD_SIZE], got[SNAP_HASH];
    unsigned wlen = 0;
    EVP_DigestFinal_ex(r.md, want, &wlen);
    if (pread(fd, got, SNAP_HASH, (off_t)r.limit) != SNAP_HASH)
        why = xasprintf("cannot read the checksum");
    else if (wlen != SNAP_HASH || memcmp(want, got, SNAP_HASH) != 0)
        why = xasprintf("checksum mismatch");
out:
    EVP_MD_CTX_free(r.md);
    free(r.buf);
    return why;
}

/* ------------------------------------------------ JSON of older versions */

static char *load_json(int fd, struct load *l)
{
    json_object *root = json_object_from_fd(fd), *v, *arr;
    if (!root || !json_object_object_get_ex(root, "format", &v) ||
        strcmp(json_object_get_string(v), "butlerd-kv") != 0 ||
        !json_object_object_get_ex(root, "version", &v) || json_object_get_int(v) != 1 ||
        !json_object_object_get_ex(root, "namespaces", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        json_object_put(root);
        return xstrdup(root ? "not a butlerd-kv version 1 file" : "not valid JSON");
    }
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *nsv, *keys;
        if (!json_object_object_get_ex(o, "namespace", &nsv) ||
            !json_object_is_type(nsv, json_type_string) ||
            !json_object_object_get_ex(o, "keys", &keys) ||
            !json_object_is_type(keys, json_type_array)) {
            l->dropped++;
            continue;
        }
        const char *ns = json_object_get_string(nsv);
        size_t nslen = (size_t)json_object_get_string_len(nsv);
        if (nslen == 0 || nslen > l->keymax ||
            kv_restore(ns, nslen, NULL, 0, NULL, 0, 0) != KV_OK) {
            l->dropped += 1 + (long)json_object_array_length(keys);
            continue;
        }
        for (size_t k = 0; k < json_object_array_length(keys); k++) {
            json_object *e = json_object_array_get_idx(keys, k), *kv, *vv, *xv = NULL;
            if (!json_object_object_get_ex(e, "key", &kv) ||
                !json_object_object_get_ex(e, "value", &vv) ||
                !json_object_is_type(kv, json_type_string) ||
                !json_object_is_type(vv, json_type_string)) {
                l->dropped++;
                continue;
            }
            json_object_object_get_ex(e, "expiresAt", &xv);
            int64_t exp = xv ? json_object_get_int64(xv) : 0;
            if (exp && exp <= l->now)
                continue;
            size_t klen = (size_t)json_object_get_string_len(kv);
            size_t vlen = (size_t)json_object_get_string_len(vv);
            if (klen == 0 || klen > l->keymax || vlen > l->valmax ||
                kv_restore(ns, nslen, json_object_get_string(kv), klen,
                           json_object_get_string(vv), vlen, exp) != KV_OK) {
                l->dropped++;
                continue;
            }
            l->loaded++;
        }
    }
    json_object_put(root);
    return NULL;
}

static void quarantine(int dirfd, const char *base, const char *path, const char *why)
{
    char *bad = xasprintf("%s.bad", base);
    if (renameat(dirfd, base, dirfd, bad) < 0)
        log_error("snapshot %s is unusable (%s) and cannot be renamed to %s.bad", path, why,
                  path);
    else
        log_errorx("snapshot %s is unusable (%s); renamed to %s.bad, starting with an empty "
                   "store",
                   path, why, path);
    free(bad);
}

long kv_snapshot_load(const char *path, uid_t uid)
{
    const char *base;
    char *derr = NULL;
    int dirfd = open_dir(path, uid, &base, &derr);
    if (dirfd < 0) {
        long rc = derr ? -1 : 0;
        if (derr)
            log_errorx("snapshot %s not loaded: %s", path, derr);
        free(derr);
        return rc;
    }
    int fd = openat(dirfd, base, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        long rc = errno == ENOENT ? 0 : -1;
        if (rc < 0)
            log_error("cannot open snapshot %s", path);
        close(dirfd);
        return rc;
    }
    struct load *l = xcalloc(1, sizeof *l);
    l->now = kv_now_ms();
    l->keymax = kv_key_max();
    l->valmax = kv_value_max();
    struct stat st;
    unsigned char first[8] = {0};
    ssize_t n = pread(fd, first, sizeof first, 0);
    long rc = -1;
    char *why = NULL;
    int64_t t0 = 0, t1 = 0;
    if (fstat(fd, &st) < 0 || n < 0) {
        log_error("cannot read snapshot %s", path);
        goto out;
    }
    size_t skip = 0;
    while (skip < (size_t)n && strchr(" \t\r\n", first[skip]))
        skip++;
    if (n == (ssize_t)sizeof first && memcmp(first, SNAP_MAGIC, 8) == 0) {
        if ((uint64_t)st.st_size < SNAP_HEADER + SNAP_HASH)
            why = xasprintf("truncated");
        else if (t0 = now_ms(), !(why = pass(fd, (uint64_t)st.st_size, l))) {
            t1 = now_ms();
            /* Checked whole: now load it, pre-faulting the memory it will take. */
            uint64_t live = l->live;
            memset(l, 0, sizeof *l);
            l->apply = 1;
            l->now = kv_now_ms();
            l->keymax = kv_key_max();
            l->valmax = kv_value_max();
            struct kv_prefault *pf = kv_prefault_start(live);
            why = pass(fd, (uint64_t)st.st_size, l);
            kv_prefault_end(pf);
            log_debug("snapshot %s: checked in %lld ms, loaded in %lld ms", path,
                      (long long)(t1 - t0), (long long)(now_ms() - t1));
            if (why) /* the file changed between the passes: keep what loaded */
                log_errorx("snapshot %s: %s while loading", path, why);
            free(why);
            why = NULL;
        }
    } else if (skip < (size_t)n && first[skip] == '{') {
        l->apply = 1;
        why = load_json(fd, l);
    } else {
        why = xasprintf("not a butlerd-kv snapshot");
    }
    if (why) {
        quarantine(dirfd, base, path, why);
        free(why);
        goto out;
    }
    if (l->dropped)
        log_warnx("snapshot %s: %ld entries dropped (malformed or over the current limits)",
                  path, l->dropped);
    rc = l->loaded;
out:
    free(l->ns);
    free(l);
    close(fd);
    close(dirfd);
    return rc;
}
