/* butlerd-import: converts a Butler YAML configuration (and schedule file) for
 * butlerd. Command line and exit status: butlerd-import(8). */
#include "imp_conf.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define EX_USAGE_ 64

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "butlerd-import: %s\n", why);
    fprintf(stderr, "usage: butlerd-import [--check] [-o OUT.conf] [--force] BUTLER.yaml\n"
                    "       butlerd-import [--check] [--force] --schedules IN.yaml "
                    "[-s OUT.json]\n");
    return EX_USAGE_;
}

/* An existing output without --force is refused before anything is read. */
static int exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"check", no_argument, NULL, 'c'},  {"force", no_argument, NULL, 'f'},
        {"schedules", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct imp_opts o = {0};
    int ch;
    while ((ch = getopt_long(argc, argv, "o:s:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': o.check = 1; break;
        case 'f': o.force = 1; break;
        case 'o': o.out = optarg; break;
        case 's': o.sched_out = optarg; break;
        case 'S': o.sched_in = optarg; break;
        case 'h': usage(NULL); return 0;
        default: return usage(NULL);
        }
    }
    if (argc - optind > 1)
        return usage("one Butler configuration file at a time");
    o.in = optind < argc ? argv[optind] : NULL;
    if (!o.in && !o.sched_in)
        return usage("no Butler configuration file given");
    if (o.sched_out && !o.sched_in)
        return usage("-s needs --schedules");
    if (o.out && (o.check || !o.in))
        return usage(o.check ? "--check writes nothing: drop -o" : "-o needs BUTLER.yaml");
    if (o.sched_out && o.check)
        return usage("--check writes nothing: drop -s");
    if (o.in && o.sched_in && !o.out && !o.sched_out && !o.check)
        return usage("both conversions to standard output: give -o or -s");
    const char *clash = !o.force && exists(o.out) ? o.out : !o.force && exists(o.sched_out)
                                                                ? o.sched_out : NULL;
    if (clash) {
        fprintf(stderr, "butlerd-import: %s exists; use --force to replace it\n", clash);
        return 1;
    }
    int rc = 0;
    if (o.in)
        rc |= imp_conf_run(&o);
    if (o.sched_in && !rc)
        rc |= imp_sched_run(&o);
    return rc;
}
