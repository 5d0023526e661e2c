/* Rendering a compiled template (tmpl.c) with a json-c context: lookup, truthiness,
 * text of values, the three output modes and their escaping (butlerd-templates(7)),
 * and the walk over looked-up names for the unknown-field check.
 * Recursion follows block nesting, which the compiler caps at TMPL_MAX_DEPTH; the
 * work and the output of one rendering are capped too. */
#include "tmpl.h"
#include "tmpl_int.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum vtype { V_ABSENT, V_NULL, V_BOOL, V_NUM, V_STR, V_ARR, V_OBJ };

struct val {
    enum vtype t;
    json_object *o; /* V_ARR, V_OBJ, and V_STR, V_NUM, V_BOOL from the context */
    const char *s;  /* V_STR */
    size_t slen;
    int is_int, b; /* V_NUM: i or d; V_BOOL: b */
    int64_t i;
    double d;
};

struct loop {
    size_t index, count;
    const char *key; /* object members; NULL for arrays */
};

struct rs {
    enum tmpl_mode mode;
    struct buf out, tmp, tmp2;
    int cut;
    long steps;
    struct val ctx[TMPL_MAX_DEPTH + 2];
    int nctx;
    const struct loop *loop;
};

static struct val from_json(json_object *o)
{
    struct val v = {.t = V_NULL, .o = o};
    switch (json_object_get_type(o)) {
    case json_type_null: break;
    case json_type_boolean: v.t = V_BOOL, v.b = json_object_get_boolean(o); break;
    case json_type_int: v.t = V_NUM, v.is_int = 1, v.i = json_object_get_int64(o); break;
    case json_type_double: v.t = V_NUM, v.d = json_object_get_double(o); break;
    case json_type_string:
        v.t = V_STR;
        v.s = json_object_get_string(o);
        v.slen = (size_t)json_object_get_string_len(o);
        break;
    case json_type_array: v.t = V_ARR; break;
    case json_type_object: v.t = V_OBJ; break;
    }
    return v;
}

static struct val num_val(double d)
{
    return (struct val){.t = V_NUM, .d = d};
}

static struct val int_val(int64_t i)
{
    return (struct val){.t = V_NUM, .is_int = 1, .i = i};
}

static struct val bool_val(int b)
{
    return (struct val){.t = V_BOOL, .b = b};
}

static double num_of(const struct val *v)
{
    return v->is_int ? (double)v->i : v->d;
}

static size_t code_points(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* One path segment on V: an object member, an array's length, a string's length
 * in characters; anything else is absent (an array has no members: list.1 is). */
static struct val member(struct val v, const char *name)
{
    json_object *m;
    if (v.t == V_OBJ) {
        if (json_object_object_get_ex(v.o, name, &m))
            return from_json(m);
    } else if (v.t == V_ARR) {
        if (strcmp(name, "length") == 0)
            return int_val((int64_t)json_object_array_length(v.o));
    } else if (v.t == V_STR && strcmp(name, "length") == 0) {
        return int_val((int64_t)code_points(v.s, v.slen));
    }
    return (struct val){.t = V_ABSENT};
}

static struct val loop_value(const struct rs *r, const char *name)
{
    const struct loop *l = r->loop;
    if (!l)
        return (struct val){.t = V_ABSENT};
    if (strcmp(name, "index") == 0)
        return int_val((int64_t)l->index);
    if (strcmp(name, "first") == 0)
        return bool_val(l->index == 0);
    if (strcmp(name, "last") == 0)
        return bool_val(l->index + 1 == l->count);
    if (strcmp(name, "key") == 0) {
        if (!l->key)
            return int_val((int64_t)l->index);
        return (struct val){.t = V_STR, .s = l->key, .slen = strlen(l->key)};
    }
    return (struct val){.t = V_ABSENT};
}

static struct val lookup(const struct rs *r, const struct texpr *e)
{
    struct val v;
    int from = 0;
    if (e->root) {
        v = r->ctx[0];
        from = 1;
    } else if (e->data) {
        v = loop_value(r, e->seg[0]);
        from = 1;
    } else if (e->up < r->nctx) {
        v = r->ctx[r->nctx - 1 - e->up];
    } else {
        return (struct val){.t = V_ABSENT};
    }
    for (int i = from; i < e->nseg && v.t != V_ABSENT; i++)
        v = member(v, e->seg[i]);
    return v;
}

/* Same type and value; arrays and objects are never equal (eq, in the spec of
 * butlerd-templates(7)). */
static int values_equal(const struct val *a, const struct val *b)
{
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case V_ABSENT:
    case V_NULL: return 1;
    case V_BOOL: return a->b == b->b;
    case V_NUM:
        if (a->is_int && b->is_int)
            return a->i == b->i;
        return num_of(a) == num_of(b);
    case V_STR: return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
    default: return 0;
    }
}

