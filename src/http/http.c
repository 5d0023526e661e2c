/* The HTTP layer on libmicrohttpd. A request goes through three callbacks: the head
 * (route, override, Expect, size and media type decided here), zero or more body
 * chunks, and the final call where the handler runs. Replies are queued only on the
 * final call unless the head alone decides the answer and a body is still unread:
 * queuing earlier makes MHD close the connection, which is then what we want. */
#include "http.h"
#include "butlerd.h"
#include "audit.h"
#include "auth.h"
#include "cfg.h"
#include "cidr.h"
#include "log.h"
#include "metrics.h"
#include "pct.h"
#include "query.h"
#include "scope.h"
#include "stats.h"
#include "tlsclient.h"
#include "utf8.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define JSON_TYPE "application/json; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"

static const struct cfg *cfg;
static volatile int draining;
static int inflight;
static char keepalive_hdr[32];
static int tls_on;
static int client_ca_on; /* client certificates are asked for */

int http_inflight(void) { return __atomic_load_n(&inflight, __ATOMIC_RELAXED); }

static const char *reason(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    }
    return MHD_get_reason_phrase_for(status);
}

/* 0 if CL is a Content-Length value (1*DIGIT that fits in 64 bits) stored in *N;
 * otherwise the status for it: 400 not a number, 413 too large. */
static unsigned content_length(const char *cl, unsigned long long *n)
{
    if (!*cl || strspn(cl, "0123456789") != strlen(cl))
        return 400;
    errno = 0;
    *n = strtoull(cl, NULL, 10);
    return errno == ERANGE ? 413 : 0;
}

/* The connection whose request line this (the MHD) thread saw last; see cl_refused. */
static __thread struct MHD_Connection *uri_conn;

/* ------------------------------------------------------------------ replies */

/* {"statusCode","code"?,"error","message"}: the one error shape (butlerd-api(7), Error body). */
static json_object *error_body(unsigned status, const char *code, const char *message)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "statusCode", json_object_new_int((int)status));
    if (code)
        json_object_object_add(o, "code", json_object_new_string(code));
    json_object_object_add(o, "error", json_object_new_string(reason(status)));
    json_object_object_add(o, "message", json_object_new_string(message));
    return o;
}

/* Two errors libmicrohttpd cannot answer itself: a body cut off while it is still
 * arriving (no response may be queued then) and a request that timed out (MHD just
 * closes). The error is written to the socket directly, then MHD closes the
 * connection. Plain HTTP only; under TLS the connection is just closed. */
/* Writes a complete response head, and BODY unless it is NULL, straight to the
 * socket; the caller then makes MHD close the connection (r->abort). */
/* Writes a response that closes the connection straight to socket FD, without
 * waiting: used where libmicrohttpd cannot answer (see the callers). */
static void send_raw(int fd, unsigned status, const char *ctype, size_t clen, const char *body,
                     const char *extra)
{
    char date[64], head[768];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %u %s\r\nDate: %s\r\nConnection: close\r\n"
                     "%s%s%s%sContent-Length: %zu\r\n\r\n",
                     status, reason(status), date, extra ? extra : "",
                     ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", clen);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, body ? clen : 0}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
}

static int write_raw(struct req *r, unsigned status, const char *ctype, size_t clen,
                     const char *body)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || tls_on || r->stage == 2)
        return -1;
    /* the headers queue_reply would have added (rate limit, authentication) */
    char extra[256] = "";
    size_t n = 0;
    if (r->rl_counted)
        n += (size_t)snprintf(extra, sizeof extra,
                              "x-ratelimit-limit: %d\r\nx-ratelimit-remaining: %d\r\n"
                              "x-ratelimit-reset: %d\r\n",
                              r->rl.limit, r->rl.remaining, r->rl.reset_s);
    if (r->rl_counted && status == 429)
        n += (size_t)snprintf(extra + n, sizeof extra - n, "retry-after: %d\r\n", r->rl.reset_s);
    if (status == 401)
        snprintf(extra + n, sizeof extra - n, "WWW-Authenticate: Bearer realm=\"butlerd\"%s\r\n",
                 r->auth_invalid ? ", error=\"invalid_token\"" : "");
    send_raw(ci->connect_fd, status, ctype, clen, body, extra);
    r->status_sent = status;
    r->stage = 2;
    r->abort = 1;
    return 0;
}

static void reply_raw(struct req *r, unsigned status, const char *code, const char *message)
{
    json_object *o = error_body(status, code, message);
    size_t blen;
    const char *body = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &blen);
    write_raw(r, status, JSON_TYPE, blen, body);
    json_object_put(o);
}

/* Body reader of a fake HEAD response under TLS, where no raw write is possible. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void queue_reply(struct req *r, unsigned status, const char *ctype, const char *body,
                        size_t len, int owned);
static void queue_response(struct req *r, unsigned status, const char *ctype,
                           struct MHD_Response *resp, int fake_head);

/* A reply made on a job thread is kept until MHD calls us back after the resume:
 * responses may only be queued from the access handler. */
static void send_reply(struct req *r, unsigned status, const char *ctype, const char *body,
                       size_t len)
{
    if (r->stage == 2 || r->prepared)
        return; /* a handler replied twice: keep the first */
    if (r->deferred) {
        r->prep_status = status;
        r->prep_ctype = ctype;
        r->prep_body = xmalloc(len + 1);
        memcpy(r->prep_body, body, len);
        r->prep_len = len;
        r->prepared = 1;
        return;
    }
    queue_reply(r, status, ctype, body, len, 0);
}

/* butlerd-api(7), "Rate limiting": the budget on every counted response, and
 * retry-after on a 429. */
static void add_ratelimit_headers(struct req *r, struct MHD_Response *resp, unsigned status)
{
    char v[24];
    snprintf(v, sizeof v, "%d", r->rl.limit);
    MHD_add_response_header(resp, "x-ratelimit-limit", v);
    snprintf(v, sizeof v, "%d", r->rl.remaining);
    MHD_add_response_header(resp, "x-ratelimit-remaining", v);
    snprintf(v, sizeof v, "%d", r->rl.reset_s);
    MHD_add_response_header(resp, "x-ratelimit-reset", v);
    if (status == 429)
        MHD_add_response_header(resp, "retry-after", v);
}

/* OWNED: BODY is malloc'd and handed over (a job's prepared reply): MHD frees it
 * after sending instead of copying it first, which matters for multi-megabyte
 * app dumps. It is freed here on every path that does not hand it to MHD. */
