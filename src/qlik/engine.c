/* The Engine client. One struct engine is one WebSocket session, used by one thread
 * at a time: a non-blocking socket, OpenSSL for TLS, our own HTTP/1.1 Upgrade
 * handshake, wslay's event API for the framing. Calls are pipelined: engine_send()
 * only queues, and every wait pumps the socket, keeping answers to other requests
 * in flight until they are asked for. Notifications (no id) are skipped; "change"
 * members of answers are ignored. A single incoming message is capped at
 * butlerd.engine.maxMessageBytes, so one session holds at most
 * ENGINE_MAX_INFLIGHT parsed answers of bounded size. */
#include "engine.h"
#include "cfg.h"
#include "log.h"
#include "metrics.h"
#include "qrs.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define HEAD_MAX 16384 /* the server's upgrade answer */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct slot {
    int id;
    int discard;          /* engine_post: drop the answer */
    json_object *answer;  /* the whole message once it came */
    int64_t sent_us;      /* when it was queued (metrics.h) */
};

struct engine {
    const struct cfg *cfg;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    wslay_event_context_ptr ws;
    char *pre;            /* bytes read after the upgrade answer's head */
    size_t pre_len, pre_off;
    int ssl_wants_write;  /* SSL_read needs the socket writable */
    int eof;              /* the peer closed the TCP or TLS connection */
    int64_t deadline;     /* of the wait in progress: reads stop there */
    int next_id;
    struct slot slots[ENGINE_MAX_INFLIGHT];
    int nslots;
    int dead;             /* set with fail: every later call fails the same way */
    struct engine_err fail;
    char last_note[64];   /* method of the last notification, for error messages */
    char app[128];        /* for logs */
};

