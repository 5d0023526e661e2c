/* The HTTP layer: libmicrohttpd glue, Butler's conventions (method override,
 * 100-continue, HEAD, body limits, error bodies) and the reply helpers handlers use. */
#ifndef HTTP_H
#define HTTP_H

#include "ratelimit.h"
#include "schema.h"
#include "router.h"
#include "util.h"

#include <json-c/json.h>
#include <stdint.h>

struct cfg;
struct MHD_Connection;
struct MHD_Daemon;
struct hconn;

struct req {
    struct MHD_Connection *conn;
    const struct cfg *cfg;
    char *target;         /* raw request target, path plus query, as received */
    size_t pathlen;       /* length of the path part of target */
    char method[16];      /* effective method (after X-HTTP-Method-Override) */
    const struct route *route;
    struct route_params params;
    json_object *body;    /* parsed request body, NULL if none */
    json_object *query;   /* validated query string, once asked for */
    struct buf raw;       /* body bytes while they arrive */
    int64_t started_ms;
    int64_t started_us; /* for the duration metrics */
    int stage;            /* 0 new, 1 head seen, 2 replied */
    int pending;          /* error status decided from the head, sent after the body */
    int discard;          /* drop body bytes as they arrive */
    int keep_body;        /* the route takes a body (POST/PUT/DELETE) */
    int close;            /* close the connection after the reply */
    int fake_head;        /* POST overridden to HEAD */
    int abort;            /* answered directly on the socket: close the connection */
    int big;              /* the reply was large */
    int deferred;         /* handled on a job thread, connection suspended */
    int prepared;         /* the job's reply, waiting to be queued */
    unsigned prep_status;
    const char *prep_ctype;
    char *prep_body;
    size_t prep_len;
    struct http_stream *prep_stream; /* or a streamed reply (http_reply_stream) */
    size_t body_bytes;    /* body bytes received so far, kept or not */
    uint8_t peer[17];     /* client address (cidr_key form), peerlen bytes */
    size_t peerlen;
    int rl_counted;       /* counted by the rate limit: send its headers */
    struct rl_verdict rl;
    const char *who;      /* token name or certificate subject (butlerd.auth), or NULL */
    int auth_invalid;     /* 401 for a wrong token: say so in WWW-Authenticate */
    char auth_msg[192];   /* message of a 401 or 403 decided from the head */
    unsigned status_sent; /* status of the reply, for the audit trail */
    struct hconn *hc;     /* the connection's sweeper record (http.c), or NULL */
    /* The request head's fields http.c looks at, each the first of its name, found
     * in one pass over the head (butlerd(8), PERFORMANCE); NULL if absent. */
    struct {
        const char *connection, *expect, *content_length, *transfer_encoding,
            *content_type, *method_override, *authorization;
    } hdr;
    /* A key-value POST body read without json-c (R_KVBODY, http.c): ok set when it
     * is, and then key and value are NULL if absent, else slices of raw. */
    struct {
        int ok, has_ttl;
        const char *key, *value;
        size_t klen, vlen;
        long long ttl;
    } kvbody;
};

/* Starts libmicrohttpd on LISTEN_FD with one internal epoll thread. */
/* TLS_CLIENT_CA: PEM of the CAs whose client certificates are asked for, or NULL. */
struct MHD_Daemon *http_start(const struct cfg *cfg, int listen_fd, const char *tls_cert,
                              const char *tls_key, const char *tls_client_ca);
/* Stops accepting; afterwards every reply closes its connection. */
void http_drain(struct MHD_Daemon *d);
/* Requests received but not yet completed. */
int http_inflight(void);
/* Requests handed to job threads and not yet resumed. */
int http_jobs(void);
unsigned http_connections(struct MHD_Daemon *d);

/* Reply helpers for handlers. Each sends exactly one response. */
void http_reply_json(struct req *r, unsigned status, json_object *o); /* takes o */
void http_reply_text(struct req *r, unsigned status, const char *text);
void http_reply_error(struct req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void http_reply_empty(struct req *r, unsigned status); /* 204: no body, no type */
/* An error whose message is PREFIX followed by LEN bytes of DATA (which may hold
 * anything, NUL included). */
void http_reply_error_bytes(struct req *r, unsigned status, const char *prefix,
                            const char *data, size_t len);
/* A JSON body the handler serialised itself: takes B's memory (no copy). */
void http_reply_json_buf(struct req *r, unsigned status, struct buf *b);
/* A reply whose body is made piece by piece on the worker's MHD thread as the client
 * takes it (a long key list: butlerd(8), KEY-VALUE STORE, "Long key lists"): FILL
 * writes up to MAX bytes at BUF and returns how many, 0 at the end, -1 on an error
 * (the connection is cut: the client sees a short reply). DONE releases CLS, sent
 * or not. The body goes out with chunked transfer encoding; CTYPE NULL is JSON's. */
typedef long (*http_fill_fn)(void *cls, char *buf, size_t max);
void http_reply_stream(struct req *r, unsigned status, const char *ctype, http_fill_fn fill,
                       void (*done)(void *), void *cls);
/* A reply whose BODY is a string constant, JSON, never changing: built once. */
void http_reply_static(struct req *r, unsigned status, const char *body, size_t len);
/* Appends S[0..N) to B as a JSON string, quoted and escaped as json-c does with
 * JSON_C_TO_STRING_NOSLASHESCAPE. */
void http_json_str(struct buf *b, const char *s, size_t n);
/* S[0..N) escaped as http_json_str does, without the quotes, into OUT, which has
 * room for 6 * N bytes; returns the bytes written. */
size_t http_json_escape(char *out, const char *s, size_t n);
/* A reply of media type CTYPE (a string constant). */
void http_reply_typed(struct req *r, unsigned status, const char *ctype, const char *body,
                      size_t len);

/* Path parameter I, percent-decoded (malloc'd, length in *LEN), or NULL after a
 * 400 FST_ERR_BAD_URL reply has been sent. */
char *http_param(struct req *r, int i, size_t *len);
/* Validated JSON object body, or NULL after a 400 reply has been sent. */
json_object *http_body(struct req *r, const struct sch_prop *props);
/* Runs FN on a job thread with the connection suspended; FN replies with the
 * helpers above as usual. For handlers that wait on other servers. */
void http_defer(struct req *r, api_handler fn);

/* Work a request started and left running after its reply (an app reload):
 * counted so a draining worker waits for it, up to butlerd.shutdownTimeout. */
void http_background_add(int delta);
int http_background(void);

/* Validated query string, or NULL after a 400 reply has been sent. */
json_object *http_query(struct req *r, const struct sch_prop *props);

#endif