static void queue_reply(struct req *r, unsigned status, const char *ctype, const char *body,
                        size_t len, int owned)
{
    r->big = len > (1u << 20);
    /* POST with X-HTTP-Method-Override: HEAD gets HEAD's answer: the headers of the
     * GET response, its Content-Length, no body (MHD only does that for real HEADs). */
    int fake_head = r->fake_head && status != 204;
    /* POST overridden to HEAD: MHD would send the body of a POST, so the head is
     * written directly and the connection closed (the client cannot know where a
     * HEAD-style answer to its POST ends). */
    if (fake_head && write_raw(r, status, ctype, len, NULL) == 0) {
        if (owned)
            free((void *)body);
        return;
    }
    struct MHD_Response *resp =
        fake_head ? MHD_create_response_from_callback(len, 1, no_body, NULL, NULL)
                  : MHD_create_response_from_buffer(
                        len, (void *)body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (owned && (fake_head || !resp))
        free((void *)body);
    queue_response(r, status, ctype, resp, fake_head);
}

/* Adds the headers every reply carries to RESP and queues it (consumed either way). */
static void queue_response(struct req *r, unsigned status, const char *ctype,
                           struct MHD_Response *resp, int fake_head)
{
    if (!resp) {
        log_errorx("cannot create response");
        return;
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (r->rl_counted)
        add_ratelimit_headers(r, resp, status);
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                r->auth_invalid ? "Bearer realm=\"butlerd\", error=\"invalid_token\""
                                                : "Bearer realm=\"butlerd\"");
    if (fake_head)
        r->close = 1;
    if (r->close || draining) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    } else {
        MHD_set_response_options(resp, MHD_RF_SEND_KEEP_ALIVE_HEADER, MHD_RO_END);
        MHD_add_response_header(resp, "Keep-Alive", keepalive_hdr);
    }
    if (MHD_queue_response(r->conn, status, resp) != MHD_YES)
        log_errorx("cannot queue %u response for %s", status, r->target);
    else
        r->status_sent = status;
    MHD_destroy_response(resp);
    r->stage = 2;
}

/* ---------------------------------------------------------- streamed replies */

struct http_stream {
    http_fill_fn fill;
    void (*done)(void *);
    void *cls;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_stream *s = cls;
    long n = s->fill(s->cls, buf, max);
    return n > 0 ? (ssize_t)n
                 : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct http_stream *s = cls;
    if (s->done)
        s->done(s->cls);
    free(s);
}

/* A streamed body goes out chunked, as it is made. HEAD through a POST override
 * needs its length: the body is made once and counted, not kept. */
static void queue_stream(struct req *r, unsigned status, const char *ctype, struct http_stream *s)
{
    r->big = 1;
    if (r->fake_head) {
        char *scratch = xmalloc(1 << 16);
        size_t total = 0;
        long n;
        while ((n = s->fill(s->cls, scratch, 1 << 16)) > 0)
            total += (size_t)n;
        free(scratch);
        stream_free(s);
        queue_reply(r, status, ctype, NULL, total, 0);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1 << 16, stream_read, s, stream_free);
    if (!resp)
        stream_free(s);
    queue_response(r, status, ctype, resp, 0);
}

void http_reply_stream(struct req *r, unsigned status, const char *ctype, http_fill_fn fill,
                       void (*done)(void *), void *cls)
{
    struct http_stream *s = xmalloc(sizeof *s);
    *s = (struct http_stream){fill, done, cls};
    if (!ctype)
        ctype = JSON_TYPE;
    if (r->stage == 2 || r->prepared) {
        stream_free(s);
        return;
    }
    if (r->deferred) {
        r->prep_status = status;
        r->prep_ctype = ctype;
        r->prep_stream = s;
        r->prepared = 1;
        return;
    }
    queue_stream(r, status, ctype, s);
}

void http_reply_json(struct req *r, unsigned status, json_object *o)
{
    size_t len;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    send_reply(r, status, JSON_TYPE, s, len);
    json_object_put(o);
}

void http_reply_json_buf(struct req *r, unsigned status, struct buf *b)
{
    if (!b->p)
        buf_append(b, "", 0);
    if (r->stage != 2 && !r->prepared) {
        if (r->deferred) {
            r->prep_status = status;
            r->prep_ctype = JSON_TYPE;
            r->prep_body = b->p;
            r->prep_len = b->len;
            r->prepared = 1;
        } else {
            /* handed to libmicrohttpd as it is, no copy */
            queue_reply(r, status, JSON_TYPE, b->p, b->len, 1);
        }
        *b = (struct buf){0};
        return;
    }
    buf_free(b);
}

size_t http_json_escape(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        }
        if (e) {
            out[o++] = e[0];
            out[o++] = e[1];
        } else if (c < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

void http_json_str(struct buf *b, const char *s, size_t n)
{
    char out[6 * 40];
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i += 40) {
        size_t piece = n - i < 40 ? n - i : 40;
        buf_append(b, out, http_json_escape(out, s + i, piece));
    }
    buf_append(b, "\"", 1);
}

/* Replies whose bytes never change (the ping) are built once per worker and queued
 * again for every request: libmicrohttpd counts a response's users, and adds Date
 * itself. Only the plain case is kept: a reply that carries rate-limit headers,
 * closes the connection, answers an overridden HEAD or comes from a job thread is
 * made as any other. Only the worker's one MHD thread gets here. */
#define STATIC_REPLIES 4
static struct {
    const char *body;
    unsigned status;
    struct MHD_Response *resp;
} statics[STATIC_REPLIES];

void http_reply_static(struct req *r, unsigned status, const char *body, size_t len)
{
    if (r->deferred || r->stage == 2 || r->prepared || r->fake_head || r->rl_counted ||
        r->close || draining || status == 401) {
        send_reply(r, status, JSON_TYPE, body, len);
        return;
    }
    int i = 0;
    while (i < STATIC_REPLIES && statics[i].body &&
           (statics[i].body != body || statics[i].status != status))
        i++;
    if (i == STATIC_REPLIES || !statics[i].body) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
        if (!resp || (i == STATIC_REPLIES)) {
            if (resp)
                MHD_destroy_response(resp);
            send_reply(r, status, JSON_TYPE, body, len);
            return;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, JSON_TYPE);
        MHD_set_response_options(resp, MHD_RF_SEND_KEEP_ALIVE_HEADER, MHD_RO_END);
        MHD_add_response_header(resp, "Keep-Alive", keepalive_hdr);
        statics[i].body = body;
        statics[i].status = status;
        statics[i].resp = resp;
    }
    if (MHD_queue_response(r->conn, status, statics[i].resp) != MHD_YES)
        log_errorx("cannot queue %u response for %s", status, r->target);
    else
        r->status_sent = status;
    r->stage = 2;
}

void http_reply_typed(struct req *r, unsigned status, const char *ctype, const char *body,
                      size_t len)
{
    send_reply(r, status, ctype, body, len);
}

void http_reply_empty(struct req *r, unsigned status)
{
    send_reply(r, status, NULL, "", 0);
}

