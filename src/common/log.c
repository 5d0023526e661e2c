/* Logging: formats a line with UTC time, role, pid and severity and writes it with a
 * single write(2) so lines from the master and its workers never interleave. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *role = "master";
static enum log_level level = LOG_LV_INFO;
static enum log_dest dest = LOG_DEST_STDERR;
static int fd = STDERR_FILENO;
static char path[4096];

static const char *const names[] = {"error", "warn", "info", "verbose", "debug"};

void log_set_role(const char *r) { role = r; }
enum log_level log_level_get(void) { return level; }
int log_enabled(enum log_level lv) { return lv <= level; }

static int open_file(void)
{
    int nfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (nfd < 0)
        return -1;
    if (fd > STDERR_FILENO)
        close(fd);
    fd = nfd;
    return 0;
}

int log_configure(enum log_dest d, enum log_level lv, const char *file, const char *ident,
                  int facility)
{
    level = lv;
    if (d == LOG_DEST_FILE) {
        snprintf(path, sizeof path, "%s", file);
        if (open_file() < 0)
            return -1;
    } else if (fd > STDERR_FILENO) {
        close(fd);
        fd = STDERR_FILENO;
    }
    if (d == LOG_DEST_SYSLOG && dest != LOG_DEST_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, facility);
    else if (d != LOG_DEST_SYSLOG && dest == LOG_DEST_SYSLOG)
        closelog();
    dest = d;
    return 0;
}

int log_reopen(void)
{
    if (dest != LOG_DEST_FILE)
        return 0;
    return open_file();
}


void log_vmsg(enum log_level lv, int with_errno, const char *fmt, va_list ap)
{
    int saved = errno;
    if (lv > level) {
        errno = saved;
        return;
    }
    char msg[2048];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    if (with_errno)
        snprintf(msg + n, sizeof msg - n, ": %s", strerror(saved));

    if (dest == LOG_DEST_SYSLOG) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};
        syslog(prio[lv], "%s %s: %s", role, names[lv], msg);
    } else {
        char line[2300];
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        int len = snprintf(line, sizeof line,
                           "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%ld] %s: %s\n",
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                           tm.tm_sec, (int)(tv.tv_usec / 1000), role, (long)getpid(),
                           names[lv], msg);
        if (len >= (int)sizeof line) {
            len = sizeof line - 1;
            line[len - 1] = '\n';
        }
        ssize_t w = write(fd, line, len);
        (void)w;
    }
    errno = saved;
}

#define LOG_FN(name, lv, e)                                                                 \
    void name(const char *fmt, ...)                                                         \
    {                                                                                       \
        va_list ap;                                                                         \
        va_start(ap, fmt);                                                                  \
        log_vmsg(lv, e, fmt, ap);                                                           \
        va_end(ap);                                                                         \
    }
LOG_FN(log_error, LOG_LV_ERROR, 1)
LOG_FN(log_errorx, LOG_LV_ERROR, 0)
LOG_FN(log_warn, LOG_LV_WARN, 1)
LOG_FN(log_warnx, LOG_LV_WARN, 0)
LOG_FN(log_info, LOG_LV_INFO, 0)
LOG_FN(log_verbose, LOG_LV_VERBOSE, 0)
LOG_FN(log_debug, LOG_LV_DEBUG, 0)

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    if (strcasecmp(s, "silly") == 0) {
        *out = LOG_LV_DEBUG;
        return 0;
    }
    return -1;
}

int log_facility_parse(const char *s, int *out)
{
    static const struct { const char *n; int f; } fac[] = {
        {"daemon", LOG_DAEMON}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
        {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };
    for (size_t i = 0; i < sizeof fac / sizeof fac[0]; i++)
        if (strcmp(s, fac[i].n) == 0) {
            *out = fac[i].f;
            return 0;
        }
    return -1;
}
