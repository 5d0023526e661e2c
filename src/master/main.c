/* butlerd: command line, configuration test (-t) and daemonizing; then the master. */
#include "butlerd.h"
#include "auth.h"
#include "ratelimit.h"
#include "cfg.h"
#include "kv_migrate.h"
#include "kv_ns.h"
#include "kv_redis.h"
#include "kv_redis_count.h"
#include "kv_snapshot.h"
#include "sched_list.h"
#include "log.h"
#include "master.h"
#include "shm.h"
#include "stats.h"
#include "outbox.h"
#include "redis_conn.h"
#include "tmpl_cli.h"

#include <json-c/json.h>

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: butlerd [-f] [-t] [-S] [-c file] [-p pidfile] [-k name] [-V] [-h]\n"
            "       butlerd -M [-F] [-c file]\n"
            "       butlerd -T template [-x context.json] [-m html|text|json]\n"
            "  -c file  configuration file (default %s)\n"
            "  -p file  write the master's pid to this file (overrides butlerd.pidfile)\n"
            "  -t       test the configuration and exit\n"
            "  -f       stay in the foreground and log to stderr\n"
            "  -S       print the running instance's counters (JSON) and exit\n"
            "  -M       copy the key-value store (the running instance's, else the\n"
            "           snapshot file) into the Redis of butlerd.store.redis and exit\n"
            "  -F       with -M: copy even if Redis holds keys under the prefix\n"
            "  -k name  make a new API token called name, print it and its\n"
            "           configuration entry, and exit\n"
            "  -V       print the version and exit\n"
            "  -h       print this help and exit\n"
            "  -T file  render an alert template and exit (-x: context, default the example;\n"
            "           -m: mode, default html)\n",
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

static json_object *u64(uint64_t v) { return json_object_new_int64((int64_t)v); }

/* The key-value store's size for butlerd -S: on shared memory read from the
 * namespace table without its lock (a report, not a decision: expired keys count
 * until the next sweep, at most a second); on Redis asked of Redis, the store of
 * every instance (butlerd(8), SEVERAL INSTANCES). */
static json_object *kv_stats(const struct cfg *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "backend", json_object_new_string(c->store.backend));
    if (!strcmp(c->store.backend, "redis")) {
        kv_redis_settings(c);
        uint64_t keys, nss;
        int up = kv_redis_usage(&keys, &nss) == 0;
        json_object_object_add(o, "redis", json_object_new_string(redis_where()));
        json_object_object_add(o, "reachable", json_object_new_boolean(up));
        if (up) {
            json_object_object_add(o, "keys", u64(keys));
            json_object_object_add(o, "namespaces", u64(nss));
        }
        return o;
    }
    struct kv_nstable *n = shm_ptr(shm.hdr->kv_ns_off);
    uint64_t nss = 0;
    for (uint32_t i = 0; i < n->hwm && i < n->max_ns; i++)
        nss += kv_ns_rec(n, i)->used == 1;
    json_object_object_add(o, "keys", u64(n->total));
    json_object_object_add(o, "namespaces", u64(nss));
    return o;
}

