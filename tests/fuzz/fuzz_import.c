/* butlerd-import (src/import): libyaml into the bounded tree (depth, node budget
 * against alias bombs, duplicate keys), comment finding, the libconfig writer and
 * the schedule converter, on arbitrary file text. imp_yaml_load takes a path, so
 * the input is written to a file in a private directory first. The output goes to
 * /dev/null; butlerd's own loader on it is fuzz_cfg's job. */
#include "fuzz.h"
#include "imp_butlerd.h"
#include "imp_diff.h"
#include "imp_emit.h"
#include "imp_sched.h"

#include <fcntl.h>
#include <unistd.h>

static char dir[64], path[96];
static FILE *devnull;

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    snprintf(dir, sizeof dir, "/tmp/butlerd-fuzz-import.XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/in.yaml", dir);
    atexit(cleanup);
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    return 0;
}

static void convert(const struct imp_doc *doc)
{
    struct imp_report rep = {0};
    const struct imp_node *butler = imp_map_get(doc->root, "Butler");
    if (butler && butler->kind == IMP_MAP) {
        struct imp_emit e = {.out = devnull, .file = path, .rep = &rep};
        imp_comment_scan(&doc->lines, &e.cm);
        imp_emit_butler(&e, butler, 1);
        imp_butlerd_write(devnull, butler, &rep);
        imp_diff_report(butler, &rep);
        imp_comment_free(&e.cm);
    }
    struct buf json = {0};
    imp_sched_convert(path, doc->root, &json, &rep);
    buf_free(&json);
    imp_report_print(&rep, devnull);
    imp_report_free(&rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    struct imp_doc doc;
    if (imp_yaml_load(path, &doc) == 0) {
        convert(&doc);
        imp_yaml_free(&doc);
    }
    return 0;
}
