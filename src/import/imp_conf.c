/* The two conversions end to end (butlerd-import(8)). The report goes to stderr;
 * on any error nothing is written and the temporary file is removed. */
#include "imp_conf.h"
#include "imp_butlerd.h"
#include "imp_check.h"
#include "imp_diff.h"
#include "imp_emit.h"
#include "imp_out.h"
#include "imp_sched.h"

#include <stdio.h>
#include <string.h>

static int finish(struct imp_report *rep, const char *what)
{
    imp_report_print(rep, stderr);
    int bad = rep->s[IR_ERROR].n > 0;
    if (bad)
        fprintf(stderr, "butlerd-import: %s not converted, nothing written\n", what);
    imp_report_free(rep);
    return bad;
}

static int load(const char *file, struct imp_doc *doc)
{
    if (imp_yaml_load(file, doc) == 0)
        return 0;
    fprintf(stderr, "butlerd-import: %s\nbutlerd-import: nothing written\n", doc->err);
    return -1;
}

/* The Butler: map of the file, or NULL (reported). */
static const struct imp_node *butler_of(const char *file, const struct imp_doc *doc,
                                        struct imp_report *rep, int *line)
{
    const struct imp_node *root = doc->root;
    *line = 1;
    for (size_t i = 0; root && root->kind == IMP_MAP && i < root->n; i++) {
        if (!strcmp(root->keys[i], "Butler")) {
            *line = root->keylines[i];
            const struct imp_node *b = root->vals[i];
            if (b->kind == IMP_MAP)
                return b;
            imp_report_add(rep, IR_ERROR, "%s:%d: Butler: must be a mapping of keys", file,
                           *line);
            return NULL;
        }
    }
    imp_report_add(rep, IR_ERROR, "%s:%d: no top-level Butler: key (is this a Butler "
                   "configuration file?)", file, root ? root->line : 1);
    return NULL;
}

static void other_top_keys(const char *file, const struct imp_node *root, struct imp_report *rep)
{
    for (size_t i = 0; i < root->n; i++)
        if (strcmp(root->keys[i], "Butler"))
            imp_report_add(rep, IR_UNMAPPED, "%s:%d: top-level key %s: only Butler is read, "
                           "left out", file, root->keylines[i], root->keys[i]);
}

static void header(FILE *f, const char *in)
{
    fprintf(f, "# butlerd configuration converted from the Butler file %s by butlerd-import.\n"
               "# Keys under \"Butler\" keep Butler's names; \"butlerd\" holds butlerd's own "
               "settings.\n# See butlerd.conf(5). Check it with: butlerd -t -c <this file>\n\n",
            in);
}

int imp_conf_run(const struct imp_opts *o)
{
    struct imp_doc doc;
    struct imp_report rep = {0};
    if (load(o->in, &doc) < 0)
        return 1;
    int line;
    const struct imp_node *butler = butler_of(o->in, &doc, &rep, &line);
    struct imp_out out;
    if (!butler || imp_out_open(&out, o->check ? NULL : o->out, 0600) < 0) {
        imp_yaml_free(&doc);
        finish(&rep, o->in);
        return 1;
    }
    struct imp_emit e = {.out = out.f, .file = o->in, .rep = &rep};
    imp_comment_scan(&doc.lines, &e.cm);
    header(out.f, o->in);
    imp_comment_flush(&e.cm, line, out.f, 0);
    imp_emit_butler(&e, butler, line);
    imp_butlerd_write(out.f, butler, &rep);
    other_top_keys(o->in, doc.root, &rep);
    imp_diff_report(butler, &rep);
    imp_comment_free(&e.cm);
    imp_yaml_free(&doc);
    fflush(out.f);
    if (!rep.s[IR_ERROR].n && imp_check_conf(out.tmp, o->out ? o->out : "(output)", &rep) < 0)
        imp_report_add(&rep, IR_DIFF, "butlerd -t fails on this host for now: fix what the "
                       "Notes list (butlerd -t ...) before starting butlerd");
    int bad = rep.s[IR_ERROR].n > 0;
    if (bad || o->check)
        imp_out_discard(&out);
    else if (imp_out_commit(&out, o->force) < 0)
        bad = 1;
    bad |= finish(&rep, o->in);
    if (!bad && !o->check)
        fprintf(stderr, "butlerd-import: %s converted to %s\n", o->in,
                o->out ? o->out : "standard output");
    return bad;
}

int imp_sched_run(const struct imp_opts *o)
{
    struct imp_doc doc;
    struct imp_report rep = {.mapped_title = "Schedules converted"};
    struct buf json = {0};
    if (load(o->sched_in, &doc) < 0)
        return 1;
    int bad = imp_sched_convert(o->sched_in, doc.root, &json, &rep) < 0;
    imp_yaml_free(&doc);
    struct imp_out out;
    if (!bad && !o->check) {
        if (imp_out_open(&out, o->sched_out, 0644) < 0) {
            bad = 1;
        } else {
            fputs(json.p, out.f);
            bad = imp_out_commit(&out, o->force) < 0;
        }
    }
    buf_free(&json);
    bad |= finish(&rep, o->sched_in);
    if (!bad && !o->check)
        fprintf(stderr, "butlerd-import: %s converted to %s\n", o->sched_in,
                o->sched_out ? o->sched_out : "standard output");
    return bad;
}
