/* The New Relic pass-through (butlerd-api(7), New Relic; keys in butlerd.conf(5)):
 * the request's attributes are checked here, merged after the configured static ones,
 * and the event or metric is posted to every destination account in list order. All
 * accounts are tried even after one failed, so one bad account never hides the data
 * from the others; the first failure is the one reported. */
#include "newrelic.h"
#include "butlerd.h"
#include "cfg.h"
#include "log.h"
#include "schema.h"
#include "util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NR_TIMEOUT_MS 5000 /* per account, the whole request (butlerd-api(7), New Relic) */

/* ------------------------------------------------------------- validation */

int nr_check_attributes(json_object *body, enum nr_kind kind, char **err)
{
    const struct sch_prop event_p[] = {{"name", SCH_STRING, 0, NR_NAME_MAX, NULL},
                                       {"value", SCH_STRING, 0, NR_EVENT_VALUE_MAX, NULL},
                                       {NULL, 0, 0, 0, NULL}};
    const struct sch_prop metric_p[] = {{"name", SCH_STRING, 0, NR_NAME_MAX, NULL},
                                        {"value", SCH_STRING, 0, 0, NULL},
                                        {NULL, 0, 0, 0, NULL}};
    json_object *arr, *name;
    char loc[48];
    *err = NULL;
    if (!json_object_object_get_ex(body, "attributes", &arr))
        return 0;
    size_t n = json_object_array_length(arr);
    if (n > NR_MAX_ATTRIBUTES) {
        *err = xasprintf("body/attributes must NOT have more than %d items", NR_MAX_ATTRIBUTES);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *it = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(it, json_type_object)) {
            *err = xasprintf("body/attributes/%zu must be object", i);
            return -1;
        }
        snprintf(loc, sizeof loc, "body/attributes/%zu", i);
        if (sch_check(it, loc, kind == NR_EVENT ? event_p : metric_p, err) < 0)
            return -1;
        /* An event attribute may not replace the two members New Relic needs. */
        if (kind == NR_EVENT && json_object_object_get_ex(it, "name", &name) &&
            (!strcmp(json_object_get_string(name), "timestamp") ||
             !strcmp(json_object_get_string(name), "eventType"))) {
            *err = xasprintf("%s/name must NOT be 'timestamp' or 'eventType'", loc);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ the body */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_object *member(json_object *o, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) ? v : NULL;
}

/* The request's timestamp if it is above 0, else now (ms since the epoch). */
static json_object *timestamp(json_object *body)
{
    json_object *t = member(body, "timestamp");
    if (t && json_object_get_double(t) > 0)
        return json_object_get(t);
    return json_object_new_int64(wall_ms());
}

/* Static attributes first, then the request's; a later name replaces the value of an
 * earlier one in its place. Items without a name or a value are left out. */
static json_object *attributes(const struct cfg_newrelic_ep *ep, enum nr_kind kind,
                               json_object *body)
{
    json_object *out = json_object_new_object();
    for (size_t i = 0; i < ep->attributes.n; i++) {
        const char *name = ep->attributes.v[i].m[0], *value = ep->attributes.v[i].m[1];
        if (!*name)
            continue;
        if (kind == NR_EVENT && (!strcmp(name, "timestamp") || !strcmp(name, "eventType"))) {
            log_errorx("New Relic static attribute \"%s\" would replace the event's own "
                       "member: skipped",
                       name);
            continue;
        }
        json_object_object_add(out, name, json_object_new_string(value));
    }
    json_object *arr = member(body, "attributes");
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        json_object *it = json_object_array_get_idx(arr, i);
        json_object *name = member(it, "name"), *value = member(it, "value");
        if (!name || !value || !*json_object_get_string(name))
            continue;
        json_object_object_add(out, json_object_get_string(name), json_object_get(value));
    }
    return out;
}

/* The body of butlerd-api(7), New Relic, compact; malloc'd. */
static char *nr_body(const struct cfg_newrelic_ep *ep, enum nr_kind kind, json_object *body)
{
    json_object *attrs = attributes(ep, kind, body), *top;
    if (kind == NR_EVENT) {
        top = json_object_new_object();
        json_object_object_add(top, "timestamp", timestamp(body));
        json_object_object_add(top, "eventType", json_object_get(member(body, "eventType")));
        json_object_object_foreach(attrs, k, v) json_object_object_add(top, k, json_object_get(v));
        json_object_put(attrs);
    } else {
        json_object *common = json_object_new_object(), *metric = json_object_new_object();
        json_object *metrics = json_object_new_array(), *batch = json_object_new_object();
        json_object_object_add(common, "timestamp", timestamp(body));
        json_object_object_add(common, "attributes", attrs);
        json_object_object_add(metric, "name", json_object_get(member(body, "name")));
        json_object_object_add(metric, "type", json_object_get(member(body, "type")));
        json_object_object_add(metric, "value", json_object_get(member(body, "value")));
        json_object_array_add(metrics, metric);
        json_object_object_add(batch, "common", common);
        json_object_object_add(batch, "metrics", metrics);
        top = json_object_new_array();
        json_object_array_add(top, batch);
    }
    char *s = xstrdup(json_object_to_json_string_ext(
        top, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(top);
    return s;
}

/* ------------------------------------------------------------ posting */

struct answer {
    long status;
    char reason[128];
};

/* Keeps the reason phrase of the (last) status line, printable ASCII only: it is
 * shown to the client and written to the log. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n, i = 0, o = 0;
    if (len < 5 || memcmp(p, "HTTP/", 5) != 0)
        return len;
    while (i < len && p[i] != ' ')
        i++;
    while (i < len && p[i] == ' ')
        i++;
    while (i < len && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i < len && p[i] == ' ')
        i++;
    for (; i < len && o + 1 < sizeof a->reason && p[i] != '\r' && p[i] != '\n'; i++)
        if (p[i] >= 0x20 && p[i] < 0x7f)
            a->reason[o++] = p[i];
    a->reason[o] = '\0';
    return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    return size * n; /* New Relic's answer body says nothing the client needs */
}

/* HTTP/2 has no reason phrase; these are the answers New Relic gives on success. */
static const char *standard_reason(long status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    default: return "";
    }
}

