/* cfg_load() lists every Butler key it does not read as "PATH is not used by
 * butlerd, ignored". A key the importer mapped that is in that list is reported as
 * not mapped; an alert key that is not in it is read, so it moves to Mapped. */
#include "imp_check.h"
#include "cfg.h"

#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The key paths of the "not used" messages, sorted for bsearch. */
static void ignored_paths(const struct strlist *infos, struct strlist *out)
{
    for (size_t i = 0; i < infos->n; i++) {
        const char *m = strstr(infos->v[i], ": Butler.");
        const char *end = m ? strstr(m, " is not used by butlerd") : NULL;
        if (end)
            strlist_add(out, xasprintf("%.*s", (int)(end - m - 2), m + 2));
    }
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, cmp);
}

/* Is PATH, or a group above it, one of the ignored paths? */
static int ignored(const struct strlist *paths, const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (size_t n = strlen(buf); n > 0; n--) {
        if (buf[n] != '\0' && buf[n] != '.' && buf[n] != '[')
            continue;
        buf[n] = '\0';
        const char *key = buf;
        if (paths->n && bsearch(&key, paths->v, paths->n, sizeof *paths->v, cmp))
            return 1;
    }
    return 0;
}

/* Alert keys butlerd reads move to Mapped; mapped keys it ignores move out. */
static void reclassify_paths(struct imp_report *rep, const struct strlist *paths)
{
    struct strlist keep = {0}, alerts = rep->s[IR_ALERT];
    memset(&rep->s[IR_ALERT], 0, sizeof rep->s[IR_ALERT]);
    for (size_t i = 0; i < alerts.n; i++) {
        if (ignored(paths, alerts.v[i]))
            strlist_add(&rep->s[IR_ALERT], alerts.v[i]);
        else
            strlist_add(&rep->s[IR_MAPPED], alerts.v[i]);
    }
    free(alerts.v);
    struct strlist mapped = rep->s[IR_MAPPED];
    for (size_t i = 0; i < mapped.n; i++) {
        if (ignored(paths, mapped.v[i])) {
            imp_report_add(rep, IR_UNMAPPED, "%s: this butlerd does not read it yet (ignored)",
                           mapped.v[i]);
            free(mapped.v[i]);
        } else {
            strlist_add(&keep, mapped.v[i]);
        }
    }
    free(mapped.v);
    rep->s[IR_MAPPED] = keep;
}

static void reclassify(struct imp_report *rep, const struct strlist *infos)
{
    struct strlist paths = {0};
    ignored_paths(infos, &paths);
    reclassify_paths(rep, &paths);
    strlist_free(&paths);
}

/* MSG with the temporary FILE's name replaced by the name the user will see. */
static void add(struct imp_report *rep, const char *kind, const char *msg, const char *file,
                const char *shown)
{
    size_t n = strlen(file);
    if (!strncmp(msg, file, n))
        imp_report_add(rep, IR_NOTE, "butlerd -t on this host: %s: %s%s", kind, shown, msg + n);
    else
        imp_report_add(rep, IR_NOTE, "butlerd -t on this host: %s: %s", kind, msg);
}

int imp_check_conf(const char *file, const char *shown, struct imp_report *rep)
{
    struct cfg_msgs msgs = {0};
    struct cfg *c = cfg_load(file, &msgs);
    reclassify(rep, &msgs.infos);
    for (size_t i = 0; i < msgs.errors.n; i++)
        add(rep, "error", msgs.errors.v[i], file, shown);
    for (size_t i = 0; i < msgs.warnings.n; i++)
        add(rep, "warning", msgs.warnings.v[i], file, shown);
    int rc = c && !msgs.errors.n ? 0 : -1;
    cfg_free(c);
    cfg_msgs_free(&msgs);
    return rc;
}
