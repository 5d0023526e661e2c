/* The QRS client on libcurl. Each thread keeps one easy handle, so keep-alive
 * connections to the repository are reused across requests of that thread. The
 * threads of a process share one TLS session cache (a curl share handle), so a
 * new connection - every task start gets one, butlerd(8) "QRS connection" -
 * resumes a session instead of a full handshake with the client certificate. */
#include "qrs.h"
#include "cfg.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <curl/curl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

static __thread CURL *easy;

/* This thread's open QRS sockets (its easy handle's connections), recorded as
 * libcurl opens and closes them: at the end of an answer's head, the ACK the
 * kernel may be holding back for the head goes out at once (TCP_QUICKACK). A QRS
 * that writes the head and the body separately with Nagle on waits for that ACK
 * before it sends the body, and on a kept-alive connection in request/answer
 * rhythm Linux delays it by up to 40 ms (butlerd(8), "QRS connection"). libcurl
 * does not say which connection a transfer uses until it ends, so every open one
 * gets it: a few setsockopt calls per answer, harmless on an idle connection. */
#define QA_MAX 8
static __thread curl_socket_t qa_fds[QA_MAX];
static __thread int qa_n;

static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    if (purpose == CURLSOCKTYPE_IPCXN && qa_n < QA_MAX)
        qa_fds[qa_n++] = fd;
    return CURL_SOCKOPT_OK;
}

static int on_close(void *arg, curl_socket_t fd)
{
    for (int i = 0; i < qa_n; i++)
        if (qa_fds[i] == fd) {
            qa_fds[i] = qa_fds[--qa_n];
            break;
        }
    return close(fd);
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    size_t len = size * n;
    if (len <= 2 && (len == 0 || line[0] == '\r' || line[0] == '\n')) {
        int one = 1;
        for (int i = 0; i < qa_n; i++)
            (void)setsockopt(qa_fds[i], IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    return len;
}

/* The process's TLS session cache, made on first use (after the fork). */
static CURLSH *share;
static pthread_once_t share_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *arg)
{
    (void)h, (void)a, (void)arg;
    pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *arg)
{
    (void)h, (void)arg;
    pthread_mutex_unlock(&share_mu[d]);
}

static void share_init(void)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_mu[i], NULL);
    share = curl_share_init();
    if (share && (curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
                  curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
                  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
                      CURLSHE_OK)) {
        curl_share_cleanup(share); /* no cache: every connection does a full handshake */
        share = NULL;
    }
}

/* The PEM files are read by the master before it drops privileges and handed to
 * libcurl from memory, so a key only root may read still works in the workers. */
static struct blob {
    char *data;
    size_t len;
} cert_blob, key_blob, ca_blob;

static int read_blob(const char *path, struct blob *b)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct buf tmp = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&tmp, chunk, n);
    int err = ferror(f);
    fclose(f);
    if (err || !tmp.p) {
        buf_free(&tmp);
        return -1;
    }
    free(b->data);
    b->data = tmp.p;
    b->len = tmp.len;
    return 0;
}

void qrs_load_credentials(const struct cfg *c)
{
    const char *paths[] = {c->clientCert, c->clientCertKey, c->clientCertCA};
    struct blob *blobs[] = {&cert_blob, &key_blob, &ca_blob};
    for (int i = 0; i < 3; i++)
        if (*paths[i] && read_blob(paths[i], blobs[i]) < 0)
            log_warn("cannot read %s; QRS calls will read it themselves", paths[i]);
}

void qrs_credentials(struct pem_blob *cert, struct pem_blob *key, struct pem_blob *ca)
{
    *cert = (struct pem_blob){cert_blob.data, cert_blob.len};
    *key = (struct pem_blob){key_blob.data, key_blob.len};
    *ca = (struct pem_blob){ca_blob.data, ca_blob.len};
}

static void set_blob(CURL *e, CURLoption opt, const struct blob *b)
{
    struct curl_blob cb = {b->data, b->len, CURL_BLOB_COPY};
    curl_easy_setopt(e, opt, &cb);
}

