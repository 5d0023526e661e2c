/* The master process: start-up, signals, configuration reloads, the listen socket,
 * the pid file, and the loop with its shutdown. It never serves HTTP; signal
 * handlers only set flags and poke the self-pipe, and all work happens in the loop
 * (loop.c). Its children are entries of the process table (proc.c). */
#include "master.h"
#include "butlerd.h"
#include "cfg.h"
#include "events.h"
#include "kv.h"
#include "kv_backend.h"
#include "kvstore.h"
#include "kv_snapshot.h"
#include "loop.h"
#include "mqtt.h"
#include "udp.h"
#include "qrs.h"
#include "shm.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proc.h"
#include "sched_list.h"
#include "scheduler.h"
#include "sdnotify.h"
#include "delivery.h"
#include "notify.h"
#include "snapshot.h"
#include "util.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t sig_hup, sig_term, sig_usr1, sig_chld;
static int selfpipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    switch (sig) {
    case SIGHUP: sig_hup = 1; break;
    case SIGTERM:
    case SIGINT: sig_term = 1; break;
    case SIGUSR1: sig_usr1 = 1; break;
    case SIGCHLD: sig_chld = 1; break;
    }
    ssize_t w = write(selfpipe[1], "", 1);
    (void)w;
    errno = saved;
}