void http_reply_text(struct req *r, unsigned status, const char *text)
{
    send_reply(r, status, TEXT_TYPE, text, strlen(text));
}

void http_reply_error(struct req *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_reply_json(r, status, error_body(status, code, msg));
}

void http_reply_error_bytes(struct req *r, unsigned status, const char *prefix,
                            const char *data, size_t len)
{
    struct buf m = {0};
    buf_append(&m, prefix, strlen(prefix));
    buf_append(&m, data, len);
    json_object *o = error_body(status, NULL, "");
    json_object_object_add(o, "message", json_object_new_string_len(m.p, (int)m.len));
    buf_free(&m);
    http_reply_json(r, status, o);
}

static void reply_status(struct req *r, unsigned status)
{
    switch (status) {
    case 404:
        http_reply_error(r, 404, NULL, "Route %s:%s not found", r->method, r->target);
        break;
    case 413:
        http_reply_error(r, 413, "FST_ERR_CTP_BODY_TOO_LARGE", "Request body is too large");
        break;
    case 415:
        http_reply_error(r, 415, "FST_ERR_CTP_INVALID_MEDIA_TYPE", "Unsupported Media Type");
        break;
    case 417:
        http_reply_error(r, 417, NULL, "Expectation Failed");
        break;
    case 431:
        http_reply_error(r, 431, NULL, "Request Header Fields Too Large");
        break;
    case 401:
    case 403:
        http_reply_error(r, status, NULL, "%s", r->auth_msg);
        break;
    case 429:
        http_reply_error(r, 429, NULL, "Rate limit exceeded, retry in %d second%s",
                         r->rl.reset_s, r->rl.reset_s == 1 ? "" : "s");
        break;
    case 400:
        http_reply_error(r, 400, "FST_ERR_CTP_INVALID_JSON_BODY",
                         "Body is not valid JSON but content-type is set to 'application/json'");
        break;
    default:
        http_reply_error(r, status, NULL, "%s", reason(status));
    }
}

char *http_param(struct req *r, int i, size_t *len)
{
    char *v = i < r->params.n ? pct_decode_path(r->params.v[i].p, r->params.v[i].len) : NULL;
    if (!v) {
        http_reply_error(r, 400, "FST_ERR_BAD_URL", "'%.*s' is not a valid url component",
                         (int)r->pathlen, r->target);
        return NULL;
    }
    *len = strlen(v);
    return v;
}

json_object *http_body(struct req *r, const struct sch_prop *props)
{
    char *err = NULL;
    if (!r->body || !json_object_is_type(r->body, json_type_object)) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION", "body must be object");
        return NULL;
    }
    if (sch_check(r->body, "body", props, &err) < 0) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION", "%s", err);
        free(err);
        return NULL;
    }
    return r->body;
}

json_object *http_query(struct req *r, const struct sch_prop *props)
{
    if (!r->query) {
        const char *q = r->target + r->pathlen;
        size_t qlen = strlen(q);
        r->query = qs_parse(qlen ? q + 1 : q, qlen ? qlen - 1 : 0);
    }
    char *err = NULL;
    if (sch_check(r->query, "querystring", props, &err) < 0) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION", "%s", err);
        free(err);
        return NULL;
    }
    return r->query;
}

/* --------------------------------------------------------------------- jobs */

/* Handlers that wait (on QRS, the engine, Slack, the broker, the disk) run on job
 * threads, with their connection suspended, so the MHD thread keeps serving every
 * other connection of this worker meanwhile. Each kind of work has a pool of its own
 * (the route table says which, router.h): forty start-task requests stuck on a hung
 * QRS must not make a file copy wait behind them. */
struct job {
    struct req *r;
    api_handler fn;
    struct job *next;
};

struct jpool {
    const char *name;
    int threads;
    int trim;         /* give the heap its jobs freed back once it is quiet */
    int running;      /* jobs being run */
    int dirty;        /* a job ended since the last trim */
    int64_t ended_ms; /* when the last job ended */
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
};

#define JPOOL(n, t, tr)                                                                     \
    {.name = n, .threads = t, .trim = tr, .mu = PTHREAD_MUTEX_INITIALIZER,                   \
     .cv = PTHREAD_COND_INITIALIZER}
/* Qlik Sense work (QRS lists, TLS connections, app dumps) leaves freed heap in the
 * malloc arena of each job thread that did it, which glibc keeps for that thread.
 * The sweeper gives it back (malloc_trim) once the pool has been quiet for
 * TRIM_QUIET_MS, so once a burst and off the request path (a trim after every job
 * would add half a millisecond of CPU to each start); under steady work, at a tick
 * that finds the pool idle and at most every TRIM_BUSY_MS (butlerd(8),
 * PERFORMANCE). */
#define TRIM_QUIET_MS 1000
#define TRIM_BUSY_MS 30000
static struct jpool jpools[JP_COUNT] = {
    [JP_QLIK] = JPOOL("qlik", 8, 1),
    [JP_FILES] = JPOOL("files", 4, 0),
    [JP_OUTBOUND] = JPOOL("outbound", 4, 0),
    [JP_LOCAL] = JPOOL("local", 2, 0),
    [JP_STORE] = JPOOL("store", 8, 0),
};

static int jobs_inflight;

int http_jobs(void) { return __atomic_load_n(&jobs_inflight, __ATOMIC_RELAXED); }

static int background;

void http_background_add(int delta) { __atomic_add_fetch(&background, delta, __ATOMIC_RELAXED); }
int http_background(void) { return __atomic_load_n(&background, __ATOMIC_RELAXED); }

static void *job_thread(void *arg)
{
    struct jpool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head)
            pthread_cond_wait(&p->cv, &p->mu);
        struct job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->r);
        if (!j->r->prepared) {
            log_errorx("handler for %s sent no reply", j->r->target);
            http_reply_error(j->r, 500, NULL, "Internal Server Error");
        }
        MHD_resume_connection(j->r->conn);
        __atomic_sub_fetch(&jobs_inflight, 1, __ATOMIC_RELAXED);
        free(j);
        int64_t now = p->trim ? now_ms() : 0;
        pthread_mutex_lock(&p->mu);
        p->running--;
        p->dirty = p->trim;
        p->ended_ms = now;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

/* Called by the sweeper: one malloc_trim for the pools that ran jobs and are idle,
 * quiet for TRIM_QUIET_MS or last trimmed TRIM_BUSY_MS ago. */
