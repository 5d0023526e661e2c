/* Client for the Qlik Sense Repository Service (QRS): HTTPS with the client
 * certificate, a fresh xrfkey per request, the static headers, timeouts. */
#ifndef QRS_H
#define QRS_H

#include "jsonarr.h" /* QRS lists are read with jsonarr_feed() or jsonarr_each() */
#include "util.h"

#include <json-c/json.h>

struct cfg;

struct qrs_resp {
    long status;      /* HTTP status, 0 if no answer */
    struct buf body;
    char error[128];  /* short reason when status is 0: "connection refused", ... */
    int too_large;    /* the reply passed butlerd.qrs.maxReplyBytes (status 0, body freed) */
};

/* Sends METHOD /qrs/PATH[?filter=FILTER]&xrfkey=...; FILTER is the raw expression
 * (encoded here), BODY may be NULL. Blocking; call from a job thread. Connections are
 * reused per thread. Returns 0 if an HTTP answer came (any status), -1 if none. */
int qrs_call(const struct cfg *cfg, const char *method, const char *path, const char *filter,
             const char *body, struct qrs_resp *out);
void qrs_resp_free(struct qrs_resp *r);

/* A chunk of a streamed 200 reply; return 0 to go on, -1 to stop the transfer. */
typedef int (*qrs_chunk_fn)(void *arg, const char *p, size_t len);
/* GET /qrs/PATH?QUERY&xrfkey=... (QUERY already encoded, may be NULL) with a 200 body
 * handed to FN chunk by chunk instead of being kept (script logs: never the whole
 * file in memory). Otherwise as qrs_call(). */
int qrs_get_stream(const struct cfg *cfg, const char *path, const char *query,
                   qrs_chunk_fn fn, void *arg, struct qrs_resp *out);
/* GET /qrs/PATH[?filter=FILTER] with a 200 body handed to FN chunk by chunk as it
 * arrives, for a list read element by element (jsonarr_feed): unlike
 * qrs_get_stream() the reply still counts against butlerd.qrs.maxReplyBytes, and
 * passing it ends the call as in qrs_call() (too_large, the same error and log line).
 * Otherwise as qrs_call(). */
int qrs_get_list(const struct cfg *cfg, const char *path, const char *filter,
                 qrs_chunk_fn fn, void *arg, struct qrs_resp *out);
/* Frees the calling thread's connection; for threads that end (app reloads). */
void qrs_thread_done(void);

/* Reads Butler.cert.* into memory (master, before dropping privileges, and on
 * reload; a file that cannot be read keeps the copy read before). */
void qrs_load_credentials(const struct cfg *cfg);

/* The PEM files read by qrs_load_credentials(), for the engine client: DATA is
 * NULL when a file was not set or could not be read. */
struct pem_blob {
    const char *data;
    size_t len;
};
void qrs_credentials(struct pem_blob *cert, struct pem_blob *key, struct pem_blob *ca);

/* Quotes S for a QRS filter string: ' -> \' and \ -> \\ (malloc'd). */
char *qrs_quote(const char *s);

#endif
