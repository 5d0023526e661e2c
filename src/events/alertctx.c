/* The alert context (see alertctx.h; butlerd(8), Alerts, "Context from QRS"). */
#include "alertctx.h"
#include "cfg.h"
#include "log.h"
#include "qrs.h"
#include "taskevent.h"
#include "tzfile.h"
#include "utf8.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ATTEMPTS 3           /* execution result and script log: attempts... */
#define ATTEMPT_GAP_MS 2000  /* ...this far apart */
#define DOWNLOAD_DELAY_MS 500
#define LINE_MAX_BYTES 65536 /* a kept line is cut here */
#define CHAT_CAP 3000
#define CHAT_KEEP 2900
#define EMPTY_GUID "00000000-0000-0000-0000-000000000000"
#define TRUNC_NOTE "----Script log truncated by Butler----"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* ------------------------------------------------------------ QRS calls */

/* GET /qrs/PATH[?QUERY]: the parsed 200 object, or NULL (logged; a call without an
 * answer trips the event's circuit breaker). */
static json_object *get_object(const struct cfg *c, struct task_event *e, const char *path,
                               const char *query)
{
    if (e->noanswer)
        return NULL;
    struct qrs_resp q;
    int rc = query ? qrs_get_stream(c, path, query, NULL, NULL, &q)
                   : qrs_call(c, "GET", path, NULL, NULL, &q);
    json_object *o = NULL;
    if (rc < 0) {
        e->noanswer = 1;
        log_warnx("alert: GET /qrs/%s: no answer (%s)", path, q.error);
    } else if (q.status != 200) {
        log_warnx("alert: GET /qrs/%s: HTTP %ld", path, q.status);
    } else if (!(o = json_tokener_parse(q.body.p)) || !json_object_is_type(o, json_type_object)) {
        log_warnx("alert: GET /qrs/%s: the answer is not a JSON object", path);
        json_object_put(o);
        o = NULL;
    }
    qrs_resp_free(&q);
    return o;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* ------------------------------------------------------------ script log */

struct logrd {
    struct alert_info *a;
    struct buf line;
    int cr;        /* the last byte seen was a CR not yet known to end a line */
    int any;       /* bytes seen */
};

static void end_line(struct logrd *r)
{
    struct alert_info *a = r->a;
    size_t n;
    char *s = utf8_repair(r->line.p ? r->line.p : "", r->line.len, &n);
    a->chars += (long)utf8_count(s, n);
    a->rows++;
    if (a->nhead < a->maxhead)
        a->head[a->nhead++] = xstrdup(s);
    if (a->maxtail > 0) {
        int slot = (a->tail_start + a->ntail) % a->maxtail;
        if (a->ntail == a->maxtail) {
            free(a->tail[a->tail_start]);
            a->tail[a->tail_start] = s;
            a->tail_start = (a->tail_start + 1) % a->maxtail;
        } else {
            a->tail[slot] = s;
            a->ntail++;
        }
        s = NULL;
    }
    free(s);
    r->line.len = 0;
}

static void add_byte(struct logrd *r, char ch)
{
    if (r->line.len < LINE_MAX_BYTES)
        buf_append(&r->line, &ch, 1);
}

static int on_log(void *arg, const char *p, size_t len)
{
    struct logrd *r = arg;
    for (size_t i = 0; i < len; i++) {
        r->any = 1;
        if (r->cr) {
            r->cr = 0;
            if (p[i] == '\n') {
                end_line(r);
                r->a->chars += 2; /* the CRLF */
                continue;
            }
            add_byte(r, '\r');
        }
        if (p[i] == '\r')
            r->cr = 1;
        else
            add_byte(r, p[i]);
    }
    return 0;
}

static void log_reset(struct alert_info *a)
{
    for (int i = 0; i < a->nhead; i++)
        free(a->head[i]);
    for (int i = 0; i < a->ntail; i++)
        free(a->tail[(a->tail_start + i) % a->maxtail]);
    a->nhead = a->ntail = a->tail_start = 0;
    a->rows = a->chars = 0;
}

/* Calls 6: the download after its ticket. 1 for a non-empty log, 0 for an empty one,
 * -1 on failure. */
static int download(const struct cfg *c, struct task_event *e, json_object *ticket,
                    struct alert_info *a)
{
    const char *t = jstr(ticket, "value");
    if (!t || !*t || strchr(t, '/') || strchr(t, '?') || strchr(t, '%'))
        return -1;
    sleep_ms(DOWNLOAD_DELAY_MS);
    if (e->noanswer)
        return -1;
    char path[300];
    snprintf(path, sizeof path, "download/reloadtask/%s/scriptlog.txt", t);
    struct logrd r = {a, {0}, 0, 0};
    log_reset(a);
    struct qrs_resp q;
    int rc = qrs_get_stream(c, path, NULL, on_log, &r, &q);
    int out = -1;
    if (rc < 0) {
        e->noanswer = 1;
        log_warnx("alert: GET /qrs/download/reloadtask/.../scriptlog.txt: no answer (%s)",
                  q.error);
    } else if (q.status != 200) {
        log_warnx("alert: GET /qrs/download/reloadtask/.../scriptlog.txt: HTTP %ld", q.status);
    } else {
        if (r.cr)
            add_byte(&r, '\r');
        if (r.any)
            end_line(&r);
        out = r.any ? 1 : 0;
    }
    buf_free(&r.line);
    qrs_resp_free(&q);
    return out;
}

/* Calls 5 (or 7) and 6 of one attempt: 1 got a log, 0 empty, -1 failed. */
static int fetch_log(const struct cfg *c, struct task_event *e, json_object *ler,
                     const char *fref, struct alert_info *a)
{
    char path[100], query[120];
    snprintf(path, sizeof path, "reloadtask/%s/scriptlog", e->f[5]);
    snprintf(query, sizeof query, "fileReferenceId=%s", fref);
    json_object *tk = get_object(c, e, path, query);
    int rc = tk ? download(c, e, tk, a) : -1;
    json_object_put(tk);
    const char *xid = jstr(ler, "id");
    if (rc < 0 && xid && strlen(xid) < 40 && !e->noanswer) {
        snprintf(path, sizeof path, "reloadtask/%s/scriptlogfile", e->f[5]);
        snprintf(query, sizeof query, "executionResultId=%s", xid);
        tk = get_object(c, e, path, query);
        rc = tk ? download(c, e, tk, a) : -1;
        json_object_put(tk);
    }
    return rc;
}

/* Status 7 (FinishedSuccess) in an execution result. */
static int finished_success(json_object *ler)
{
    json_object *v;
    return json_object_object_get_ex(ler, "status", &v) && json_object_is_type(v, json_type_int) &&
           json_object_get_int(v) == 7;
}

/* Calls 4-7 in their loop of attempts; for a success event an attempt also fails
 * while the result's status is not yet 7 (butlerd(8), Alerts). */
static void gather_log(const struct cfg *c, struct task_event *e, struct alert_info *a)
{
    char path[100];
    snprintf(path, sizeof path, "reloadtask/%s", e->f[5]);
    a->log_state = LOG_UNAVAILABLE;
    for (int n = 1; n <= ATTEMPTS && !e->noanswer; n++) {
        if (n > 1)
            sleep_ms(ATTEMPT_GAP_MS);
        json_object *rt = get_object(c, e, path, NULL), *op, *ler;
        if (!rt)
            continue;
        if (!json_object_object_get_ex(rt, "operational", &op) ||
            !json_object_object_get_ex(op, "lastExecutionResult", &ler) ||
            !json_object_is_type(ler, json_type_object)) {
            log_warnx("alert: GET /qrs/%s: no operational.lastExecutionResult", path);
            json_object_put(rt);
            continue;
        }
        json_object_put(a->exec);
        a->exec = json_object_get(ler);
        if (e->success && n < ATTEMPTS && !finished_success(ler)) {
            json_object_put(rt); /* QRS has not caught up with the run yet */
            continue;
        }
        const char *ne = jstr(op, "nextExecution");
        free(a->next_exec);
        a->next_exec = ne ? xstrdup(ne) : NULL;
        json_object_put(rt);
        const char *fref = jstr(a->exec, "fileReferenceID");
        int empty = !fref || !strcmp(fref, EMPTY_GUID) || strlen(fref) > 40;
        int rc = empty ? 0 : fetch_log(c, e, a->exec, fref, a);
        if (rc > 0) {
            a->log_state = LOG_OK;
            return;
        }
        if (rc == 0 && n == ATTEMPTS) {
            a->log_state = LOG_NONE;
            log_reset(a);
            return;
        }
    }
    log_reset(a);
}

/* Calls 8 and 9. */
static void gather_owner(const struct cfg *c, struct task_event *e, struct alert_info *a)
{
    if (!*e->f[6])
        return;
    char path[100];
    snprintf(path, sizeof path, "app/%s", e->f[6]);
    json_object *app = get_object(c, e, path, NULL), *owner;
    if (!app || !json_object_object_get_ex(app, "owner", &owner) ||
        !json_object_is_type(owner, json_type_object)) {
        json_object_put(app);
        return;
    }
    a->owner = json_object_get(owner);
    json_object_put(app);
    const char *id = jstr(a->owner, "id");
    if (!id || strlen(id) > 40 || strchr(id, '/') || strchr(id, '?'))
        return;
    snprintf(path, sizeof path, "user/%s", id);
    json_object *user = get_object(c, e, path, NULL), *attrs;
    if (!user)
        return;
    a->owner_email = xstrdup("");
    if (json_object_object_get_ex(user, "attributes", &attrs) &&
        json_object_is_type(attrs, json_type_array))
        for (size_t i = 0; i < json_object_array_length(attrs); i++) {
            json_object *at = json_object_array_get_idx(attrs, i);
            const char *t = jstr(at, "attributeType"), *v = jstr(at, "attributeValue");
            if (t && v && !strcasecmp(t, "email")) {
                if (!a->nowner_emails) {
                    free(a->owner_email);
                    a->owner_email = xstrdup(v);
                }
                a->owner_emails = xrealloc(a->owner_emails,
                                           (a->nowner_emails + 1) * sizeof *a->owner_emails);
                a->owner_emails[a->nowner_emails++] = xstrdup(v);
            }
        }
    json_object_put(user);
}

void alertctx_gather(const struct cfg *c, struct task_event *e, int want_log, int head,
                     int tail, struct alert_info *a)
{
    memset(a, 0, sizeof *a);
    a->maxhead = head;
    a->maxtail = tail;
    a->head = xcalloc((size_t)head + 1, sizeof *a->head);
    a->tail = xcalloc((size_t)tail + 1, sizeof *a->tail);
    if (want_log)
        gather_log(c, e, a);
    gather_owner(c, e, a);
}

void alertctx_free(struct alert_info *a)
{
    log_reset(a);
    free(a->head);
    free(a->tail);
    json_object_put(a->exec);
    json_object_put(a->owner);
    free(a->owner_email);
    for (size_t i = 0; i < a->nowner_emails; i++)
        free(a->owner_emails[i]);
    free(a->owner_emails);
    free(a->next_exec);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------ time formats */

static const char *const months[] = {"January", "February", "March",     "April",
                                     "May",     "June",     "July",      "August",
                                     "September", "October", "November", "December"};

static int parse_iso(const char *s, time_t *t)
{
    int y, mo, d, h, mi, se;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) != 6 || mo < 1 ||
        mo > 12)
        return -1;
    *t = (time_t)(tz_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
                  se);
    return 0;
}