static int setup_signals(void)
{
    if (pipe2(selfpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_error("pipe2");
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return 0;
}

int master_apply_logging(const struct cfg *c, int foreground)
{
    enum log_level lv = LOG_LV_INFO;
    int fac = 0;
    log_level_parse(*c->log.level ? c->log.level : c->logLevel, &lv);
    log_facility_parse(c->log.syslogFacility, &fac);
    enum log_dest d = LOG_DEST_STDERR;
    if (!strcmp(c->log.destination, "file"))
        d = LOG_DEST_FILE;
    else if (!foreground || !strcmp(c->log.destination, "syslog"))
        d = LOG_DEST_SYSLOG;
    if (foreground && d == LOG_DEST_SYSLOG && strcmp(c->log.destination, "syslog"))
        d = LOG_DEST_STDERR;
    if (log_configure(d, lv, c->log.file, c->log.ident, fac) < 0) {
        log_error("cannot open log file %s", c->log.file);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- listen socket */

static char listen_desc[300], health_desc[300];

/* The REST listener, or with PORT > 0 Butler's health port on the same host. */
static int open_listener(const struct cfg *c, int health_port)
{
    int port_n = health_port > 0 ? health_port : c->rest.serverPort;
    char *desc = health_port > 0 ? health_desc : listen_desc;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", port_n);
    int rc = getaddrinfo(c->rest.serverHost, port, &hints, &res);
    if (rc != 0) {
        log_errorx("cannot resolve Butler.restServerConfig.serverHost %s: %s", c->rest.serverHost,
                   gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK, res->ai_protocol);
    if (fd < 0) {
        log_error("socket");
        freeaddrinfo(res);
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6) /* "::" also takes IPv4 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    int fam = res->ai_family;
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        log_error("cannot listen on %s port %d", c->rest.serverHost, port_n);
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    snprintf(desc, sizeof listen_desc, fam == AF_INET6 ? "[%s]:%d" : "%s:%d",
             c->rest.serverHost, port_n);
    return fd;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_error("cannot open %s", path);
        return NULL;
    }
    struct buf b = {0};
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    if (!b.p)
        buf_append(&b, "", 0);
    return b.p;
}

/* ------------------------------------------------------------------ pid file */

static int pid_fd = -1;
static char *pid_path;

static int pidfile_create(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot open pid file %s", path);
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        log_errorx("pid file %s is locked: another butlerd is running", path);
        close(fd);
        return -1;
    }
    char s[32];
    int n = snprintf(s, sizeof s, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, s, (size_t)n, 0) != n) {
        log_error("cannot write pid file %s", path);
        close(fd);
        return -1;
    }
    pid_fd = fd;
    pid_path = xstrdup(path);
    return 0;
}

static void pidfile_remove(void)
{
    if (pid_fd < 0)
        return;
    if (unlink(pid_path) < 0 && errno != ENOENT)
        log_warn("cannot remove pid file %s", pid_path);
    loop_del(pid_fd);
    close(pid_fd);
    pid_fd = -1;
}

static int drop_privileges(const struct cfg *c)
{
    if (geteuid() != 0 || (!*c->user && !*c->group))
        return 0;
    gid_t gid = getegid();
    uid_t uid = geteuid();
    const char *uname = NULL;
    if (*c->user) {
        struct passwd *pw = getpwnam(c->user);
        if (!pw) {
            log_errorx("butlerd.user %s does not exist", c->user);
            return -1;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        uname = pw->pw_name;
    }
    if (*c->group) {
        struct group *gr = getgrnam(c->group);
        if (!gr) {
            log_errorx("butlerd.group %s does not exist", c->group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    /* What the master created as root must stay usable after the switch. */
    if (shm.name[0] && shm_chown_region(uid, gid) < 0)
        return -1;
    if (pid_fd >= 0 && fchown(pid_fd, uid, gid) < 0)
        log_warn("cannot hand pid file %s to uid %ld", pid_path, (long)uid);
    if ((uname ? initgroups(uname, gid) : setgroups(0, NULL)) < 0 || setgid(gid) < 0) {
        log_error("cannot switch to group %ld", (long)gid);
        return -1;
    }
    if (*c->user && setuid(uid) < 0) {
        log_error("cannot switch to user %s", c->user);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- loop */

struct master {
    struct cfg *cfg;
    const struct master_opts *o;
    struct pool_env env;
    unsigned gen;
    int announced;
    int reloading; /* a new generation is starting; older ones drain when it is ready */
    int have_shm;
    int stopping;
    int64_t stop_deadline;
    char *tls_cert, *tls_key, *tls_client_ca;
};

static void notify(const struct master *m, char c)
{
    if (m->o->notify_fd >= 0) {
        ssize_t w = write(m->o->notify_fd, &c, 1);
        (void)w;
        loop_del(m->o->notify_fd);
        close(m->o->notify_fd);
        ((struct master_opts *)m->o)->notify_fd = -1;
    }
}

static void print_msgs(const struct strlist *l, void (*fn)(const char *, ...))
{
    for (size_t i = 0; i < l->n; i++)
        fn("%s", l->v[i]);
}

static int read_tls(struct master *m, const struct cfg *cfg);

void master_override(struct cfg *cfg, const char *pidfile)
{
    if (cfg && pidfile) {
        free(cfg->pidfile);
        cfg->pidfile = xstrdup(pidfile);
    }
}

static void reload(struct master *m)
{
    struct cfg_msgs msgs;
    memset(&msgs, 0, sizeof msgs);
    struct cfg *neu = cfg_load(m->o->conf_path, &msgs);
    master_override(neu, m->o->pidfile);
    if (neu && cfg_check_reload(m->cfg, neu, &msgs.errors) < 0) {
        cfg_free(neu);
        neu = NULL;
    }
    if (!neu) {
        print_msgs(&msgs.errors, log_errorx);
        log_errorx("configuration reload failed, keeping the old configuration");
        cfg_msgs_free(&msgs);
        sdnotify_reload_failed(m->gen);
        return;
    }
    print_msgs(&msgs.warnings, log_warnx);
    print_msgs(&msgs.infos, log_info);
    cfg_msgs_free(&msgs);
    struct strlist changed = {0};
    cfg_keep_restart_keys(m->cfg, neu, &changed);
    for (size_t i = 0; i < changed.n; i++)
        log_warnx("%s changed: restart butlerd to apply it", changed.v[i]);
    strlist_free(&changed);
    master_apply_logging(neu, m->o->foreground);
    kvstore->set_limits(neu->kvs.maxKeysPerNamespace);
    qrs_load_credentials(neu);
    cfg_free(m->cfg);
    m->cfg = neu;
    m->env.cfg = neu;
    snapshot_set_cfg(neu);
    mqtt_set_cfg(neu);
    udp_set_cfg(neu);
    m->gen++;
    if (neu->mqtt.enable || notify_any(neu))
        events_reload(neu, m->gen);
    delivery_reload(neu, m->gen);
    scheduler_reload(neu, m->gen);
    if (neu->rest.enable && neu->rest.tlsEnable && m->env.listen_fd >= 0 &&
        read_tls(m, neu) < 0)
        log_warnx("TLS files not reloaded: the new workers keep the certificate in use");
    log_info("configuration reloaded (gen %u)", m->gen);
    if (m->env.listen_fd >= 0) {
        m->reloading = 1;
        pool_start_gen(&m->env, m->gen);
    } else {
        sdnotify_ready(m->gen, 0);
    }
}

/* Start-task messages wait at the events process; past this many the broker is
 * flooding us and further messages are dropped (logged). */
#define MAX_PENDING_STARTS 1000

static void on_start_task_message(const char *payload, size_t len)
{
    if (events_outstanding(EV_START_TASK) >= MAX_PENDING_STARTS)
        log_warnx("MQTT start task message dropped: %d start requests are already waiting",
                  MAX_PENDING_STARTS);
    else if (events_submit(EV_START_TASK, payload, len) < 0)
        log_warnx("MQTT start task message dropped: the events process is not running");
}

/* The TTL sweep, every second. */
static int64_t next_sweep;

static int sweep_timer(void)
{
    int64_t now = now_ms();
    if (now >= next_sweep) {
        unsigned n = kv_sweep();
        if (n)
            log_debug("expired %u keys", n);
        next_sweep = now + 1000;
    }
    return next_sweep > now ? (int)(next_sweep - now) : 0;
}

static void on_selfpipe(int fd, short revents, void *arg)
{
    char b[64];
    while (read(fd, b, sizeof b) > 0) {
    }
}

/* The modules that bring their own descriptors and timers. */
static const struct loop_source mqtt_source = {mqtt_pollfds, mqtt_handle, mqtt_child_fds,
                                               4096 + 4};
static const struct loop_source udp_source = {udp_pollfds, udp_handle, udp_child_fds, 2};

static void register_loop(const struct master *m)
{
    loop_add(selfpipe[0], POLLIN, on_selfpipe, NULL);
    /* Master-only descriptors no child may keep: the daemon's start-up pipe (the
     * parent waits for its end) and the pid file. */
    loop_add_private(selfpipe[1]);
    if (m->o->notify_fd >= 0)
        loop_add_private(m->o->notify_fd);
    if (pid_fd >= 0)
        loop_add_private(pid_fd);
    loop_add_source(&mqtt_source);
    loop_add_source(&udp_source);
    loop_add_timer(proc_timers);
    loop_add_timer(sweep_timer);
    loop_add_timer(snapshot_timer);
    loop_add_timer(mqtt_timers);
    loop_add_timer(udp_timers);
    loop_add_timer(sdnotify_watchdog);
}

/* 0 if KEY (PEM) is the private key of the first certificate in CERT (PEM): a new
 * generation given a mismatched pair could not start a single worker. */
static int tls_pair_ok(const char *cert, const char *key)
{
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int ok = x && k && X509_check_private_key(x, k) == 1;
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    ERR_clear_error();
    return ok ? 0 : -1;
}

/* Reads the TLS certificate and key (and the chain after the certificate) and the
 * CA of client certificates, at start and on every reload, so that a renewed
 * certificate is picked up by SIGHUP (butlerd(8), SIGNALS). On any problem the
 * files in use stay in use. */
static int read_tls(struct master *m, const struct cfg *cfg)
{
    char *cert = read_file(cfg->rest.tlsCert), *key = read_file(cfg->rest.tlsKey);
    char *ca = *cfg->rest.tlsCa ? read_file(cfg->rest.tlsCa) : NULL;
    char *client_ca = *cfg->http.clientCertCa ? read_file(cfg->http.clientCertCa) : NULL;
    int ok = cert && key && (ca || !*cfg->rest.tlsCa) &&
             (client_ca || !*cfg->http.clientCertCa);
    if (ok && tls_pair_ok(cert, key) < 0) {
        log_errorx("%s is not the private key of the certificate in %s", cfg->rest.tlsKey,
                   cfg->rest.tlsCert);
        ok = 0;
    }
    if (ok && ca) { /* the chain is sent after the server certificate */
        char *both = xasprintf("%s\n%s", cert, ca);
        free(cert);
        cert = both;
    }
    free(ca);
    if (!ok) {
        free(cert);
        free(key);
        free(client_ca);
        return -1;
    }
    free(m->tls_cert);
    free(m->tls_key);
    free(m->tls_client_ca);
    m->tls_cert = cert;
    m->tls_key = key;
    m->tls_client_ca = client_ca;
    m->env.tls_cert = cert;
    m->env.tls_key = key;
    m->env.tls_client_ca = client_ca;
    return 0;
}

/* Opens the shared segment, re-attached or loaded from the snapshot. */
static int open_store(struct master *m, const struct cfg *cfg)
{
    if (snapshot_check(cfg) < 0)
        return -1;
    int attached = shm_open_region(cfg);
    if (attached < 0)
        return -1;
    kvstore_select(cfg); /* the backend, once, before any child is forked */
    if (!attached && *cfg->kvPersistence.file && !kvstore_is_redis()) {
        long n = kv_snapshot_load(cfg->kvPersistence.file, kv_snapshot_uid(cfg));
        if (n >= 0)
            log_info("loaded %ld keys from %s", n, cfg->kvPersistence.file);
    }
    /* Whatever loading or start-up left free on the heap goes back to the system
     * now, or every forked process would inherit it, and the first malloc in each
     * would copy those pages for itself (butlerd(8), "Persistence"). */
    malloc_trim(0);
    snapshot_init(cfg, attached);
    next_sweep = now_ms() + 1000;
    m->have_shm = 1;
    shm_reset_volatile(); /* active users and counters start empty */
    return 0;
}

/* The master's share of memory once it is up (butlerd(8), PERFORMANCE). Starting
 * runs a great deal of library code once: the dynamic linker, libmicrohttpd's
 * GnuTLS set-up, OpenSSL's and libcurl's initialisation, reading the configuration
 * and certificates. Those pages of the shared libraries and of butlerd stay in the
 * master's resident set, about 7 MB that its event loop never runs again. They are
 * clean copies of files, so the master asks the kernel to reclaim them
 * (MADV_PAGEOUT, Linux 5.4): pages the workers use too are left alone by the kernel,
 * and any other the master needs again (a reload) is read back in. Called when a
 * generation of workers is ready: at start and after each reload. */
static void release_startup_pages(void)
{
#ifdef MADV_PAGEOUT
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[8];
        int path = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perms, &path) != 3 || !path ||
            line[path] != '/' || strchr(perms, 'w'))
            continue; /* anonymous, the stack, or written to (data, GOT): not a clean copy */
        madvise((void *)a, b - a, MADV_PAGEOUT); /* a refusal only leaves them resident */
    }
    fclose(f);
#endif
}

/* Everything up to the first fork, then the first children. 0, or -1 if butlerd
 * cannot start. */
static int master_start(struct master *m)
{
    struct cfg *cfg = m->cfg;
    log_info("butlerd %s starting, configuration %s", BUTLERD_VERSION, m->o->conf_path);
    if (setup_signals() < 0)
        return -1;
    if (cfg->rest.enable) {
        m->env.listen_fd = open_listener(cfg, 0);
        if (m->env.listen_fd < 0 || (cfg->rest.tlsEnable && read_tls(m, cfg) < 0))
            return -1;
        /* Butler.dockerHealthCheck (butlerd(8), "MONITORING"): served by the workers */
        if (cfg->dockerHealth.enable) {
            m->env.health_fd = open_listener(cfg, cfg->dockerHealth.port);
            if (m->env.health_fd < 0)
                return -1;
            log_info("health check port listening on %s", health_desc);
        }
    }
    if (*cfg->pidfile && pidfile_create(cfg->pidfile) < 0)
        return -1;
    if (sched_init(cfg) < 0 || open_store(m, cfg) < 0)
        return -1;
    metrics_note_gen(m->gen, 0);
    qrs_load_credentials(cfg);
    if (udp_start(cfg) < 0) /* before dropping privileges: ports below 1024 */
        return -1;
    if (drop_privileges(cfg) < 0)
        return -1;
    if (mqtt_start(cfg) < 0)
        return -1;
    mqtt_set_start_handler(on_start_task_message);
    mqtt_set_connect_handler(udp_on_connect);
    register_loop(m);
    proc_set_listen_fd(m->env.listen_fd);
    proc_set_health_fd(m->env.health_fd);
    if (delivery_start(cfg, m->gen) < 0)
        return -1;
    if (cfg->mqtt.enable || notify_any(cfg))
        events_start(cfg, m->gen);
    scheduler_start(cfg, m->gen);
    m->env.cfg = cfg;
    m->env.tls_cert = m->tls_cert;
    m->env.tls_key = m->tls_key;
    m->env.tls_client_ca = m->tls_client_ca;
    if (m->env.listen_fd >= 0) {
        pool_start_gen(&m->env, m->gen);
    } else {
        log_info("ready: REST server disabled (Butler.restServerConfig.enable is false)");
        release_startup_pages();
        sdnotify_ready(m->gen, 0);
        m->announced = 1;
        notify(m, '0');
    }
    return 0;
}

/* Every worker of the newest generation is ready: announce it the first time, and
 * after a reload drain the older generations. */
static void on_gen_ready(struct master *m)
{
    metrics_note_gen(m->gen, pool_count_gen(m->gen));
    /* once at start and once per reload: the workers of m->gen accept */
    if (!m->announced || m->reloading)
        sdnotify_ready(m->gen, pool_count_gen(m->gen));
    if (!m->announced) {
        log_info("butlerd %s ready: listening on %s (%d workers, gen %u)", BUTLERD_VERSION,
                 listen_desc, pool_count_gen(m->gen), m->gen);
        m->announced = 1;
        notify(m, '0');
    }
    if (m->reloading) {
        m->reloading = 0;
        int old = pool_drain_older(m->gen, m->cfg->shutdownTimeout,
                                   m->cfg->ep.senseAppReload ? m->cfg->engineReloadTimeoutSeconds
                                                             : 0);
        log_info("gen %u ready, draining %d older workers", m->gen, old);
    }
    release_startup_pages();
}

static void begin_stop(struct master *m)
{
    m->stopping = 1;
    log_info("shutting down");
    sdnotify_stopping();
    if (m->env.listen_fd >= 0) { /* refuse new connections from now on */
        close(m->env.listen_fd);
        m->env.listen_fd = -1;
        proc_set_listen_fd(-1);
    }
    if (m->env.health_fd >= 0) {
        close(m->env.health_fd);
        m->env.health_fd = -1;
        proc_set_health_fd(-1);
    }
    proc_shutdown();
    pool_stop_all(m->cfg->shutdownTimeout);
    udp_stop();
    events_stop();
    delivery_stop();
    scheduler_stop();
    m->stop_deadline = now_ms() + (int64_t)m->cfg->shutdownTimeout * 1000 + 3000;
}

/* What the signal handlers flagged. */
static void handle_signals(struct master *m)
{
    if (sig_chld) {
        sig_chld = 0;
        proc_reap();
        if (!m->stopping && pool_gen_dead(m->gen)) {
            log_errorx("no worker of gen %u can start, shutting down", m->gen);
            notify(m, '1');
            sig_term = 1;
        }
    }
    if (sig_usr1) {
        sig_usr1 = 0;
        if (log_reopen() < 0)
            log_warn("cannot reopen the log file");
        else
            log_info("log file reopened");
        proc_signal_all(SIGUSR1);
    }
    if (sig_hup && !m->stopping) {
        sig_hup = 0;
        log_info("SIGHUP received, reloading %s", m->o->conf_path);
        sdnotify_reloading();
        reload(m);
    }
    if (sig_term && !m->stopping)
        begin_stop(m);
}

/* Runs until every child has exited after a stop; returns the exit code. */
static int master_loop(struct master *m)
{
    for (;;) {
        int timeout = -1;
        if (m->stopping) {
            int64_t left = m->stop_deadline - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        if (loop_once(timeout) < 0)
            return EXIT_FATAL;
        if (pool_gen_ready(m->gen) && !m->stopping)
            on_gen_ready(m);
        handle_signals(m);
        if (m->stopping && proc_count(NULL) == 0)
            return m->announced ? EXIT_OK : EXIT_FATAL;
        if (m->stopping && now_ms() >= m->stop_deadline) {
            log_warnx("workers still running after the shutdown deadline, killing them");
            proc_signal_all(SIGKILL);
            m->stop_deadline = now_ms() + 1000;
        }
    }
}

/* Children are gone: the final snapshot, then everything else. */
static void master_finish(struct master *m, int rc)
{
    if (m->have_shm && rc == EXIT_OK) {
        /* Workers are gone: the snapshot sees every acknowledged write. The segment
         * is removed only after an orderly stop; after a crash it is re-attached. */
        if (snapshot_final() == 0)
            shm_unlink_region();
        else
            log_warnx("keeping shared memory %s: the next start re-attaches it", shm.name);
    }
    mqtt_stop();
    udp_stop();
    notify(m, rc == EXIT_OK ? '0' : '1');
    if (m->env.listen_fd >= 0)
        close(m->env.listen_fd);
    if (m->env.health_fd >= 0)
        close(m->env.health_fd);
    pidfile_remove();
    free(m->tls_cert);
    free(m->tls_key);
    free(m->tls_client_ca);
    cfg_free(m->cfg);
    log_info("exiting");
}

int master_run(struct cfg *cfg, const struct master_opts *o)
{
    struct master m = {.cfg = cfg, .o = o, .gen = 1, .env.listen_fd = -1,
                       .env.health_fd = -1};
    int rc = master_start(&m) < 0 ? EXIT_FATAL : master_loop(&m);
    master_finish(&m, rc);
    return rc;
}
