/* The audit trail. Each worker appends to the same file (O_APPEND, one write(2) per
 * line, so lines of different workers never interleave) or sends one syslog message
 * per request. Values a client chose (the path, a certificate subject) are quoted
 * with '"', '\' and non-printable bytes escaped, so a line can always be split
 * back into its fields and nobody can forge one. No header and no query string is
 * ever written: a token or a secret in a parameter stays out of the trail. */
#include "audit.h"
#include "cfg.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum { AUDIT_OFF, AUDIT_FILE, AUDIT_SYSLOG };
static int dest = AUDIT_OFF;
static int fd = -1;
static int facility;
static char path_[4096];

static int open_file(void)
{
    int nfd = open(path_, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (nfd < 0) {
        log_warn("open(%s) for the audit trail failed", path_);
        return -1;
    }
    if (fd >= 0)
        close(fd);
    fd = nfd;
    return 0;
}

void audit_open(const struct cfg *c)
{
    if (!strcmp(c->audit.destination, "file")) {
        dest = AUDIT_FILE;
        snprintf(path_, sizeof path_, "%s", c->audit.file);
        open_file();
    } else if (!strcmp(c->audit.destination, "syslog")) {
        dest = AUDIT_SYSLOG;
        if (log_facility_parse(c->audit.syslogFacility, &facility) < 0)
            facility = LOG_LOCAL0;
    }
}

int audit_reopen(void)
{
    return dest == AUDIT_FILE ? open_file() : 0;
}

int audit_enabled(void) { return dest != AUDIT_OFF; }

/* Appends S (N bytes) to B quoted: "..." with \" \\ and \xHH for the rest. */
static void quoted(struct buf *b, const char *s, size_t n)
{
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            buf_append(b, e, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            char e[5];
            snprintf(e, sizeof e, "\\x%02x", ch);
            buf_append(b, e, 4);
        } else {
            buf_append(b, (const char *)&ch, 1);
        }
    }
    buf_append(b, "\"", 1);
}

void audit_request(const char *client, const char *who, const char *method, const char *path,
                   size_t pathlen, unsigned status, int64_t ms)
{
    if (dest == AUDIT_OFF || (dest == AUDIT_FILE && fd < 0))
        return;
    struct buf b = {0};
    char head[96];
    if (dest == AUDIT_FILE) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(head + n, sizeof head - n, ".%03ldZ ", (long)(tv.tv_usec / 1000));
        buf_append(&b, head, strlen(head));
    }
    snprintf(head, sizeof head, "client=%s who=", client);
    buf_append(&b, head, strlen(head));
    if (who)
        quoted(&b, who, strlen(who));
    else
        buf_append(&b, "-", 1);
    snprintf(head, sizeof head, " method=%s path=", method);
    buf_append(&b, head, strlen(head));
    quoted(&b, path, pathlen);
    if (status)
        snprintf(head, sizeof head, " status=%u duration_ms=%lld\n", status, (long long)ms);
    else
        snprintf(head, sizeof head, " status=- duration_ms=%lld\n", (long long)ms);
    buf_append(&b, head, strlen(head));
    if (dest == AUDIT_FILE) {
        ssize_t w = write(fd, b.p, b.len);
        (void)w;
    } else {
        syslog(facility | LOG_NOTICE, "audit: %.*s", (int)(b.len - 1), b.p);
    }
    buf_free(&b);
}