static void set_err(struct engine_err *err, enum engine_fail kind, int code, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static void set_err(struct engine_err *err, enum engine_fail kind, int code, const char *fmt,
                    ...)
{
    va_list ap;
    err->kind = kind;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

/* The session is unusable from now on; the first reason is kept. */
static void kill_session(struct engine *e, const struct engine_err *why)
{
    if (e->dead)
        return;
    e->dead = 1;
    e->fail = *why;
    log_debug("engine session for app %s lost: %s", e->app, why->msg); /* callers log it */
}

static void fail(struct engine *e, enum engine_fail kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct engine *e, enum engine_fail kind, const char *fmt, ...)
{
    struct engine_err er = {kind, 0, ""};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(er.msg, sizeof er.msg, fmt, ap);
    va_end(ap);
    kill_session(e, &er);
}

static const char *ssl_reason(void)
{
    static __thread char buf[160];
    unsigned long code = ERR_get_error();
    if (!code)
        return "no detail";
    ERR_error_string_n(code, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

/* ------------------------------------------------------------------ connect */

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int tcp_connect(const struct cfg *c, int64_t deadline, struct engine_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[16];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", c->engine.port);
    int rc = getaddrinfo(c->engine.host, port, &hints, &res);
    if (rc != 0) {
        set_err(err, ENGINE_EIO, 0, "cannot resolve %s: %s", c->engine.host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            socklen_t sl = sizeof last;
            if (w > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &last, &sl) == 0 && last == 0)
                break;
            if (w == 0)
                last = ETIMEDOUT;
            else if (w < 0)
                last = errno;
        } else {
            last = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(err, last == ETIMEDOUT ? ENGINE_ETIMEOUT : ENGINE_EIO, 0,
                "cannot connect to %s:%d: %s", c->engine.host, c->engine.port,
                last == ECONNREFUSED ? "connection refused"
                : last == ETIMEDOUT  ? "timeout"
                                     : strerror(last));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ---------------------------------------------------------------------- TLS */

static BIO *mem_bio(const struct pem_blob *b)
{
    return b->data ? BIO_new_mem_buf(b->data, (int)b->len) : NULL;
}

/* The client certificate (with any chain after it), its key and the CA come from
 * the copies the master read before dropping privileges. */
static int load_credentials(SSL_CTX *ctx, const struct cfg *c, struct engine_err *err)
{
    struct pem_blob cert, key, ca;
    qrs_credentials(&cert, &key, &ca);
    if (*c->clientCert) {
        BIO *b = mem_bio(&cert);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
            set_err(err, ENGINE_EIO, 0, "client certificate %s unusable: %s", c->clientCert,
                    b ? ssl_reason() : "not read at start-up");
            X509_free(x);
            BIO_free(b);
            return -1;
        }
        X509_free(x);
        X509 *extra;
        while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1)
                X509_free(extra);
        ERR_clear_error(); /* the end of the PEM data */
        BIO_free(b);
    }
    if (*c->clientCertKey) {
        BIO *b = mem_bio(&key);
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
        EVP_PKEY_free(k);
        BIO_free(b);
        if (!ok) {
            set_err(err, ENGINE_EIO, 0, "client key %s unusable: %s", c->clientCertKey,
                    b ? ssl_reason() : "not read at start-up");
            return -1;
        }
    }
    if (c->engine.rejectUnauthorized) {
        BIO *b = mem_bio(&ca);
        X509_STORE *st = SSL_CTX_get_cert_store(ctx);
        X509 *x;
        int n = 0;
        while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            if (X509_STORE_add_cert(st, x) == 1)
                n++;
            X509_free(x);
        }
        ERR_clear_error();
        BIO_free(b);
        if (n == 0) {
            set_err(err, ENGINE_EIO, 0, "no CA certificate to verify the engine with (%s)",
                    *c->clientCertCA ? c->clientCertCA : "Butler.cert.clientCertCA is empty");
            return -1;
        }
    }
    return 0;
}

static int tls_start(struct engine *e, int64_t deadline, struct engine_err *err)
{
    const struct cfg *c = e->cfg;
    e->ctx = SSL_CTX_new(TLS_client_method());
    if (!e->ctx) {
        set_err(err, ENGINE_EIO, 0, "SSL_CTX_new: %s", ssl_reason());
        return -1;
    }
    SSL_CTX_set_min_proto_version(e->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(e->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (load_credentials(e->ctx, c, err) < 0)
        return -1;
    e->ssl = SSL_new(e->ctx);
    if (!e->ssl || SSL_set_fd(e->ssl, e->fd) != 1) {
        set_err(err, ENGINE_EIO, 0, "SSL_new: %s", ssl_reason());
        return -1;
    }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, c->engine.host, ip) == 1 ||
                inet_pton(AF_INET6, c->engine.host, ip) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(e->ssl, c->engine.host);
    if (c->engine.rejectUnauthorized) {
        SSL_set_verify(e->ssl, SSL_VERIFY_PEER, NULL);
        X509_VERIFY_PARAM *vp = SSL_get0_param(e->ssl);
        if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->engine.host)
                   : SSL_set1_host(e->ssl, c->engine.host)) != 1) {
            set_err(err, ENGINE_EIO, 0, "cannot set the host name to verify: %s", ssl_reason());
            return -1;
        }
    } else {
        SSL_set_verify(e->ssl, SSL_VERIFY_NONE, NULL);
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(e->ssl);
        if (r == 1)
            return 0;
        int se = SSL_get_error(e->ssl, r);
        if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
            int w = wait_fd(e->fd, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w == 0) {
                set_err(err, ENGINE_ETIMEOUT, 0, "TLS handshake with the engine: timeout");
                return -1;
            }
            if (w < 0) {
                set_err(err, ENGINE_EIO, 0, "poll: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        long vr = SSL_get_verify_result(e->ssl);
        if (vr != X509_V_OK)
            set_err(err, ENGINE_EIO, 0, "engine certificate not trusted: %s",
                    X509_verify_cert_error_string(vr));
        else
            set_err(err, ENGINE_EIO, 0, "TLS handshake with the engine failed: %s",
                    se == SSL_ERROR_SYSCALL && !ERR_peek_error() ? "connection closed"
                                                                 : ssl_reason());
        return -1;
    }
}

/* ------------------------------------------------------------ raw transport */

/* Non-blocking read; > 0 bytes, 0 would block, -1 EOF or error (errno-like in *why). */
static ssize_t raw_read(struct engine *e, void *buf, size_t len, const char **why)
{
    e->ssl_wants_write = 0;
    if (e->ssl) {
        ERR_clear_error();
        int n = SSL_read(e->ssl, buf, (int)(len > 1 << 30 ? 1 << 30 : len));
        if (n > 0)
            return n;
        switch (SSL_get_error(e->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            return 0;
        case SSL_ERROR_WANT_WRITE:
            e->ssl_wants_write = 1;
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            *why = "connection closed";
            return -1;
        case SSL_ERROR_SYSCALL:
            *why = ERR_peek_error() ? ssl_reason() : "connection closed";
            return -1;
        default:
            /* OpenSSL 3 reports a TCP close without close_notify as an error. */
            *why = ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING
                       ? "connection closed"
                       : ssl_reason();
            ERR_clear_error();
            return -1;
        }
    }
    ssize_t n = recv(e->fd, buf, len, 0);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    *why = n == 0 ? "connection closed" : strerror(errno);
    return -1;
}

static ssize_t raw_write(struct engine *e, const void *buf, size_t len, const char **why)
{
    if (e->ssl) {
        ERR_clear_error();
        int n = SSL_write(e->ssl, buf, (int)(len > 1 << 30 ? 1 << 30 : len));
        if (n > 0)
            return n;
        int se = SSL_get_error(e->ssl, n);
        if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ)
            return 0;
        *why = se == SSL_ERROR_SYSCALL && !ERR_peek_error() ? "connection closed" : ssl_reason();
        return -1;
    }
    ssize_t n = send(e->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    *why = strerror(errno);
    return -1;
}

/* ---------------------------------------------------------------- handshake */

static void b64(const unsigned char *in, int n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

/* Request path: the app id percent-encoded except RFC 3986 unreserved characters. */
static void app_path(struct buf *b, const char *app)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_append(b, "/app/", 5);
    for (const unsigned char *p = (const unsigned char *)app; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_append(b, p, 1);
        } else {
            char x[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, x, 3);
        }
    }
}

/* Value of header NAME in the raw response head, or NULL (copied to OUT). */
static const char *head_value(const char *head, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (!strncasecmp(h, name, nl) && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\r");
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            snprintf(out, outsz, "%.*s", (int)n, v);
            return out;
        }
    }
    return NULL;
}

static int has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == tl && !strncasecmp(p, tok, tl))
            return 1;
        p += n;
    }
    return 0;
}