/* The zone of butlerd.notifications.timeZone, loaded once per process (a reload
 * starts a new events process); NULL for the process's own zone. */
static const struct tz *zone(const struct cfg *c)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct tz *tz;
    static int tried;
    char err[200];
    pthread_mutex_lock(&mu);
    if (!tried && *c->notify.timeZone) {
        tried = 1;
        if (!(tz = tz_load(c->notify.timeZone, err, sizeof err)))
            log_warnx("butlerd.notifications.timeZone: %s; local times use the system zone", err);
    }
    pthread_mutex_unlock(&mu);
    return tz;
}

void alertctx_local_times(const struct cfg *c, const char *iso, char out[5][80])
{
    time_t t;
    struct tm tm;
    int off = 0;
    for (int i = 0; i < 5; i++)
        strcpy(out[i], "-");
    if (!iso || !strncmp(iso, "1753", 4) || parse_iso(iso, &t) < 0)
        return;
    const struct tz *tz = zone(c);
    if (tz) {
        if (tz_utc_to_local(tz, t, &tm, &off) < 0)
            return;
    } else {
        localtime_r(&t, &tm);
        off = (int)tm.tm_gmtoff;
    }
    int h12 = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
    const char *ap = tm.tm_hour < 12 ? "AM" : "PM";
    char zone[20];
    int a = off < 0 ? -off : off;
    if (!off)
        strcpy(zone, "UTC");
    else if (a % 3600)
        snprintf(zone, sizeof zone, "GMT%c%d:%02d", off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
    else
        snprintf(zone, sizeof zone, "GMT%c%d", off < 0 ? '-' : '+', a / 3600);
    int Y = tm.tm_year + 1900, M = tm.tm_mon + 1;
    snprintf(out[0], 80, "%04d-%02d-%02d %02d:%02d:%02d", Y, M, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    snprintf(out[1], 80, "%d/%d/%d, %d:%02d:%02d %s", M, tm.tm_mday, Y, h12, tm.tm_min, tm.tm_sec,
             ap);
    snprintf(out[2], 80, "%.3s %d, %d, %d:%02d:%02d %s", months[tm.tm_mon], tm.tm_mday, Y, h12,
             tm.tm_min, tm.tm_sec, ap);
    snprintf(out[3], 80, "%s %d, %d at %d:%02d:%02d %s %s", months[tm.tm_mon], tm.tm_mday, Y, h12,
             tm.tm_min, tm.tm_sec, ap, zone);
    strcpy(out[4], out[3]);
}

static json_object *time_obj(const struct cfg *c, const char *iso, const char *utcname,
                             const char *prefix)
{
    json_object *o = json_object_new_object();
    char loc[5][80], name[40];
    alertctx_local_times(c, iso, loc);
    int dash = iso && !strncmp(iso, "1753", 4);
    json_object_object_add(o, utcname, json_object_new_string(dash ? "-" : iso ? iso : ""));
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "%sLocal%d", prefix, i + 1);
        json_object_object_add(o, name, json_object_new_string(loc[i]));
    }
    return o;
}

