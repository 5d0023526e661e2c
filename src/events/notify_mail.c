/* The e-mail destination of the alert pipeline (butlerd(8), E-mail alerts): the
 * subject and HTML body rendered once per event, then one outbox entry per
 * recipient, each through its own rate limit "<taskId>|<address lower-cased>". The
 * SMTP settings are read at delivery time (xfer.c), never stored in the entry. */
#include "alertctx.h"
#include "cfg.h"
#include "log.h"
#include "mail.h"
#include "notify.h"
#include "notify_check.h"
#include "outbox.h"
#include "taskevent.h"
#include "tmpl.h"
#include "util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int notify_mail_on(const struct cfg *c, int kind)
{
    return kind >= 0 && kind < CFG_NKINDS && c->email.enable && c->email.kind[kind].enable;
}

int notify_mail_lines(const struct cfg *c, int kind, int tail)
{
    const struct cfg_email_kind *k = &c->email.kind[kind];
    return tail ? k->tailScriptLogLines : k->headScriptLogLines;
}

/* Subject [kind][0] and body [kind][1], compiled once per events process (a reload
 * starts a new one). */
static struct {
    pthread_mutex_t mu;
    int done[CFG_NKINDS][2];
    struct tmpl *t[CFG_NKINDS][2];
} mc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct tmpl *compile_one(const struct cfg *c, const struct cfg_email_kind *k, int body)
{
    char *file = body ? mail_template_file(k, c->workingDirectory) : NULL;
    size_t len = 0;
    char *text = body ? notify_read_template(file, &len) : xstrdup(k->subject);
    struct tmpl_error err;
    struct tmpl *t = NULL;
    if (!body)
        len = strlen(text);
    if (!text)
        log_errorx("alert e-mail template %s cannot be read", file);
    else if (!(t = tmpl_compile(text, len, &err)))
        log_errorx("%s:%d:%d: %s", body ? file : "subject", err.line, err.col, err.msg);
    free(text);
    free(file);
    return t;
}

static const struct tmpl *mail_tmpl(const struct cfg *c, int kind, int body)
{
    pthread_mutex_lock(&mc.mu);
    if (!mc.done[kind][body]) {
        mc.done[kind][body] = 1;
        mc.t[kind][body] = compile_one(c, &c->email.kind[kind], body);
    }
    const struct tmpl *t = mc.t[kind][body];
    pthread_mutex_unlock(&mc.mu);
    return t;
}

/* The owner as mail_recipients wants it, with every e-mail address QRS has. */
static void owner_of(const struct alert_info *a, struct mail_owner *o)
{
    json_object *v;
    memset(o, 0, sizeof *o);
    if (!a->owner || !a->owner_email)
        return;
    o->known = 1;
    o->directory = json_object_object_get_ex(a->owner, "userDirectory", &v)
                       ? json_object_get_string(v) : "";
    o->userId = json_object_object_get_ex(a->owner, "userId", &v) ? json_object_get_string(v)
                                                                   : "";
    o->emails = (const char *const *)a->owner_emails;
    o->nemails = a->nowner_emails;
}

static json_object *request(const char *from, const char *to, const char *msg)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "from", json_object_new_string(from));
    json_object_object_add(r, "to", json_object_new_string(to));
    json_object_object_add(r, "message", json_object_new_string(msg));
    return r;
}

/* One message to ADDR, if it passes its rate limit. */
static void one(const struct msg_env *m, const struct cfg_email_kind *k, const char *env,
                const char *addr, const char *subject, const char *html, size_t len)
{
    char *key = xasprintf("%s|%s", m->e->f[5], addr);
    for (char *p = key; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int pass = notify_rate_pass(OB_EMAIL, m->kind, key, k->rateLimit);
    free(key);
    if (!pass)
        return;
    struct mail_msg mm = {k->fromAddress, addr, subject, html, len, k->priority, time(NULL), NULL};
    char *msg = mail_message(&mm);
    if (!msg) {
        outbox_count(OB_EMAIL, m->kind, OBC_RENDER_FAILED);
        log_errorx("alert e-mail to %s: no message (fromAddress \"%s\" is not a mailbox)", addr,
                   k->fromAddress);
        return;
    }
    notify_spool(m->c, m->e, m->kind, OB_EMAIL, addr, request(env, addr, msg), NULL);
    free(msg);
}

static void send_all(const struct msg_env *m, const struct cfg_email_kind *k, json_object *ctx,
                     const char *subject, const char *html, size_t len)
{
    struct strlist to = {0}, bad = {0};
    struct mail_owner owner;
    owner_of(m->a, &owner);
    json_object *cps = NULL;
    if (m->e->task)
        json_object_object_get_ex(ctx, "taskCustomProperties", &cps);
    mail_recipients(k, cps, &owner, &to, &bad);
    for (size_t i = 0; i < bad.n; i++)
        log_warnx("alert e-mail for task %s: invalid address \"%s\" skipped", m->e->f[5], bad.v[i]);
    if (!to.n)
        log_info("alert e-mail for task %s (%s): no recipients", m->e->f[5],
                 outbox_kind_names[m->kind]);
    char *env = to.n ? mail_envelope_from(k->fromAddress) : NULL;
    if (to.n && !env) {
        outbox_count(OB_EMAIL, m->kind, OBC_RENDER_FAILED);
        log_errorx("alert e-mail: fromAddress \"%s\" is not a mailbox", k->fromAddress);
    }
    for (size_t i = 0; env && i < to.n; i++)
        one(m, k, env, to.v[i], subject, html, len);
    free(env);
    strlist_free(&to);
    strlist_free(&bad);
}

void notify_mail_make(const struct msg_env *m)
{
    const struct cfg_email_kind *k = &m->c->email.kind[m->kind];
    const struct tmpl *ts = mail_tmpl(m->c, m->kind, 0), *tb = mail_tmpl(m->c, m->kind, 1);
    if (!ts || !tb) {
        outbox_count(OB_EMAIL, m->kind, OBC_RENDER_FAILED);
        return;
    }
    struct alertctx_opts o = {0, k->headScriptLogLines, k->tailScriptLogLines};
    json_object *ctx = alertctx_context(m->c, m->e, m->a, &o);
    size_t slen, blen;
    int cut;
    char *subject = tmpl_render(ts, ctx, TMPL_TEXT, &slen, &cut);
    char *html = tmpl_render(tb, ctx, TMPL_HTML, &blen, &cut);
    send_all(m, k, ctx, subject, html, blen);
    free(subject);
    free(html);
    json_object_put(ctx);
}