static int upgrade(struct engine *e, const char *app, int64_t deadline, struct engine_err *err)
{
    const struct cfg *c = e->cfg;
    unsigned char nonce[16], digest[EVP_MAX_MD_SIZE];
    char key[32], want[64], tmp[256];
    unsigned dlen = 0;
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        set_err(err, ENGINE_EIO, 0, "RAND_bytes: %s", ssl_reason());
        return -1;
    }
    b64(nonce, sizeof nonce, key);
    snprintf(tmp, sizeof tmp, "%s" WS_GUID, key);
    if (EVP_Digest(tmp, strlen(tmp), digest, &dlen, EVP_sha1(), NULL) != 1) {
        set_err(err, ENGINE_EIO, 0, "SHA-1: %s", ssl_reason());
        return -1;
    }
    b64(digest, (int)dlen, want);

    struct buf rq = {0};
    buf_append(&rq, "GET ", 4);
    app_path(&rq, app);
    int n = snprintf(tmp, sizeof tmp,
                     " HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n",
                     strchr(c->engine.host, ':') ? "[" : "", c->engine.host,
                     strchr(c->engine.host, ':') ? "]" : "", c->engine.port, key);
    buf_append(&rq, tmp, (size_t)n);
    for (size_t i = 0; i < c->engine.headers.n; i++) {
        const char *hn = c->engine.headers.v[i].m[0], *hv = c->engine.headers.v[i].m[1];
        if (strpbrk(hn, "\r\n:") || strpbrk(hv, "\r\n")) {
            log_warnx("Butler.configEngine.headers.static: header \"%s\" skipped (CR, LF or "
                      "colon in it)",
                      hn);
            continue;
        }
        char *h = xasprintf("%s: %s\r\n", hn, hv);
        buf_append(&rq, h, strlen(h));
        free(h);
    }
    buf_append(&rq, "\r\n", 2);

    const char *why = NULL;
    int rc = -1;
    for (size_t off = 0; off < rq.len;) {
        ssize_t w = raw_write(e, rq.p + off, rq.len - off, &why);
        if (w < 0) {
            set_err(err, ENGINE_EIO, 0, "sending the WebSocket upgrade: %s", why);
            goto out;
        }
        off += (size_t)w;
        if (w == 0 && wait_fd(e->fd, POLLOUT | POLLIN, deadline) <= 0) {
            set_err(err, ENGINE_ETIMEOUT, 0, "sending the WebSocket upgrade: timeout");
            goto out;
        }
    }

    char *head = xmalloc(HEAD_MAX + 1);
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got == HEAD_MAX) {
            set_err(err, ENGINE_EIO, 0, "the engine's upgrade answer is longer than %d bytes",
                    HEAD_MAX);
            goto out_head;
        }
        ssize_t r = raw_read(e, head + got, HEAD_MAX - got, &why);
        if (r < 0) {
            /* Under TLS 1.3 a refused client certificate shows up only here. */
            set_err(err, ENGINE_EIO, 0, "%s before the engine answered the upgrade%s", why,
                    e->ssl && !got ? " (client certificate refused?)" : "");
            goto out_head;
        }
        if (r == 0) {
            if (e->ssl && SSL_pending(e->ssl) > 0)
                continue;
            int w = wait_fd(e->fd, e->ssl_wants_write ? POLLOUT : POLLIN, deadline);
            if (w <= 0) {
                set_err(err, ENGINE_ETIMEOUT, 0, "waiting for the WebSocket upgrade: timeout");
                goto out_head;
            }
            continue;
        }
        got += (size_t)r;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - head) + 4;
    end[2] = '\0'; /* keep one CRLF after the last header for head_value() */
    int status = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) {
        set_err(err, ENGINE_EIO, 0, "the engine's upgrade answer is not HTTP");
        goto out_head;
    }
    if (status != 101) {
        size_t sl = strcspn(head, "\r");
        set_err(err, ENGINE_EIO, 0, "the engine refused the WebSocket upgrade: %.*s", (int)sl,
                head);
        goto out_head;
    }
    char v[128];
    if (!head_value(head, "Upgrade", v, sizeof v) || strcasecmp(v, "websocket") != 0 ||
        !head_value(head, "Connection", v, sizeof v) || !has_token(v, "upgrade")) {
        set_err(err, ENGINE_EIO, 0, "the engine's 101 answer lacks Upgrade/Connection headers");
        goto out_head;
    }
    if (!head_value(head, "Sec-WebSocket-Accept", v, sizeof v) || strcmp(v, want) != 0) {
        set_err(err, ENGINE_EIO, 0, "the engine's Sec-WebSocket-Accept does not match the key");
        goto out_head;
    }
    if (got > hlen) { /* the first frames may have come with the head */
        e->pre_len = got - hlen;
        e->pre = xmalloc(e->pre_len);
        memcpy(e->pre, head + hlen, e->pre_len);
    }
    rc = 0;
