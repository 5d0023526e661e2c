/* butlerd: command line, configuration test (-t) and daemonizing; then the master. */
#include "butlerd.h"
#include "cfg.h"
#include "log.h"
#include "master.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: butlerd [-f] [-t] [-c file] [-V] [-h]\n"
            "  -c file  configuration file (default %s)\n"
            "  -t       test the configuration and exit\n"
            "  -f       stay in the foreground and log to stderr\n"
            "  -V       print the version and exit\n"
            "  -h       print this help and exit\n",
            BUTLERD_DEFAULT_CONF);
}

static void print_list(const struct strlist *l, const char *prefix)
{
    for (size_t i = 0; i < l->n; i++)
        fprintf(stderr, "%s%s\n", prefix, l->v[i]);
}

/* Detaches from the terminal. The original process waits until the master reports
 * that it is ready (or failed), so an init script learns the real outcome. */
static int daemonize(int *notify_fd)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("butlerd: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("butlerd: fork");
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        char c = '1';
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR) {
        }
        if (n != 1 || c != '0') {
            fprintf(stderr, "butlerd: failed to start, see the log\n");
            _exit(EXIT_FATAL);
        }
        _exit(EXIT_OK);
    }
    close(p[0]);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(EXIT_OK);
    umask(022);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    *notify_fd = p[1];
    return 0;
}

int main(int argc, char **argv)
{
    const char *conf = BUTLERD_DEFAULT_CONF;
    int test = 0, fg = 0, opt;

    while ((opt = getopt(argc, argv, "c:tfVh")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 't': test = 1; break;
        case 'f': fg = 1; break;
        case 'V': printf("butlerd %s\n", BUTLERD_VERSION); return EXIT_OK;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "butlerd: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    struct cfg_msgs msgs;
    memset(&msgs, 0, sizeof msgs);
    struct cfg *cfg = cfg_load(conf, &msgs);
    if (test) {
        print_list(&msgs.errors, "");
        print_list(&msgs.warnings, "warning: ");
        if (!cfg) {
            fprintf(stderr, "configuration test failed\n");
            return EXIT_FATAL;
        }
        printf("configuration OK\n");
        cfg_free(cfg);
        cfg_msgs_free(&msgs);
        return EXIT_OK;
    }
    if (!cfg) {
        print_list(&msgs.errors, "butlerd: ");
        fprintf(stderr, "butlerd: configuration %s has errors, not starting\n", conf);
        return EXIT_FATAL;
    }
    if (*cfg->workingDirectory && chdir(cfg->workingDirectory) < 0) {
        fprintf(stderr, "butlerd: chdir(%s) failed: %s\n", cfg->workingDirectory,
                strerror(errno));
        return EXIT_FATAL;
    }

    /* Before any thread or fork: libcurl's global state is shared by every worker. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct master_opts o = {conf, fg, -1};
    if (!fg && daemonize(&o.notify_fd) < 0)
        return EXIT_FATAL;
    if (master_apply_logging(cfg, fg) < 0)
        return EXIT_FATAL;
    for (size_t i = 0; i < msgs.warnings.n; i++)
        log_warnx("%s", msgs.warnings.v[i]);
    for (size_t i = 0; i < msgs.infos.n; i++)
        log_info("%s", msgs.infos.v[i]);
    cfg_msgs_free(&msgs);
    return master_run(cfg, &o);
}