/* The credentials parsed once per process, for every new TLS connection: libcurl
 * builds a new SSL_CTX per connection and, given PEM blobs, decodes the client
 * certificate, its key and the CA certificates into it each time - with OpenSSL 3,
 * a third of the CPU a task start costs butlerd (each start has a connection of its
 * own). Here a new SSL_CTX only takes references to ready objects (butlerd(8),
 * "QRS connection"). Used when all three PEM blobs are there and parse cleanly,
 * with a key that matches the certificate; otherwise libcurl decodes them as
 * before, and reports any problem in its own words. */
static struct {
    X509 *cert;
    STACK_OF(X509) *chain; /* certificates after the first in the client file */
    EVP_PKEY *key;
    X509_STORE *store;
    int ok;
} pre;
static pthread_once_t pre_once = PTHREAD_ONCE_INIT;

static BIO *blob_bio(const struct blob *b) { return BIO_new_mem_buf(b->data, (int)b->len); }

static void pre_parse(void)
{
    if (!cert_blob.data || !key_blob.data || !ca_blob.data || cert_blob.len > INT_MAX ||
        key_blob.len > INT_MAX || ca_blob.len > INT_MAX)
        return;
    BIO *b = blob_bio(&cert_blob);
    pre.cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    pre.chain = sk_X509_new_null();
    X509 *x;
    while (pre.cert && pre.chain && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (!sk_X509_push(pre.chain, x))
            X509_free(x);
    BIO_free(b);
    ERR_clear_error(); /* the end of the file reads as an error */
    b = blob_bio(&key_blob);
    pre.key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    pre.store = X509_STORE_new();
    int cas = 0;
    b = blob_bio(&ca_blob);
    STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    for (int i = 0; infos && pre.store && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *in = sk_X509_INFO_value(infos, i);
        if (in->x509 && X509_STORE_add_cert(pre.store, in->x509) == 1)
            cas++;
        if (in->crl)
            X509_STORE_add_crl(pre.store, in->crl);
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    ERR_clear_error();
    pre.ok = pre.cert && pre.chain && pre.key && pre.store && cas > 0 &&
             X509_check_private_key(pre.cert, pre.key) == 1;
    ERR_clear_error();
}

static CURLcode on_ssl_ctx(CURL *e, void *sslctx, void *arg)
{
    SSL_CTX *ctx = sslctx;
    if (SSL_CTX_use_certificate(ctx, pre.cert) != 1 || SSL_CTX_use_PrivateKey(ctx, pre.key) != 1)
        return CURLE_SSL_CERTPROBLEM;
    for (int i = 0; i < sk_X509_num(pre.chain); i++)
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(pre.chain, i)) != 1)
            return CURLE_SSL_CERTPROBLEM;
    SSL_CTX_set1_cert_store(ctx, pre.store);
    return CURLE_OK;
}

/* Hands the client certificate, its key and the CAs to handle E: parsed once if
 * possible, else as blobs or files for libcurl to read. */
static void set_credentials(CURL *e, const struct cfg *c)
{
    pthread_once(&pre_once, pre_parse);
    if (pre.ok && curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) == CURLE_OK) {
        curl_easy_setopt(e, CURLOPT_CAINFO, NULL); /* not the system bundle: ours */
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        return;
    }
    if (cert_blob.data)
        set_blob(e, CURLOPT_SSLCERT_BLOB, &cert_blob);
    else if (*c->clientCert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, c->clientCert);
    if (key_blob.data)
        set_blob(e, CURLOPT_SSLKEY_BLOB, &key_blob);
    else if (*c->clientCertKey)
        curl_easy_setopt(e, CURLOPT_SSLKEY, c->clientCertKey);
    if (ca_blob.data)
        set_blob(e, CURLOPT_CAINFO_BLOB, &ca_blob);
    else if (*c->clientCertCA)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->clientCertCA);
}

/* The reply is kept in memory, so it is capped (butlerd.qrs.maxReplyBytes, see
 * butlerd.conf(5)): a reply that grows past the cap ends the transfer, because a
 * short count makes libcurl fail with CURLE_WRITE_ERROR. */