out_head:
    free(head);
out:
    buf_free(&rq);
    return rc;
}

/* ------------------------------------------------------------ wslay glue */

/* The end of wslay's I/O callbacks: bytes moved, or -1 with "would block" (N == 0)
 * or a failure (N < 0, already noted in the session). */
static ssize_t io_done(wslay_event_context_ptr ws, ssize_t n)
{
    if (n > 0)
        return n;
    wslay_event_set_error(ws, n == 0 ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t on_ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags,
                          void *arg)
{
    struct engine *e = arg;
    if (e->pre_off < e->pre_len) {
        size_t n = e->pre_len - e->pre_off < len ? e->pre_len - e->pre_off : len;
        memcpy(buf, e->pre + e->pre_off, n);
        e->pre_off += n;
        return (ssize_t)n;
    }
    /* wslay_event_recv() reads until the socket would block: an engine that never
     * stops sending (notifications, answers to nobody) would keep it there. */
    if (now_ms() >= e->deadline)
        return io_done(ws, 0);
    const char *why = NULL;
    ssize_t n = raw_read(e, buf, len, &why);
    if (n < 0) {
        e->eof = 1;
        fail(e, ENGINE_EIO, "engine %s%s%s", why, *e->last_note ? " after notification " : "",
             e->last_note);
    }
    return io_done(ws, n);
}

static ssize_t on_ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                          void *arg)
{
    struct engine *e = arg;
    const char *why = NULL;
    ssize_t n = raw_write(e, data, len, &why);
    if (n < 0)
        fail(e, ENGINE_EIO, "sending to the engine: %s", why);
    return io_done(ws, n);
}

