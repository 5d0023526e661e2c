/* A worker process. The MHD thread serves HTTP; the main thread only waits for a
 * stop signal or for the master's end of the control socket to close (master dead),
 * then drains: stop accepting, let requests in flight finish, exit. */
#include "worker.h"
#include "butlerd.h"
#include "cfg.h"
#include "audit.h"
#include "healthport.h"
#include "http.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got_term, got_quit, got_usr1;
static int sigpipe_w = -1;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGTERM || sig == SIGINT)
        got_term = 1;
    else if (sig == SIGQUIT)
        got_quit = 1;
    else if (sig == SIGUSR1)
        got_usr1 = 1;
    ssize_t w = write(sigpipe_w, "", 1);
    (void)w;
    errno = saved;
}

static void setup_signals(int sp[2])
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigpipe_w = sp[1];
}

/* Waits for the requests in flight; idle keep-alive connections get a short grace so
 * a client that is about to send still receives a "Connection: close" reply. */
static void drain(struct MHD_Daemon *d, int64_t limit_ms)
{
    int64_t start = now_ms();
    http_drain(d);
    for (;;) {
        int64_t t = now_ms() - start;
        unsigned conns = http_connections(d);
        int bg = http_background();
        if ((conns == 0 && bg == 0) || t >= limit_ms)
            break;
        if (http_inflight() == 0 && bg == 0 && t >= (limit_ms < 1000 ? limit_ms : 1000))
            break;
        poll(NULL, 0, 20);
    }
    if (http_connections(d) > 0 && http_inflight() > 0)
        log_warnx("closing %u connections with %d requests unfinished", http_connections(d),
                  http_inflight());
}

/* A retired generation (SIGQUIT, after a configuration reload) lets the app reloads
 * it started run to their end, up to LIMIT_MS; a SIGTERM, or the master's death,
 * cuts this short. */
static void wait_background(int64_t limit_ms, pid_t master)
{
    int64_t end = now_ms() + limit_ms;
    if (http_background() > 0)
        log_info("waiting for %d app reloads to finish before exiting", http_background());
    while (http_background() > 0 && !got_term && getppid() == master && now_ms() < end)
        poll(NULL, 0, 100);
}

void worker_main(const struct worker_args *a)
{
    /* The process table's after-fork routine has set the log role, the parent-death
     * signal and an empty signal mask. */
    pid_t master = getppid();

    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_error("pipe2");
        _exit(EXIT_WORKER_FATAL);
    }
    setup_signals(sp);
    metrics_set_slot(a->slot);

    struct MHD_Daemon *d = NULL;
    if (a->listen_fd >= 0) {
        d = http_start(a->cfg, a->listen_fd, a->tls_cert, a->tls_key, a->tls_client_ca);
        if (!d) {
            log_errorx("worker %d: cannot start the HTTP server on the listen socket", a->slot);
            _exit(EXIT_WORKER_FATAL);
        }
    }
    struct MHD_Daemon *hd = NULL;
    if (a->health_fd >= 0 && !(hd = healthport_start(a->health_fd)))
        log_warnx("worker %d: cannot serve the health check port", a->slot);
    char ready = IPC_READY;
    if (write(a->ctl_fd, &ready, 1) != 1)
        got_term = 1;

    int master_gone = 0;
    while (!got_term && !got_quit && !master_gone) {
        struct pollfd p[2] = {{a->ctl_fd, POLLIN, 0}, {sp[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            char b[16];
            ssize_t n = read(a->ctl_fd, b, sizeof b);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                master_gone = 1;
        }
        if (p[1].revents) {
            char b[16];
            while (read(sp[0], b, sizeof b) > 0) {
            }
        }
        if (got_usr1) {
            got_usr1 = 0;
            if (log_reopen() < 0)
                log_warn("cannot reopen the log file");
            audit_reopen();
        }
        if (getppid() != master)
            master_gone = 1;
    }
    healthport_stop(hd);
    if (d) {
        /* Without a master nobody will respawn us or hold the port: be quick. */
        drain(d, master_gone ? 1000 : (int64_t)a->cfg->shutdownTimeout * 1000);
        if (got_quit && !got_term && !master_gone)
            wait_background((int64_t)a->cfg->engineReloadTimeoutSeconds * 1000, master);
        if (http_background() > 0)
            log_warnx("exiting with %d app reloads still running", http_background());
        /* libmicrohttpd aborts if stopped with a connection suspended for a job; a
         * job still waiting on QRS here simply ends with the process. */
        if (http_jobs() == 0)
            MHD_stop_daemon(d);
        else
            log_warnx("exiting with %d requests still waiting on other servers", http_jobs());
    }
    if (master_gone)
        log_warnx("master process is gone, worker exiting");
    _exit(EXIT_OK);
}
