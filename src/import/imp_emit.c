/* The YAML-to-libconfig conversion (butlerd.conf(5), "Converting Butler's YAML"):
 * mappings become groups, lists of scalars arrays, lists of mappings lists, empty
 * values are left out (or written as the empty value of the key's type). A known
 * key of the wrong type is an error; nothing is written then. */
#include "imp_emit.h"
#include "imp_keys.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum mode { M_KNOWN, M_ALERT, M_QUIET };

#define IND(d) ((d) * 2)

void imp_emit_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(out, "\\x%02x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void err(struct imp_emit *e, int line, const char *path, const char *what)
{
    imp_report_add(e->rep, IR_ERROR, "%s:%d: Butler.%s %s", e->file, line, path, what);
}

static void end_line(struct imp_emit *e, int line)
{
    char *t = imp_comment_trailing(&e->cm, line);
    if (t)
        fprintf(e->out, "  %s", t);
    fputc('\n', e->out);
    free(t);
}

static int windows_path(const char *s)
{
    return (((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')) && s[1] == ':' &&
            (s[2] == '\\' || s[2] == '/')) ||
           (s[0] == '\\' && s[1] == '\\');
}

static void note_value(struct imp_emit *e, const char *path, const char *name, int line,
                       const char *text)
{
    if (imp_key_secret(name)) {
        imp_report_secret(e->rep, text);
        if (*text)
            imp_report_add(e->rep, IR_SECRET, "Butler.%s (line %d)", path, line);
        return;
    }
    if (windows_path(text))
        imp_report_add(e->rep, IR_NOTE,
                       "Butler.%s (line %d) is a Windows path: change it to a path on this host",
                       path, line);
}

/* ------------------------------------------------------------ generic */

static void generic(struct imp_emit *e, const struct imp_node *v, const char *name,
                    const char *path, int depth, enum mode m, int line);

static void scalar_literal(struct imp_emit *e, const struct imp_node *v)
{
    long long n;
    switch (imp_stype(v)) {
    case IMP_S_BOOL: {
        int b = 0;
        imp_scalar_bool(v, &b);
        fputs(b ? "true" : "false", e->out);
        return;
    }
    case IMP_S_INT:
        if (imp_scalar_int(v, &n) == 0) {
            fprintf(e->out, n >= INT_MIN && n <= INT_MAX ? "%lld" : "%lldL", n);
            return;
        }
        break;
    case IMP_S_FLOAT:
        fputs(v->text, e->out);
        if (!strpbrk(v->text, ".eE"))
            fputs(".0", e->out);
        return;
    default:
        break;
    }
    imp_emit_string(e->out, v->text);
}

/* A list of scalars of one type can be a libconfig array; anything else is a list. */
static int array_ok(const struct imp_node *s)
{
    enum imp_stype t = IMP_S_NULL;
    for (size_t i = 0; i < s->n; i++) {
        const struct imp_node *v = s->vals[i];
        if (v->kind != IMP_SCALAR || imp_stype(v) == IMP_S_NULL)
            return 0;
        if (i && imp_stype(v) != t)
            return 0;
        t = imp_stype(v);
    }
    return 1;
}

static void generic_seq(struct imp_emit *e, const struct imp_node *v, const char *path,
                        int depth, enum mode m)
{
    if (array_ok(v)) {
        fputs("[ ", e->out);
        for (size_t i = 0; i < v->n; i++) {
            fputs(i ? ", " : "", e->out);
            scalar_literal(e, v->vals[i]);
        }
        fputs(v->n ? " ]" : "]", e->out);
        return;
    }
    fputs("(\n", e->out);
    for (size_t i = 0; i < v->n; i++) {
        fprintf(e->out, "%*s", IND(depth + 1), "");
        if (v->vals[i]->kind == IMP_SCALAR && imp_stype(v->vals[i]) == IMP_S_NULL)
            fputs("\"\"", e->out);
        else /* the list itself is the key reported, not its members */
            generic(e, v->vals[i], NULL, path, depth + 1, m == M_ALERT ? M_QUIET : m,
                    v->vals[i]->line);
        fputs(i + 1 < v->n ? ",\n" : "\n", e->out);
    }
    fprintf(e->out, "%*s)", IND(depth), "");
}

static void members(struct imp_emit *e, const struct imp_node *map, const char *path,
                    int depth, enum mode m);

/* The alert keys (butlerd.conf(5), reload alerts) are strings but for these
 * integers and booleans: a password or user name that looks like a number must
 * stay a string. */
static int alert_text(const char *name, const struct imp_node *v)
{
    static const char *const typed_names[] = {
        "port", "rateLimit", "headScriptLogLines", "tailScriptLogLines", "enable", "secure",
        "ignoreTLS", "requireTLS", "rejectUnauthorized", "includeAll"};
    enum imp_stype t = imp_stype(v);
    if (t == IMP_S_STR || t == IMP_S_NULL)
        return 0;
    for (size_t i = 0; i < sizeof typed_names / sizeof typed_names[0]; i++)
        if (!strcmp(name, typed_names[i]))
            return 0;
    return 1;
}

static void generic(struct imp_emit *e, const struct imp_node *v, const char *name,
                    const char *path, int depth, enum mode m, int line)
{
    if (name)
        fprintf(e->out, "%*s%s = ", IND(depth), "", name);
    if (v->kind == IMP_MAP) {
        fputs("{", e->out);
        if (name)
            end_line(e, line);
        else
            fputc('\n', e->out);
        members(e, v, path, depth + 1, m);
        fprintf(e->out, "%*s}", IND(depth), "");
    } else if (v->kind == IMP_SEQ) {
        generic_seq(e, v, path, depth, m);
        if (m == M_ALERT && name)
            imp_report_add(e->rep, IR_ALERT, "Butler.%s", path);
    } else {
        if (m == M_ALERT && name && alert_text(name, v))
            imp_emit_string(e->out, v->text);
        else
            scalar_literal(e, v);
        if (name)
            note_value(e, path, name, line, v->text);
        if (m == M_ALERT && name)
            imp_report_add(e->rep, IR_ALERT, "Butler.%s", path);
    }
    if (name) {
        fputc(';', e->out);
        if (v->kind != IMP_MAP)
            end_line(e, line);
        else
            fputc('\n', e->out);
    }
}

/* ------------------------------------------------------------ typed */

static char *schedule_file(struct imp_emit *e, const char *text, int line)
{
    size_t n = strlen(text);
    const char *ext = n > 5 && !strcmp(text + n - 5, ".yaml") ? ".yaml"
                      : n > 4 && !strcmp(text + n - 4, ".yml") ? ".yml"
                                                                : NULL;
    if (!ext)
        return xstrdup(text);
    char *json = xasprintf("%.*s.json", (int)(n - strlen(ext)), text);
    imp_report_add(e->rep, IR_NOTE,
                   "Butler.scheduler.configfile (line %d) named a YAML file; it now names %s: "
                   "convert the schedules with butlerd-import --schedules %s -s %s",
                   line, json, text, json);
    return json;
}

static void typed_scalar(struct imp_emit *e, const struct imp_key *k, const struct imp_node *v,
                         const char *path, const char *name, int line, int depth)
{
    long long n;
    int b;
    enum imp_stype t = imp_stype(v);
    if (v->kind != IMP_SCALAR) {
        err(e, line, path, k->type == IK_STR ? "must be a single value (a string)"
                           : k->type == IK_INT ? "must be an integer"
                                               : "must be true or false");
        return;
    }
    if (t == IMP_S_NULL && k->type != IK_STR) {
        imp_report_add(e->rep, IR_NOTE, "Butler.%s (line %d) is empty: butlerd's default applies",
                       path, line);
        fprintf(e->out, "%*s# %s: empty in the Butler file, butlerd's default applies\n",
                IND(depth), "", name);
        return;
    }
    fprintf(e->out, "%*s%s = ", IND(depth), "", name);
    if (k->type == IK_BOOL) {
        if (imp_scalar_bool(v, &b) < 0)
            { err(e, line, path, "must be true or false"); return; }
        fputs(b ? "true" : "false", e->out);
    } else if (k->type == IK_INT) {
        if (v->quoted || imp_scalar_int(v, &n) < 0 || n < INT_MIN || n > INT_MAX)
            { err(e, line, path, "must be an integer"); return; }
        fprintf(e->out, "%lld", n);
    } else {
        const char *text = t == IMP_S_NULL ? "" : v->text;
        char *s = !strcmp(path, "scheduler.configfile") ? schedule_file(e, text, line)
                                                        : xstrdup(text);
        imp_emit_string(e->out, s);
        note_value(e, path, name, line, s);
        free(s);
    }
    fputc(';', e->out);
    end_line(e, line);
    imp_report_add(e->rep, IR_MAPPED, "Butler.%s", path);
}

static void typed_strlist(struct imp_emit *e, const struct imp_node *v, const char *path,
                          const char *name, int line, int depth)
{
    if (v->kind == IMP_MAP || (v->kind == IMP_SCALAR && imp_stype(v) != IMP_S_NULL))
        { err(e, line, path, "must be a list of strings"); return; }
    for (size_t i = 0; v->kind == IMP_SEQ && i < v->n; i++)
        if (v->vals[i]->kind != IMP_SCALAR)
            { err(e, v->vals[i]->line, path, "must be a list of strings"); return; }
    fprintf(e->out, "%*s%s = [", IND(depth), "", name);
    int first = 1;
    for (size_t i = 0; v->kind == IMP_SEQ && i < v->n; i++) {
        if (imp_stype(v->vals[i]) == IMP_S_NULL)
            continue;
        fputs(first ? " " : ", ", e->out);
        first = 0;
        imp_emit_string(e->out, v->vals[i]->text);
        note_value(e, path, name, v->vals[i]->line, v->vals[i]->text);
    }
    fputs(first ? " ];" : " ];", e->out);
    end_line(e, line);
    imp_report_add(e->rep, IR_MAPPED, "Butler.%s", path);
}

/* One { member = ...; } of a list of groups; 0, or -1 (reported). */
static int tuple(struct imp_emit *e, const struct imp_key *k, const struct imp_node *g,
                 const char *path, int depth)
{
    if (g->kind != IMP_MAP) {
        err(e, g->line, path, "must be a list of mappings");
        return -1;
    }
    char names[128], *save;
    snprintf(names, sizeof names, "%s", k->why);
    fprintf(e->out, "%*s{", IND(depth), "");
    for (char *mn = strtok_r(names, ",", &save); mn; mn = strtok_r(NULL, ",", &save)) {
        const struct imp_node *v = imp_map_get(g, mn);
        char what[160];
        snprintf(what, sizeof what, "item at line %d lacks %s", g->line, mn);
        if (!v || v->kind != IMP_SCALAR) {
            err(e, v ? v->line : g->line, path, v ? "members must be single values" : what);
            return -1;
        }
        fprintf(e->out, " %s = ", mn);
        if (imp_stype(v) == IMP_S_INT)
            scalar_literal(e, v);
        else
            imp_emit_string(e->out, imp_stype(v) == IMP_S_NULL ? "" : v->text);
        fputc(';', e->out);
        char sub[800];
        snprintf(sub, sizeof sub, "%.600s[].%s", path, mn);
        note_value(e, sub, mn, v->line, v->text);
    }
    fputs(" }", e->out);
    char list[130];
    snprintf(list, sizeof list, ",%s,", k->why);
    for (size_t i = 0; i < g->n; i++) {
        char one[300];
        snprintf(one, sizeof one, ",%.200s,", g->keys[i]);
        if (!strstr(list, one))
            imp_report_add(e->rep, IR_UNMAPPED,
                           "Butler.%s[].%s (line %d): not read by butlerd, left out", path,
                           g->keys[i], abs(g->keylines[i]));
    }
    return 0;
}

static void typed_tuples(struct imp_emit *e, const struct imp_key *k, const struct imp_node *v,
                         const char *path, const char *name, int line, int depth)
{
    if (v->kind == IMP_MAP || (v->kind == IMP_SCALAR && imp_stype(v) != IMP_S_NULL))
        { err(e, line, path, "must be a list of mappings"); return; }
    fprintf(e->out, "%*s%s = (", IND(depth), "", name);
    if (v->kind != IMP_SEQ || !v->n) {
        fputs(" );", e->out);
        end_line(e, line);
        imp_report_add(e->rep, IR_MAPPED, "Butler.%s", path);
        return;
    }
    end_line(e, line);
    for (size_t i = 0; i < v->n; i++) {
        if (tuple(e, k, v->vals[i], path, depth + 1) < 0)
            return;
        fputs(i + 1 < v->n ? ",\n" : "\n", e->out);
    }
    fprintf(e->out, "%*s);\n", IND(depth), "");
    imp_report_add(e->rep, IR_MAPPED, "Butler.%s", path);
}

static void typed(struct imp_emit *e, const struct imp_key *k, const struct imp_node *v,
                  const char *path, const char *name, int line, int depth)
{
    switch (k->type) {
    case IK_GROUP:
        if (v->kind == IMP_SCALAR && imp_stype(v) == IMP_S_NULL) {
            fprintf(e->out, "%*s# %s: empty in the Butler file\n", IND(depth), "", name);
            return;
        }
        if (v->kind != IMP_MAP)
            { err(e, line, path, "must be a mapping (a group of keys)"); return; }
        fprintf(e->out, "%*s%s = {", IND(depth), "", name);
        end_line(e, line);
        members(e, v, path, depth + 1, M_KNOWN);
        fprintf(e->out, "%*s};\n", IND(depth), "");
        return;
    case IK_STRLIST:
        return typed_strlist(e, v, path, name, line, depth);
    case IK_TUPLES:
        return typed_tuples(e, k, v, path, name, line, depth);
    case IK_ANY:
        if (k->status == IS_IGNORED)
            imp_report_add(e->rep, IR_IGNORED, "Butler.%s: %s", path, k->why);
        if (v->kind == IMP_SCALAR && imp_stype(v) == IMP_S_NULL)
            return;
        return generic(e, v, name, path, depth, k->status == IS_ALERT ? M_ALERT : M_QUIET,
                       line);
    default:
        return typed_scalar(e, k, v, path, name, line, depth);
    }
}

static void member(struct imp_emit *e, const char *name, const struct imp_node *v,
                   const char *path, int line, int depth, enum mode m)
{
    if (!imp_key_name_ok(name)) {
        imp_report_add(e->rep, IR_UNMAPPED,
                       "line %d: key name not allowed in libconfig (under Butler.%s); left out",
                       line, *path ? path : "");
        return;
    }
    char sub[600];
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", name);
    const struct imp_key *k = imp_key_find(sub);
    if (m == M_ALERT && k && k->status == IS_IGNORED) /* out of scope inside an alert group */
        m = M_KNOWN;
    if (m != M_KNOWN) {
        if (v->kind == IMP_SCALAR && imp_stype(v) == IMP_S_NULL)
            return;
        return generic(e, v, name, sub, depth, m, line);
    }
    if (k)
        return typed(e, k, v, sub, name, line, depth);
    imp_report_add(e->rep, IR_UNMAPPED,
                   "Butler.%s (line %d): not a key of Butler 8-16; carried over, butlerd "
                   "ignores it", sub, line);
    if (!(v->kind == IMP_SCALAR && imp_stype(v) == IMP_S_NULL))
        generic(e, v, name, sub, depth, M_QUIET, line);
}

static void members(struct imp_emit *e, const struct imp_node *map, const char *path,
                    int depth, enum mode m)
{
    for (size_t i = 0; i < map->n; i++) {
        int line = abs(map->keylines[i]);
        imp_comment_flush(&e->cm, line, e->out, IND(depth));
        member(e, map->keys[i], map->vals[i], path, line, depth, m);
    }
}

void imp_emit_butler(struct imp_emit *e, const struct imp_node *butler, int line)
{
    fputs("Butler = {", e->out);
    end_line(e, line);
    if (butler)
        members(e, butler, "", 1, M_KNOWN);
    imp_comment_flush(&e->cm, INT_MAX, e->out, 2);
    fputs("};\n", e->out);
}
