/* bench/udp_blast.c: the paced UDP sender of bench/udp.sh.
 *
 *   udp_blast -p PORT -r RATE -f FILE [-n COUNT] [-b BATCH]
 *
 * Reads the datagrams from FILE, one per line (the newline is not sent; made
 * by `udp_flood.py gen`), all into memory first, then sends the first COUNT
 * of them (default: all) to 127.0.0.1:PORT over a connected socket at RATE
 * datagrams per second: datagram i is due at t0 + i/RATE, and whenever at
 * least one is due the sender sends everything due, rounded up to a whole
 * batch, with sendmmsg in batches of BATCH (default 16). So it is never
 * more than BATCH-1 datagrams ahead of the schedule, and catches up after a
 * delay in bursts of whole batches. Between batches it sleeps until the next
 * one is due (clock_nanosleep on CLOCK_MONOTONIC, 1 us timer slack) instead
 * of spinning, to leave the CPU to the receiver.
 *
 * Prints "sent COUNT SECONDS RATE errors ERRORS": SECONDS from the first to
 * the end of the last sendmmsg, RATE = COUNT / SECONDS, the rate the sender
 * really achieved, and ERRORS the datagrams the kernel refused (counted and
 * skipped, not retried; on loopback a full receive queue drops silently and
 * is not an error here).
 *
 * Build: cc -O2 -o udp_blast udp_blast.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "udp_blast: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: udp_blast -p PORT -r RATE -f FILE [-n COUNT] [-b BATCH]\n");
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* The whole file in memory; *n lines, each an iovec without its newline. */
static struct iovec *load(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    if (fseek(f, 0, SEEK_END) < 0)
        die(path);
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) < 0)
        die(path);
    char *data = malloc((size_t)len + 1);
    if (!data || fread(data, 1, (size_t)len, f) != (size_t)len)
        die(path);
    fclose(f);
    size_t cap = 1024, k = 0;
    struct iovec *v = malloc(cap * sizeof *v);
    char *p = data, *end = data + len;
    while (v && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        if (k == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        if (!v)
            break;
        v[k].iov_base = p;
        v[k].iov_len = (size_t)(nl - p);
        k++;
        p = nl + 1;
    }
    if (!v)
        die("out of memory");
    *n = k;
    return v;
}

int main(int argc, char **argv)
{
    int port = 0, batch = 16, opt;
    double rate = 0;
    long count = -1;
    const char *file = NULL;
    while ((opt = getopt(argc, argv, "p:r:f:n:b:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'f': file = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || rate <= 0 || !file || batch < 1 || batch > 1024 ||
        optind != argc)
        usage();

    size_t n;
    struct iovec *grams = load(file, &n);
    if (count >= 0) {
        if ((size_t)count > n) {
            fprintf(stderr, "udp_blast: %s has %zu datagrams, fewer than %ld\n", file, n, count);
            return 1;
        }
        n = (size_t)count;
    }
    if (n == 0) {
        fprintf(stderr, "udp_blast: nothing to send\n");
        return 1;
    }
    struct mmsghdr *mm = calloc(n, sizeof *mm);
    if (!mm)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        mm[i].msg_hdr.msg_iov = &grams[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect 127.0.0.1");
    int sz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* 1 us instead of 50 us */

    size_t i = 0, errors = 0, b = (size_t)batch;
    double t0 = now_s();
    while (i < n) {
        double t = now_s();
        /* datagrams due by now: those with t0 + j/rate <= t */
        double d = (t - t0) * rate + 1.0;
        size_t due = d >= (double)n ? n : (size_t)d;
        if (due <= i) {
            sleep_until(t0 + (double)i / rate);
            continue;
        }
        due = (due + b - 1) / b * b; /* whole batches */
        if (due > n)
            due = n;
        while (i < due) {
            size_t k = due - i < b ? due - i : b;
            int r = sendmmsg(fd, &mm[i], (unsigned)k, 0);
            if (r > 0) {
                i += (size_t)r;
            } else if (r < 0 && errno == EINTR) {
                continue;
            } else {
                errors++; /* the first datagram was refused: skip it */
                i++;
            }
        }
    }
    double el = now_s() - t0;
    printf("sent %zu %.6f %.1f errors %zu\n", n, el, el > 0 ? (double)n / el : 0.0, errors);
    fflush(stdout);
    return 0;
}
