/* bench/udp_sink.c: the reference receiver of bench/udp.sh.
 *
 *   udp_sink PORT READYFILE [MAX_SECONDS]
 *
 * Binds 127.0.0.1:PORT (0: a free port chosen by the kernel), asks for the
 * same 8 MB receive buffer butlerd asks for (SO_RCVBUFFORCE, else SO_RCVBUF),
 * writes "PORT RCVBUF_BYTES" to READYFILE (atomically, through READYFILE.part)
 * and then only counts datagrams, read with recvmmsg in batches of 32, as
 * butlerd reads them. On SIGTERM or SIGINT, or after MAX_SECONDS (default
 * 600), it prints "received COUNT" and exits 0. It does nothing with the
 * bytes: it is the upper bound for any receiver on this host.
 *
 * Build: cc -O2 -o udp_sink udp_sink.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BATCH 32
#define BUFSZ 2048 /* bench datagrams are a few hundred bytes; longer ones are truncated, still counted */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "udp_sink: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: udp_sink PORT READYFILE [MAX_SECONDS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *ready = argv[2];
    unsigned max_secs = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 600;
    if (port < 0 || port > 65535 || max_secs == 0) {
        fprintf(stderr, "udp_sink: bad PORT or MAX_SECONDS\n");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: recvmmsg returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind 127.0.0.1");
    int sz = 8 << 20; /* as butlerd's src/events/udp.c */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    int got_sz = 0;
    socklen_t gl = sizeof got_sz;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got_sz, &gl);
    /* A bounded blocking wait, so that a signal arriving just before
     * recvmmsg is seen within 200 ms. */
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    socklen_t al = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        die("getsockname");

    char part[4096];
    snprintf(part, sizeof part, "%s.part", ready);
    FILE *f = fopen(part, "w");
    if (!f)
        die(part);
    fprintf(f, "%d %d\n", ntohs(a.sin_port), got_sz);
    if (fclose(f) != 0 || rename(part, ready) < 0)
        die(ready);
    alarm(max_secs);

    static char bufs[BATCH][BUFSZ];
    struct iovec iov[BATCH];
    struct mmsghdr mm[BATCH];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = BUFSZ;
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long count = 0;
    while (!stop) {
        /* MSG_WAITFORONE: block for the first datagram, then take what is queued */
        int n = recvmmsg(fd, mm, BATCH, MSG_WAITFORONE, NULL);
        if (n > 0)
            count += (unsigned)n;
        else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            die("recvmmsg");
    }
    printf("received %llu\n", count);
    fflush(stdout);
    return 0;
}
