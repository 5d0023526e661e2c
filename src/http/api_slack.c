/* Slack incoming-webhook posts: PUT /v4/slackpostmessage (butlerd-api(7), slackpostmessage) and
 * GET /v2/slackPostMessage. The payload keeps the text as given, so Slack renders
 * its markdown and emoji codes; Slack's answer is passed on instead of a blind 201.
 * The POST waits on Slack, so the handlers run on job threads. */
#include "api.h"
#include "butlerd.h"
#include "cfg.h"
#include "http.h"
#include "log.h"
#include "utf8.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLACK_TIMEOUT_MS 10000        /* the whole request, butlerd-api(7), slackpostmessage */
#define SLACK_CONNECT_TIMEOUT_MS 5000 /* of that, for connecting (DNS, TCP, TLS) */
#define SECTION_MAX_CHARS 3000        /* Slack's limit for the text of a section */
#define ANSWER_KEEP 4096              /* bytes of Slack's answer kept for the message */
#define ANSWER_SHOW 200               /* bytes of it shown in the 502 message */

struct slack_msg {
    json_object *channel, *from_user, *msg, *emoji; /* emoji may be NULL */
};

static json_object *jstr(json_object *v)
{
    return json_object_new_string_len(json_object_get_string(v), json_object_get_string_len(v));
}

/* The webhook body of butlerd-api(7), slackpostmessage; malloc'd. */
static char *payload(const struct slack_msg *m)
{
    json_object *o = json_object_new_object(), *blocks = json_object_new_array();
    json_object *section = json_object_new_object(), *text = json_object_new_object();
    json_object_object_add(o, "channel", jstr(m->channel));
    json_object_object_add(o, "username", jstr(m->from_user));
    const char *e = m->emoji ? json_object_get_string(m->emoji) : "";
    size_t elen = m->emoji ? (size_t)json_object_get_string_len(m->emoji) : 0;
    if (elen) {
        int head = e[0] == ':', tail = elen > 1 && e[elen - 1] == ':';
        char *icon = xasprintf("%s%.*s%s", head ? "" : ":", (int)elen, e, tail ? "" : ":");
        json_object_object_add(o, "icon_emoji", json_object_new_string(icon));
        free(icon);
    }
    const char *msg = json_object_get_string(m->msg);
    size_t mlen = (size_t)json_object_get_string_len(m->msg);
    json_object_object_add(o, "text", jstr(m->msg));
    json_object_object_add(section, "type", json_object_new_string("section"));
    json_object_object_add(text, "type", json_object_new_string("mrkdwn"));
    json_object_object_add(
        text, "text",
        json_object_new_string_len(msg, (int)utf8_prefix(msg, mlen, SECTION_MAX_CHARS)));
    json_object_object_add(section, "text", text);
    json_object_array_add(blocks, section);
    json_object_object_add(o, "blocks", blocks);
    char *s = xstrdup(json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = size * n;
    if (b->len < ANSWER_KEEP)
        buf_append(b, p, len < ANSWER_KEEP - b->len ? len : ANSWER_KEEP - b->len);
    return len;
}

/* POSTs BODY to URL. Returns Slack's HTTP status, or 0 with ERR set if no answer
 * came; the start of Slack's answer is left in ANSWER. */
static long post(const char *url, const char *body, struct buf *answer, char *err, size_t errsz)
{
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, errsz, "cannot create a curl handle");
        return 0;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
    struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
    if (!h2) {
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        snprintf(err, errsz, "out of memory");
        return 0;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h2);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)SLACK_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)SLACK_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "butlerd/" BUTLERD_VERSION);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        /* libcurl's own text names the step: "Failed to connect to ... Connection
         * refused", "Operation timed out after 10000 milliseconds ...". The URL is
         * a secret and is never shown. */
        snprintf(err, errsz, "%s", *errbuf ? errbuf : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(h2);
    curl_easy_cleanup(e);
    return status;
}

/* Posts M and answers: STATUS with ECHO (taken) on a 2xx from Slack, else 502; 503
 * when no webhook is configured. */
static void send_and_reply(struct req *r, const struct slack_msg *m, unsigned status,
                           json_object *echo)
{
    const char *url = r->cfg->slackWebhookURL;
    if (!*url) {
        json_object_put(echo);
        http_reply_error(r, 503, NULL, "Slack webhook URL is not configured");
        return;
    }
    char *body = payload(m), err[CURL_ERROR_SIZE + 32] = "";
    struct buf answer = {0};
    long st = post(url, body, &answer, err, sizeof err);
    free(body);
    if (st >= 200 && st < 300) {
        log_verbose("Slack message posted to %s", json_object_get_string(m->channel));
        http_reply_json(r, status, echo);
        echo = NULL;
    } else if (st) {
        struct buf shown = {0};
        utf8_append_clean(&shown, answer.p ? answer.p : "", answer.len, ANSWER_SHOW);
        log_warnx("Slack answered HTTP %ld: %s", st, shown.p);
        http_reply_error(r, 502, NULL, "Slack returned HTTP %ld: %s", st, shown.p);
        buf_free(&shown);
    } else {
        log_warnx("Slack message not sent: %s", err);
        http_reply_error(r, 502, NULL, "Failed sending Slack message: %s", err);
    }
    json_object_put(echo);
    buf_free(&answer);
}

static json_object *get(json_object *o, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) ? v : NULL;
}

/* PUT /v4/slackpostmessage (body) and GET /v2/slackPostMessage (query, and the
 * seed's "emoij" spelling). The echo keeps the order each API documents. */
static void slack(struct req *r, int v2)
{
    static const struct sch_prop props[] = {{"channel", SCH_STRING, 1, 0, NULL},
                                            {"from_user", SCH_STRING, 1, 0, NULL},
                                            {"msg", SCH_STRING, 1, 0, NULL},
                                            {"emoji", SCH_STRING, 0, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};
    static const struct sch_prop v2_props[] = {{"channel", SCH_STRING, 1, 0, NULL},
                                               {"from_user", SCH_STRING, 1, 0, NULL},
                                               {"msg", SCH_STRING, 1, 0, NULL},
                                               {"emoji", SCH_STRING, 0, 0, NULL},
                                               {"emoij", SCH_STRING, 0, 0, NULL},
                                               {NULL, 0, 0, 0, NULL}};
    static const char *const order[2][3] = {{"channel", "from_user", "msg"},
                                            {"channel", "msg", "from_user"}};
    json_object *in = v2 ? http_query(r, v2_props) : http_body(r, props);
    if (!in)
        return;
    json_object *emoji = get(in, "emoji"), *echo = json_object_new_object();
    if (v2 && !emoji)
        emoji = get(in, "emoij");
    struct slack_msg m = {get(in, "channel"), get(in, "from_user"), get(in, "msg"), emoji};
    for (int i = 0; i < 3; i++)
        json_object_object_add(echo, order[v2][i], json_object_get(get(in, order[v2][i])));
    if (emoji)
        json_object_object_add(echo, "emoji", json_object_get(emoji));
    send_and_reply(r, &m, v2 ? 200 : 201, echo);
}

static void slack_job(struct req *r) { slack(r, 0); }
static void v2_slack_job(struct req *r) { slack(r, 1); }

void api_slack_post(struct req *r) { http_defer(r, slack_job); }
void api_v2_slack_post(struct req *r) { http_defer(r, v2_slack_job); }