static struct val eval(const struct rs *r, const struct texpr *e)
{
    switch (e->kind) {
    case TE_PATH: return lookup(r, e);
    case TE_STR: return (struct val){.t = V_STR, .s = e->str, .slen = e->slen};
    case TE_NUM: return num_val(e->num);
    case TE_BOOL: return bool_val(e->bval);
    case TE_NULL: return (struct val){.t = V_NULL};
    case TE_UNDEF: return (struct val){.t = V_ABSENT};
    case TE_EQ: {
        struct val a = eval(r, e->a), b = eval(r, e->b);
        return bool_val(values_equal(&a, &b));
    }
    }
    return (struct val){.t = V_ABSENT};
}

/* Handlebars' #if: absent, null, false, "", 0 and [] are false. */
static int truthy(const struct val *v)
{
    switch (v->t) {
    case V_ABSENT:
    case V_NULL: return 0;
    case V_BOOL: return v->b;
    case V_NUM: return num_of(v) != 0;
    case V_STR: return v->slen > 0;
    case V_ARR: return json_object_array_length(v->o) > 0;
    default: return 1;
    }
}

/* ---- text of values ------------------------------------------------------------- */

/* Integer digits when integral, else the shortest decimal that reads back as D,
 * written as JavaScript writes numbers (exponent below 1e-6 and from 1e21). */
static void number_text(struct buf *b, double d)
{
    char tmp[48];
    if (d == 0) {
        buf_append(b, "0", 1);
        return;
    }
    if (d == floor(d) && fabs(d) < 1e21) {
        int k = snprintf(tmp, sizeof tmp, "%.0f", d);
        buf_append(b, tmp, (size_t)k);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    if (*p == '-')
        buf_append(b, p++, 1);
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int e = atoi(p + 1);
    if (e >= -7 + 1 && e < 21) {
        if (e >= 0) {
            buf_append(b, digits, (size_t)e + 1 <= nd ? (size_t)e + 1 : nd);
            for (size_t z = nd; z < (size_t)e + 1; z++)
                buf_append(b, "0", 1);
            if (nd > (size_t)e + 1) {
                buf_append(b, ".", 1);
                buf_append(b, digits + e + 1, nd - (size_t)e - 1);
            }
        } else {
            buf_append(b, "0.", 2);
            for (int z = 0; z < -e - 1; z++)
                buf_append(b, "0", 1);
            buf_append(b, digits, nd);
        }
        return;
    }
    buf_append(b, digits, 1);
    if (nd > 1) {
        buf_append(b, ".", 1);
        buf_append(b, digits + 1, nd - 1);
    }
    int k = snprintf(tmp, sizeof tmp, "e%c%d", e < 0 ? '-' : '+', abs(e));
    buf_append(b, tmp, (size_t)k);
}

static void value_text(struct rs *r, struct buf *b, const struct val *v, int depth)
{
    char tmp[32];
    switch (v->t) {
    case V_ABSENT:
    case V_NULL: break;
    case V_BOOL: buf_append(b, v->b ? "true" : "false", v->b ? 4 : 5); break;
    case V_NUM:
        if (v->is_int) {
            int k = snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
            buf_append(b, tmp, (size_t)k);
        } else {
            number_text(b, v->d);
        }
        break;
    case V_STR: buf_append(b, v->s, v->slen); break;
    case V_OBJ: buf_append(b, "[object Object]", 15); break;
    case V_ARR: {
        size_t n = json_object_array_length(v->o);
        r->steps += (long)n;
        for (size_t i = 0; i < n && depth < 32 && r->steps < TMPL_MAX_STEPS; i++) {
            if (i)
                buf_append(b, ",", 1);
            struct val e = from_json(json_object_array_get_idx(v->o, i));
            value_text(r, b, &e, depth + 1);
        }
        break;
    }
    }
}

/* Handlebars' escapeExpression: these seven characters and nothing else. */
static void html_escape(struct buf *out, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#x27;"; break;
        case '`': rep = "&#x60;"; break;
        case '=': rep = "&#x3D;"; break;
        default: continue;
        }
        buf_append(out, s + from, i - from);
        buf_append(out, rep, strlen(rep));
        from = i + 1;
    }
    buf_append(out, s + from, n - from);
}

