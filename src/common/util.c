/* Small helpers used everywhere. Allocation failure is a broken environment for a
 * daemon of this size: it is logged and the process exits rather than limping on. */
#include "util.h"
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    log_errorx("out of memory allocating %zu bytes", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom(n * m);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom(strlen(fmt));
    return s;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

/* ------------------------------------------------------------ UTF-8 */

static void put_fffd(struct buf *b) { buf_append(b, "\xEF\xBF\xBD", 3); }

/* Length of the well-formed UTF-8 sequence at S (at most N bytes: 1 to 4), or 0 if
 * there is none; then *BAD is the length of the maximal invalid prefix (at least 1).
 * Overlong forms, encoded surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                            : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (k == 0) {
        *bad = 1;
        return 0;
    }
    size_t j = 1;
    for (; j < k && j < n; j++) {
        unsigned char d = s[j];
        unsigned char lo = 0x80, hi = 0xBF;
        if (j == 1) { /* overlongs, surrogates and > U+10FFFF */
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
            else if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        if (d < lo || d > hi)
            break;
    }
    if (j == k)
        return k;
    *bad = j;
    return 0;
}

int utf8_valid(const void *in, size_t n)
{
    const unsigned char *s = in;
    size_t i = 0, bad;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i, &bad);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

char *utf8_repair(const void *in, size_t n, size_t *outlen)
{
    const unsigned char *s = in;
    struct buf b = {0};
    buf_append(&b, "", 0);
    size_t i = 0, bad;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i, &bad);
        if (k) {
            buf_append(&b, s + i, k);
            i += k;
        } else { /* a maximal invalid prefix becomes one U+FFFD */
            put_fffd(&b);
            i += bad;
        }
    }
    if (outlen)
        *outlen = b.len;
    return b.p;
}