/* ------------------------------------------------------------ the context */

static const char *const status_names[] = {
    "NeverStarted", "Triggered",     "Started",        "Queued",          "AbortInitiated",
    "Aborting",     "Aborted",       "FinishedSuccess", "FinishedFail",   "Skipped",
    "Retry",        "Error",         "Reset",          "DistributionQueued",
    "DistributionRunning"};

static void add(json_object *o, const char *k, json_object *v) { json_object_object_add(o, k, v); }
static void adds(json_object *o, const char *k, const char *v)
{
    add(o, k, json_object_new_string(v ? v : ""));
}

/* Copies member K of SRC under NAME when it is there (absent stays absent). */
static void copy(json_object *o, const char *name, json_object *src, const char *k)
{
    json_object *v;
    if (src && json_object_object_get_ex(src, k, &v) && v)
        add(o, name, json_object_get(v));
}

static void task_fields(json_object *o, const struct task_event *e, const struct alert_info *a)
{
    json_object *t = e->task, *op;
    add(o, "taskTags", taskevent_names(t, "tags"));
    add(o, "taskCustomProperties", taskevent_custom_props(t));
    copy(o, "taskIsManuallyTriggered", t, "isManuallyTriggered");
    copy(o, "taskIsPartialReload", t, "isPartialReload");
    copy(o, "taskMaxRetries", t, "maxRetries");
    copy(o, "taskSessionTimeout", t, "taskSessionTimeout");
    copy(o, "taskModifiedByUsername", t, "modifiedByUserName");
    copy(o, "taskModifiedDate", t, "modifiedDate");
    const char *next = t && json_object_object_get_ex(t, "operational", &op)
                           ? jstr(op, "nextExecution")
                           : NULL;
    if (!next) /* the reload task of call 4 has it when task/full does not */
        next = a->next_exec;
    if (next)
        adds(o, "taskNextExecution",
             !strcmp(next, "1753-01-01T00:00:00.000Z") ? "Never" : next);
}

