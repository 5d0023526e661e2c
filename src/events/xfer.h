/* How an outbox entry's request becomes a libcurl transfer, and how its outcome
 * is classified (butlerd(8), Outbox): one entry per destination. The delivery
 * process (delivery.c) drives the transfers; this file knows the protocols.
 *
 * E-mail (mail_easy) takes the entry's request {"from","to","message"} and the
 * emailNotification.smtp settings of the configuration current at the attempt:
 * credentials are never stored in the entry (butlerd(8), Outbox). */
#ifndef XFER_H
#define XFER_H

#include <curl/curl.h>
#include <json-c/json.h>

struct cfg;
struct mail_xfer;

#define XFER_ERR_MAX 300

enum { XFER_ACCEPTED, XFER_TRANSIENT, XFER_PERMANENT };

/* What a transfer holds until it is freed. */
struct xfer {
    struct curl_slist *hdrs;
    char *body;
    long retry_after_s; /* from a Retry-After header, -1 if none */
    struct mail_xfer *mail; /* e-mail: the transfer's state; body holds the message */
};
void xfer_free(struct xfer *x);

struct xfer_kind {
    int dest; /* OB_* of outbox.h */
    /* Fills H from REQ; -1 with ERR (XFER_ERR_MAX bytes) if it is unusable. */
    int (*easy)(CURL *h, struct xfer *x, json_object *req, const struct cfg *c, char *err);
    /* The outcome of a finished transfer (XFER_*), with the reason in ERR. */
    int (*classify)(CURL *h, CURLcode rc, char *err);
};

/* The entry for destination DEST, or NULL. */
const struct xfer_kind *xfer_kind_of(int dest);

#endif
