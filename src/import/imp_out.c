/* Without --force the file is moved into place with link(2), which fails if the
 * name exists, so even a file that appears while we convert is not replaced. */
#include "imp_out.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int imp_out_open(struct imp_out *o, const char *final, unsigned mode)
{
    memset(o, 0, sizeof *o);
    o->final = final;
    if (final) {
        o->tmp = xasprintf("%s.XXXXXX", final);
    } else {
        const char *dir = getenv("TMPDIR");
        o->tmp = xasprintf("%s/butlerd-import.XXXXXX", dir && *dir ? dir : "/tmp");
    }
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        fprintf(stderr, "butlerd-import: cannot create %s: %s\n", o->tmp, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    (void)fchmod(fd, (mode_t)mode);
    o->f = fdopen(fd, "w");
    return 0;
}

static int copy_out(const char *name)
{
    FILE *in = fopen(name, "r");
    if (!in)
        return -1;
    char b[65536];
    size_t n;
    while ((n = fread(b, 1, sizeof b, in)) > 0)
        if (fwrite(b, 1, n, stdout) != n)
            break;
    fclose(in);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

static int place(struct imp_out *o, int force)
{
    if (force)
        return rename(o->tmp, o->final);
    if (link(o->tmp, o->final) == 0)
        return unlink(o->tmp), 0;
    if (errno == EEXIST)
        return -1;
    /* no hard links here (some network file systems): check, then rename */
    struct stat st;
    if (stat(o->final, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(o->tmp, o->final);
}

int imp_out_commit(struct imp_out *o, int force)
{
    int bad = fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (bad) {
        fprintf(stderr, "butlerd-import: cannot write %s: %s\n", o->tmp, strerror(errno));
        imp_out_discard(o);
        return -1;
    }
    if (!o->final) {
        int rc = copy_out(o->tmp);
        imp_out_discard(o);
        return rc;
    }
    if (place(o, force) < 0) {
        fprintf(stderr, "butlerd-import: %s: %s%s\n", o->final, strerror(errno),
                errno == EEXIST ? " (use --force to replace it)" : "");
        imp_out_discard(o);
        return -1;
    }
    free(o->tmp);
    o->tmp = NULL;
    return 0;
}

void imp_out_discard(struct imp_out *o)
{
    if (o->f)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp)
        unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
}