static int on_ws_mask(wslay_event_context_ptr ws, uint8_t *buf, size_t len, void *arg)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

static struct slot *find_slot(struct engine *e, int id)
{
    for (int i = 0; i < e->nslots; i++)
        if (e->slots[i].id == id)
            return &e->slots[i];
    return NULL;
}

static void drop_slot(struct engine *e, struct slot *s)
{
    json_object_put(s->answer);
    *s = e->slots[--e->nslots];
}

static void on_ws_msg(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *m,
                      void *arg)
{
    struct engine *e = arg;
    if (m->opcode != WSLAY_TEXT_FRAME && m->opcode != WSLAY_BINARY_FRAME)
        return; /* close, ping and pong are handled by wslay */
    json_tokener *tok = json_tokener_new_ex(1024);
    if (!tok) {
        fail(e, ENGINE_EIO, "out of memory parsing an engine message");
        return;
    }
    json_object *o = json_tokener_parse_ex(tok, (const char *)m->msg, (int)m->msg_length);
    enum json_tokener_error te = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (te != json_tokener_success || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        fail(e, ENGINE_EIO, "the engine sent a message that is not a JSON object");
        return;
    }
    json_object *idv, *mv;
    if (!json_object_object_get_ex(o, "id", &idv) || !json_object_is_type(idv, json_type_int)) {
        /* A notification (OnConnected, ...): remembered for error messages only. */
        if (json_object_object_get_ex(o, "method", &mv) && json_object_is_type(mv, json_type_string))
            snprintf(e->last_note, sizeof e->last_note, "%s", json_object_get_string(mv));
        log_debug("engine notification %s for app %s", e->last_note, e->app);
        json_object_put(o);
        return;
    }
    struct slot *s = find_slot(e, json_object_get_int(idv));
    if (!s || s->answer) {
        log_debug("engine answer with unexpected id %d dropped", json_object_get_int(idv));
        json_object_put(o);
    } else if (s->discard) {
        drop_slot(e, s);
        json_object_put(o);
    } else {
        s->answer = o;
    }
}

/* Runs the socket until slot ID has its answer, or the deadline passes. */
static int pump_until(struct engine *e, int id, int64_t deadline, struct engine_err *err)
{
    for (;;) {
        struct slot *s = find_slot(e, id);
        if (s && s->answer)
            return 0;
        if (!s) {
            set_err(err, ENGINE_EIO, 0, "no engine request with id %d", id);
            return -1;
        }
        if (e->dead) {
            *err = e->fail;
            return -1;
        }
        e->deadline = deadline;
        if (now_ms() >= deadline) {
            fail(e, ENGINE_ETIMEOUT, "no answer from the engine in time");
            continue;
        }
        if (wslay_event_want_write(e->ws) && wslay_event_send(e->ws) < 0) {
            fail(e, ENGINE_EIO, "sending to the engine failed");
            continue;
        }
        if (!wslay_event_get_read_enabled(e->ws)) {
            uint16_t rcv = wslay_event_get_status_code_received(e->ws);
            uint16_t snt = wslay_event_get_status_code_sent(e->ws);
            if (wslay_event_get_close_received(e->ws))
                fail(e, ENGINE_EIO, "the engine closed the session (code %u)%s%s", rcv,
                     *e->last_note ? " after notification " : "", e->last_note);
            else if (snt == WSLAY_CODE_MESSAGE_TOO_BIG)
                fail(e, ENGINE_EIO, "engine message larger than butlerd.engine.maxMessageBytes (%d)",
                     e->cfg->engineMaxMessageBytes);
            else
                fail(e, ENGINE_EIO, "WebSocket protocol error from the engine (code %u)", snt);
            continue;
        }
        int ready = e->pre_off < e->pre_len || (e->ssl && SSL_pending(e->ssl) > 0);
        if (!ready) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                continue; /* the timeout at the top of the loop */
            struct pollfd p = {e->fd, POLLIN, 0};
            if (wslay_event_want_write(e->ws) || e->ssl_wants_write)
                p.events |= POLLOUT;
            int n = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
            if (n < 0 && errno != EINTR) {
                fail(e, ENGINE_EIO, "poll: %s", strerror(errno));
                continue;
            }
            if (n <= 0)
                continue;
            if (!(p.revents & (POLLIN | POLLERR | POLLHUP)) && !e->ssl_wants_write)
                continue; /* writable only: the send at the top of the loop */
        }
        if (wslay_event_recv(e->ws) < 0)
            fail(e, ENGINE_EIO, "receiving from the engine failed");
    }
}