static void jpools_trim(int64_t now)
{
    static int64_t last_trim;
    int trim = 0;
    for (int k = 0; k < JP_COUNT; k++) {
        struct jpool *p = &jpools[k];
        if (!p->trim)
            continue;
        pthread_mutex_lock(&p->mu);
        if (p->dirty && !p->running && !p->head &&
            (now - p->ended_ms >= TRIM_QUIET_MS || now - last_trim >= TRIM_BUSY_MS)) {
            p->dirty = 0;
            trim = 1;
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (trim) {
        last_trim = now;
        malloc_trim(0);
    }
}

/* A pool's threads start with its first job (under its lock), so a worker carries
 * only the threads of the kinds of work it is given. */
static void jpool_start(struct jpool *p)
{
    for (int i = 0; i < p->threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, job_thread, p) != 0) {
            log_error("pthread_create for %s job thread %d", p->name, i);
            if (i == 0)
                abort(); /* no thread at all: deferred requests could never finish */
            break;
        }
        pthread_detach(t);
    }
    p->started = 1;
}

void http_defer(struct req *r, api_handler fn)
{
    unsigned k = r->route ? r->route->pool : JP_NONE;
    if (k == JP_NONE || k >= JP_COUNT) {
        assert(!"route defers without a job pool"); /* router.c gives each one */
        k = JP_LOCAL;
    }
    struct jpool *p = &jpools[k];
    struct job *j = xmalloc(sizeof *j);
    j->r = r;
    j->fn = fn;
    j->next = NULL;
    r->deferred = 1;
    __atomic_add_fetch(&jobs_inflight, 1, __ATOMIC_RELAXED);
    MHD_suspend_connection(r->conn);
    pthread_mutex_lock(&p->mu);
    if (!p->started)
        jpool_start(p);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ connection guard */

/* libmicrohttpd's own timeout is an idle limit: a client that sends one header line
 * every few seconds keeps a connection forever, and a few thousand such clients fill
 * every worker (slowloris). The guard gives each connection absolute deadlines by
 * phase - doc/butlerd.conf.5, "HTTP":
 *   idle   (accepted, or between requests, no request line yet): keepAliveTimeout,
 *          or BUSY_IDLE_MS when the worker is near maxConnections;
 *   head   (request line seen, headers not complete): headerTimeout;
 *   body   (head complete, body arriving): requestTimeout from the request line;
 *   busy   (handler running or reply being sent): no limit here.
 * A sweeper thread closes connections past their deadline with shutdown(2), which
 * libmicrohttpd then sees as the client going away. It only touches descriptors of
 * connections in the registry, under its lock, and libmicrohttpd reports a
 * connection closed (NOTIFY_CLOSED, which removes it) before it closes the socket,
 * so a descriptor is never shut down after it was reused. */
enum { PH_IDLE, PH_HEAD, PH_BODY, PH_BUSY };
#define BUSY_IDLE_MS 2000
#define SWEEP_MS 250

struct hconn {
    int fd;
    int cert_state;      /* enum tlsc_state once checked, 0 before */
    char cert_subject[1025]; /* butlerd.auth.certificates subjects are up to 1024 */
    int phase;        /* PH_*, written by the MHD thread, read by the sweeper */
    int64_t since_ms; /* start of the phase */
    struct hconn *prev, *next;
};

static pthread_mutex_t hc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hconn *hc_head;
static unsigned hc_count;
static unsigned long long hc_swept[4];

static void hc_set(struct hconn *h, int phase, int64_t since)
{
    if (!h)
        return;
    __atomic_store_n(&h->since_ms, since, __ATOMIC_RELAXED);
    __atomic_store_n(&h->phase, phase, __ATOMIC_RELEASE);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct hconn *h = xcalloc(1, sizeof *h);
        h->fd = ci ? ci->connect_fd : -1;
        h->phase = PH_IDLE;
        h->since_ms = now_ms();
        pthread_mutex_lock(&hc_mu);
        h->next = hc_head;
        if (hc_head)
            hc_head->prev = h;
        hc_head = h;
        hc_count++;
        pthread_mutex_unlock(&hc_mu);
        *socket_context = h;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (uri_conn == conn)
            uri_conn = NULL; /* never look at a freed connection */
        struct hconn *h = *socket_context;
        if (!h)
            return;
        pthread_mutex_lock(&hc_mu);
        if (h->prev)
            h->prev->next = h->next;
        else
            hc_head = h->next;
        if (h->next)
            h->next->prev = h->prev;
        hc_count--;
        pthread_mutex_unlock(&hc_mu);
        free(h);
        *socket_context = NULL;
    }
}

/* A 408 for a request cut off by its deadline; plain HTTP only (under TLS the
 * socket carries records, so the connection is just closed). */
static void hc_408(int fd)
{
    static const char body[] = "{\"statusCode\":408,\"error\":\"Request Timeout\","
                               "\"message\":\"Request Timeout\"}";
    send_raw(fd, 408, JSON_TYPE, sizeof body - 1, body, NULL);
}

static void *sweeper(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, SWEEP_MS * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = now_ms();
        pthread_mutex_lock(&hc_mu);
        int busy = hc_count >= (unsigned)cfg->http.maxConnections / 4 * 3;
        int64_t limit[3] = {
            busy ? BUSY_IDLE_MS : (int64_t)cfg->http.keepAliveTimeout * 1000,
            (int64_t)cfg->http.headerTimeout * 1000,
            (int64_t)cfg->http.requestTimeout * 1000,
        };
        for (struct hconn *h = hc_head; h; h = h->next) {
            int ph = __atomic_load_n(&h->phase, __ATOMIC_ACQUIRE);
            if (ph == PH_BUSY || h->fd < 0)
                continue;
            if (now - __atomic_load_n(&h->since_ms, __ATOMIC_RELAXED) <= limit[ph])
                continue;
            if (ph != PH_IDLE && !tls_on)
                hc_408(h->fd);
            shutdown(h->fd, SHUT_RDWR);
            __atomic_store_n(&h->phase, PH_BUSY, __ATOMIC_RELAXED); /* once */
            hc_swept[ph]++;
        }
        pthread_mutex_unlock(&hc_mu);
        jpools_trim(now);
    }
    return NULL;
}