struct sink {
    struct buf *b;
    size_t max;
    int too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if (len > s->max - s->b->len) {
        s->too_large = 1;
        return 0;
    }
    buf_append(s->b, p, len);
    return len;
}

static void xrfkey(char out[17])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
        for (int i = 0; i < 16; i++)
            rnd[i] = (unsigned char)(now_ms() * 31 + i * 17);
    for (int i = 0; i < 16; i++)
        out[i] = al[rnd[i] % 62];
    out[16] = '\0';
}

char *qrs_quote(const char *s)
{
    char *o = xmalloc(strlen(s) * 2 + 1), *p = o;
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p = '\0';
    return o;
}

/* RFC 3986 unreserved characters stay, everything else becomes %XX (butlerd(8), QRS
 * connection). */
static void encode(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 3);
        }
    }
}

static const char *reason(CURLcode rc, long oserr, int fresh_tls)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return oserr == ECONNREFUSED ? "connection refused" : "cannot connect";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
        return "cannot resolve host";
    case CURLE_PEER_FAILED_VERIFICATION:
        return "server certificate not trusted";
    case CURLE_SSL_CERTPROBLEM:
        return "client certificate unusable";
    case CURLE_SSL_CACERT_BADFILE:
        return "CA file unusable";
    case CURLE_SSL_CONNECT_ERROR:
        return "TLS handshake failed";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        /* Under TLS 1.3 a refused client certificate shows up only when the first
         * read fails on the new connection: say so rather than "connection closed". */
        return fresh_tls ? "TLS connection closed by the server before it answered "
                           "(client certificate refused?)"
                         : "connection closed";
    default:
        return curl_easy_strerror(rc);
    }
}

static int perform(const struct cfg *c, const char *method, const char *path,
                   const char *filter, const char *query, const char *body,
                   qrs_chunk_fn fn, void *fnarg, int capped, struct qrs_resp *out);

int qrs_call(const struct cfg *c, const char *method, const char *path, const char *filter,
             const char *body, struct qrs_resp *out)
{
    return perform(c, method, path, filter, NULL, body, NULL, NULL, 0, out);
}

int qrs_get_stream(const struct cfg *c, const char *path, const char *query, qrs_chunk_fn fn,
                   void *arg, struct qrs_resp *out)
{
    return perform(c, "GET", path, NULL, query, NULL, fn, arg, 0, out);
}

int qrs_get_list(const struct cfg *c, const char *path, const char *filter, qrs_chunk_fn fn,
                 void *arg, struct qrs_resp *out)
{
    return perform(c, "GET", path, filter, NULL, NULL, fn, arg, 1, out);
}

/* A streamed reply: the chunks go to the caller (a 200 only; other bodies are kept
 * for the log as usual, under the cap). A capped one (a list read as it arrives)
 * still ends at butlerd.qrs.maxReplyBytes, with the same error as a kept reply. */
struct stream {
    struct sink *sink;
    CURL *e;
    qrs_chunk_fn fn;
    void *arg;
    int capped;
    size_t seen;
};

static size_t on_stream(char *p, size_t size, size_t n, void *arg)
{
    struct stream *st = arg;
    long code = 0;
    curl_easy_getinfo(st->e, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200)
        return on_data(p, size, n, st->sink);
    if (st->capped) {
        if (size * n > st->sink->max - st->seen) {
            st->sink->too_large = 1;
            return 0;
        }
        st->seen += size * n;
    }
    return st->fn(st->arg, p, size * n) == 0 ? size * n : 0;
}

