/* Reads a YAML file into an imp_node tree with libyaml's event parser, and records
 * for every source line where its YAML tokens end, so imp_comment.c can find the
 * comments libyaml drops. Bounds (imp_yaml.h) make huge, deep or alias-bomb files
 * fail with a message instead of eating the machine. */
#include "imp_yaml.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct anchor {
    char *name;
    struct imp_node *node;
};

struct loader {
    yaml_parser_t p;
    const char *file;
    struct imp_doc *doc;
    struct anchor *anchors;
    size_t nanchors;
    size_t nodes;
    int failed;
    const char *text; /* the whole file */
};

static void fail(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct loader *ld, int line, const char *fmt, ...)
{
    if (ld->failed)
        return;
    ld->failed = 1;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(ld->doc->err, sizeof ld->doc->err, "%s:%d: %s", ld->file, line, text);
}

static void node_free(struct imp_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            free(n->keys[i]);
        node_free(n->vals[i]);
    }
    free(n->keys);
    free(n->keylines);
    free(n->vals);
    free(n->text);
    free(n);
}

static struct imp_node *node_new(struct loader *ld, enum imp_kind k, int line)
{
    if (++ld->nodes > IMP_YAML_MAX_NODES) {
        fail(ld, line, "too many nodes (aliases expand to more than %d)", IMP_YAML_MAX_NODES);
        return NULL;
    }
    struct imp_node *n = xcalloc(1, sizeof *n);
    n->kind = k;
    n->line = n->endline = line;
    return n;
}

/* A deep copy for an alias: counted against the node budget, so nested aliases
 * that double at every level stop at IMP_YAML_MAX_NODES. */
static struct imp_node *clone(struct loader *ld, const struct imp_node *s, int line)
{
    struct imp_node *n = node_new(ld, s->kind, line);
    if (!n)
        return NULL;
    n->text = s->text ? xstrdup(s->text) : NULL;
    n->quoted = s->quoted;
    n->endline = line;
    if (s->n) {
        n->vals = xcalloc(s->n, sizeof *n->vals);
        if (s->keys) {
            n->keys = xcalloc(s->n, sizeof *n->keys);
            n->keylines = xcalloc(s->n, sizeof *n->keylines);
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->keys) {
            n->keys[i] = xstrdup(s->keys[i]);
            n->keylines[i] = line;
        }
        n->vals[i] = clone(ld, s->vals[i], line);
        n->n = i + 1;
        if (!n->vals[i]) {
            node_free(n);
            return NULL;
        }
    }
    return n;
}

static void add_child(struct imp_node *m, const char *key, int keyline, struct imp_node *v)
{
    m->vals = xrealloc(m->vals, (m->n + 1) * sizeof *m->vals);
    if (key) {
        m->keys = xrealloc(m->keys, (m->n + 1) * sizeof *m->keys);
        m->keylines = xrealloc(m->keylines, (m->n + 1) * sizeof *m->keylines);
        m->keys[m->n] = xstrdup(key);
        m->keylines[m->n] = keyline;
    }
    m->vals[m->n++] = v;
}

/* ------------------------------------------------------------ line marks */

static void mark_event(struct loader *ld, const yaml_event_t *ev)
{
    struct imp_lines *L = &ld->doc->lines;
    size_t a = ev->start_mark.line, b = ev->end_mark.line;
    if (a >= L->n)
        return;
    if (b >= L->n)
        b = L->n - 1;
    if (b > a && ev->type == YAML_SCALAR_EVENT) {
        /* the scalar's own lines hold no comments */
        L->content_end[a] = (int)strlen(L->text[a]);
        for (size_t i = a + 1; i < b; i++)
            L->inside[i] = 1;
        if (ev->end_mark.column == 0 && b > a + 1) {
            L->inside[b - 1] = 1;
            return;
        }
    }
    int col = (int)ev->end_mark.column;
    if (col > L->content_end[b])
        L->content_end[b] = col;
}

/* ------------------------------------------------------------ parsing */

static struct imp_node *parse_node(struct loader *ld, yaml_event_t *ev, int depth);