/* ----------------------------------------------------------------- requests */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Per request, the HTTP layer's bookkeeping makes one allocation (the record and
 * its copy of the target together), reads the clock twice (here and in on_done; the
 * milliseconds come from the same CLOCK_MONOTONIC reading) and looks the
 * connection's sweeper record up once (butlerd(8), PERFORMANCE). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    size_t ulen = strlen(uri);
    struct req *r = xmalloc(sizeof *r + ulen + 1);
    memset(r, 0, sizeof *r);
    r->conn = conn;
    r->cfg = cfg;
    r->target = memcpy((char *)(r + 1), uri, ulen + 1);
    r->pathlen = strcspn(uri, "?");
    r->started_us = mono_us();
    r->started_ms = r->started_us / 1000;
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    r->peerlen = ai ? cidr_key(ai->client_addr, r->peer) : 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->hc = ci ? ci->socket_context : NULL;
    hc_set(r->hc, PH_HEAD, r->started_ms);
    uri_conn = conn;
    __atomic_add_fetch(&inflight, 1, __ATOMIC_RELAXED);
    /* The query string is parsed by http_query() from our copy of the target, never
     * by libmicrohttpd: its argument table lives in the connection's memory pool, and
     * a few hundred parameters exhaust it, after which it drops the connection
     * without an answer. libmicrohttpd calls this callback before it splits off the
     * arguments (of the buffer it owns and passes here), so ending the string right
     * after the '?' leaves it nothing to parse. */
    char *q = strchr(uri, '?');
    if (q && q[1])
        q[1] = '\0';
    /* While a request is being received the idle limit is requestTimeout; between
     * requests it is keepAliveTimeout again (set in on_done). */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)cfg->http.requestTimeout);
    return r;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    if (!r)
        return;
    int64_t now_us = mono_us(), now = now_us / 1000;
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        reply_raw(r, 408, NULL, "Request Timeout");
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
             toe != MHD_REQUEST_TERMINATED_CLIENT_ABORT)
        log_debug("request %s ended early (%d)", r->target, (int)toe);
    /* butlerd(8), "AUDIT TRAIL": every request to a route that changes something,
     * refused or not, once it has ended. */
    /* butlerd(8), "MONITORING": by route pattern (never the raw path) and status
     * class; nothing is recorded while the metrics are off. */
    if (r->status_sent && cfg->metrics.enable)
        metrics_request(r->route ? router_index(r->route) : METRICS_ROUTES - 1,
                        router_family(r->route), r->status_sent,
                        (uint64_t)(now_us - r->started_us));
    if (r->route && !(r->route->opts & R_OPEN) && audit_enabled() &&
        scope_changes(r->route->scope)) {
        char client[64];
        cidr_key_text(r->peer, r->peerlen, client, sizeof client);
        audit_request(client, r->who, r->method, r->target, r->pathlen, r->status_sent,
                      now - r->started_ms);
    }
    json_object_put(r->body);
    json_object_put(r->query);
    free(r->prep_body);
    if (r->prep_stream)
        stream_free(r->prep_stream);
    /* A large reply (a long keylist) leaves freed heap behind: give it back. */
    if (r->big)
        malloc_trim(0);
    struct hconn *hc = r->hc;
    buf_free(&r->raw);
    free(r); /* and the target with it (on_uri) */
    *con_cls = NULL;
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)cfg->http.keepAliveTimeout);
    hc_set(hc, PH_IDLE, now);
    if (uri_conn == conn)
        uri_conn = NULL;
    __atomic_sub_fetch(&inflight, 1, __ATOMIC_RELAXED);
}

static void effective_method(struct req *r, const char *method)
{
    const char *ovr = NULL;
    if (!strcmp(method, "POST"))
        ovr = r->hdr.method_override;
    if (!ovr) {
        size_t n = strnlen(method, sizeof r->method - 1);
        memcpy(r->method, method, n);
        r->method[n] = '\0';
        return;
    }
    while (isspace((unsigned char)*ovr))
        ovr++;
    size_t n = strlen(ovr);
    while (n && isspace((unsigned char)ovr[n - 1]))
        n--;
    if (n >= sizeof r->method)
        n = sizeof r->method - 1;
    for (size_t i = 0; i < n; i++)
        r->method[i] = (char)toupper((unsigned char)ovr[i]);
    r->method[n] = '\0';
    r->fake_head = !strcmp(r->method, "HEAD");
}

static int media_ok(const char *ctype)
{
    if (!ctype)
        return 0;
    while (isspace((unsigned char)*ctype))
        ctype++;
    size_t n = strcspn(ctype, "; \t");
    return (n == 16 && !strncasecmp(ctype, "application/json", 16)) ||
           (n == 10 && !strncasecmp(ctype, "text/plain", 10));
}

struct head_scan {
    struct req *r;
    size_t size;
};

/* KEY is NAME, compared as libmicrohttpd's lookup does (ignoring case); the first
 * field of a name wins, as it does there. */
static void keep_field(const char **slot, const char *key, size_t klen, const char *name,
                       size_t nlen, const char *value)
{
    if (!*slot && klen == nlen && !strcasecmp(key, name))
        *slot = value;
}

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct head_scan *hs = cls;
    size_t klen = strlen(key);
    hs->size += klen + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    if (!value)
        return MHD_YES;
    struct req *r = hs->r;
    switch (klen) {
    case 6:
        keep_field(&r->hdr.expect, key, klen, "Expect", 6, value);
        break;
    case 10:
        keep_field(&r->hdr.connection, key, klen, "Connection", 10, value);
        break;
    case 12:
        keep_field(&r->hdr.content_type, key, klen, "Content-Type", 12, value);
        break;
    case 13:
        keep_field(&r->hdr.authorization, key, klen, "Authorization", 13, value);
        break;
    case 14:
        keep_field(&r->hdr.content_length, key, klen, "Content-Length", 14, value);
        break;
    case 17:
        keep_field(&r->hdr.transfer_encoding, key, klen, "Transfer-Encoding", 17, value);
        break;
    case 22:
        keep_field(&r->hdr.method_override, key, klen, "X-HTTP-Method-Override", 22, value);
        break;
    }
    return MHD_YES;
}

/* One pass over the head: the fields of r->hdr, and the size of the request line
 * plus headers as the client sent them (up to whitespace); *FIELDS is set to the
 * number of header fields. */
static size_t scan_head(struct req *r, const char *method, const char *version, int *fields)
{
    struct head_scan hs = {r, strlen(method) + strlen(r->target) + strlen(version) + 4};
    *fields = MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_field, &hs);
    return hs.size + 2;
}

/* The verified client certificate's subject of R's connection, or NULL; a 401 reason
 * in r->auth_msg when the certificate is untrusted, or missing but required. The
 * verdict is taken once per connection (a TLS session has one client). */
static const char *client_cert(struct req *r, unsigned *status)
{
    *status = 0;
    if (!client_ca_on)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct hconn *h = ci ? ci->socket_context : NULL;
    if (!h)
        return NULL;
    if (!h->cert_state) {
        const union MHD_ConnectionInfo *si =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        h->cert_state = (int)tlsclient_check(si ? si->tls_session : NULL, h->cert_subject,
                                             sizeof h->cert_subject);
        log_debug("client certificate: %s%s",
                  h->cert_state == TLSC_OK     ? "verified, subject "
                  : h->cert_state == TLSC_NONE ? "none"
                                               : "not trusted",
                  h->cert_state == TLSC_OK ? h->cert_subject : "");
    }
    if (h->cert_state == TLSC_OK)
        return h->cert_subject[0] ? h->cert_subject : NULL;
    if (h->cert_state == TLSC_UNTRUSTED) {
        *status = 401;
        snprintf(r->auth_msg, sizeof r->auth_msg, "Client certificate not trusted");
    } else if (cfg->http.requireClientCert) {
        *status = 401;
        snprintf(r->auth_msg, sizeof r->auth_msg, "A client certificate is required");
    }
    return NULL;
}

