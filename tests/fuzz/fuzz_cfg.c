/* The configuration loader (src/cfg.c cfg_load): libconfig parsing, the key table
 * walk with its type and bound checks, and the validation, on arbitrary file text;
 * then the reload step that keeps restart-only keys. cfg_load takes a path, so the
 * input is written to a file in a private directory first. Inputs with @include
 * are skipped: an include would make the loader read other files of this machine
 * (a configuration file is trusted; /dev/zero there is not a bug). */
#include "cfg.h"
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

static char dir[64], path[96];
static struct cfg *base;

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static int write_file(const uint8_t *d, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, d + off, n - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    close(fd);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    snprintf(dir, sizeof dir, "/tmp/butlerd-fuzz-cfg.XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/butlerd.conf", dir);
    atexit(cleanup);
    static const char minimal[] = "Butler = { logLevel = \"info\"; };\n";
    write_file((const uint8_t *)minimal, sizeof minimal - 1);
    struct cfg_msgs m = {0};
    base = cfg_load(path, &m);
    cfg_msgs_free(&m);
    if (!base) {
        fprintf(stderr, "the minimal configuration does not load\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536 || memmem(data, size, "@include", 8))
        return 0;
    write_file(data, size);
    struct cfg_msgs m = {0};
    struct cfg *c = cfg_load(path, &m);
    if (c) {
        FUZZ_ASSERT(m.errors.n == 0);
        struct strlist changed = {0};
        cfg_keep_restart_keys(base, c, &changed);
        strlist_free(&changed);
        cfg_free(c);
    } else {
        FUZZ_ASSERT(m.errors.n > 0);
    }
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    for (size_t i = 0; i < m.errors.n; i++) {
        FUZZ_ASSERT(m.errors.v[i] && *m.errors.v[i]);
        if (verbose)
            fprintf(stderr, "error: %s\n", m.errors.v[i]);
    }
    cfg_msgs_free(&m);
    return 0;
}