static void app_fields(json_object *o, const struct cfg *c, const struct task_event *e)
{
    json_object *a = e->app, *st;
    const char *base = c->qsUrls.appBaseUrl;
    size_t bl = strlen(base);
    char *url = xasprintf("%s%s%s", base, bl && base[bl - 1] == '/' ? "" : "/", e->f[6]);
    adds(o, "appUrl", url);
    free(url);
    copy(o, "appDescription", a, "description");
    copy(o, "appFileSize", a, "fileSize");
    copy(o, "appLastSuccessfulReload", a, "lastReloadTime");
    copy(o, "appLastModifiedDate", a, "modifiedDate");
    copy(o, "appLastModifiedByUserName", a, "modifiedByUserName");
    copy(o, "appPublishTime", a, "publishTime");
    copy(o, "appPublished", a, "published");
    if (a && json_object_object_get_ex(a, "stream", &st))
        adds(o, "appStreamName", jstr(st, "name"));
    add(o, "appTags", taskevent_names(a, "tags"));
    add(o, "appCustomProperties", taskevent_custom_props(a));
}

/* Removes CR from S when CHAT (malloc'd). */
static char *chat_clean(const char *s, int chat)
{
    char *out = xstrdup(s), *d = out;
    for (const char *p = s; *p; p++)
        if (!chat || *p != '\r')
            *d++ = *p;
    *d = '\0';
    return out;
}