/* butlerd-api(7), "Authentication": 0 if the request may go on, else 401 or 403
 * with r->auth_msg set. Nothing of the Authorization header is kept or logged. */
static unsigned authenticate(struct req *r)
{
    unsigned cst;
    const char *subject = client_cert(r, &cst);
    if (cst)
        return cst;
    if (!cfg->auth.enable)
        return 0;
    struct auth_result ar;
    const char *authz = r->hdr.authorization;
    unsigned st = auth_check(cfg, authz, subject, r->peer, r->peerlen, r->route->scope, &ar);
    r->who = ar.who;
    r->auth_invalid = ar.invalid;
    memcpy(r->auth_msg, ar.message, sizeof r->auth_msg);
    return st;
}

/* Decides what can be decided from the request head. Returns MHD_YES normally; a
 * reply queued here (body unread) makes MHD close the connection afterwards. */
static enum MHD_Result on_head(struct req *r, const char *method, const char *version)
{
    int fields;
    size_t head_bytes = scan_head(r, method, version, &fields);
    effective_method(r, method);
    const char *rm = !strcmp(r->method, "HEAD") ? "GET" : r->method;
    const struct route *rt = router_match(rm, r->target, r->pathlen, &r->params);
    if (rt && router_enabled(rt, cfg))
        r->route = rt;
    /* Every request to an enabled route counts, before anything is validated; the
     * 404 of an unknown route does not (butlerd-api(7), "Rate limiting"), nor do the
     * open routes: a load balancer's health checks must not eat its clients' budget. */
    if (r->route && !(r->route->opts & R_OPEN) && cfg->rateLimit.enable && r->peerlen) {
        rl_hit(r->peer, r->peerlen, cfg->rateLimit.maxRequests, cfg->rateLimit.windowSeconds,
               &r->rl);
        r->rl_counted = 1;
    }

    const char *conn_hdr = r->hdr.connection;
    if (conn_hdr && strcasestr(conn_hdr, "close"))
        r->close = 1;
    if (!strcmp(version, MHD_HTTP_VERSION_1_0) && !(conn_hdr && strcasestr(conn_hdr, "keep-alive")))
        r->close = 1;

    const char *expect = r->hdr.expect;
    const char *cl = r->hdr.content_length;
    const char *te = r->hdr.transfer_encoding;
    unsigned long long clen = 0;
    if (cl && content_length(cl, &clen)) {
        /* libmicrohttpd refuses these before calling us (see cl_refused), but
         * should one get through, it must not be read as 0 */
        r->close = 1;
        http_reply_error(r, 400, NULL, "Content-Length is not a number");
        return MHD_YES;
    }
    int chunked = 0;
    if (te) {
        size_t n = strlen(te);
        chunked = n == 7 && !strncasecmp(te, "chunked", 7);
    }
    int has_body = clen > 0 || chunked;
    int bodyless = !strcmp(rm, "GET");
    unsigned status = 0;

    if (te && !chunked) {
        /* Any other coding (gzip, "gzip, chunked", ...) would make libmicrohttpd read
         * the body until the connection closes. */
        r->close = 1;
        http_reply_error(r, 501, NULL, "Transfer-Encoding \"%.100s\" is not supported", te);
        return MHD_YES;
    }
    if (te && cl) {
        /* Both framings at once: a request-smuggling pattern (RFC 9112, 6.1). */
        r->close = 1;
        http_reply_error(r, 400, NULL, "Transfer-Encoding and Content-Length together");
        return MHD_YES;
    }
    if (head_bytes > (size_t)cfg->http.maxHeaderBytes ||
        fields > cfg->http.maxHeaderFields)
        status = 431;
    else if (expect && strcasecmp(expect, "100-continue") != 0)
        status = 417;
    else if (!r->route)
        status = 404;
    else if (r->rl_counted && r->rl.limited)
        status = 429;
    else if (!(r->route->opts & R_OPEN))
        status = authenticate(r);
    if (status == 429)
        STAT_INC(http_rate_limited);
    else if (status == 401)
        STAT_INC(http_unauthorized);
    else if (status == 403)
        STAT_INC(http_forbidden);
    if (!status && clen > (unsigned long long)cfg->http.maxBodyBytes)
        status = 413;
    else if (!status && has_body && !bodyless &&
             !media_ok(r->hdr.content_type))
        status = 415;

    r->keep_body = has_body && !bodyless && !status;
    r->discard = !r->keep_body;
    if (!status)
        return MHD_YES;
    /* Answer at once when a body is announced that we will not read and either the
     * client waits for 100-continue or the body is larger than we accept. */
    if (status == 431 || (has_body && (expect || status == 413 || status == 417))) {
        r->close = 1;
        reply_status(r, status);
        return MHD_YES;
    }
    r->pending = (int)status;
    return MHD_YES;
}

/* What JSON allows but json-c lets through: non-finite numbers (NaN, Infinity, and
 * literals such as 1e999 that overflow to infinity) and strings that are not
 * well-formed UTF-8 (overlong forms, encoded or escaped lone surrogates, code points
 * above U+10FFFF). Returns why O is unacceptable, or NULL. */
static const char *json_suspect(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_double:
        return isfinite(json_object_get_double(o)) ? NULL : "body has a number out of range";
    case json_type_string:
        return utf8_valid(json_object_get_string(o), (size_t)json_object_get_string_len(o))
                   ? NULL
                   : "body has a string that is not valid UTF-8";
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(o); i < n; i++) {
            const char *why = json_suspect(json_object_array_get_idx(o, i));
            if (why)
                return why;
        }
        return NULL;
    case json_type_object: {
        json_object_object_foreach(o, k, v) {
            if (!utf8_valid(k, strlen(k)))
                return "body has a member name that is not valid UTF-8";
            const char *why = json_suspect(v);
            if (why)
                return why;
        }
        return NULL;
    }
    default:
        return NULL;
    }
}

/* json-c turns an escaped lone surrogate (\ud800 without its pair) silently into
 * U+FFFD; it is not a character, so the body is refused instead of altered. Runs on
 * text the tokener accepted, where a backslash only occurs as an escape in a string. */