/* The inside of a JSON string (RFC 8259): ", \ and U+0000-U+001F escaped. */
static void json_escape(struct buf *out, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char rep[8];
        if (c == '"' || c == '\\')
            snprintf(rep, sizeof rep, "\\%c", c);
        else if (c == '\b')
            strcpy(rep, "\\b");
        else if (c == '\f')
            strcpy(rep, "\\f");
        else if (c == '\n')
            strcpy(rep, "\\n");
        else if (c == '\r')
            strcpy(rep, "\\r");
        else if (c == '\t')
            strcpy(rep, "\\t");
        else if (c < 0x20)
            snprintf(rep, sizeof rep, "\\u%04x", c);
        else
            continue;
        buf_append(out, s + from, i - from);
        buf_append(out, rep, strlen(rep));
        from = i + 1;
    }
    buf_append(out, s + from, n - from);
}

/* Appends to the output, up to TMPL_MAX_OUTPUT bytes and never past a
 * character's start. */
static void emit(struct rs *r, const char *s, size_t n)
{
    if (r->cut)
        return;
    if (r->out.len + n > TMPL_MAX_OUTPUT) {
        n = TMPL_MAX_OUTPUT - r->out.len;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        r->cut = 1;
    }
    buf_append(&r->out, s, n);
}

static void emit_value(struct rs *r, const struct val *v, int raw)
{
    r->tmp.len = r->tmp2.len = 0;
    value_text(r, &r->tmp, v, 0);
    const char *s = r->tmp.p ? r->tmp.p : "";
    size_t n = r->tmp.len;
    if (!raw && r->mode != TMPL_TEXT) {
        html_escape(&r->tmp2, s, n);
        s = r->tmp2.p ? r->tmp2.p : "";
        n = r->tmp2.len;
    }
    if (r->mode == TMPL_JSON) {
        struct buf *dst = s == r->tmp.p ? &r->tmp2 : &r->tmp;
        dst->len = 0;
        json_escape(dst, s, n);
        s = dst->p ? dst->p : "";
        n = dst->len;
    }
    emit(r, s, n);
}

/* ---- blocks --------------------------------------------------------------------- */

static void render_body(struct rs *r, const struct tbody *b);

/* Renders B with V as the context; a new context level only when V is not the
 * current one, as Handlebars counts levels for ../ */
static void with_context(struct rs *r, const struct tbody *b, const struct val *v)
{
    const struct val *top = &r->ctx[r->nctx - 1];
    int same = v->o && v->o == top->o && v->t == top->t;
    if (!same)
        r->ctx[r->nctx++] = *v;
    render_body(r, b);
    if (!same)
        r->nctx--;
}

static void render_each(struct rs *r, const struct tnode *n, const struct val *v)
{
    const struct loop *saved = r->loop;
    struct loop l = {0};
    r->loop = &l;
    if (v->t == V_ARR) {
        l.count = json_object_array_length(v->o);
        for (; l.index < l.count && !r->cut; l.index++) {
            struct val e = from_json(json_object_array_get_idx(v->o, l.index));
            with_context(r, &n->prog, &e);
        }
    } else {
        l.count = (size_t)json_object_object_length(v->o);
        json_object_object_foreach(v->o, key, m)
        {
            if (r->cut)
                break;
            l.key = key;
            struct val e = from_json(m);
            with_context(r, &n->prog, &e);
            l.index++;
        }
    }
    r->loop = saved;
}