/* ------------------------------------------------------------------ public */

struct engine *engine_open(const struct cfg *c, const char *app, struct engine_err *err)
{
    memset(err, 0, sizeof *err);
    if (!*c->engine.host) {
        set_err(err, ENGINE_EIO, 0, "Butler.configEngine.host is not set");
        return NULL;
    }
    int64_t deadline = now_ms() + c->engineConnectTimeoutMs;
    struct engine *e = xcalloc(1, sizeof *e);
    e->cfg = c;
    e->fd = -1;
    e->next_id = 1;
    snprintf(e->app, sizeof e->app, "%s", app);
    e->fd = tcp_connect(c, deadline, err);
    if (e->fd < 0)
        goto fail;
    if (c->engine.useSSL && tls_start(e, deadline, err) < 0)
        goto fail;
    if (upgrade(e, app, deadline, err) < 0)
        goto fail;
    static const struct wslay_event_callbacks cb = {on_ws_recv, on_ws_send, on_ws_mask,
                                                    NULL,       NULL,       NULL,
                                                    on_ws_msg};
    if (wslay_event_context_client_init(&e->ws, &cb, e) != 0) {
        set_err(err, ENGINE_EIO, 0, "cannot create the WebSocket context");
        goto fail;
    }
    wslay_event_config_set_max_recv_msg_length(e->ws, (uint64_t)c->engineMaxMessageBytes);
    log_debug("engine session opened for app %s", app);
    metrics_engine_session(1);
    return e;
fail:
    metrics_engine_session(0);
    log_warnx("engine session for app %s on %s:%d failed: %s", app, c->engine.host,
              c->engine.port, err->msg);
    engine_close(e);
    return NULL;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->ws && !e->dead && !e->eof) {
        /* Polite close, bounded in time: first what is still queued (wslay sends a
         * control frame ahead of queued messages, and nothing after a close), then
         * the close frame. */
        int64_t deadline = now_ms() + 200;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && wslay_event_queue_close(e->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0))
                break;
            while (wslay_event_want_write(e->ws) && !e->dead && now_ms() < deadline) {
                if (wslay_event_send(e->ws) < 0)
                    break;
                if (wslay_event_want_write(e->ws) && wait_fd(e->fd, POLLOUT, deadline) <= 0)
                    break;
            }
        }
    }
    if (e->ssl && !e->eof && !e->dead)
        SSL_shutdown(e->ssl); /* one non-blocking close_notify, no wait for the answer */
    if (e->ws)
        wslay_event_context_free(e->ws);
    SSL_free(e->ssl);
    SSL_CTX_free(e->ctx);
    if (e->fd >= 0)
        close(e->fd);
    for (int i = 0; i < e->nslots; i++)
        json_object_put(e->slots[i].answer);
    free(e->pre);
    free(e);
}

static int queue(struct engine *e, int handle, const char *method, json_object *params,
                 int discard, struct engine_err *err)
{
    if (e->dead) {
        *err = e->fail;
        json_object_put(params);
        return -1;
    }
    if (e->nslots == ENGINE_MAX_INFLIGHT) {
        set_err(err, ENGINE_EIO, 0, "more than %d engine requests in flight",
                ENGINE_MAX_INFLIGHT);
        json_object_put(params);
        return -1;
    }
    int id = e->next_id++;
    const char *ps = params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN |
                                                                         JSON_C_TO_STRING_NOSLASHESCAPE)
                            : "[]";
    char *msg = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":%d,\"handle\":%d,\"method\":\"%s\","
                          "\"params\":%s}",
                          id, handle, method, ps);
    json_object_put(params);
    struct wslay_event_msg wm = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, strlen(msg)};
    int rc = wslay_event_queue_msg(e->ws, &wm); /* wslay keeps its own copy */
    free(msg);
    if (rc != 0) {
        set_err(err, ENGINE_EIO, 0, "cannot queue the %s request (wslay error %d)", method, rc);
        kill_session(e, err);
        return -1;
    }
    e->slots[e->nslots++] = (struct slot){id, discard, NULL, metrics_now_us()};
    log_debug("engine %s handle %d -> id %d (app %s)", method, handle, id, e->app);
    return id;
}