static void exec_details(json_object *o, const struct cfg *c, json_object *ex, int chat)
{
    json_object *arr, *out = json_object_new_array();
    struct buf cat = {0};
    size_t n = 0;
    json_object **v = NULL;
    if (json_object_object_get_ex(ex, "details", &arr) &&
        json_object_is_type(arr, json_type_array)) {
        n = json_object_array_length(arr);
        v = xcalloc(n + 1, sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = json_object_array_get_idx(arr, i);
        /* Insertion sort: stable, and details are few. */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0; j--) {
                const char *pa = jstr(v[j - 1], "detailCreatedDate"),
                           *pb = jstr(v[j], "detailCreatedDate");
                if (strcmp(pa ? pa : "", pb ? pb : "") <= 0)
                    break;
                json_object *t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
    }
    for (size_t i = 0; i < n; i++) {
        const char *when = jstr(v[i], "detailCreatedDate"), *msg = jstr(v[i], "message");
        json_object *d = time_obj(c, when, "timestampUTC", "timestamp");
        copy(d, "message", v[i], "message");
        copy(d, "detailsType", v[i], "detailsType");
        json_object_array_add(out, d);
        buf_append(&cat, when ? when : "", strlen(when ? when : ""));
        buf_append(&cat, "\t", 1);
        buf_append(&cat, msg ? msg : "", strlen(msg ? msg : ""));
        buf_append(&cat, "\n", 1);
    }
    free(v);
    add(o, "executionDetails", out);
    buf_append(&cat, "", 0);
    char *s = chat_clean(cat.p, chat);
    adds(o, "executionDetailsConcatenated", s);
    free(s);
    buf_free(&cat);
}

static void exec_fields(json_object *o, const struct cfg *c, json_object *ex, int chat)
{
    json_object *v;
    if (!ex)
        return;
    copy(o, "executingNodeName", ex, "executingNodeName");
    if (json_object_object_get_ex(ex, "status", &v) && json_object_is_type(v, json_type_int)) {
        int st = json_object_get_int(v);
        add(o, "executionStatusNum", json_object_new_int(st));
        if (st >= 0 && st < (int)(sizeof status_names / sizeof *status_names))
            adds(o, "executionStatusText", status_names[st]);
    }
    if (json_object_object_get_ex(ex, "duration", &v)) {
        int64_t d = json_object_get_int64(v);
        json_object *du = json_object_new_object();
        add(du, "hours", json_object_new_int64(d / 3600000));
        add(du, "minutes", json_object_new_int64(d % 3600000 / 60000));
        add(du, "seconds", json_object_new_int64(d % 60000 / 1000));
        add(o, "executionDuration", du);
    }
    const char *st = jstr(ex, "startTime"), *sp = jstr(ex, "stopTime");
    if (st)
        add(o, "executionStartTime", time_obj(c, st, "startTimeUTC", "startTime"));
    if (sp)
        add(o, "executionStopTime", time_obj(c, sp, "stopTimeUTC", "stopTime"));
    exec_details(o, c, ex, chat);
}

/* LINES joined with CRLF (CR dropped for chat), capped for chat as Butler does. */
static char *join_lines(char **lines, int n, int first, int ring, int chat, int tail)
{
    struct buf b = {0};
    for (int i = 0; i < n; i++) {
        const char *s = lines[ring ? (first + i) % ring : i];
        if (i)
            buf_append(&b, chat ? "\n" : "\r\n", chat ? 1 : 2);
        buf_append(&b, s, strlen(s));
    }
    buf_append(&b, "", 0);
    if (chat) { /* a CR inside a line goes too */
        char *d = b.p;
        for (const char *p = b.p; *p; p++)
            if (*p != '\r')
                *d++ = *p;
        *d = '\0';
        b.len = (size_t)(d - b.p);
    }
    if (!chat || utf8_count(b.p, b.len) < CHAT_CAP)
        return b.p;
    size_t cps = utf8_count(b.p, b.len), cut;
    char *out;
    if (!tail) {
        cut = utf8_prefix(b.p, b.len, CHAT_KEEP);
        out = xasprintf("%.*s\n" TRUNC_NOTE, (int)cut, b.p);
    } else {
        cut = utf8_prefix(b.p, b.len, cps - CHAT_KEEP);
        out = xasprintf(TRUNC_NOTE "\n%s", b.p + cut);
    }
    buf_free(&b);
    return out;
}

static void log_fields(json_object *o, const struct alert_info *a, const struct alertctx_opts *op)
{
    int ok = a->log_state == LOG_OK;
    add(o, "scriptLogAvailable", json_object_new_boolean(a->log_state != LOG_UNAVAILABLE));
    copy(o, "scriptLogSize", ok ? a->exec : NULL, "scriptLogSize");
    if (!ok)
        add(o, "scriptLogSize", json_object_new_int(0));
    add(o, "scriptLogSizeRows", json_object_new_int64(ok ? a->rows : 0));
    add(o, "scriptLogSizeCharacters", json_object_new_int64(ok ? a->chars : 0));
    add(o, "scriptLogHeadCount", json_object_new_int(op->head));
    add(o, "scriptLogTailCount", json_object_new_int(op->tail));
    int h = ok ? (op->head < a->nhead ? op->head : a->nhead) : 0;
    int t = ok ? (op->tail < a->ntail ? op->tail : a->ntail) : 0;
    char *hs = join_lines(a->head, h, 0, 0, op->chat, 0);
    int skip = a->ntail - t;
    char *ts = join_lines(a->tail, t, a->tail_start + skip, a->maxtail ? a->maxtail : 1,
                          op->chat, 1);
    adds(o, "scriptLogHead", hs);
    adds(o, "scriptLogTail", ts);
    free(hs);
    free(ts);
}

static void owner_fields(json_object *o, const struct alert_info *a)
{
    if (a->owner) {
        copy(o, "appOwnerName", a->owner, "name");
        copy(o, "appOwnerUserId", a->owner, "userId");
        copy(o, "appOwnerUserDirectory", a->owner, "userDirectory");
    }
    if (a->owner_email)
        adds(o, "appOwnerEmail", a->owner_email);
}

static json_object *generic_urls(const struct cfg *c)
{
    static const char *const names[4] = {"id", "linkText", "comment", "url"};
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < c->genericUrls.n; i++) {
        json_object *u = json_object_new_object();
        for (int m = 0; m < 4; m++)
            adds(u, names[m], c->genericUrls.v[i].m[m]);
        json_object_array_add(a, u);
    }
    return a;
}

json_object *alertctx_context(const struct cfg *c, const struct task_event *e,
                              const struct alert_info *a, const struct alertctx_opts *op)
{
    json_object *o = json_object_new_object();
    adds(o, "hostName", e->f[1]);
    char *user = xstrdup(e->f[4]);
    for (char *p = user; op->chat && *p; p++)
        if (*p == '\\')
            *p = '/';
    adds(o, "user", user);
    free(user);
    adds(o, "taskName", e->f[2]);
    adds(o, "taskId", e->f[5]);
    adds(o, "appName", e->f[3]);
    adds(o, "appId", e->f[6]);
    adds(o, "logTimeStamp", e->f[7]);
    adds(o, "logLevel", e->f[8]);
    adds(o, "logMessage", e->f[10]);
    adds(o, "executionId", e->f[9]);
    task_fields(o, e, a);
    app_fields(o, c, e);
    exec_fields(o, c, a->exec, op->chat);
    log_fields(o, a, op);
    adds(o, "qlikSenseQMC", c->qsUrls.qmc);
    adds(o, "qlikSenseHub", c->qsUrls.hub);
    add(o, "genericUrls", generic_urls(c));
    owner_fields(o, a);
    return o;
}