static int lone_surrogate_escape(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] != 'u' || i + 6 > n) {
            i++; /* any other escape, including \\ */
            continue;
        }
        unsigned v = (unsigned)strtoul((char[5]){p[i + 2], p[i + 3], p[i + 4], p[i + 5], 0},
                                       NULL, 16);
        i += 5;
        if (v >= 0xDC00 && v <= 0xDFFF)
            return 1; /* a low half with no high half before it */
        if (v >= 0xD800 && v <= 0xDBFF) {
            if (i + 7 > n || p[i + 1] != '\\' || p[i + 2] != 'u')
                return 1;
            unsigned w = (unsigned)strtoul(
                (char[5]){p[i + 3], p[i + 4], p[i + 5], p[i + 6], 0}, NULL, 16);
            if (w < 0xDC00 || w > 0xDFFF)
                return 1;
            i += 6;
        }
    }
    return 0;
}

static const char *json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* A string without escapes at P (after its opening quote): its length, or -1 if it
 * has an escape or a control character, ends early or is not well-formed UTF-8. */
static long plain_string(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20)
            return -1;
        q++;
    }
    if (q == end || !utf8_valid(p, (size_t)(q - p)))
        return -1;
    return q - p;
}

/* The bodies nearly every POST sends, a flat object of plain strings and small
 * integers ({"key":"k","value":"v","ttl":0}), are read here without json-c's
 * tokener, which costs more than the rest of such a request (it sets up a locale
 * per call). Anything else (an escape, a nested value, a fraction, an error)
 * returns NULL and takes the general path, so the result and every error stay
 * those of json-c (butlerd(8), PERFORMANCE). */
/* One member of a flat object: NAME (NUL-terminated), and either the string STR of
 * SLEN bytes (no escapes, valid UTF-8) or, when STR is NULL, the integer NUM.
 * Returns 0 to go on, -1 to give up. */
typedef int (*flat_fn)(void *ctx, const char *name, const char *str, size_t slen, long long num);

/* Reads P as a flat object (see flat_object), calling FN for each member in order.
 * Returns 0, or -1 if P is not such an object or FN gave up. */
