/* sd_notify messages of the master (sdnotify.h). Only the master sends them: with
 * NotifyAccess=main systemd would ignore the children anyway. */
#include "sdnotify.h"
#include "log.h"
#include "util.h"

#ifdef HAVE_SYSTEMD
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static void say(const char *msg)
{
    int rc = sd_notify(0, msg);
    if (rc < 0)
        log_warnx("sd_notify(%.40s...) failed: %s", msg, strerror(-rc));
}

void sdnotify_ready(unsigned gen, int workers)
{
    char m[160];
    snprintf(m, sizeof m, "READY=1\nSTATUS=serving: gen %u, %d workers", gen, workers);
    say(m);
}

void sdnotify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char m[160];
    snprintf(m, sizeof m, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    say(m);
}

void sdnotify_reload_failed(unsigned gen)
{
    char m[160];
    snprintf(m, sizeof m, "READY=1\nSTATUS=reload failed, still serving gen %u", gen);
    say(m);
}

void sdnotify_stopping(void) { say("STOPPING=1\nSTATUS=shutting down"); }

int sdnotify_watchdog(void)
{
    static int64_t next;
    static int period_ms = -2; /* -2: not asked yet; -1: off */
    if (period_ms == -2) {
        uint64_t usec = 0;
        period_ms = sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000 ? (int)(usec / 2000) : -1;
    }
    if (period_ms < 0)
        return -1;
    int64_t now = now_ms();
    if (now >= next) {
        say("WATCHDOG=1");
        next = now + period_ms;
    }
    return (int)(next - now);
}

#else

void sdnotify_ready(unsigned gen, int workers) { (void)gen, (void)workers; }
void sdnotify_reloading(void) {}
void sdnotify_reload_failed(unsigned gen) { (void)gen; }
void sdnotify_stopping(void) {}
int sdnotify_watchdog(void) { return -1; }

#endif
