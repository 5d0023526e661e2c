/* Small helpers used everywhere: checked allocation, strings, time. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* Growable byte buffer; always NUL-terminated. */
struct buf {
    char *p;
    size_t len, cap;
};
void buf_append(struct buf *b, const void *data, size_t n);
void buf_free(struct buf *b);

/* A copy of LEN bytes of IN as valid UTF-8: each maximal invalid sequence becomes one
 * U+FFFD (as the WHATWG decoder does). NUL-terminated; its length in *OUTLEN. */
char *utf8_repair(const void *in, size_t len, size_t *outlen);
/* True if LEN bytes of IN are well-formed UTF-8: no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF. */
int utf8_valid(const void *in, size_t len);

int set_nonblock(int fd);
int set_cloexec(int fd);

#endif