static int flat_scan(const char *p, size_t len, flat_fn fn, void *ctx)
{
    const char *end = p + len;
    p = json_ws(p, end);
    if (p == end || *p++ != '{')
        return -1;
    p = json_ws(p, end);
    if (p < end && *p == '}') {
        p++;
        goto done;
    }
    for (;;) {
        if (p == end || *p++ != '"')
            return -1;
        long nlen = plain_string(p, end);
        if (nlen < 0 || nlen > 256)
            return -1;
        char name[257];
        memcpy(name, p, (size_t)nlen);
        name[nlen] = '\0';
        if (memchr(name, '\0', (size_t)nlen))
            return -1;
        p = json_ws(p + nlen + 1, end);
        if (p == end || *p++ != ':')
            return -1;
        p = json_ws(p, end);
        if (p < end && *p == '"') {
            long vlen = plain_string(++p, end);
            if (vlen < 0 || fn(ctx, name, p, (size_t)vlen, 0) < 0)
                return -1;
            p += vlen + 1;
        } else {
            /* -?(0|[1-9][0-9]{0,14}), not followed by a fraction or exponent */
            const char *d = p;
            if (d < end && *d == '-')
                d++;
            const char *digits = d;
            while (d < end && *d >= '0' && *d <= '9' && d - digits < 16)
                d++;
            size_t nd = (size_t)(d - digits);
            if (nd == 0 || nd > 15 || (nd > 1 && *digits == '0') ||
                (digits > p && nd == 1 && *digits == '0') ||
                (d < end && (*d == '.' || *d == 'e' || *d == 'E' || (*d >= '0' && *d <= '9'))))
                return -1;
            char num[20];
            memcpy(num, p, (size_t)(d - p));
            num[d - p] = '\0';
            if (fn(ctx, name, NULL, 0, strtoll(num, NULL, 10)) < 0)
                return -1;
            p = d;
        }
        p = json_ws(p, end);
        if (p < end && *p == ',') {
            p = json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        return -1;
    }
done:
    return json_ws(p, end) == end ? 0 : -1;
}

static int flat_add(void *ctx, const char *name, const char *str, size_t slen, long long num)
{
    json_object_object_add(ctx, name,
                           str ? json_object_new_string_len(str, (int)slen)
                               : json_object_new_int64(num));
    return 0;
}

static json_object *flat_object(const char *p, size_t len)
{
    json_object *o = json_object_new_object();
    if (flat_scan(p, len, flat_add, o) == 0)
        return o;
    json_object_put(o);
    return NULL;
}

/* The body of a key-value POST (R_KVBODY) as its handler reads it, without json-c:
 * key and value strings, ttl an integer, other members ignored, the last of a
 * repeated name winning, as in the json-c object. Any other type for key, value
 * or ttl gives up, and the body takes the general path with its coercions and
 * messages (butlerd(8), PERFORMANCE). */
static int kv_member(void *ctx, const char *name, const char *str, size_t slen, long long num)
{
    struct req *r = ctx;
    if (!strcmp(name, "key")) {
        if (!str)
            return -1;
        r->kvbody.key = str;
        r->kvbody.klen = slen;
    } else if (!strcmp(name, "value")) {
        if (!str)
            return -1;
        r->kvbody.value = str;
        r->kvbody.vlen = slen;
    } else if (!strcmp(name, "ttl")) {
        if (str)
            return -1;
        r->kvbody.has_ttl = 1;
        r->kvbody.ttl = num;
    }
    return 0;
}

/* Returns 1 if R's body was read into r->kvbody; 0 leaves r->kvbody empty. */
static int kv_body(struct req *r)
{
    if (flat_scan(r->raw.p, r->raw.len, kv_member, r) == 0)
        return r->kvbody.ok = 1;
    memset(&r->kvbody, 0, sizeof r->kvbody);
    return 0;
}

static void run_handler(struct req *r)
{
    if (r->keep_body && r->raw.len > 0) {
        const char *ctype = r->hdr.content_type;
        while (isspace((unsigned char)*ctype))
            ctype++;
        if (!strncasecmp(ctype, "text/plain", 10)) {
            r->body = json_object_new_string_len(r->raw.p, (int)r->raw.len);
        } else if ((r->route->opts & R_KVBODY) && kv_body(r)) {
            /* read without json-c: see kv_member */
        } else if ((r->body = flat_object(r->raw.p, r->raw.len)) != NULL) {
            /* read without the tokener: see flat_object */
        } else {
            json_tokener *tok = json_tokener_new_ex(64);
            json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
            /* Hand the tokener the terminating NUL too: a number or literal that ends
             * the buffer is then complete instead of "continue". */
            r->body = json_tokener_parse_ex(tok, r->raw.p, (int)r->raw.len + 1);
            size_t used = json_tokener_get_parse_end(tok);
            int bad = json_tokener_get_error(tok) != json_tokener_success;
            for (size_t i = used; !bad && i < r->raw.len; i++)
                if (!strchr(" \t\r\n", r->raw.p[i]))
                    bad = 1;
            json_tokener_free(tok);
            if (bad) {
                reply_status(r, 400);
                return;
            }
            const char *why = lone_surrogate_escape(r->raw.p, r->raw.len)
                                  ? "body has a string that is not valid UTF-8"
                                  : json_suspect(r->body);
            if (why) {
                http_reply_error(r, 400, "FST_ERR_CTP_INVALID_JSON_BODY", "%s", why);
                return;
            }
        }
    }
    r->route->fn(r);
    if (r->stage != 2 && !r->deferred) {
        log_errorx("handler for %s %s sent no reply", r->method, r->route->pattern);
        http_reply_error(r, 500, NULL, "Internal Server Error");
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct req *r = *con_cls;
    if (!r)
        return MHD_NO;
    if (r->stage == 0) {
        r->stage = 1;
        hc_set(r->hc, PH_BODY, r->started_ms);
        return on_head(r, method, version);
    }
    if (*upload_data_size) {
        r->body_bytes += *upload_data_size;
        if (r->stage == 1 && r->body_bytes > (size_t)cfg->http.maxBodyBytes) {
            /* Cut the body off: answer now and close, whatever was pending. */
            r->discard = 1;
            r->close = 1;
            buf_free(&r->raw);
            reply_raw(r, 413, "FST_ERR_CTP_BODY_TOO_LARGE", "Request body is too large");
            return MHD_NO;
        } else if (!r->discard && r->stage == 1) {
            buf_append(&r->raw, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        /* requestTimeout bounds the whole body too, not only the gaps in it, so a
         * client trickling bytes cannot hold a connection forever. */
        if (now_ms() - r->started_ms > (int64_t)cfg->http.requestTimeout * 1000) {
            reply_raw(r, 408, NULL, "Request Timeout");
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (r->stage == 2)
        return MHD_YES;
    if (r->deferred) { /* called again after the job resumed us */
        if (r->prepared && r->prep_stream) {
            queue_stream(r, r->prep_status, r->prep_ctype, r->prep_stream);
            r->prep_stream = NULL;
        } else if (r->prepared) {
            queue_reply(r, r->prep_status, r->prep_ctype, r->prep_body, r->prep_len, 1);
            r->prep_body = NULL;
        }
        return r->abort ? MHD_NO : MHD_YES;
    }
    /* the sweeper never looks at the time of a busy connection */
    hc_set(r->hc, PH_BUSY, r->started_ms);
    if (r->pending)
        reply_status(r, (unsigned)r->pending);
    else
        run_handler(r);
    return r->abort ? MHD_NO : MHD_YES;
}

/* libmicrohttpd answers a Content-Length it cannot parse itself, before it calls
 * the access handler, with an HTML page - and version 0.9.75 (Debian 12) writes the
 * response head twice. It logs the refusal just before it queues that answer, in
 * the thread that parses the head, and the connection whose request line came last
 * in this thread is almost always the one (a head arrives in one piece). So when
 * that line is logged and that connection's Content-Length is indeed unparsable,
 * the JSON error is written to its socket and the socket shut down: the client gets
 * one clean answer, libmicrohttpd's own write then fails and it closes the
 * connection. If the guess is not borne out, nothing is done. */
static void cl_refused(void)
{
    struct MHD_Connection *c = uri_conn;
    if (!c || tls_on)
        return;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    unsigned long long n;
    unsigned st = cl ? content_length(cl, &n) : 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!st || !ci)
        return;
    json_object *o = error_body(st, st == 413 ? "FST_ERR_CTP_BODY_TOO_LARGE" : NULL,
                                st == 413 ? "Request body is too large"
                                          : "Content-Length is not a number");
    size_t blen;
    const char *body = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &blen);
    send_raw(ci->connect_fd, st, JSON_TYPE, blen, body, NULL);
    json_object_put(o);
    shutdown(ci->connect_fd, SHUT_RDWR);
    uri_conn = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_verbose("libmicrohttpd: %s", line);
    if (strstr(line, "'Content-Length'") || strstr(line, "`Content-Length'"))
        cl_refused();
}

/* butlerd.http.allowFrom (butlerd.conf(5)): a connection from outside the list is
 * closed as soon as it is accepted, before a byte of it is read. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    if (cfg->http.allowNets.n == 0)
        return MHD_YES;
    uint8_t key[17];
    size_t klen = cidr_key(addr, key);
    if (klen && cidr_list_match(&cfg->http.allowNets, key, klen))
        return MHD_YES;
    char text[64];
    cidr_key_text(key, klen, text, sizeof text);
    log_debug("connection from %s refused: not in butlerd.http.allowFrom", text);
    STAT_INC(http_refused);
    return MHD_NO;
}

struct MHD_Daemon *http_start(const struct cfg *c, int listen_fd, const char *tls_cert,
                              const char *tls_key, const char *tls_client_ca)
{
    cfg = c;
    audit_open(c);
    snprintf(keepalive_hdr, sizeof keepalive_hdr, "timeout=%d", c->http.keepAliveTimeout);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
    if (tls_cert)
        flags |= MHD_USE_TLS;
    tls_on = tls_cert != NULL;
    /* libmicrohttpd keeps a connection's request head in this pool, and a 56-byte
     * record for each header field; a head that does not fit is
     * refused by the library itself (431, HTML). It zeroes the whole pool after every
     * request, and the pool stays resident while the connection lives, so it is sized
     * for the limits and no more: a head of maxHeaderBytes with maxHeaderFields
     * fields, and the reply's head (butlerd(8), PERFORMANCE). */
    size_t pool = (size_t)c->http.maxHeaderBytes + 64 * (size_t)c->http.maxHeaderFields + 4096;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        /* asks clients for a certificate from these CAs (tlsclient.c checks it) */
        {MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)tls_client_ca},
        {MHD_OPTION_END, 0, NULL},
    };
    client_ca_on = tls_cert && tls_client_ca;
    if (!client_ca_on)
        tls_opts[3].option = MHD_OPTION_END;
    pthread_t t;
    if (pthread_create(&t, NULL, sweeper, NULL) != 0) {
        log_error("pthread_create for the connection sweeper");
        return NULL;
    }
    pthread_detach(t);
    return MHD_start_daemon(
        flags, 0, on_accept, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->http.keepAliveTimeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->http.maxConnections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->http.maxConnectionsPerClient,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_ARRAY, tls_cert ? tls_opts : tls_opts + 4, MHD_OPTION_END);
}

void http_drain(struct MHD_Daemon *d)
{
    draining = 1;
    MHD_socket fd = MHD_quiesce_daemon(d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd); /* our copy only: the master keeps the socket for the next generation */
}

unsigned http_connections(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return i ? i->num_connections : 0;
}
