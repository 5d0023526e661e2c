/* Framing for butlerd's internal Unix sockets. */
#include "ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ipc_fill(struct ipc_reader *r, int fd)
{
    if (r->pos > 0 && r->pos == r->in.len) {
        r->in.len = 0;
        r->pos = 0;
    } else if (r->pos > 65536) { /* keep the buffer from creeping */
        memmove(r->in.p, r->in.p + r->pos, r->in.len - r->pos);
        r->in.len -= r->pos;
        r->pos = 0;
    }
    for (;;) {
        char tmp[65536];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n > 0) {
            buf_append(&r->in, tmp, (size_t)n);
            if ((size_t)n < sizeof tmp)
                return 0;
            continue;
        }
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

int ipc_take(struct ipc_reader *r, int *type, const unsigned char **data, size_t *len)
{
    size_t avail = r->in.len - r->pos;
    if (avail < 5)
        return 0;
    const unsigned char *p = (const unsigned char *)r->in.p + r->pos;
    uint32_t n;
    memcpy(&n, p, 4);
    if (n < 1 || n > IPC_MAX_FRAME) {
        *type = -1; /* bad frame: caller drops the connection */
        return 1;
    }
    if (avail < 4 + (size_t)n)
        return 0;
    *type = p[4];
    *data = p + 5;
    *len = n - 1;
    r->pos += 4 + (size_t)n;
    return 1;
}

void ipc_reader_free(struct ipc_reader *r)
{
    buf_free(&r->in);
    r->pos = 0;
}

void ipc_frame(struct buf *out, int type, const void *a, size_t alen, const void *b,
               size_t blen, const void *c, size_t clen)
{
    uint32_t n = (uint32_t)(1 + alen + blen + clen);
    unsigned char t = (unsigned char)type;
    buf_append(out, &n, 4);
    buf_append(out, &t, 1);
    if (alen)
        buf_append(out, a, alen);
    if (blen)
        buf_append(out, b, blen);
    if (clen)
        buf_append(out, c, clen);
}

int ipc_write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_exact(int fd, void *p, size_t n, int64_t deadline)
{
    char *d = p;
    while (n > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = read(fd, d, n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

int ipc_read_frame(int fd, int timeout_ms, int *type, struct buf *out)
{
    int64_t deadline = now_ms() + timeout_ms;
    uint32_t n;
    unsigned char t;
    if (read_exact(fd, &n, 4, deadline) < 0 || n < 1 || n > IPC_MAX_FRAME ||
        read_exact(fd, &t, 1, deadline) < 0)
        return -1;
    out->len = 0;
    if (n > 1) {
        char *tmp = xmalloc(n - 1);
        int rc = read_exact(fd, tmp, n - 1, deadline);
        if (rc == 0)
            buf_append(out, tmp, n - 1);
        free(tmp);
        if (rc < 0)
            return -1;
    }
    *type = t;
    return 0;
}

unsigned ipc_pub_addr(struct sockaddr_un *a, long master_pid)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX; /* sun_path[0] = 0: the abstract namespace */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "butlerd.%ld.mqtt", master_pid);
    return (unsigned)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}
