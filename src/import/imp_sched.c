/* The schedule file is written exactly as butlerd writes it (members in the order
 * of the schedule object, 2-space indentation), so the first change made through
 * the API leaves the file's layout alone. Each schedule is checked with the
 * daemon's own cron and time-zone code. */
#include "imp_sched.h"
#include "cron.h"
#include "guid.h"
#include "imp_cron.h"
#include "sched_list.h"
#include "tzfile.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *text(const struct imp_node *s, const char *m)
{
    const struct imp_node *v = imp_map_get(s, m);
    return v && v->kind == IMP_SCALAR && imp_stype(v) != IMP_S_NULL ? v->text : "";
}

/* Checks the converted schedule as butlerd will when it loads the file. */
static void check(const struct imp_node *s, const char *label, const char *cronexpr,
                  struct imp_report *rep)
{
    char err[256] = "";
    struct cron c;
    const char *zone = text(s, "timezone");
    struct tz *tz = *zone ? tz_load(zone, err, sizeof err) : NULL;
    time_t next;
    if (*zone && !tz)
        imp_report_add(rep, IR_DIFF, "%s: invalid time zone (%s): butlerd keeps it stopped",
                       label, err);
    else if (cron_parse(cronexpr, &c, err, sizeof err) < 0)
        imp_report_add(rep, IR_DIFF, "%s: invalid cron expression \"%s\" (%s): butlerd keeps "
                       "it stopped", label, cronexpr, err);
    else if (cron_next(&c, tz, time(NULL), &next) < 0)
        imp_report_add(rep, IR_DIFF, "%s: cron expression \"%s\" never fires: butlerd keeps it "
                       "stopped", label, cronexpr);
    else if (*zone && strcmp(zone, "UTC"))
        imp_report_add(rep, IR_DIFF, "%s: runs in time zone %s now (Butler used the host's "
                       "local time)", label, zone);
    if (!guid_task_id(text(s, "qlikSenseTaskId"), NULL))
        imp_report_add(rep, IR_DIFF, "%s: qlikSenseTaskId is not a task ID: butlerd keeps it "
                       "stopped", label);
    tz_free(tz);
}

/* The cron expression butlerd gets (months renumbered), reported when it changes. */
static void convert_cron(const struct imp_node *s, const char *label, char *out, size_t outsz,
                         struct imp_report *rep)
{
    char err[200];
    const char *expr = text(s, "cronSchedule");
    if (imp_cron_shift(expr, out, outsz, err, sizeof err) < 0) {
        snprintf(out, outsz, "%s", expr);
        imp_report_add(rep, IR_DIFF, "%s: months not renumbered (%s)", label, err);
    } else if (strcmp(out, expr)) {
        imp_report_add(rep, IR_DIFF, "%s: cron \"%s\" becomes \"%s\" (months 1-12)", label, expr,
                       out);
    }
}

/* Member M of schedule S as butlerd stores it (CRONV replaces cronSchedule), or
 * NULL after an error. */
static json_object *member(const struct imp_node *s, const char *m, const char *cronv,
                           const char *file, struct imp_report *rep)
{
    const struct imp_node *v = imp_map_get(s, m);
    if (strcmp(m, "tags")) {
        if (v->kind != IMP_SCALAR) {
            imp_report_add(rep, IR_ERROR, "%s:%d: %s must be a single value", file, v->line, m);
            return NULL;
        }
        return json_object_new_string(cronv ? cronv : imp_stype(v) == IMP_S_NULL ? "" : v->text);
    }
    if (v->kind == IMP_MAP || (v->kind == IMP_SCALAR && imp_stype(v) != IMP_S_NULL)) {
        imp_report_add(rep, IR_ERROR, "%s:%d: tags must be a list", file, v->line);
        return NULL;
    }
    json_object *a = json_object_new_array();
    for (size_t i = 0; v->kind == IMP_SEQ && i < v->n; i++) {
        if (v->vals[i]->kind != IMP_SCALAR) {
            imp_report_add(rep, IR_ERROR, "%s:%d: tags must be strings", file, v->vals[i]->line);
            json_object_put(a);
            return NULL;
        }
        json_object_array_add(a, json_object_new_string(v->vals[i]->text));
    }
    return a;
}

/* Schedule S as a schedule object, or NULL after an error. */
static json_object *schedule(const struct imp_node *s, const char *file, struct imp_report *rep)
{
    if (s->kind != IMP_MAP) {
        imp_report_add(rep, IR_ERROR, "%s:%d: a schedule must be a mapping", file, s->line);
        return NULL;
    }
    char label[300], cronv[512];
    snprintf(label, sizeof label, "schedule \"%s\" (line %d)", text(s, "name"), s->line);
    convert_cron(s, label, cronv, sizeof cronv, rep);
    check(s, label, cronv, rep);
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < SCHED_NMEMBERS; i++) {
        const char *m = sched_members[i];
        if (!imp_map_get(s, m))
            continue;
        json_object *v = member(s, m, strcmp(m, "cronSchedule") ? NULL : cronv, file, rep);
        if (!v) {
            json_object_put(o);
            return NULL;
        }
        json_object_object_add(o, m, v);
    }
    for (size_t i = 0; i < s->n; i++) {
        size_t k = 0;
        while (k < SCHED_NMEMBERS && strcmp(sched_members[k], s->keys[i]))
            k++;
        if (k == SCHED_NMEMBERS)
            imp_report_add(rep, IR_UNMAPPED, "%s: member %s is not part of a schedule, left out",
                           label, s->keys[i]);
    }
    return o;
}

int imp_sched_convert(const char *file, const struct imp_node *root, struct buf *out,
                      struct imp_report *rep)
{
    const struct imp_node *list = imp_map_get(root, "butlerSchedule");
    if (!list || (list->kind != IMP_SEQ && imp_stype(list) != IMP_S_NULL)) {
        imp_report_add(rep, IR_ERROR, "%s:%d: no butlerSchedule: list at the top level", file,
                       list ? list->line : 1);
        return -1;
    }
    size_t n = list->kind == IMP_SEQ ? list->n : 0;
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *o = schedule(list->vals[i], file, rep);
        if (!o) {
            json_object_put(arr);
            return -1;
        }
        json_object_array_add(arr, o);
        imp_report_add(rep, IR_MAPPED, "schedule \"%s\" (line %d)", text(list->vals[i], "name"),
                       list->vals[i]->line);
    }
    sched_file_text(arr, out); /* the layout butlerd writes */
    json_object_put(arr);
    return 0;
}