/* butlerd -S: the running instance's counters, read from its shared segment. */
static int print_stats(const struct cfg *c)
{
    if (shm_attach_readonly(c) < 0) {
        fprintf(stderr, "butlerd: no running butlerd for %s (shared memory %s.%d: %s)\n",
                c->file, c->shm.name, c->rest.serverPort, strerror(errno));
        return EXIT_FATAL;
    }
    pid_t pid = (pid_t)shm.hdr->master_pid;
    if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
        fprintf(stderr, "butlerd: no running butlerd for %s (shared memory %s was left by pid "
                        "%ld, which is gone)\n",
                c->file, shm.name, (long)pid);
        return EXIT_FATAL;
    }
    const struct stats *st = stats();
    json_object *o = json_object_new_object(), *udp = json_object_new_object();
    static const char *const names[UDP_NSOCK] = {"taskEvents", "sessionEvents"};
    for (int i = 0; i < UDP_NSOCK; i++) {
        const struct udp_counters *u = &st->udp[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "received", u64(u->received));
        json_object_object_add(x, "accepted", u64(u->accepted));
        json_object_object_add(x, "malformed", u64(u->malformed));
        json_object_object_add(x, "duplicates", u64(u->duplicates));
        json_object_object_add(x, "droppedSource", u64(u->dropped_source));
        json_object_object_add(x, "droppedSize", u64(u->dropped_size));
        json_object_object_add(x, "droppedRate", u64(u->dropped_rate));
        json_object_object_add(x, "droppedQueue", u64(u->dropped_queue));
        json_object_object_add(udp, names[i], x);
    }
    json_object_object_add(o, "udp", udp);
    json_object_object_add(o, "activeUsersNotAdded", u64(st->users_full));
    json_object *m = json_object_new_object();
    json_object_object_add(m, "connects", u64(st->mqtt_connects));
    json_object_object_add(m, "published", u64(st->mqtt_published));
    json_object_object_add(m, "notConnected", u64(st->mqtt_not_connected));
    json_object_object_add(m, "publishFailed", u64(st->mqtt_publish_failed));
    json_object_object_add(m, "received", u64(st->mqtt_received));
    json_object_object_add(m, "taskStartMessages", u64(st->mqtt_task_starts));
    json_object_object_add(o, "mqtt", m);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "taskEventsHandled", u64(st->events_done));
    json_object_object_add(e, "taskEventsFailed", u64(st->events_failed));
    json_object_object_add(o, "events", e);
    json_object *s = json_object_new_object();
    json_object_object_add(s, "fired", u64(st->sched_fired));
    json_object_object_add(s, "failed", u64(st->sched_failed));
    json_object_object_add(s, "skipped", u64(st->sched_skipped));
    uint64_t nf = st->sched_fired + st->sched_failed;
    json_object_object_add(s, "meanDelayMs", u64(nf ? st->sched_delay_ms_sum / nf : 0));
    json_object_object_add(o, "scheduler", s);
    json_object *h = json_object_new_object();
    json_object_object_add(h, "refusedAtAccept", u64(st->http_refused));
    json_object_object_add(h, "rateLimited", u64(st->http_rate_limited));
    json_object_object_add(h, "unauthorized", u64(st->http_unauthorized));
    json_object_object_add(h, "forbidden", u64(st->http_forbidden));
    json_object_object_add(h, "rateLimitClients", u64(rl_clients()));
    json_object_object_add(o, "http", h);
    json_object_object_add(o, "alerts", outbox_stats_json(st));
    json_object_object_add(o, "keyValueStore", kv_stats(c));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return EXIT_OK;
}

/* The daemon runs with every symbol of every library bound at start
 * (butlerd(8), PERFORMANCE). The libraries Debian ships bind lazily: each function is
 * looked up the first time it is called, and a lookup reads the symbol tables of
 * every library in turn. Those first calls mostly happen in the workers, after the
 * fork, so each worker read in pages of some thirty libraries' tables for itself,
 * about a megabyte of resident memory per process. With LD_BIND_NOW the dynamic
 * linker does all lookups once in the master before it forks, and the workers share
 * the result. The variable only acts when a program starts, so butlerd sets it and
 * starts its own executable again, in the same process (same PID, same arguments);
 * if that fails it goes on as it is. butlerd runs no other program, so nothing else inherits it. */
static void bind_now(char **argv)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (getenv("LD_BIND_NOW") || n <= 0 || (size_t)n >= sizeof self - 1)
        return;
    self[n] = '\0'; /* its own name, not /proc/self/exe: ps and init scripts see "butlerd" */
    if (setenv("LD_BIND_NOW", "1", 1) == 0)
        execv(self, argv);
    unsetenv("LD_BIND_NOW");
}

