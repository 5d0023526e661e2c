/* The framing between butlerd's processes (ipc.c): frames split over many reads,
 * many frames in one read, bad lengths, EOF, and the blocking reader's timeout. */
#include "ipc.h"
#include "util.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        exit(2);
    }
    set_nonblock(sv[1]);
}

/* One frame written a byte at a time is taken whole, once, after the last byte. */
static void test_split_frame(void)
{
    int sv[2];
    pair(sv);
    struct buf f = {0};
    ipc_frame(&f, IPC_PUBLISH, "ab", 2, "", 0, "xyz", 3);
    CHECK(f.len == 4 + 1 + 5);
    struct ipc_reader r = {0};
    int type;
    const unsigned char *data;
    size_t len;
    for (size_t i = 0; i < f.len; i++) {
        CHECK(ipc_take(&r, &type, &data, &len) == 0);
        CHECK(write(sv[0], f.p + i, 1) == 1);
        CHECK(ipc_fill(&r, sv[1]) == 0);
    }
    CHECK(ipc_take(&r, &type, &data, &len) == 1);
    CHECK(type == IPC_PUBLISH && len == 5 && memcmp(data, "abxyz", 5) == 0);
    CHECK(ipc_take(&r, &type, &data, &len) == 0);
    ipc_reader_free(&r);
    buf_free(&f);
    close(sv[0]);
    close(sv[1]);
}

/* Many frames in one write come out in order; an empty payload is a frame too. */
static void test_many_frames(void)
{
    int sv[2];
    pair(sv);
    struct buf f = {0};
    char msg[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(msg, sizeof msg, "m%d", i);
        ipc_frame(&f, i % 2 ? IPC_DONE : IPC_JOB, msg, (size_t)n, NULL, 0, NULL, 0);
    }
    ipc_frame(&f, IPC_REPLY, NULL, 0, NULL, 0, NULL, 0);
    CHECK(ipc_write_all(sv[0], f.p, f.len) == 0);
    struct ipc_reader r = {0};
    int type, ok = 1, got = 0;
    const unsigned char *data;
    size_t len;
    while (got < 1001) {
        CHECK(ipc_fill(&r, sv[1]) == 0);
        while (ipc_take(&r, &type, &data, &len) == 1) {
            if (got < 1000) {
                int n = snprintf(msg, sizeof msg, "m%d", got);
                ok &= type == (got % 2 ? IPC_DONE : IPC_JOB) && len == (size_t)n &&
                      memcmp(data, msg, len) == 0;
            } else {
                ok &= type == IPC_REPLY && len == 0;
            }
            got++;
        }
    }
    CHECK(ok);
    CHECK(got == 1001);
    ipc_reader_free(&r);
    buf_free(&f);
    close(sv[0]);
    close(sv[1]);
}

/* A frame longer than the socket buffer arrives over many reads, and consumed frames
 * do not make the buffer grow without bound. */
static void test_large_frames(void)
{
    int sv[2];
    pair(sv);
    set_nonblock(sv[0]); /* one thread writes and reads: a full socket must not block */
    size_t big = 3u << 20;
    char *payload = malloc(big);
    for (size_t i = 0; i < big; i++)
        payload[i] = (char)(i * 7);
    struct ipc_reader r = {0};
    int type, ok = 1;
    const unsigned char *data;
    size_t len;
    for (int round = 0; round < 3; round++) {
        struct buf f = {0};
        ipc_frame(&f, IPC_JOB, payload, big, NULL, 0, NULL, 0);
        size_t off = 0;
        int taken = 0;
        while (!taken) {
            if (off < f.len) {
                ssize_t w = write(sv[0], f.p + off, f.len - off > 100000 ? 100000 : f.len - off);
                if (w > 0)
                    off += (size_t)w;
            }
            CHECK(ipc_fill(&r, sv[1]) == 0);
            if (ipc_take(&r, &type, &data, &len) == 1) {
                ok &= type == IPC_JOB && len == big && memcmp(data, payload, big) == 0;
                taken = 1;
            }
        }
        buf_free(&f);
    }
    CHECK(ok);
    CHECK(r.in.cap < 3 * big); /* reused, not grown per frame */
    ipc_reader_free(&r);
    free(payload);
    close(sv[0]);
    close(sv[1]);
}

/* A zero or oversized length is a protocol error (type -1); EOF ends the reader. */
static void test_bad_frames_and_eof(void)
{
    static const uint32_t lens[] = {0, IPC_MAX_FRAME + 1, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        int sv[2];
        pair(sv);
        unsigned char hdr[5];
        memcpy(hdr, &lens[i], 4);
        hdr[4] = 'J';
        CHECK(write(sv[0], hdr, 5) == 5);
        struct ipc_reader r = {0};
        int type = 0;
        const unsigned char *data;
        size_t len;
        CHECK(ipc_fill(&r, sv[1]) == 0);
        CHECK(ipc_take(&r, &type, &data, &len) == 1);
        CHECK(type == -1);
        ipc_reader_free(&r);
        close(sv[0]);
        close(sv[1]);
    }
    int sv[2];
    pair(sv);
    struct ipc_reader r = {0};
    CHECK(write(sv[0], "\x05\0\0", 3) == 3); /* a cut-off length */
    close(sv[0]);
    CHECK(ipc_fill(&r, sv[1]) == 0);  /* the three bytes */
    CHECK(ipc_fill(&r, sv[1]) == -1); /* then the end */
    int type;
    const unsigned char *data;
    size_t len;
    CHECK(ipc_take(&r, &type, &data, &len) == 0);
    ipc_reader_free(&r);
    close(sv[1]);
}

/* The blocking reader: a frame within the time, a timeout when nothing comes, and a
 * failure on EOF in the middle of a frame. */
static void test_read_frame(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        exit(2);
    struct buf f = {0}, out = {0};
    ipc_frame(&f, IPC_REPLY, "\x01", 1, NULL, 0, NULL, 0);
    CHECK(ipc_write_all(sv[0], f.p, f.len) == 0);
    int type = 0;
    CHECK(ipc_read_frame(sv[1], 1000, &type, &out) == 0);
    CHECK(type == IPC_REPLY && out.len == 1 && out.p[0] == 1);
    buf_free(&out);
    int64_t t0 = now_ms();
    CHECK(ipc_read_frame(sv[1], 200, &type, &out) == -1);
    CHECK(now_ms() - t0 >= 150); /* it waited, bounded by the timeout */
    buf_free(&out);
    CHECK(write(sv[0], f.p, 3) == 3);
    close(sv[0]);
    CHECK(ipc_read_frame(sv[1], 1000, &type, &out) == -1);
    buf_free(&out);
    buf_free(&f);
    close(sv[1]);
}

int main(void)
{
    test_split_frame();
    test_many_frames();
    test_large_frames();
    test_bad_frames_and_eof();
    test_read_frame();
    return UNIT_DONE();
}