/* The headers of one call: butlerd-api(7), New Relic. NULL if out of memory. */
static struct curl_slist *headers(const struct cfg_newrelic_ep *ep, const char *api_key)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
    char *line;
    /* libcurl would otherwise ask for 100-continue on larger bodies. */
    struct curl_slist *t = h ? curl_slist_append(h, "Expect:") : NULL;
    for (size_t i = 0; t && i < ep->header.n; i++) {
        const char *name = ep->header.v[i].m[0], *value = ep->header.v[i].m[1];
        /* "Name:" would remove the header in libcurl; "Name;" sends it empty. */
        line = *value ? xasprintf("%s: %s", name, value) : xasprintf("%s;", name);
        t = curl_slist_append(h, line);
        free(line);
    }
    if (t) {
        line = xasprintf("Api-Key: %s", api_key);
        t = curl_slist_append(h, line);
        free(line);
    }
    if (!t) {
        curl_slist_free_all(h);
        return NULL;
    }
    return h;
}

/* POSTs BODY to URL. Returns the HTTP status with A filled, or 0 with ERR set when no
 * answer came. Redirects are answers, not followed. */
static long post(const char *url, struct curl_slist *hdrs, const char *body, struct answer *a,
                 char *err, size_t errsz)
{
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, errsz, "cannot create a curl handle");
        return 0;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)NR_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "butlerd/" BUTLERD_VERSION);
    CURLcode rc = curl_easy_perform(e);
    a->status = 0;
    if (rc != CURLE_OK)
        snprintf(err, errsz, "%s", *errbuf ? errbuf : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status && !*a->reason)
        snprintf(a->reason, sizeof a->reason, "%s", standard_reason(a->status));
    curl_easy_cleanup(e);
    return a->status;
}

/* Where an account's data goes: the metric URL as configured; for events the base URL
 * with the account's path (the ID percent-encoded, so it stays one path segment). */
static char *dest_url(const struct cfg_newrelic_ep *ep, enum nr_kind kind, const char *account_id)
{
    if (kind == NR_METRIC)
        return xstrdup(ep->url);
    size_t ulen = strlen(ep->url);
    char *id = curl_easy_escape(NULL, account_id, 0);
    char *u = xasprintf("%s%sv1/accounts/%s/events", ep->url,
                        ulen && ep->url[ulen - 1] == '/' ? "" : "/", id ? id : "");
    curl_free(id);
    return u;
}

static const struct tuple *credential(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->nrCredentials.n; i++)
        if (!strcmp(c->nrCredentials.v[i].m[0], name))
            return &c->nrCredentials.v[i];
    return NULL;
}

enum nr_result nr_post(const struct cfg *c, enum nr_kind kind, json_object *body,
                       struct nr_outcome *out)
{
    const struct cfg_newrelic_ep *ep = kind == NR_EVENT ? &c->nrEvent : &c->nrMetric;
    const char *what = kind == NR_EVENT ? "event" : "metric";
    enum nr_result res = NR_NO_ACCOUNT;
    char *payload = NULL;
    memset(out, 0, sizeof *out);

    for (size_t i = 0; i < ep->destinationAccount.n; i++) {
        const char *name = ep->destinationAccount.v[i];
        const struct tuple *acc = credential(c, name);
        if (!acc) {
            log_errorx("New Relic account \"%s\" is not in "
                       "Butler.thirdPartyToolsCredentials.newRelic: %s not posted to it",
                       name, what);
            continue;
        }
        if (!payload)
            payload = nr_body(ep, kind, body);
        char *url = dest_url(ep, kind, acc->m[2]), err[CURL_ERROR_SIZE + 64] = "";
        struct answer a = {0, ""};
        struct curl_slist *h = headers(ep, acc->m[1]);
        long st = h ? post(url, h, payload, &a, err, sizeof err) : 0;
        if (!h)
            snprintf(err, sizeof err, "out of memory");
        curl_slist_free_all(h);
        free(url);
        if (st >= 200 && st < 300) {
            log_verbose("New Relic %s posted to account '%s': HTTP %ld", what, name, st);
            if (res != NR_FAILED) {
                res = NR_SENT;
                out->status = st;
                snprintf(out->reason, sizeof out->reason, "%s", a.reason);
            }
            continue;
        }
        if (st)
            snprintf(err, sizeof err, "HTTP %ld", st);
        /* The API key is in a header only; neither it nor the body is logged. */
        log_warnx("Failed posting %s to New Relic account '%s': %s", what, name, err);
        if (res != NR_FAILED)
            snprintf(out->message, sizeof out->message,
                     "Failed posting %s to New Relic account '%.200s': %s", what, name, err);
        res = NR_FAILED;
    }
    free(payload);
    return res;
}
