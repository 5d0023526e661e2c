/* Small helpers used everywhere: checked allocation, byte buffers, string lists,
 * time, file descriptors. */
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
/* Wall clock (CLOCK_REALTIME) in milliseconds since the epoch. */
int64_t now_real_ms(void);

/* Growable byte buffer; always NUL-terminated. */
struct buf {
    char *p;
    size_t len, cap;
};
void buf_append(struct buf *b, const void *data, size_t n);
void buf_free(struct buf *b);

/* A growable list of malloc'd strings. */
struct strlist {
    size_t n;
    char **v;
};
void strlist_add(struct strlist *l, char *s); /* takes ownership of s */
void strlist_free(struct strlist *l);

int set_nonblock(int fd);
int set_cloexec(int fd);

/* Splits "host:port", "[v6-address]:port" or "host" (then *PORT = DEF). 0 with
 * *HOST (to free), or -1 if S is malformed. */
int hostport_parse(const char *s, int def, char **host, int *port);

#endif