static int perform(const struct cfg *c, const char *method, const char *path,
                   const char *filter, const char *query, const char *body,
                   qrs_chunk_fn fn, void *fnarg, int capped, struct qrs_resp *out)
{
    memset(out, 0, sizeof *out);
    if (!*c->qrs.host) {
        snprintf(out->error, sizeof out->error, "Butler.configQRS.host is not set");
        return -1;
    }
    if (!easy && !(easy = curl_easy_init())) {
        snprintf(out->error, sizeof out->error, "cannot create a curl handle");
        return -1;
    }
    char key[17];
    xrfkey(key);
    struct buf url = {0};
    char head[512];
    int n = snprintf(head, sizeof head, "%s://%s:%d/qrs/%s?", c->qrs.useSSL ? "https" : "http",
                     c->qrs.host, c->qrs.port, path);
    buf_append(&url, head, (size_t)n);
    if (filter) {
        buf_append(&url, "filter=", 7);
        encode(&url, filter);
        buf_append(&url, "&", 1);
    }
    if (query) { /* already encoded by the caller */
        buf_append(&url, query, strlen(query));
        buf_append(&url, "&", 1);
    }
    buf_append(&url, "xrfkey=", 7);
    buf_append(&url, key, 16);

    struct curl_slist *hdrs = NULL;
    snprintf(head, sizeof head, "X-Qlik-Xrfkey: %s", key);
    hdrs = curl_slist_append(hdrs, head);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (size_t i = 0; i < c->qrs.headers.n; i++) {
        char *h = xasprintf("%s: %s", c->qrs.headers.v[i].m[0], c->qrs.headers.v[i].m[1]);
        hdrs = curl_slist_append(hdrs, h);
        free(h);
    }

    CURL *e = easy;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_reset(e);
    pthread_once(&share_once, share_init);
    if (share)
        curl_easy_setopt(e, CURLOPT_SHARE, share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    /* libcurl silently re-sends a request whose reused connection died before any
     * answer. For a task start that could start the task twice, so starts (and any
     * other POST) get a connection of their own, closed once answered: kept, it
     * would only sit idle in the handle's cache (up to five per thread, each held
     * open at QRS), and every later call would check each one and set its
     * TCP_QUICKACK (butlerd(8), "QRS connection"). */
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(e, CURLOPT_URL, url.p);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    struct sink sink = {&out->body, (size_t)c->qrsMaxReplyBytes, 0};
    struct stream st = {&sink, e, fn, fnarg, capped, 0};
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fn ? on_stream : on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, fn ? (void *)&st : (void *)&sink);
    /* A Content-Length above the cap fails before any of the body is read. */
    if (!fn || capped)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->qrsMaxReplyBytes);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->qrsTimeoutMs);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->qrsConnectTimeoutMs);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    set_credentials(e, c);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->qrs.rejectUnauthorized ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->qrs.rejectUnauthorized ? 2L : 0L);

    int64_t t0 = now_ms();
    CURLcode rc = curl_easy_perform(e);
    curl_slist_free_all(hdrs);
    curl_off_t took_us = 0;
    if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &took_us) != CURLE_OK || took_us <= 0)
        took_us = (curl_off_t)(now_ms() - t0) * 1000;
    if (rc != CURLE_OK)
        metrics_qrs(rc == CURLE_OPERATION_TIMEDOUT ? QRS_TIMEOUT : QRS_FAILED, (uint64_t)took_us);
    if (rc != CURLE_OK) {
        long oserr = 0;
        curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &oserr);
        /* A new TLS connection closed before any answer is most often a refused
         * client certificate (TLS 1.3 reports it only at the first read); the
         * reason says both what happened and the likely cause. */
        long conns = 0;
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
        int tls_fail = c->qrs.useSSL && conns > 0;
        if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            out->too_large = 1;
            snprintf(out->error, sizeof out->error,
                     "reply larger than butlerd.qrs.maxReplyBytes (%d bytes)",
                     c->qrsMaxReplyBytes);
            buf_free(&out->body);
        } else {
            snprintf(out->error, sizeof out->error, "%s", reason(rc, oserr, tls_fail));
        }
        log_warnx("QRS %s /qrs/%s failed: %s (%s)", method, path, out->error, errbuf);
        buf_free(&url);
        return -1;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    metrics_qrs(out->status >= 200 && out->status < 300 ? QRS_OK : QRS_HTTP_ERROR,
                (uint64_t)took_us);
    if (!out->body.p)
        buf_append(&out->body, "", 0);
    log_debug("QRS %s /qrs/%s -> %ld", method, path, out->status);
    buf_free(&url);
    return 0;
}

void qrs_thread_done(void)
{
    if (easy)
        curl_easy_cleanup(easy);
    easy = NULL;
}

void qrs_resp_free(struct qrs_resp *r)
{
    buf_free(&r->body);
}