int engine_send(struct engine *e, int handle, const char *method, json_object *params,
                struct engine_err *err)
{
    return queue(e, handle, method, params, 0, err);
}

int engine_post(struct engine *e, int handle, const char *method, json_object *params,
                struct engine_err *err)
{
    return queue(e, handle, method, params, 1, err);
}

json_object *engine_wait(struct engine *e, int id, int timeout_ms, struct engine_err *err)
{
    memset(err, 0, sizeof *err);
    struct slot *s = find_slot(e, id);
    int64_t sent = s ? s->sent_us : metrics_now_us();
    if (pump_until(e, id, now_ms() + timeout_ms, err) < 0) {
        metrics_engine(err->kind == ENGINE_ETIMEOUT ? ENG_TIMEOUT : ENG_FAILED,
                       (uint64_t)(metrics_now_us() - sent));
        return NULL;
    }
    s = find_slot(e, id);
    json_object *msg = s->answer, *res = NULL, *ev;
    s->answer = NULL;
    drop_slot(e, s);
    if (json_object_object_get_ex(msg, "error", &ev)) {
        json_object *cv, *mv, *pv;
        int code = json_object_object_get_ex(ev, "code", &cv) ? json_object_get_int(cv) : 0;
        const char *text = json_object_object_get_ex(ev, "message", &mv)
                               ? json_object_get_string(mv)
                               : "no message";
        /* The engine names what it refused there ("Invalid params" says which one). */
        const char *what = json_object_object_get_ex(ev, "parameter", &pv) &&
                                   json_object_is_type(pv, json_type_string)
                               ? json_object_get_string(pv)
                               : "";
        set_err(err, ENGINE_ERPC, code, "engine error %d: %s%s%s%s", code, text,
                *what ? " (" : "", what, *what ? ")" : "");
    } else if (!json_object_object_get_ex(msg, "result", &res)) {
        set_err(err, ENGINE_EIO, 0, "engine answer %d has neither result nor error", id);
        res = NULL;
    } else {
        json_object_get(res);
    }
    json_object_put(msg);
    metrics_engine(res ? ENG_OK : err->kind == ENGINE_ERPC ? ENG_RPC_ERROR : ENG_FAILED,
                   (uint64_t)(metrics_now_us() - sent));
    return res;
}

json_object *engine_call(struct engine *e, int handle, const char *method, json_object *params,
                         int timeout_ms, struct engine_err *err)
{
    int id = engine_send(e, handle, method, params, err);
    return id < 0 ? NULL : engine_wait(e, id, timeout_ms, err);
}

int engine_handle_of(json_object *result)
{
    json_object *r, *h;
    if (!json_object_object_get_ex(result, "qReturn", &r) ||
        !json_object_object_get_ex(r, "qHandle", &h) || !json_object_is_type(h, json_type_int))
        return -1;
    return json_object_get_int(h);
}

/* ------------------------------------------------------------ documents */

#define ERR_APP_NOT_FOUND 1003 /* QIX: the app does not exist */

int engine_open_doc(struct engine *e, const struct cfg *c, const char *app, int no_data,
                    struct engine_err *err)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "qDocName", json_object_new_string(app));
    json_object_object_add(p, "qNoData", json_object_new_boolean(no_data));
    json_object *res = engine_call(e, -1, "OpenDoc", p, c->engineTimeoutMs, err);
    int doc = engine_handle_of(res);
    json_object_put(res);
    if (res && doc < 0)
        snprintf(err->msg, sizeof err->msg, "OpenDoc answered without a handle");
    if (doc < 0)
        log_warnx("engine: OpenDoc %s failed: %s", app, err->msg);
    return doc;
}

int engine_app_missing(const struct engine_err *err)
{
    return err->kind == ENGINE_ERPC && err->code == ERR_APP_NOT_FOUND;
}
