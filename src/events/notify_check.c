/* Checks of the alert configuration at start, on SIGHUP and with -t (butlerd.conf(5),
 * Alerts): only for destinations and kinds that are enabled. Every problem is
 * reported with its file and line and the key path, all of them, not only the
 * first; template syntax errors give the template's own LINE:COL. */
#include "notify_check.h"
#include "cfg.h"
#include "mail.h"
#include "tmpl.h"
#include "tmpl_fields.h"
#include "tzfile.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kinds[2] = {"reloadTaskFailure", "reloadTaskAborted"};

struct ck {
    const struct cfg *c;
    struct strlist *err, *warn;
};

static void say(struct strlist *to, const struct cfg *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(struct strlist *to, const struct cfg *c, const char *key, const char *fmt, ...)
{
    char text[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    int line = cfg_key_line(c, key);
    strlist_add(to, line > 0 ? xasprintf("%s:%d: %s", c->file, line, text)
                             : xasprintf("%s: %s", c->file, text));
}

/* An absolute http:// or https:// URL with a host. */
static int http_url(const char *u)
{
    const char *h = !strncasecmp(u, "http://", 7) ? u + 7 : !strncasecmp(u, "https://", 8) ? u + 8
                                                                                          : NULL;
    if (!h || !*h || strchr("/?#:", *h))
        return 0;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

static void url(struct ck *k, const char *key, const char *v, int may_be_empty)
{
    if (!(may_be_empty && !*v) && !http_url(v))
        say(k->err, k->c, key, "%s is not an absolute http:// or https:// URL: \"%.200s\"", key, v);
}

/* Compiles TEXT (from FILE, or inline under KEY when FILE is NULL). */
static void compile(struct ck *k, const char *key, const char *file, const char *text, size_t len)
{
    struct tmpl_error e;
    struct tmpl *t = tmpl_compile(text, len, &e);
    if (!t) {
        if (file)
            say(k->err, k->c, key, "%s:%d:%d: %s", file, e.line, e.col, e.msg);
        else
            say(k->err, k->c, key, "%s:%d:%d: %s", key, e.line, e.col, e.msg);
        return;
    }
    struct strlist w = {0};
    tmpl_fields_check(t, &w);
    for (size_t i = 0; i < w.n; i++)
        say(k->warn, k->c, key, "%s:%s", file ? file : key, w.v[i]);
    strlist_free(&w);
    tmpl_free(t);
}

char *notify_read_template(const char *path, size_t *len)
{
    FILE *f = *path ? fopen(path, "rb") : NULL;
    if (!f)
        return NULL;
    struct buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= TMPL_MAX_SOURCE)
        buf_append(&b, chunk, n);
    fclose(f);
    buf_append(&b, "", 0);
    *len = b.len;
    return b.p;
}

static void template_file(struct ck *k, const char *key, const char *path)
{
    size_t len;
    char *text = notify_read_template(path, &len);
    if (!text) {
        say(k->err, k->c, key, *path ? "%s: cannot read %s" : "%s is empty%s", key, path);
        return;
    }
    compile(k, key, path, text, len);
    free(text);
}

static void chat(struct ck *k, const char *dest, const struct cfg_chat_kind *ck, int slack)
{
    char key[200];
    const char *base = slack ? "Butler.slackNotification" : "Butler.teamsNotification";
    for (int i = 0; i < 2; i++, ck++) {
        if (!ck->enable)
            continue;
#define KEY(m) (snprintf(key, sizeof key, "%s.%s.%s", base, kinds[i], m), key)
        url(k, KEY("webhookURL"), ck->webhookURL, 0);
        if (!strcasecmp(ck->messageType, "formatted")) {
            template_file(k, KEY("templateFile"), ck->templateFile);
        } else if (!strcasecmp(ck->messageType, "basic")) {
            if (slack && !*ck->basicMsgTemplate)
                say(k->err, k->c, KEY("basicMsgTemplate"), "%s is empty", key);
            compile(k, KEY("basicMsgTemplate"), NULL, ck->basicMsgTemplate,
                    strlen(ck->basicMsgTemplate));
            if (!*k->c->qsUrls.qmc || !*k->c->qsUrls.hub)
                say(k->err, k->c, "Butler.qlikSenseUrls.qmc",
                    "a basic %s message is enabled (%s) but Butler.qlikSenseUrls.qmc or .hub is "
                    "empty", dest, kinds[i]);
        } else {
            say(k->err, k->c, KEY("messageType"), "%s must be \"basic\" or \"formatted\"", key);
        }
#undef KEY
    }
}

/* A readable file holding a PEM certificate. */
static void pem_file(struct ck *k, const char *key, size_t j, const char *path)
{
    char line[128];
    int pem = 0;
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    while (f && !pem && fgets(line, sizeof line, f))
        pem = !strncmp(line, "-----BEGIN CERTIFICATE-----", 27);
    if (f)
        fclose(f);
    if (!pem)
        say(k->err, k->c, key, "%s[%zu].cert.certCA %s is not a readable PEM certificate file",
            key, j, path && *path ? path : "(empty)");
}

static void webhooks(struct ck *k)
{
    char key[200];
    for (int i = 0; i < 2; i++) {
        const struct tuplelist *l = &k->c->webhook.hooks[i];
        snprintf(key, sizeof key, "Butler.webhookNotification.%s.webhooks", kinds[i]);
        for (size_t j = 0; j < l->n; j++) {
            char item[240];
            snprintf(item, sizeof item, "%s[%zu].webhookURL", key, j);
            if (!http_url(l->v[j].m[0]))
                say(k->err, k->c, key, "%s is not an absolute http:// or https:// URL", item);
            const char *m = l->v[j].m[1];
            if (strcasecmp(m, "GET") && strcasecmp(m, "POST") && strcasecmp(m, "PUT"))
                say(k->err, k->c, key, "%s[%zu].httpMethod must be GET, POST or PUT", key, j);
            for (int b = 3; b <= 4; b++)
                if (l->v[j].m[b] && strcmp(l->v[j].m[b], "true") && strcmp(l->v[j].m[b], "false"))
                    say(k->err, k->c, key, "%s[%zu].cert.%s must be true or false", key, j,
                        b == 3 ? "enable" : "rejectUnauthorized");
            if (l->v[j].m[3] && !strcmp(l->v[j].m[3], "true"))
                pem_file(k, key, j, l->v[j].m[5]);
        }
    }
}

/* The templates of the enabled e-mail kinds: the subject inline, the HTML body from
 * its file (the other e-mail keys are checked when the configuration is loaded). */
static void email(struct ck *k)
{
    static const char *const names[CFG_NKINDS] = {"reloadTaskFailure", "reloadTaskAborted",
                                                  "reloadTaskSuccess"};
    char key[200];
    for (int i = 0; i < CFG_NKINDS; i++) {
        const struct cfg_email_kind *ek = &k->c->email.kind[i];
        if (!ek->enable)
            continue;
#define KEY(m) (snprintf(key, sizeof key, "Butler.emailNotification.%s.%s", names[i], m), key)
        compile(k, KEY("subject"), NULL, ek->subject, strlen(ek->subject));
        if (!*ek->bodyFileDirectory || !*ek->htmlTemplateFile)
            continue; /* reported by the loader */
        char *file = mail_template_file(ek, k->c->workingDirectory);
        template_file(k, KEY("htmlTemplateFile"), file);
        free(file);
#undef KEY
    }
}

static void spool(struct ck *k)
{
    const char *d = k->c->notify.spoolDirectory;
    struct stat st;
    if (stat(d, &st) == 0 && (!S_ISDIR(st.st_mode) || access(d, W_OK | X_OK) < 0))
        say(k->err, k->c, "butlerd.notifications.spoolDirectory",
            "butlerd.notifications.spoolDirectory %s is not a writable directory", d);
}

void notify_check(const struct cfg *c, struct strlist *errors, struct strlist *warnings)
{
    struct ck k = {c, errors, warnings};
    url(&k, "Butler.qlikSenseUrls.qmc", c->qsUrls.qmc, 1);
    url(&k, "Butler.qlikSenseUrls.hub", c->qsUrls.hub, 1);
    url(&k, "Butler.qlikSenseUrls.appBaseUrl", c->qsUrls.appBaseUrl, 1);
    for (size_t i = 0; i < c->genericUrls.n; i++)
        if (*c->genericUrls.v[i].m[3] && !http_url(c->genericUrls.v[i].m[3]))
            say(errors, c, "Butler.genericUrls",
                "Butler.genericUrls[%zu].url is not an absolute http:// or https:// URL", i);
    if (strcasecmp(c->notify.teamsBasicCard, "adaptive") &&
        strcasecmp(c->notify.teamsBasicCard, "messagecard"))
        say(errors, c, "butlerd.notifications.teamsBasicCard",
            "butlerd.notifications.teamsBasicCard must be \"adaptive\" or \"messagecard\"");
    if (*c->notify.timeZone) {
        char err[200];
        struct tz *tz = tz_load(c->notify.timeZone, err, sizeof err);
        if (!tz)
            say(errors, c, "butlerd.notifications.timeZone", "butlerd.notifications.timeZone: %s",
                err);
        tz_free(tz);
    }
    if (c->notify.retryMaxSeconds < c->notify.retryInitialSeconds)
        say(errors, c, "butlerd.notifications.retryMaxSeconds",
            "butlerd.notifications.retryMaxSeconds is below retryInitialSeconds");
    if (c->slack.enable)
        chat(&k, "Slack", c->slack.k, 1);
    if (c->teams.enable)
        chat(&k, "Teams", c->teams.k, 0);
    if (c->webhook.enable)
        webhooks(&k);
    int mail = c->email.enable && (c->email.kind[0].enable || c->email.kind[1].enable ||
                                   c->email.kind[2].enable);
    if (mail)
        email(&k);
    if (mail || (c->slack.enable && (c->slack.k[0].enable || c->slack.k[1].enable)) ||
        (c->teams.enable && (c->teams.k[0].enable || c->teams.k[1].enable)) ||
        (c->webhook.enable && (c->webhook.hooks[0].n || c->webhook.hooks[1].n)))
        spool(&k);
}