static void render_block(struct rs *r, const struct tnode *n)
{
    struct val v = eval(r, n->e);
    int inverse;
    switch (n->helper) {
    case TH_IF: inverse = !truthy(&v); break;
    case TH_UNLESS: inverse = truthy(&v); break;
    case TH_WITH:
        inverse = v.t == V_ABSENT || v.t == V_NULL || (v.t == V_BOOL && !v.b) ||
                  (v.t == V_STR && v.slen == 0) ||
                  (v.t == V_ARR && json_object_array_length(v.o) == 0);
        if (!inverse) {
            with_context(r, &n->prog, &v);
            return;
        }
        break;
    default:
        inverse = !((v.t == V_ARR && json_object_array_length(v.o) > 0) ||
                    (v.t == V_OBJ && json_object_object_length(v.o) > 0));
        if (!inverse) {
            render_each(r, n, &v);
            return;
        }
        break;
    }
    if (!inverse)
        render_body(r, &n->prog);
    else if (n->has_inv)
        render_body(r, &n->inv);
}

static void render_body(struct rs *r, const struct tbody *b)
{
    for (size_t i = 0; i < b->n && !r->cut; i++) {
        const struct tnode *n = b->v[i];
        if (++r->steps > TMPL_MAX_STEPS) {
            r->cut = 1;
            return;
        }
        switch (n->kind) {
        case TN_TEXT: emit(r, n->text + n->v0, n->v1 - n->v0); break;
        case TN_VAR: {
            struct val v = eval(r, n->e);
            emit_value(r, &v, n->raw);
            break;
        }
        case TN_COMMENT: break;
        case TN_BLOCK: render_block(r, n); break;
        }
    }
}

char *tmpl_render(const struct tmpl *t, json_object *ctx, enum tmpl_mode mode, size_t *len,
                  int *cut)
{
    struct rs *r = xcalloc(1, sizeof *r);
    r->mode = mode;
    r->ctx[0] = from_json(ctx);
    r->nctx = 1;
    buf_append(&r->out, "", 0);
    render_body(r, &t->root);
    if (r->steps > TMPL_MAX_STEPS)
        r->cut = 1;
    char *s = r->out.p;
    *len = r->out.len;
    if (cut)
        *cut = r->cut;
    buf_free(&r->tmp);
    buf_free(&r->tmp2);
    free(r);
    return s;
}

/* ---- names looked up, for the unknown-field warnings ----------------------------- */

struct walk {
    tmpl_ref_fn fn;
    void *arg;
    const char *scope[TMPL_MAX_DEPTH + 2];
    int n;
};

static void walk_expr(struct walk *w, const struct texpr *e)
{
    if (e->kind == TE_EQ) {
        walk_expr(w, e->a);
        walk_expr(w, e->b);
        return;
    }
    if (e->kind != TE_PATH || (e->data && !e->root))
        return;
    int from = e->root ? 1 : 0;
    if (e->nseg <= from)
        return;
    const char *scope = e->root ? "" : e->up < w->n ? w->scope[w->n - 1 - e->up] : NULL;
    w->fn(w->arg, e->line, e->col, scope, e->seg[from], from + 1 < e->nseg ? e->seg[from + 1] : NULL);
}

/* The scope a #each or #with argument opens: a top-level field's name, the same
 * scope for this, NULL for anything else. Returns 0 when the context stays. */
static int block_scope(const struct walk *w, const struct texpr *e, const char **out)
{
    *out = NULL;
    if (e->kind != TE_PATH || (e->data && !e->root))
        return 1;
    int from = e->root ? 1 : 0;
    const char *base = e->root ? "" : e->up < w->n ? w->scope[w->n - 1 - e->up] : NULL;
    if (e->nseg == from) {
        *out = base;
        return !(e->up == 0 && !e->root);
    }
    if (base && !*base && e->nseg == from + 1)
        *out = e->seg[from];
    return 1;
}

static void walk_body(struct walk *w, const struct tbody *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct tnode *n = b->v[i];
        if (n->kind == TN_VAR)
            walk_expr(w, n->e);
        if (n->kind != TN_BLOCK)
            continue;
        walk_expr(w, n->e);
        const char *scope = NULL;
        int push = (n->helper == TH_EACH || n->helper == TH_WITH) && block_scope(w, n->e, &scope);
        if (push)
            w->scope[w->n++] = scope;
        walk_body(w, &n->prog);
        if (push)
            w->n--;
        walk_body(w, &n->inv);
    }
}

void tmpl_refs(const struct tmpl *t, tmpl_ref_fn fn, void *arg)
{
    struct walk w = {.fn = fn, .arg = arg, .scope = {""}, .n = 1};
    walk_body(&w, &t->root);
}