static struct imp_node *find_anchor(struct loader *ld, const char *name)
{
    for (size_t i = ld->nanchors; i-- > 0;)
        if (!strcmp(ld->anchors[i].name, name))
            return ld->anchors[i].node;
    return NULL;
}

static void set_anchor(struct loader *ld, const unsigned char *name, struct imp_node *n)
{
    if (!name || !n)
        return;
    ld->anchors = xrealloc(ld->anchors, (ld->nanchors + 1) * sizeof *ld->anchors);
    ld->anchors[ld->nanchors].name = xstrdup((const char *)name);
    ld->anchors[ld->nanchors++].node = n;
}

static int next_event(struct loader *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->p, ev)) {
        const yaml_mark_t *m = &ld->p.problem_mark;
        char text[300];
        const char *what = ld->p.problem ? ld->p.problem : "syntax error";
        snprintf(text, sizeof text, "%s%s%s", what,
                 ld->p.context ? " " : "", ld->p.context ? ld->p.context : "");
        size_t li = m->line;
        if (ld->p.error == YAML_READER_ERROR) /* bad encoding: only the byte offset is known */
            for (size_t i = li = 0; i < ld->p.problem_offset && ld->text[i]; i++)
                li += ld->text[i] == '\n';
        const struct imp_lines *L = &ld->doc->lines;
        if (li < L->n && strchr(L->text[li], '\t'))
            strncat(text, " (a tab: YAML indents with spaces only)",
                    sizeof text - strlen(text) - 1);
        fail(ld, (int)li + 1, "%s", text);
        return -1;
    }
    mark_event(ld, ev);
    return 0;
}

static int find_key(const struct imp_node *m, const char *k)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i], k))
            return (int)i;
    return -1;
}

/* "<<: *base" (or a list of them): members of the merged maps that M lacks. */
static void merge_into(struct loader *ld, struct imp_node *m, struct imp_node *src, int line)
{
    if (src->kind == IMP_SEQ) {
        for (size_t i = 0; i < src->n; i++)
            merge_into(ld, m, src->vals[i], line);
        return;
    }
    if (src->kind != IMP_MAP) {
        fail(ld, line, "the merge key << needs a mapping");
        return;
    }
    for (size_t i = 0; i < src->n; i++)
        if (find_key(m, src->keys[i]) < 0) {
            add_child(m, src->keys[i], -line, src->vals[i]); /* < 0: merged */
            src->vals[i] = NULL;
        }
}

static int map_entry(struct loader *ld, struct imp_node *m, yaml_event_t *kev, int depth)
{
    int line = (int)kev->start_mark.line + 1;
    if (kev->type != YAML_SCALAR_EVENT) {
        fail(ld, line, "a mapping key must be a plain name");
        return -1;
    }
    char *key = xstrdup((const char *)kev->data.scalar.value);
    int merge = !strcmp(key, "<<") && kev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    yaml_event_t vev;
    if (next_event(ld, &vev) < 0) {
        free(key);
        return -1;
    }
    struct imp_node *v = parse_node(ld, &vev, depth + 1);
    yaml_event_delete(&vev);
    if (!v) {
        free(key);
        return -1;
    }
    if (m->n >= IMP_YAML_MAX_KEYS) {
        fail(ld, line, "more than %d keys in one mapping", IMP_YAML_MAX_KEYS);
        node_free(v);
    } else if (merge) {
        merge_into(ld, m, v, line);
        node_free(v);
    } else if (find_key(m, key) >= 0 && m->keylines[find_key(m, key)] > 0) {
        fail(ld, line, "duplicate key %s", key);
        node_free(v);
    } else if (find_key(m, key) >= 0) { /* an explicit key overrides a merged one */
        int i = find_key(m, key);
        node_free(m->vals[i]);
        m->vals[i] = v;
        m->keylines[i] = line;
    } else {
        add_child(m, key, line, v);
    }
    free(key);
    return ld->failed ? -1 : 0;
}