int main(int argc, char **argv)
{
    const char *conf = BUTLERD_DEFAULT_CONF;
    int test = 0, fg = 0, show_stats = 0, migrate = 0, force = 0, opt, daemon_opts = 0;
    const char *tmpl = NULL, *tmpl_ctx = NULL, *tmpl_mode = NULL, *pidfile = NULL;

    while ((opt = getopt(argc, argv, "c:p:tfSMFk:VhT:x:m:")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; daemon_opts = 1; break;
        case 'p': pidfile = optarg; daemon_opts = 1; break;
        case 't': test = daemon_opts = 1; break;
        case 'f': fg = daemon_opts = 1; break;
        case 'S': show_stats = daemon_opts = 1; break;
        case 'M': migrate = daemon_opts = 1; break;
        case 'F': force = daemon_opts = 1; break;
        case 'k': return auth_make_token(optarg);
        case 'V': printf("butlerd %s\n", BUTLERD_VERSION); return EXIT_OK;
        case 'h': usage(stdout); return EXIT_OK;
        case 'T': tmpl = optarg; break;
        case 'x': tmpl_ctx = optarg; break;
        case 'm': tmpl_mode = optarg; break;
        default: usage(stderr); return tmpl ? TMPL_CLI_USAGE : EXIT_USAGE;
        }
    }
    /* -T has exit codes of its own (butlerd(8) "RENDERING A TEMPLATE") */
    if (optind < argc || (tmpl && daemon_opts) || (!tmpl && (tmpl_ctx || tmpl_mode))) {
        if (optind < argc)
            fprintf(stderr, "butlerd: unexpected argument %s\n", argv[optind]);
        else
            fprintf(stderr, "butlerd: %s\n", tmpl ? "-T takes only -x and -m"
                                                  : "-x and -m go with -T");
        usage(stderr);
        return tmpl ? TMPL_CLI_USAGE : EXIT_USAGE;
    }
    if (tmpl)
        return tmpl_cli_run(tmpl, tmpl_ctx, tmpl_mode);
    if ((force && !migrate) || (migrate && (test || fg || show_stats || pidfile))) {
        fprintf(stderr, "butlerd: %s\n", force && !migrate ? "-F goes with -M"
                                                          : "-M takes only -F and -c");
        usage(stderr);
        return EXIT_USAGE;
    }
    /* The daemon changes to / when it detaches: a relative name would move. */
    if (pidfile && pidfile[0] != '/') {
        fprintf(stderr, "butlerd: -p needs an absolute path, not %s\n", pidfile);
        return EXIT_USAGE;
    }

    if (!test && !show_stats && !migrate)
        bind_now(argv);

    struct cfg_msgs msgs;
    memset(&msgs, 0, sizeof msgs);
    struct cfg *cfg = cfg_load(conf, &msgs);
    master_override(cfg, pidfile);
    if (test) {
        /* The start refuses an unsafe snapshot directory: so does the test. */
        if (cfg && kv_snapshot_check(cfg, &msgs.errors, &msgs.warnings) < 0) {
            cfg_free(cfg);
            cfg = NULL;
        }
        /* ...and an unreadable schedule file. */
        if (cfg && sched_check_file(cfg, &msgs.errors, &msgs.warnings) < 0) {
            cfg_free(cfg);
            cfg = NULL;
        }
        print_list(&msgs.errors, "");
        print_list(&msgs.warnings, "warning: ");
        if (!cfg) {
            fprintf(stderr, "configuration test failed\n");
            cfg_msgs_free(&msgs);
            return EXIT_FATAL;
        }
        printf("configuration OK\n");
        cfg_free(cfg);
        cfg_msgs_free(&msgs);
        return EXIT_OK;
    }
    if (cfg && show_stats) {
        int rc = print_stats(cfg);
        cfg_free(cfg);
        cfg_msgs_free(&msgs);
        return rc;
    }
    if (cfg && migrate) {
        print_list(&msgs.warnings, "butlerd: warning: ");
        int rc = kv_migrate(cfg, force);
        cfg_free(cfg);
        cfg_msgs_free(&msgs);
        return rc;
    }
    if (!cfg) {
        print_list(&msgs.errors, "butlerd: ");
        fprintf(stderr, "butlerd: configuration %s has errors, not starting\n", conf);
        cfg_msgs_free(&msgs);
        return EXIT_FATAL;
    }
    if (*cfg->workingDirectory && chdir(cfg->workingDirectory) < 0) {
        fprintf(stderr, "butlerd: chdir(%s) failed: %s\n", cfg->workingDirectory,
                strerror(errno));
        cfg_msgs_free(&msgs);
        cfg_free(cfg);
        return EXIT_FATAL;
    }

    /* Connections, copies of deep directory trees and the publish socket all take
     * descriptors: use what the administrator allows (the hard limit). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Before any thread or fork: libcurl's global state is shared by every worker. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct master_opts o = {conf, fg, -1, pidfile};
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
