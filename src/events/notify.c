/* The alert pipeline (see notify.h; butlerd(8), Alerts). */
#include "notify.h"
#include "alertctx.h"
#include "cfg.h"
#include "delivery.h"
#include "log.h"
#include "notify_check.h"
#include "outbox.h"
#include "redis_conn.h"
#include "rl_redis.h"
#include "stats.h"
#include "taskevent.h"
#include "tmpl.h"
#include "utf8.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SLACK_HEADER_MAX 150
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------ rate limits */

/* One window per destination x kind x key (butlerd(8), Alerts, rate limits), in
 * the shared segment so every process agrees (an events process and its successor
 * after a reload overlap). Lock-free: a slot is claimed by a compare-and-swap of its
 * key hash, and a window opened by one of its end time, so of two events racing for
 * the same key exactly one passes, and a process killed at any instant leaves the
 * table valid. Expired slots are reused lazily. */
#define RL_SLOTS (sizeof(((struct stats *)0)->notify_rl) / sizeof(((struct stats *)0)->notify_rl[0]))
#define RL_PROBES 32

static uint64_t rl_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

/* Opens the window of slot I if it has ended: 1 passed, 0 dropped. */
static int rl_open(size_t i, int64_t now, int64_t until)
{
    int64_t *u = &stats()->notify_rl[i].until_ms;
    int64_t cur = __atomic_load_n(u, __ATOMIC_ACQUIRE);
    while (cur <= now)
        if (__atomic_compare_exchange_n(u, &cur, until, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

/* 1 if the event passes (and opens a window), 0 if it is dropped. On Redis the
 * window is one key set with NX PX, so it passes once across all instances; when
 * Redis cannot be reached this instance's own window decides. */
static int rl_pass(int dest, int kind, const char *key, int window_s)
{
    if (window_s <= 0)
        return 1;
    char *k = xasprintf("%d|%d|%s", dest, kind, key);
    if (redis_in_use()) {
        int won = rl_redis_claim("alert", k, (int64_t)window_s * 1000);
        if (won >= 0) {
            free(k);
            return won;
        }
    }
    uint64_t h = rl_hash(k);
    free(k);
    int64_t now = now_ms(), until = now + (int64_t)window_s * 1000;
    size_t free_slot = RL_SLOTS;
    for (size_t n = 0; n < RL_PROBES; n++) {
        size_t i = (size_t)((h + n) % RL_SLOTS);
        uint64_t cur = __atomic_load_n(&stats()->notify_rl[i].key, __ATOMIC_ACQUIRE);
        if (cur == h)
            return rl_open(i, now, until);
        if (free_slot == RL_SLOTS &&
            (cur == 0 || __atomic_load_n(&stats()->notify_rl[i].until_ms, __ATOMIC_ACQUIRE) <= now))
            free_slot = i;
    }
    for (size_t n = 0; free_slot < RL_SLOTS && n < RL_PROBES; n++) {
        uint64_t cur = __atomic_load_n(&stats()->notify_rl[free_slot].key, __ATOMIC_ACQUIRE);
        int64_t end = __atomic_load_n(&stats()->notify_rl[free_slot].until_ms, __ATOMIC_ACQUIRE);
        if (cur == h)
            return rl_open(free_slot, now, until);
        if ((cur == 0 || end <= now) &&
            __atomic_compare_exchange_n(&stats()->notify_rl[free_slot].key, &cur, h, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return rl_open(free_slot, now, until);
        if (cur != h && !(cur == 0 || end <= now))
            break; /* taken by another live key meanwhile */
    }
    log_warnx("alert rate-limit table full: %s not limited", key);
    return 1;
}

/* ------------------------------------------------------------ templates */

/* Templates are compiled once per events process (a reload starts a new one). */
static struct {
    pthread_mutex_t mu;
    int done[2][2][2];
    struct tmpl *t[2][2][2]; /* [slack/teams][kind][basic/file] */
} tc = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The compiled template (NULL logged when it cannot be read or compiled). */
static const struct tmpl *chat_tmpl(const struct cfg_chat_kind *k, int chat, int kind, int file)
{
    pthread_mutex_lock(&tc.mu);
    if (!tc.done[chat][kind][file]) {
        tc.done[chat][kind][file] = 1;
        size_t len = 0;
        char *text = file ? notify_read_template(k->templateFile, &len)
                           : xstrdup(k->basicMsgTemplate);
        if (!file)
            len = strlen(text);
        struct tmpl_error err;
        if (!text)
            log_errorx("alert template %s cannot be read", k->templateFile);
        else if (!(tc.t[chat][kind][file] = tmpl_compile(text, len, &err)))
            log_errorx("%s:%d:%d: %s", file ? k->templateFile : "basicMsgTemplate", err.line,
                       err.col, err.msg);
        free(text);
    }
    const struct tmpl *t = tc.t[chat][kind][file];
    pthread_mutex_unlock(&tc.mu);
    return t;
}

/* ------------------------------------------------------------ messages */

static json_object *header(const char *n, const char *v)
{
    json_object *h = json_object_new_array();
    json_object_array_add(h, json_object_new_string(n));
    json_object_array_add(h, json_object_new_string(v));
    return h;
}

/* An HTTP request of an outbox entry. BODY NULL for none. */
static json_object *http_request(const char *method, const char *url, const char *body,
                                 const char *ca, int verify)
{
    json_object *r = json_object_new_object(), *hs = json_object_new_array();
    json_object_object_add(r, "method", json_object_new_string(method));
    json_object_object_add(r, "url", json_object_new_string(url));
    if (body)
        json_object_array_add(hs, header("Content-Type", "application/json"));
    json_object_object_add(r, "headers", hs);
    json_object_object_add(r, "body", body ? json_object_new_string(body) : NULL);
    json_object_object_add(r, "caFile", ca ? json_object_new_string(ca) : NULL);
    json_object_object_add(r, "verify", json_object_new_boolean(verify));
    return r;
}

/* The URL without its query, for logs and the entry's target. */
static char *url_target(const char *url)
{
    return xasprintf("%.*s", (int)strcspn(url, "?#"), url);
}

/* A message that could not be written to the spool (ENOSPC, an I/O error): one
 * attempt from memory, without retry (butlerd(8), Outbox). */
static void send_now(const struct cfg *c, const struct task_event *e, int kind, int dest,
                     json_object *en, const char *target)
{
    char err[300];
    if (delivery_send_now(c, en, err, sizeof err) == 0) {
        outbox_count(dest, kind, OBC_DELIVERED);
        log_warnx("notify delivered from memory dest=%s target=%s (not spooled)",
                  outbox_dest_names[dest], target);
    } else {
        log_errorx("notify lost dest=%s target=%s task=%s: not spooled, and the one attempt "
                   "failed: %s", outbox_dest_names[dest], target, e->f[5], err);
    }
}

void notify_spool(const struct cfg *c, const struct task_event *e, int kind, int dest,
                  const char *target, json_object *req, const char *dead_reason)
{
    char err[300];
    json_object *en = outbox_new(dest, kind, e->f[5], e->f[9], target, req);
    const char *id = json_object_get_string(json_object_object_get(en, "id"));
    if (dead_reason) {
        char t[32];
        outbox_time(now_real_ms(), t);
        json_object_object_add(en, "deadReason", json_object_new_string(dead_reason));
        json_object_object_add(en, "deadAt", json_object_new_string(t));
    }
    /* The queue limit is a count of queue/ then a write: one thread at a time. */
    static pthread_mutex_t spool_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&spool_mu);
    int rc = outbox_write(c->notify.spoolDirectory, dead_reason ? "dead" : "queue", en,
                          dead_reason ? 0 : c->notify.maxQueueEntries, err, sizeof err);
    pthread_mutex_unlock(&spool_mu);
    if (rc == 0 && !dead_reason) {
        outbox_count(dest, kind, OBC_QUEUED);
        log_info("notify queued id=%s dest=%s target=%s", id, outbox_dest_names[dest], target);
    } else if (rc == 0) {
        outbox_count(dest, kind, OBC_DEAD);
        log_errorx("notify dead id=%s dest=%s target=%s: %s", id, outbox_dest_names[dest],
                   target, dead_reason);
    } else {
        outbox_count(dest, kind, OBC_DROPPED);
        log_errorx("notify dropped dest=%s target=%s task=%s: %s", outbox_dest_names[dest],
                   target, e->f[5], err);
        if (rc < 0 && !dead_reason) /* not the queue limit: one try from memory */
            send_now(c, e, kind, dest, en, target);
    }
    json_object_put(en);
}

/* An HTTP message to URL (the target is URL without its query). */
static void spool(const struct msg_env *m, int dest, const char *url, json_object *req,
                  const char *dead_reason)
{
    char *target = url_target(url);
    notify_spool(m->c, m->e, m->kind, dest, target, req, dead_reason);
    free(target);
}

/* Renders T in json mode; the object, or NULL with the rendered text in *TEXT and
 * the reason in WHY. */
static json_object *render_json(const struct tmpl *t, json_object *ctx, char **text, char *why,
                                size_t whylen)
{
    size_t len;
    int cut;
    *text = tmpl_render(t, ctx, TMPL_JSON, &len, &cut);
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, *text, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (je != json_tokener_success || !json_object_is_type(o, json_type_object) || end != len) {
        snprintf(why, whylen, "rendered template is not one JSON object (%s at byte %zu)",
                 je != json_tokener_success ? json_tokener_error_desc(je) : "trailing text", end);
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* &, <, > as Slack's formatting wants them. */
static char *slack_escape(const char *s)
{
    struct buf b = {0};
    for (; *s; s++) {
        const char *r = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        buf_append(&b, r ? r : s, r ? strlen(r) : 1);
    }
    buf_append(&b, "", 0);
    return b.p;
}

static json_object *jtext(const char *type, const char *text)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    json_object_object_add(o, "text", json_object_new_string(text));
    return o;
}

static json_object *slack_button(const char *label, const char *url)
{
    json_object *b = json_object_new_object(), *t = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("button"));
    json_object_object_add(t, "type", json_object_new_string("plain_text"));
    json_object_object_add(t, "emoji", json_object_new_boolean(1));
    json_object_object_add(t, "text", json_object_new_string(label));
    json_object_object_add(b, "text", t);
    json_object_object_add(b, "style", json_object_new_string("primary"));
    json_object_object_add(b, "url", json_object_new_string(url));
    return b;
}

static void slack_basic(const struct cfg *c, json_object *body, const char *text)
{
    char *esc = slack_escape(text);
    json_object_object_add(body, "text", json_object_new_string(esc));
    free(esc);
    size_t cut = utf8_prefix(text, strlen(text), SLACK_HEADER_MAX);
    json_object *blocks = json_object_new_array(), *h = json_object_new_object();
    json_object_object_add(h, "type", json_object_new_string("header"));
    json_object_object_add(h, "text", jtext("plain_text", ""));
    json_object_object_add(json_object_object_get(h, "text"), "text",
                           json_object_new_string_len(text, (int)cut));
    json_object_array_add(blocks, h);
    json_object *d = json_object_new_object();
    json_object_object_add(d, "type", json_object_new_string("divider"));
    json_object_array_add(blocks, d);
    json_object *a = json_object_new_object(), *els = json_object_new_array();
    json_object_object_add(a, "type", json_object_new_string("actions"));
    json_object_array_add(els, slack_button("Open QMC", c->qsUrls.qmc));
    json_object_array_add(els, slack_button("Open Hub", c->qsUrls.hub));
    json_object_object_add(a, "elements", els);
    json_object_array_add(blocks, a);
    json_object_object_add(body, "blocks", blocks);
}

static json_object *teams_action(const char *title, const char *url)
{
    json_object *a = json_object_new_object();
    json_object_object_add(a, "type", json_object_new_string("Action.OpenUrl"));
    json_object_object_add(a, "title", json_object_new_string(title));
    json_object_object_add(a, "url", json_object_new_string(url));
    return a;
}

static json_object *teams_adaptive(const struct cfg *c, const char *t)
{
    json_object *card = json_object_new_object(), *tb = json_object_new_object();
    json_object_object_add(card, "$schema",
                           json_object_new_string("http://adaptivecards.io/schemas/adaptive-card.json"));
    json_object_object_add(card, "type", json_object_new_string("AdaptiveCard"));
    json_object_object_add(card, "version", json_object_new_string("1.3"));
    json_object_object_add(tb, "type", json_object_new_string("TextBlock"));
    json_object_object_add(tb, "size", json_object_new_string("large"));
    json_object_object_add(tb, "weight", json_object_new_string("bolder"));
    json_object_object_add(tb, "wrap", json_object_new_boolean(1));
    json_object_object_add(tb, "text", json_object_new_string(t));
    json_object *body = json_object_new_array(), *acts = json_object_new_array();
    json_object_array_add(body, tb);
    json_object_object_add(card, "body", body);
    json_object_array_add(acts, teams_action("Qlik Sense QMC", c->qsUrls.qmc));
    json_object_array_add(acts, teams_action("Qlik Sense Hub", c->qsUrls.hub));
    json_object_object_add(card, "actions", acts);
    json_object *att = json_object_new_object(), *atts = json_object_new_array();
    json_object_object_add(att, "contentType",
                           json_object_new_string("application/vnd.microsoft.card.adaptive"));
    json_object_object_add(att, "contentUrl", NULL);
    json_object_object_add(att, "content", card);
    json_object_array_add(atts, att);
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "type", json_object_new_string("message"));
    json_object_object_add(msg, "attachments", atts);
    return msg;
}

static json_object *teams_open_uri(const char *name, const char *url)
{
    json_object *a = json_object_new_object(), *ts = json_object_new_array(),
                *t = json_object_new_object();
    json_object_object_add(a, "@type", json_object_new_string("OpenUri"));
    json_object_object_add(a, "name", json_object_new_string(name));
    json_object_object_add(t, "os", json_object_new_string("default"));
    json_object_object_add(t, "uri", json_object_new_string(url));
    json_object_array_add(ts, t);
    json_object_object_add(a, "targets", ts);
    return a;
}

static json_object *teams_messagecard(const struct cfg *c, const char *t)
{
    json_object *o = json_object_new_object(), *pa = json_object_new_array();
    json_object_object_add(o, "@type", json_object_new_string("MessageCard"));
    json_object_object_add(o, "@context", json_object_new_string("https://schema.org/extensions"));
    json_object_object_add(o, "summary", json_object_new_string(t));
    json_object_object_add(o, "themeColor", json_object_new_string("0078D7"));
    json_object_object_add(o, "title", json_object_new_string(t));
    json_object_array_add(pa, teams_open_uri("Qlik Sense QMC", c->qsUrls.qmc));
    json_object_array_add(pa, teams_open_uri("Qlik Sense Hub", c->qsUrls.hub));
    json_object_object_add(o, "potentialAction", pa);
    return o;
}

/* FROM's members into TO in FROM's order; a member TO has keeps its place. */
static void merge_members(json_object *to, json_object *from)
{
    json_object_object_foreach(from, key, val)
    {
        json_object_object_add(to, key, json_object_get(val));
    }
}

/* Slack (DEST OB_SLACK) and Teams: one POST. */
static void chat_make(const struct msg_env *m, int dest)
{
    const struct cfg *c = m->c;
    int chat = dest == OB_TEAMS;
    const struct cfg_chat_kind *k = chat ? &c->teams.k[m->kind] : &c->slack.k[m->kind];
    int formatted = !strcasecmp(k->messageType, "formatted");
    const struct tmpl *t = chat_tmpl(k, chat, m->kind, formatted);
    if (!t) {
        outbox_count(dest, m->kind, OBC_RENDER_FAILED);
        return;
    }
    struct alertctx_opts o = {1, k->headScriptLogLines, k->tailScriptLogLines};
    json_object *ctx = alertctx_context(c, m->e, m->a, &o), *body = NULL;
    char *text = NULL, why[200];
    size_t len;
    int cut;
    if (formatted && !(body = render_json(t, ctx, &text, why, sizeof why))) {
        outbox_count(dest, m->kind, OBC_RENDER_FAILED);
        log_errorx("alert for %s: %s: %s", outbox_dest_names[dest], k->templateFile, why);
        spool(m, dest, k->webhookURL, http_request("POST", k->webhookURL, text, NULL, 1), why);
        goto out;
    }
    if (!formatted)
        text = tmpl_render(t, ctx, TMPL_TEXT, &len, &cut);
    json_object *msg;
    if (dest == OB_SLACK) {
        msg = json_object_new_object();
        json_object_object_add(msg, "username", json_object_new_string(k->fromUser));
        json_object_object_add(msg, "channel", json_object_new_string(k->channel));
        json_object_object_add(msg, "icon_emoji", json_object_new_string(k->iconEmoji));
        if (formatted)
            merge_members(msg, body);
        else
            slack_basic(c, msg, text);
    } else if (formatted) {
        msg = json_object_get(body);
    } else {
        msg = !strcasecmp(c->notify.teamsBasicCard, "messagecard") ? teams_messagecard(c, text)
                                                                  : teams_adaptive(c, text);
    }
    /* A formatted Teams message goes as rendered; everything else is serialised. */
    const char *js = dest == OB_TEAMS && formatted ? text
                                                   : json_object_to_json_string_ext(msg, JSON_FLAGS);
    spool(m, dest, k->webhookURL, http_request("POST", k->webhookURL, js, NULL, 1), NULL);
    json_object_put(msg);
out:
    json_object_put(body);
    json_object_put(ctx);
    free(text);
}

static void slack_make(const struct msg_env *m) { chat_make(m, OB_SLACK); }
static void teams_make(const struct msg_env *m) { chat_make(m, OB_TEAMS); }

/* Form encoding: space '+', all but A-Z a-z 0-9 * - . _ as %XX. */
static void form_encode(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            strchr("*-._", ch)) {
            buf_append(b, s, 1);
        } else if (ch == ' ') {
            buf_append(b, "+", 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            buf_append(b, e, 3);
        }
    }
}

static json_object *webhook_fields(const struct msg_env *m)
{
    const struct task_event *e = m->e;
    const struct alert_info *a = m->a;
    json_object *o = json_object_new_object(), *v;
    const char *own[3] = {"name", "userDirectory", "userId"};
    const char *names[3] = {"appOwnerName", "appOwnerUserDirectory", "appOwnerUserId"};
    json_object_object_add(o, "event", json_object_new_string(
                                           e->aborted ? "Qlik Sense reload aborted"
                                                      : "Qlik Sense reload failed"));
    const char *first[] = {"hostName", "user", "taskName", "taskId", "appName", "appId"};
    const int fi[] = {1, 4, 2, 5, 3, 6};
    for (int i = 0; i < 6; i++)
        json_object_object_add(o, first[i], json_object_new_string(e->f[fi[i]]));
    for (int i = 0; i < 3; i++) {
        const char *s = a->owner && json_object_object_get_ex(a->owner, own[i], &v) &&
                                json_object_is_type(v, json_type_string)
                            ? json_object_get_string(v)
                            : "";
        json_object_object_add(o, names[i], json_object_new_string(s));
    }
    json_object_object_add(o, "appOwnerEmail",
                           json_object_new_string(a->owner_email ? a->owner_email : ""));
    json_object_object_add(o, "logTimeStamp", json_object_new_string(e->f[7]));
    json_object_object_add(o, "logLevel", json_object_new_string(e->f[8]));
    json_object_object_add(o, "executionId", json_object_new_string(e->f[9]));
    json_object_object_add(o, "logMessage", json_object_new_string(e->f[10]));
    return o;
}

static void webhook_make(const struct msg_env *m)
{
    const struct tuplelist *l = &m->c->webhook.hooks[m->kind];
    json_object *fields = webhook_fields(m);
    for (size_t i = 0; i < l->n; i++) {
        const char *url = l->v[i].m[0], *method = l->v[i].m[1];
        /* cert: the CA file replaces the system store; rejectUnauthorized false
         * turns verification off (butlerd.conf(5), Alerts). */
        int cert = l->v[i].m[3] && !strcmp(l->v[i].m[3], "true") &&
                   !strncasecmp(url, "https://", 8);
        const char *ca = cert && l->v[i].m[5] ? l->v[i].m[5] : NULL;
        int verify = !(cert && l->v[i].m[4] && !strcmp(l->v[i].m[4], "false"));
        if (!strcasecmp(method, "GET")) {
            struct buf u = {0};
            buf_append(&u, url, strlen(url));
            char sep = strchr(url, '?') ? '&' : '?';
            json_object_object_foreach(fields, key, val)
            {
                buf_append(&u, &sep, 1);
                sep = '&';
                form_encode(&u, key);
                buf_append(&u, "=", 1);
                form_encode(&u, json_object_get_string(val));
            }
            buf_append(&u, "", 0);
            spool(m, OB_WEBHOOK, url, http_request("GET", u.p, NULL, ca, verify), NULL);
            buf_free(&u);
        } else {
            char *up = xstrdup(method);
            for (char *p = up; *p; p++)
                *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
            spool(m, OB_WEBHOOK, url,
                  http_request(up, url, json_object_to_json_string_ext(fields, JSON_FLAGS), ca,
                               verify),
                  NULL);
            free(up);
        }
    }
    json_object_put(fields);
}

/* ------------------------------------------------------------ destinations */

/* Slack, Teams and webhooks have no success kind (butlerd(8), Alerts). */
static int slack_on(const struct cfg *c, int k)
{
    return k != OB_SUCCESS && c->slack.enable && c->slack.k[k].enable;
}
static int teams_on(const struct cfg *c, int k)
{
    return k != OB_SUCCESS && c->teams.enable && c->teams.k[k].enable;
}
static int webhook_on(const struct cfg *c, int k)
{
    return k != OB_SUCCESS && c->webhook.enable && c->webhook.hooks[k].n > 0;
}
static int slack_window(const struct cfg *c, int k) { return c->slack.k[k].rateLimit; }
static int teams_window(const struct cfg *c, int k) { return c->teams.k[k].rateLimit; }
static int webhook_window(const struct cfg *c, int k) { return c->webhook.rateLimit[k]; }
static int slack_lines(const struct cfg *c, int k, int tail)
{
    return tail ? c->slack.k[k].tailScriptLogLines : c->slack.k[k].headScriptLogLines;
}
static int teams_lines(const struct cfg *c, int k, int tail)
{
    return tail ? c->teams.k[k].tailScriptLogLines : c->teams.k[k].headScriptLogLines;
}

/* E-mail (notify_mail.c) has no window per task: its limit is per recipient. */
static const struct destination {
    int id;
    int (*on)(const struct cfg *, int kind);
    int (*lines)(const struct cfg *, int kind, int tail); /* NULL: no script log */
    int (*window)(const struct cfg *, int kind);          /* rate limit per task */
    void (*make)(const struct msg_env *m);
} dests[] = {
    {OB_SLACK, slack_on, slack_lines, slack_window, slack_make},
    {OB_TEAMS, teams_on, teams_lines, teams_window, teams_make},
    {OB_WEBHOOK, webhook_on, NULL, webhook_window, webhook_make},
    {OB_EMAIL, notify_mail_on, notify_mail_lines, NULL, notify_mail_make},
};
#define NDESTS (sizeof dests / sizeof dests[0])

int notify_wanted(const struct cfg *c, int kind)
{
    for (size_t i = 0; i < NDESTS; i++)
        if (dests[i].on(c, kind))
            return 1;
    return 0;
}

int notify_any(const struct cfg *c)
{
    return notify_wanted(c, OB_FAILED) || notify_wanted(c, OB_ABORTED) ||
           notify_wanted(c, OB_SUCCESS);
}

int notify_rate_pass(int dest, int kind, const char *key, int window_s)
{
    if (rl_pass(dest, kind, key, window_s))
        return 1;
    outbox_count(dest, kind, OBC_RATE_LIMITED);
    log_info("notify rate-limited dest=%s kind=%s task=%s", outbox_dest_names[dest],
             outbox_kind_names[kind], key);
    return 0;
}

void notify_event(const struct cfg *c, struct task_event *e)
{
    int kind = e->success ? OB_SUCCESS : e->aborted ? OB_ABORTED : OB_FAILED;
    int head = 0, tail = 0, want_log = 0;
    int pass[NDESTS] = {0}, any = 0;
    for (size_t i = 0; i < NDESTS; i++) {
        const struct destination *d = &dests[i];
        if (!d->on(c, kind))
            continue;
        if (d->window && !notify_rate_pass(d->id, kind, e->f[5], d->window(c, kind)))
            continue;
        pass[i] = any = 1;
        if (d->lines) {
            want_log = 1;
            if (d->lines(c, kind, 0) > head)
                head = d->lines(c, kind, 0);
            if (d->lines(c, kind, 1) > tail)
                tail = d->lines(c, kind, 1);
        }
    }
    if (!any)
        return;
    struct alert_info a;
    alertctx_gather(c, e, want_log, head, tail, &a);
    struct msg_env m = {c, e, &a, kind};
    for (size_t i = 0; i < NDESTS; i++)
        if (pass[i])
            dests[i].make(&m);
    alertctx_free(&a);
}