static struct imp_node *parse_collection(struct loader *ld, yaml_event_t *ev, int depth)
{
    int line = (int)ev->start_mark.line + 1;
    int ismap = ev->type == YAML_MAPPING_START_EVENT;
    if (depth > IMP_YAML_MAX_DEPTH) {
        fail(ld, line, "nested deeper than %d levels", IMP_YAML_MAX_DEPTH);
        return NULL;
    }
    struct imp_node *n = node_new(ld, ismap ? IMP_MAP : IMP_SEQ, line);
    for (; n;) {
        yaml_event_t cev;
        if (next_event(ld, &cev) < 0)
            break;
        if (cev.type == YAML_MAPPING_END_EVENT || cev.type == YAML_SEQUENCE_END_EVENT) {
            n->endline = (int)cev.end_mark.line + 1;
            yaml_event_delete(&cev);
            return n;
        }
        int rc = 0;
        if (ismap) {
            rc = map_entry(ld, n, &cev, depth);
        } else {
            struct imp_node *v = parse_node(ld, &cev, depth + 1);
            if (v)
                add_child(n, NULL, 0, v);
            else
                rc = -1;
        }
        yaml_event_delete(&cev);
        if (rc < 0)
            break;
    }
    node_free(n);
    return NULL;
}

static struct imp_node *parse_node(struct loader *ld, yaml_event_t *ev, int depth)
{
    int line = (int)ev->start_mark.line + 1;
    struct imp_node *n = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        struct imp_node *src = find_anchor(ld, name);
        if (!src)
            fail(ld, line, "unknown alias *%s", name);
        else
            n = clone(ld, src, line);
        return n;
    }
    case YAML_SCALAR_EVENT:
        n = node_new(ld, IMP_SCALAR, line);
        if (!n)
            return NULL;
        n->text = xstrdup((const char *)ev->data.scalar.value);
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                    (ev->data.scalar.tag &&
                     !strcmp((const char *)ev->data.scalar.tag, "tag:yaml.org,2002:str"));
        n->endline = (int)ev->end_mark.line + 1;
        set_anchor(ld, ev->data.scalar.anchor, n);
        return n;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        const unsigned char *anchor = ev->type == YAML_MAPPING_START_EVENT
                                          ? ev->data.mapping_start.anchor
                                          : ev->data.sequence_start.anchor;
        n = parse_collection(ld, ev, depth);
        set_anchor(ld, anchor, n);
        return n;
    }
    default:
        fail(ld, line, "unexpected YAML event");
        return NULL;
    }
}

/* ------------------------------------------------------------ file */

static char *read_all(struct loader *ld, const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(ld->doc->err, sizeof ld->doc->err, "%s: %s", file, strerror(errno));
        return NULL;
    }
    struct buf b = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_append(&b, chunk, r);
        if (b.len > IMP_YAML_MAX_BYTES)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || b.len > IMP_YAML_MAX_BYTES) {
        snprintf(ld->doc->err, sizeof ld->doc->err, "%s: %s", file,
                 bad ? "read error" : "larger than 16 MiB");
        buf_free(&b);
        return NULL;
    }
    if (!b.p)
        buf_append(&b, "", 0);
    *len = b.len;
    return b.p;
}

static void split_lines(struct imp_lines *L, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while (p < end || (p == end && L->n == 0)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n && p[n - 1] == '\r')
            n--;
        L->text = xrealloc(L->text, (L->n + 1) * sizeof *L->text);
        L->text[L->n] = xmalloc(n + 1);
        memcpy(L->text[L->n], p, n);
        L->text[L->n++][n] = '\0';
        if (!nl)
            break;
        p = nl + 1;
    }
    L->content_end = xmalloc(L->n * sizeof *L->content_end);
    for (size_t i = 0; i < L->n; i++)
        L->content_end[i] = -1;
    L->inside = xcalloc(L->n ? L->n : 1, 1);
}

