/* The engine client's side of the wire (src/engine.c): the HTTP/1.1 upgrade answer,
 * the WebSocket framing (wslay) and the JSON-RPC answers matched to pipelined
 * requests. The session normally starts with a TCP connect and TLS; here engine.c
 * is compiled into the harness and the session is built on a socketpair instead,
 * as engine_open() builds it after tcp_connect(). The fuzz input is written to the
 * other end, which is then shut down, so every run ends at EOF at the latest and
 * needs no thread. RAND_bytes is made deterministic (zero nonce, zero masks) so the
 * expected Sec-WebSocket-Accept is known.
 *
 * Input: one flag byte, then the bytes the engine sends.
 *   bit 0: 0 = a valid 101 answer comes first and the input is the frames after it;
 *          1 = the input is the whole upgrade answer, where "@ACCEPT@" stands for
 *              the right Sec-WebSocket-Accept value
 *   bits 1-2: 1 + the number of requests sent (ids 1..4), bit 3: the second one is
 *   posted (answer dropped), bit 4: maxMessageBytes 256 instead of 1 MB. */
#include <openssl/rand.h>

static int fuzz_rand_bytes(unsigned char *buf, int num);
#define RAND_bytes fuzz_rand_bytes
#include "engine.c"
#undef RAND_bytes

#include "fuzz.h"

static int fuzz_rand_bytes(unsigned char *buf, int num)
{
    memset(buf, 0, (size_t)num);
    return 1;
}

static struct cfg cfg;
static char accept_value[64];
static struct tuple hdrs[] = {{{"X-Qlik-User", "UserDirectory=Internal; UserId=sa_api", NULL}},
                              {{"Bad\r\nHeader", "x", NULL}}};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    cfg.engine.host = "127.0.0.1";
    cfg.engine.port = 4747;
    cfg.engine.headers = (struct tuplelist){2, hdrs};
    cfg.engineConnectTimeoutMs = 1000;
    cfg.engineTimeoutMs = 1000;
    /* what upgrade() will expect for the zero nonce */
    unsigned char nonce[16] = {0}, digest[EVP_MAX_MD_SIZE];
    char key[32], tmp[128];
    unsigned dlen = 0;
    b64(nonce, sizeof nonce, key);
    snprintf(tmp, sizeof tmp, "%s" WS_GUID, key);
    if (EVP_Digest(tmp, strlen(tmp), digest, &dlen, EVP_sha1(), NULL) != 1)
        abort();
    b64(digest, (int)dlen, accept_value);
    return 0;
}

static void put(int fd, const void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, (const char *)p + off, n - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 32768)
        return 0;
    unsigned flags = data[0];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);

    if (!(flags & 1)) {
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                         accept_value);
        put(sv[1], head, (size_t)n);
        put(sv[1], data + 1, size - 1);
    } else {
        const uint8_t *p = data + 1, *end = data + size;
        while (p < end) {
            const uint8_t *m = memmem(p, (size_t)(end - p), "@ACCEPT@", 8);
            if (!m) {
                put(sv[1], p, (size_t)(end - p));
                break;
            }
            put(sv[1], p, (size_t)(m - p));
            put(sv[1], accept_value, strlen(accept_value));
            p = m + 8;
        }
    }
    shutdown(sv[1], SHUT_WR);

    cfg.engineMaxMessageBytes = flags & 16 ? 256 : 1 << 20;
    struct engine_err err;
    memset(&err, 0, sizeof err);
    struct engine *e = xcalloc(1, sizeof *e);
    e->cfg = &cfg;
    e->fd = sv[0];
    e->next_id = 1;
    snprintf(e->app, sizeof e->app, "%s", "fuzz-app");
    set_nonblock(e->fd);
    static const struct wslay_event_callbacks cb = {on_ws_recv, on_ws_send, on_ws_mask,
                                                    NULL,       NULL,       NULL,
                                                    on_ws_msg};
    if (upgrade(e, "fuzz-app", now_ms() + 1000, &err) == 0 &&
        wslay_event_context_client_init(&e->ws, &cb, e) == 0) {
        wslay_event_config_set_max_recv_msg_length(e->ws, (uint64_t)cfg.engineMaxMessageBytes);
        int nreq = 1 + ((flags >> 1) & 3), ids[4];
        for (int i = 0; i < nreq; i++) {
            ids[i] = i == 1 && (flags & 8)
                         ? engine_post(e, -1, "GetActiveDoc", NULL, &err)
                         : engine_send(e, i == 0 ? -1 : 1, "OpenDoc",
                                       json_object_new_array(), &err);
        }
        for (int i = 0; i < nreq; i++) {
            if (ids[i] < 0 || (i == 1 && (flags & 8)))
                continue;
            json_object *r = engine_wait(e, ids[i], 1000, &err);
            if (r) {
                FUZZ_ASSERT(err.kind == ENGINE_OK);
                (void)engine_handle_of(r);
                json_object_put(r);
            } else {
                FUZZ_ASSERT(err.kind != ENGINE_OK);
            }
        }
    }
    engine_close(e); /* closes sv[0] */
    close(sv[1]);
    return 0;
}
