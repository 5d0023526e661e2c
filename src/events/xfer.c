/* Transfers per destination (see xfer.h): HTTP for Slack, Teams and webhooks, SMTP
 * for e-mail. */
#include "xfer.h"
#include "butlerd.h"
#include "cfg.h"
#include "mail.h"
#include "outbox.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_REDIRECTS 5L

void xfer_free(struct xfer *x)
{
    curl_slist_free_all(x->hdrs);
    free(x->body);
    if (x->mail)
        mail_xfer_free(x->mail);
    free(x->mail);
    x->hdrs = NULL;
    x->body = NULL;
    x->mail = NULL;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *it = arg;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        char v[100];
        snprintf(v, sizeof v, "%.*s", (int)(len - 12), p + 12);
        v[strcspn(v, "\r\n")] = '\0';
        char *s = v + strspn(v, " \t"), *end;
        long sec = strtol(s, &end, 10);
        if (end != s && *end == '\0' && sec >= 0) {
            it->retry_after_s = sec;
        } else {
            time_t t = curl_getdate(s, NULL);
            if (t > 0)
                it->retry_after_s = t > time(NULL) ? (long)(t - time(NULL)) : 0;
        }
    }
    return len;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static const char *jget(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static int http_easy(CURL *h, struct xfer *it, json_object *req, const struct cfg *c, char *err)
{
    const char *method = jget(req, "method"), *url = jget(req, "url"), *body = jget(req, "body"),
               *ca = jget(req, "caFile");
    json_object *hs, *verify;
    if (!method || !url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        snprintf(err, XFER_ERR_MAX, "entry has no usable request");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "butlerd/" BUTLERD_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->notify.httpTimeoutSeconds);
    if (strcmp(method, "GET") != 0) {
        it->body = xstrdup(body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, it->body);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    it->hdrs = curl_slist_append(NULL, "Expect:");
    if (json_object_object_get_ex(req, "headers", &hs) && json_object_is_type(hs, json_type_array))
        for (size_t i = 0; i < json_object_array_length(hs); i++) {
            json_object *p = json_object_array_get_idx(hs, i);
            const char *n = json_object_get_string(json_object_array_get_idx(p, 0)),
                       *v = json_object_get_string(json_object_array_get_idx(p, 1));
            if (n && v && !strpbrk(n, "\r\n:") && !strpbrk(v, "\r\n")) {
                char *line = xasprintf("%s: %s", n, v);
                it->hdrs = curl_slist_append(it->hdrs, line);
                free(line);
            }
        }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, it->hdrs);
    if (ca) { /* replaces the system store, directory included */
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    }
    int v = !json_object_object_get_ex(req, "verify", &verify) || json_object_get_boolean(verify);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, v ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, v ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, it);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    return 0;
}

static int http_classify(CURL *h, CURLcode rc, char *err)
{
    long code = 0;
    if (rc == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(err, XFER_ERR_MAX, "too many redirects");
        return XFER_PERMANENT;
    }
    if (rc != CURLE_OK) {
        snprintf(err, XFER_ERR_MAX, "%s", curl_easy_strerror(rc));
        return XFER_TRANSIENT;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    snprintf(err, XFER_ERR_MAX, "HTTP %ld", code);
    if (code >= 200 && code < 300)
        return XFER_ACCEPTED;
    if (code == 408 || code == 429 || code >= 500)
        return XFER_TRANSIENT;
    return XFER_PERMANENT; /* other 4xx, and a 3xx left after the redirects */
}

/* The message and X->mail live in X until the transfer is freed. */
static int mail_easy(CURL *h, struct xfer *x, json_object *req, const struct cfg *c, char *err)
{
    const char *from = jget(req, "from"), *to = jget(req, "to"), *msg = jget(req, "message");
    if (!from || !to || !msg) {
        snprintf(err, XFER_ERR_MAX, "entry has no usable request");
        return -1;
    }
    x->body = xstrdup(msg);
    x->mail = xcalloc(1, sizeof *x->mail);
    if (mail_setup_easy(h, &c->email.smtp, c->notify.smtpTimeoutSeconds, from, to, x->body,
                        x->mail) < 0) {
        snprintf(err, XFER_ERR_MAX, "libcurl refused an SMTP option");
        return -1;
    }
    return 0;
}

static int smtp_classify(CURL *h, CURLcode rc, char *err)
{
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    switch (mail_classify(rc, code, err, XFER_ERR_MAX)) {
    case MAIL_ACCEPTED:
        return XFER_ACCEPTED;
    case MAIL_PERMANENT:
        return XFER_PERMANENT;
    default:
        return XFER_TRANSIENT;
    }
}

static const struct xfer_kind kinds[] = {
    {OB_SLACK, http_easy, http_classify},
    {OB_TEAMS, http_easy, http_classify},
    {OB_WEBHOOK, http_easy, http_classify},
    {OB_EMAIL, mail_easy, smtp_classify},
};

const struct xfer_kind *xfer_kind_of(int dest)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].dest == dest)
            return &kinds[i];
    return NULL;
}