static struct imp_node *parse_stream(struct loader *ld)
{
    struct imp_node *root = NULL;
    yaml_event_t ev;
    int docs = 0;
    while (!ld->failed && next_event(ld, &ev) == 0) {
        yaml_event_type_t t = ev.type;
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            fail(ld, (int)ev.start_mark.line + 1, "more than one YAML document");
        else if (t != YAML_STREAM_START_EVENT && t != YAML_DOCUMENT_START_EVENT &&
                 t != YAML_DOCUMENT_END_EVENT && t != YAML_STREAM_END_EVENT)
            root = parse_node(ld, &ev, 0);
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            break;
    }
    if (ld->failed) {
        node_free(root);
        return NULL;
    }
    return root;
}

int imp_yaml_load(const char *file, struct imp_doc *doc)
{
    memset(doc, 0, sizeof *doc);
    struct loader ld = {.file = file, .doc = doc};
    size_t len = 0;
    char *text = read_all(&ld, file, &len);
    if (!text)
        return -1;
    split_lines(&doc->lines, text, len);
    ld.text = text;
    yaml_parser_initialize(&ld.p);
    yaml_parser_set_input_string(&ld.p, (const unsigned char *)text, len);
    doc->root = parse_stream(&ld);
    yaml_parser_delete(&ld.p);
    for (size_t i = 0; i < ld.nanchors; i++)
        free(ld.anchors[i].name);
    free(ld.anchors);
    free(text);
    if (ld.failed) {
        char keep[sizeof doc->err];
        memcpy(keep, doc->err, sizeof keep);
        imp_yaml_free(doc);
        memcpy(doc->err, keep, sizeof keep);
        return -1;
    }
    return 0;
}

void imp_yaml_free(struct imp_doc *doc)
{
    node_free(doc->root);
    for (size_t i = 0; i < doc->lines.n; i++)
        free(doc->lines.text[i]);
    free(doc->lines.text);
    free(doc->lines.content_end);
    free(doc->lines.inside);
    memset(doc, 0, sizeof *doc);
}

/* ------------------------------------------------------------ scalars */

static int is_null_text(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int is_bool_text(const char *s, int *v)
{
    static const char *const t[] = {"true", "True", "TRUE"}, *const f[] = {"false", "False",
                                                                            "FALSE"};
    for (int i = 0; i < 3; i++) {
        if (!strcmp(s, t[i]))
            return *v = 1, 1;
        if (!strcmp(s, f[i]))
            return *v = 0, 1;
    }
    return 0;
}

static int is_int_text(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int is_float_text(const char *s)
{
    char *end;
    if (!*s || strchr(s, 'x') || strchr(s, 'X') || strchr(s, 'n') || strchr(s, 'N') ||
        strchr(s, 'i') || strchr(s, 'I'))
        return 0;
    errno = 0;
    (void)strtod(s, &end);
    return *end == '\0' && errno == 0 && strchr("+-.0123456789", *s);
}

enum imp_stype imp_stype(const struct imp_node *n)
{
    int b;
    if (n->kind != IMP_SCALAR)
        return IMP_S_STR;
    if (n->quoted)
        return IMP_S_STR;
    if (is_null_text(n->text))
        return IMP_S_NULL;
    if (is_bool_text(n->text, &b))
        return IMP_S_BOOL;
    if (is_int_text(n->text))
        return IMP_S_INT;
    if (is_float_text(n->text))
        return IMP_S_FLOAT;
    return IMP_S_STR;
}

struct imp_node *imp_map_get(const struct imp_node *m, const char *name)
{
    if (!m || m->kind != IMP_MAP)
        return NULL;
    int i = find_key(m, name);
    return i >= 0 ? m->vals[i] : NULL;
}

int imp_scalar_int(const struct imp_node *n, long long *v)
{
    if (!n || n->kind != IMP_SCALAR || !is_int_text(n->text))
        return -1;
    errno = 0;
    char *end;
    *v = strtoll(n->text, &end, 10);
    return errno ? -1 : 0;
}

int imp_scalar_bool(const struct imp_node *n, int *v)
{
    return n && n->kind == IMP_SCALAR && !n->quoted && is_bool_text(n->text, v) ? 0 : -1;
}
