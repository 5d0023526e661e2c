/* The template compiler: template text -> a tree of text, variable, comment and
 * block nodes, shaped as Handlebars' own syntax tree so that its standalone-line and
 * "~" whitespace rules (butlerd-templates(7)) can be applied as Handlebars
 * applies them. Rendering is in tmpl_render.c. Parsing keeps an explicit stack of
 * open blocks; nothing here recurses deeper than TMPL_MAX_DEPTH. */
#include "tmpl.h"
#include "tmpl_int.h"
#include "utf8.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cursor: byte offset with line and column ------------------------------ */

struct cur {
    const char *s;
    size_t n, i;
    int line, col;
};

static void adv(struct cur *c, size_t k)
{
    for (; k > 0 && c->i < c->n; k--, c->i++) {
        unsigned char ch = (unsigned char)c->s[c->i];
        if (ch == '\n') {
            c->line++;
            c->col = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c->col++;
        }
    }
}

static int at(const struct cur *c, const char *lit)
{
    size_t k = strlen(lit);
    return c->n - c->i >= k && memcmp(c->s + c->i, lit, k) == 0;
}

static int ch(const struct cur *c, size_t ahead)
{
    return c->i + ahead < c->n ? (unsigned char)c->s[c->i + ahead] : -1;
}

/* ---- parser state and errors ------------------------------------------------ */

struct open_block {
    struct tnode *blk;
    int in_inverse, chained;
};

struct parser {
    struct cur c;
    struct tmpl_error *err;
    int failed;
    struct open_block stack[TMPL_MAX_DEPTH];
    int depth;
    struct tbody root;
    long parts;
};

static void fail_at(struct parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_at(struct parser *p, int line, int col, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    p->err->line = line;
    p->err->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
}

#define FAIL_HERE(p, ...) fail_at((p), (p)->c.line, (p)->c.col, __VA_ARGS__)

static void body_add(struct tbody *b, struct tnode *n)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = n;
}

static struct tnode *node_new(enum tnode_kind k, int line, int col)
{
    struct tnode *n = xcalloc(1, sizeof *n);
    n->kind = k;
    n->line = line;
    n->col = col;
    return n;
}

static struct tbody *current_body(struct parser *p)
{
    if (p->depth == 0)
        return &p->root;
    struct open_block *o = &p->stack[p->depth - 1];
    return o->in_inverse ? &o->blk->inv : &o->blk->prog;
}

static void add_text(struct parser *p, size_t from, size_t to, int line, int col)
{
    if (to <= from)
        return;
    struct tnode *n = node_new(TN_TEXT, line, col);
    n->text = p->c.s + from;
    n->len = to - from;
    n->v0 = 0;
    n->v1 = n->len;
    body_add(current_body(p), n);
}

/* ---- expressions ------------------------------------------------------------- */

static int is_name_byte(int b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           b == '_' || b == '$' || b == '-' || b >= 0x80;
}

static int is_space(int b)
{
    return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f';
}

/* What may follow a complete token inside a tag. */
static int is_end_of_token(int b)
{
    return b < 0 || is_space(b) || b == '}' || b == '~' || b == ')';
}

static void skip_space(struct cur *c)
{
    while (c->i < c->n && is_space(ch(c, 0)))
        adv(c, 1);
}

static char *take_name(struct cur *c)
{
    size_t s = c->i;
    while (c->i < c->n && is_name_byte(ch(c, 0)))
        adv(c, 1);
    size_t k = c->i - s;
    char *r = xmalloc(k + 1);
    memcpy(r, c->s + s, k);
    r[k] = '\0';
    return r;
}

void tmpl_expr_free(struct texpr *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nseg; i++)
        free(e->seg[i]);
    free(e->seg);
    free(e->str);
    tmpl_expr_free(e->a);
    tmpl_expr_free(e->b);
    free(e);
}

static struct texpr *expr_new(enum texpr_kind k, const struct cur *c)
{
    struct texpr *e = xcalloc(1, sizeof *e);
    e->kind = k;
    e->line = c->line;
    e->col = c->col;
    return e;
}

static void seg_add(struct texpr *e, char *s)
{
    e->seg = xrealloc(e->seg, (size_t)(e->nseg + 1) * sizeof *e->seg);
    e->seg[e->nseg++] = s;
}

/* Constructs of Handlebars that butlerd refuses, recognised where they start. */
static int unsupported_here(struct parser *p)
{
    int b = ch(&p->c, 0);
    if (b == '[')
        FAIL_HERE(p, "unsupported construct 'segment literal'");
    else if (b == '=')
        FAIL_HERE(p, "unsupported construct 'hash argument'");
    else if (b == '|')
        FAIL_HERE(p, "unsupported construct 'block parameters'");
    else
        return 0;
    return 1;
}

static struct texpr *bad_expr(struct parser *p, struct texpr *e)
{
    if (!unsupported_here(p))
        FAIL_HERE(p, "invalid expression");
    tmpl_expr_free(e);
    return NULL;
}

/* A path: [@]( ../ )* (this | . | ..| name) ( . name )* */
static struct texpr *parse_path(struct parser *p)
{
    struct cur *c = &p->c;
    struct texpr *e = expr_new(TE_PATH, c);
    if (ch(c, 0) == '@') {
        e->data = 1;
        adv(c, 1);
    }
    while (!e->data && at(c, "../")) {
        e->up++;
        adv(c, 3);
    }
    if (!e->data && at(c, "..") && is_end_of_token(ch(c, 2))) {
        e->up++;
        adv(c, 2);
        return e; /* the parent context itself */
    }
    if (ch(c, 0) == '.' && is_end_of_token(ch(c, 1))) {
        adv(c, 1);
        return e;
    }
    if (!is_name_byte(ch(c, 0)))
        return bad_expr(p, e);
    char *first = take_name(c);
    if (!e->data && strcmp(first, "this") == 0)
        free(first);
    else
        seg_add(e, first);
    if (e->data && strcmp(e->seg[0], "root") == 0)
        e->root = 1;
    while (ch(c, 0) == '.' && is_name_byte(ch(c, 1))) {
        adv(c, 1);
        char *s = take_name(c);
        if (strcmp(s, "this") == 0) {
            free(s);
            return bad_expr(p, e);
        }
        seg_add(e, s);
    }
    if (e->data && e->nseg == 0)
        return bad_expr(p, e);
    if (!is_end_of_token(ch(c, 0)))
        return bad_expr(p, e);
    return e;
}

static struct texpr *parse_string(struct parser *p)
{
    struct cur *c = &p->c;
    struct texpr *e = expr_new(TE_STR, c);
    int q = ch(c, 0);
    adv(c, 1);
    struct buf b = {0};
    buf_append(&b, "", 0);
    while (c->i < c->n && ch(c, 0) != q) {
        if (ch(c, 0) == '\\' && ch(c, 1) == q) {
            buf_append(&b, &c->s[c->i + 1], 1);
            adv(c, 2);
            continue;
        }
        buf_append(&b, &c->s[c->i], 1);
        adv(c, 1);
    }
    e->str = b.p;
    e->slen = b.len;
    if (c->i >= c->n) {
        tmpl_expr_free(e);
        return NULL; /* the caller reports the unterminated tag */
    }
    adv(c, 1);
    if (!is_end_of_token(ch(c, 0)))
        return bad_expr(p, e);
    return e;
}

/* -?[0-9]+(\.[0-9]+)? ending a token, as Handlebars' lexer reads numbers. */
static size_t number_len(const struct cur *c)
{
    size_t k = 0;
    if (ch(c, 0) == '-')
        k++;
    size_t d = k;
    while (ch(c, k) >= '0' && ch(c, k) <= '9')
        k++;
    if (k == d)
        return 0;
    if (ch(c, k) == '.' && ch(c, k + 1) >= '0' && ch(c, k + 1) <= '9') {
        k++;
        while (ch(c, k) >= '0' && ch(c, k) <= '9')
            k++;
    }
    return is_end_of_token(ch(c, k)) ? k : 0;
}

static const struct {
    const char *w;
    enum texpr_kind k;
    int b;
} keywords[] = {{"true", TE_BOOL, 1}, {"false", TE_BOOL, 0}, {"null", TE_NULL, 0},
                {"undefined", TE_UNDEF, 0}};

/* Index + 1 of the keyword literal at the cursor, 0 if none. */
static int keyword_len(const struct cur *c)
{
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (at(c, keywords[i].w) && is_end_of_token(ch(c, strlen(keywords[i].w))))
            return (int)i + 1;
    return 0;
}

static struct texpr *parse_keyword(struct parser *p)
{
    int k = keyword_len(&p->c);
    if (!k)
        return NULL;
    struct texpr *e = expr_new(keywords[k - 1].k, &p->c);
    e->bval = keywords[k - 1].b;
    adv(&p->c, strlen(keywords[k - 1].w));
    return e;
}

static struct texpr *parse_call(struct parser *p, int nest);

/* One argument: a literal, a path or a subexpression. */
static struct texpr *parse_arg(struct parser *p, int nest)
{
    struct cur *c = &p->c;
    int b = ch(c, 0);
    if (b == '(')
        return parse_call(p, nest + 1);
    if (b == '"' || b == '\'')
        return parse_string(p);
    size_t k = number_len(c);
    if (k) {
        struct texpr *e = expr_new(TE_NUM, c);
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(k < 63 ? k : 63), c->s + c->i);
        e->num = strtod(tmp, NULL);
        adv(c, k);
        return e;
    }
    struct texpr *kw = parse_keyword(p);
    return kw ? kw : parse_path(p);
}

static int args_fail(struct texpr **args, int n, int max)
{
    for (int i = 0; i < n && i < max; i++) {
        tmpl_expr_free(args[i]);
        args[i] = NULL;
    }
    return -1;
}

/* Arguments up to the end of a tag or a ')'; at most MAX of them are kept. On
 * error, -1 and none kept. */
static int parse_args(struct parser *p, int nest, struct texpr **args, int max)
{
    int n = 0;
    for (;;) {
        skip_space(&p->c);
        int b = ch(&p->c, 0);
        if (b < 0 || b == '}' || b == '~' || b == ')')
            return n;
        if (at(&p->c, "as") && is_space(ch(&p->c, 2))) {
            struct cur save = p->c;
            adv(&p->c, 2);
            skip_space(&p->c);
            if (ch(&p->c, 0) == '|') {
                FAIL_HERE(p, "unsupported construct 'block parameters'");
                return args_fail(args, n, max);
            }
            p->c = save;
        }
        struct texpr *e = parse_arg(p, nest);
        if (!e)
            return args_fail(args, n, max);
        if (ch(&p->c, 0) == '=') {
            tmpl_expr_free(e);
            FAIL_HERE(p, "unsupported construct 'hash argument'");
            return args_fail(args, n, max);
        }
        if (n < max)
            args[n] = e;
        else
            tmpl_expr_free(e);
        n++;
    }
}

static struct texpr *eq_from(struct parser *p, struct texpr *head, struct texpr **args,
                             int n)
{
    const char *name = head->nseg == 1 && !head->data && !head->up ? head->seg[0] : NULL;
    if (!name || strcmp(name, "eq") != 0) {
        fail_at(p, head->line, head->col, "unknown helper '%s'",
                head->nseg ? head->seg[head->nseg - 1] : "this");
    } else if (n != 2) {
        fail_at(p, head->line, head->col, "helper 'eq' needs exactly two arguments");
    } else {
        head->kind = TE_EQ;
        head->a = args[0];
        head->b = args[1];
        return head;
    }
    for (int i = 0; i < n && i < 2; i++)
        tmpl_expr_free(args[i]);
    tmpl_expr_free(head);
    return NULL;
}

/* ( eq ARG ARG ) */
static struct texpr *parse_call(struct parser *p, int nest)
{
    struct cur *c = &p->c;
    if (nest > TMPL_MAX_SUBEXPR) {
        FAIL_HERE(p, "subexpressions nested deeper than %d", TMPL_MAX_SUBEXPR);
        return NULL;
    }
    adv(c, 1);
    skip_space(c);
    if (ch(c, 0) == '(' || ch(c, 0) == ')') {
        FAIL_HERE(p, "invalid expression");
        return NULL;
    }
    struct texpr *head = parse_path(p);
    if (!head)
        return NULL;
    struct texpr *args[2] = {0};
    int n = parse_args(p, nest, args, 2);
    if (n < 0) {
        tmpl_expr_free(head);
        tmpl_expr_free(args[0]);
        tmpl_expr_free(args[1]);
        return NULL;
    }
    if (ch(c, 0) != ')') {
        for (int i = 0; i < n && i < 2; i++)
            tmpl_expr_free(args[i]);
        tmpl_expr_free(head);
        if (c->i < c->n)
            FAIL_HERE(p, "invalid expression");
        return NULL;
    }
    adv(c, 1);
    if (!is_end_of_token(ch(c, 0))) {
        FAIL_HERE(p, "invalid expression");
        for (int i = 0; i < n && i < 2; i++)
            tmpl_expr_free(args[i]);
        tmpl_expr_free(head);
        return NULL;
    }
    return eq_from(p, head, args, n);
}

/* ---- tags ---------------------------------------------------------------------- */

enum tag_kind { TAG_VAR, TAG_RAW, TAG_OPEN, TAG_CLOSE, TAG_ELSE };

struct tag {
    enum tag_kind kind;
    int line, col;        /* of the opening {{ */
    int lstrip, rstrip;   /* {{~ and ~}} */
    int triple;           /* {{{ }}} */
    struct texpr *head;   /* name or expression */
    struct texpr *args[2];
    int nargs;
    struct texpr *chain;  /* {{else if x}}: the if, with args[0] */
};

static void tag_clear(struct tag *t)
{
    tmpl_expr_free(t->head);
    for (int i = 0; i < t->nargs && i < 2; i++)
        tmpl_expr_free(t->args[i]);
    memset(t, 0, sizeof *t);
}

/* The closing }} (or ~}}) of a tag at the cursor; }}} (or }~}}) for {{{. As in
 * Handlebars' lexer, a third brace is text only after a plain {{else}}. */
static int parse_tag_end(struct parser *p, struct tag *t, int triple)
{
    struct cur *c = &p->c;
    skip_space(c);
    if (triple && ch(c, 0) == '}' && (ch(c, 1) == '}' || ch(c, 1) == '~'))
        adv(c, 1);
    else if (!triple && at(c, "}}}") && !(t->kind == TAG_ELSE && !t->chain)) {
        FAIL_HERE(p, "'}}}' closes a tag opened with '{{'");
        return -1;
    } else if (triple && at(c, "~}}")) {
        FAIL_HERE(p, "a tag opened with '{{{' closes with '}}}' or '}~}}'");
        return -1;
    }
    if (ch(c, 0) == '~') {
        t->rstrip = 1;
        adv(c, 1);
    }
    if (at(c, "}}") && !(triple && !t->rstrip && ch(c, 2) == '}')) {
        adv(c, 2);
        return 0;
    }
    if (c->i >= c->n)
        fail_at(p, t->line, t->col, "unterminated tag");
    else
        FAIL_HERE(p, "invalid expression");
    return -1;
}

/* A comment starting at the cursor ("!" after "{{" or "{{~"): no output, only
 * whitespace rules. */
static void parse_comment(struct parser *p, int line, int col, int lstrip)
{
    struct cur *c = &p->c;
    int long_form = at(c, "!--");
    adv(c, long_form ? 3 : 1);
    const char *rest = c->s + c->i;
    size_t left = c->n - c->i;
    const char *end = NULL;
    for (size_t k = 0; k + 2 <= left && !end; k++) {
        if (rest[k] == '}' && rest[k + 1] == '}' &&
            (!long_form ? 1 : (k >= 2 && rest[k - 1] == '-' && rest[k - 2] == '-') ||
                                  (k >= 3 && rest[k - 1] == '~' && rest[k - 2] == '-' &&
                                   rest[k - 3] == '-')))
            end = rest + k;
    }
    if (!end) {
        fail_at(p, line, col, "unterminated comment");
        return;
    }
    struct tnode *n = node_new(TN_COMMENT, line, col);
    n->lstrip = lstrip;
    n->rstrip = end > c->s + c->i && end[-1] == '~';
    adv(c, (size_t)(end - rest) + 2);
    body_add(current_body(p), n);
}

/* The expression part of {{...}}, {{{...}}}, {{&...}}, {{#...}}, {{/...}}. */
static int parse_tag_body(struct parser *p, struct tag *t)
{
    struct cur *c = &p->c;
    skip_space(c);
    if (unsupported_here(p))
        return -1;
    if (t->kind == TAG_VAR && at(c, "else") && is_end_of_token(ch(c, 4))) {
        adv(c, 4);
        skip_space(c);
        if (ch(c, 0) == '~' || ch(c, 0) == '}') {
            t->kind = TAG_ELSE;
            return parse_tag_end(p, t, 0);
        }
        t->kind = TAG_ELSE; /* else if / else unless ...: a chained block */
        t->chain = parse_path(p);
        if (!t->chain)
            return -1;
    } else {
        int b = ch(c, 0);
        if (b < 0) {
            fail_at(p, t->line, t->col, "unterminated tag");
            return -1;
        }
        /* literals are arguments only; {{}} is empty */
        if (b == '}' || b == '~' || b == '"' || b == '\'' || b == '(' || number_len(c) ||
            keyword_len(c)) {
            FAIL_HERE(p, "invalid expression");
            return -1;
        }
        t->head = parse_path(p);
        if (!t->head)
            return -1;
    }
    t->nargs = parse_args(p, 0, t->args, 2);
    if (t->nargs < 0) {
        t->nargs = 0;
        return -1;
    }
    return parse_tag_end(p, t, t->triple);
}

/* ---- the tree: blocks open, else, close ---------------------------------------- */

static const char *const helper_names[] = {"if", "unless", "each", "with"};

static int block_helper(struct parser *p, const struct texpr *head, int line, int col)
{
    const char *name = head->nseg == 1 && !head->data && !head->up ? head->seg[0] : NULL;
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, helper_names[i]) == 0)
            return i;
    fail_at(p, line, col, "unknown block helper '%s'",
            head->nseg ? head->seg[head->nseg - 1] : "this");
    return -1;
}

static struct tnode *open_block(struct parser *p, struct tag *t, struct texpr *name, int chained)
{
    int h = block_helper(p, name, t->line, t->col);
    if (h < 0)
        return NULL;
    if (t->nargs != 1) {
        fail_at(p, t->line, t->col, "{{#%s}} needs exactly one argument", helper_names[h]);
        return NULL;
    }
    if (p->depth >= TMPL_MAX_DEPTH) {
        fail_at(p, t->line, t->col, "blocks nested deeper than %d", TMPL_MAX_DEPTH);
        return NULL;
    }
    struct tnode *n = node_new(TN_BLOCK, t->line, t->col);
    n->helper = h;
    n->e = t->args[0];
    t->args[0] = NULL;
    t->nargs = 0;
    n->open_l = t->lstrip;
    n->open_r = t->rstrip;
    body_add(current_body(p), n);
    p->stack[p->depth++] = (struct open_block){n, 0, chained};
    return n;
}

static void on_else(struct parser *p, struct tag *t)
{
    if (p->depth == 0) {
        fail_at(p, t->line, t->col, "{{else}} outside a block");
        return;
    }
    struct open_block *o = &p->stack[p->depth - 1];
    if (o->in_inverse) {
        fail_at(p, t->line, t->col, "second {{else}} in {{#%s}} opened at %d:%d",
                helper_names[o->blk->helper], o->blk->line, o->blk->col);
        return;
    }
    o->in_inverse = 1;
    o->blk->has_inv = 1;
    o->blk->inv_l = t->lstrip;
    o->blk->inv_r = t->rstrip;
    if (t->chain) {
        o->blk->inv_chained = 1;
        struct tnode *n = open_block(p, t, t->chain, 1);
        if (n) /* Handlebars gives a later link its own opening tag's strip flags */
            n->close_l = t->lstrip, n->close_r = t->rstrip;
    } else if (t->nargs) {
        fail_at(p, t->line, t->col, "invalid expression");
    }
}

static void on_close(struct parser *p, struct tag *t)
{
    const char *name = t->head->nseg == 1 && !t->head->data && !t->head->up && !t->nargs
                           ? t->head->seg[0] : NULL;
    if (!name) {
        fail_at(p, t->line, t->col, "invalid expression");
        return;
    }
    if (p->depth == 0) {
        fail_at(p, t->line, t->col, "{{/%s}} closes no open block", name);
        return;
    }
    int d = p->depth;
    while (d > 1 && p->stack[d - 1].chained)
        d--;
    struct tnode *b = p->stack[d - 1].blk;
    if (strcmp(name, helper_names[b->helper]) != 0) {
        fail_at(p, t->line, t->col, "{{/%s}} does not close {{#%s}} opened at %d:%d", name,
                helper_names[b->helper], b->line, b->col);
        return;
    }
    b->close_l = t->lstrip;
    b->close_r = t->rstrip;
    if (d < p->depth) { /* the first else-if link shares the real close tag */
        p->stack[d].blk->close_l = t->lstrip;
        p->stack[d].blk->close_r = t->rstrip;
    }
    p->depth = d - 1;
}

static void on_var(struct parser *p, struct tag *t)
{
    struct tnode *n = node_new(TN_VAR, t->line, t->col);
    n->raw = t->kind == TAG_RAW;
    n->open_l = t->lstrip;
    n->open_r = t->rstrip;
    if (t->nargs == 0) {
        n->e = t->head;
        t->head = NULL;
    } else {
        struct texpr *args[2] = {t->args[0], t->args[1]};
        int k = t->nargs;
        t->nargs = 0;
        n->e = eq_from(p, t->head, args, k);
        t->head = NULL;
    }
    if (n->e)
        body_add(current_body(p), n);
    else
        free(n);
}

/* A tag at the cursor, which is on its "{{". */
static void parse_tag(struct parser *p)
{
    struct cur *c = &p->c;
    struct tag t = {.line = c->line, .col = c->col};
    adv(c, 2);
    if (at(c, "{{")) {
        fail_at(p, t.line, t.col, "unsupported construct 'raw block'");
        return;
    }
    if (ch(c, 0) == '~') {
        t.lstrip = 1;
        adv(c, 1);
    }
    int b = ch(c, 0);
    static const struct {
        const char *prefix, *what;
    } refused[] = {{"#>", "partial block"}, {"#*", "inline partial"}, {">", "partial"},
                   {"*", "decorator"}, {"^", "inverse section"}};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (at(c, refused[i].prefix)) {
            fail_at(p, t.line, t.col, "unsupported construct '%s'", refused[i].what);
            return;
        }
    if (b == '!') {
        parse_comment(p, t.line, t.col, t.lstrip);
        return;
    }
    t.kind = TAG_VAR;
    if (b == '{' || b == '&' || b == '#' || b == '/') {
        t.kind = b == '#' ? TAG_OPEN : b == '/' ? TAG_CLOSE : TAG_RAW;
        t.triple = b == '{';
        adv(c, 1);
    }
    if (parse_tag_body(p, &t) < 0 && !p->failed)
        fail_at(p, t.line, t.col, "unterminated tag"); /* in a string or (...) */
    if (!p->failed) {
        switch (t.kind) {
        case TAG_VAR:
        case TAG_RAW: on_var(p, &t); break;
        case TAG_OPEN: open_block(p, &t, t.head, 0); break;
        case TAG_CLOSE: on_close(p, &t); break;
        case TAG_ELSE: on_else(p, &t); break;
        }
    }
    tmpl_expr_free(t.chain);
    tag_clear(&t);
}

/* Text up to the next tag; handles \{{ (literal) and \\{{ (one backslash, then a
 * tag) as Handlebars' lexer does. Returns 1 when a tag follows. */
static int parse_text(struct parser *p)
{
    struct cur *c = &p->c;
    const char *s = c->s;
    size_t from = c->i;
    int line = c->line, col = c->col;
    const char *q = memmem(s + from, c->n - from, "{{", 2);
    size_t to = q ? (size_t)(q - s) : c->n;
    int escaped = 0;
    if (q && to - from >= 1 && s[to - 1] == '\\') {
        if (to - from >= 2 && s[to - 2] == '\\') {
            add_text(p, from, to - 1, line, col); /* one backslash, then the tag */
        } else {
            add_text(p, from, to - 1, line, col);
            escaped = 1;
        }
    } else {
        add_text(p, from, to, line, col);
    }
    adv(c, to - from);
    if (!escaped)
        return q != NULL;
    /* literal text from this {{ up to the next {{, \{{ or \\{{ */
    size_t lit = c->i;
    line = c->line, col = c->col;
    const char *r = c->n - lit > 2 ? memmem(s + lit + 2, c->n - lit - 2, "{{", 2) : NULL;
    size_t end = r ? (size_t)(r - s) : c->n;
    if (r && end >= lit + 4 && s[end - 1] == '\\' && s[end - 2] == '\\')
        end -= 2;
    else if (r && end >= lit + 3 && s[end - 1] == '\\')
        end -= 1;
    add_text(p, lit, end, line, col);
    adv(c, end - lit);
    return 0;
}

/* ---- whitespace: Handlebars' WhitespaceControl, statement for statement --------- */

#define NONE ((size_t)-1)

static int ws_char(char b)
{
    return is_space((unsigned char)b);
}

/* The whitespace run at the end (or start) of a text's original form holds a LF. */
static int trailing_ws_has_lf(const struct tnode *n, int or_all_ws)
{
    size_t k = n->len;
    while (k > 0 && ws_char(n->text[k - 1])) {
        if (n->text[k - 1] == '\n')
            return 1;
        k--;
    }
    return or_all_ws && k == 0;
}

static int leading_ws_has_lf(const struct tnode *n, int or_all_ws)
{
    size_t k = 0;
    while (k < n->len && ws_char(n->text[k])) {
        if (n->text[k] == '\n')
            return 1;
        k++;
    }
    return or_all_ws && k == n->len;
}

static int prev_ws(const struct tbody *b, size_t i, int is_root)
{
    if (i == NONE)
        i = b->n;
    if (i == 0)
        return is_root;
    const struct tnode *prev = b->v[i - 1];
    if (prev->kind != TN_TEXT)
        return 0;
    return trailing_ws_has_lf(prev, !(i >= 2 || !is_root));
}

static int next_ws(const struct tbody *b, size_t i, int is_root)
{
    size_t k = i == NONE ? 0 : i + 1;
    if (k >= b->n)
        return is_root;
    const struct tnode *next = b->v[k];
    if (next->kind != TN_TEXT)
        return 0;
    return leading_ws_has_lf(next, !(k + 1 < b->n || !is_root));
}

static void omit_right(struct tbody *b, size_t i, int multiple)
{
    size_t k = i == NONE ? 0 : i + 1;
    if (k >= b->n)
        return;
    struct tnode *t = b->v[k];
    if (t->kind != TN_TEXT || (!multiple && t->rstripped))
        return;
    size_t v = t->v0;
    if (multiple) {
        while (v < t->v1 && ws_char(t->text[v]))
            v++;
    } else {
        while (v < t->v1 && (t->text[v] == ' ' || t->text[v] == '\t'))
            v++;
        if (v < t->v1 && t->text[v] == '\r' && v + 1 < t->v1 && t->text[v + 1] == '\n')
            v++;
        if (v < t->v1 && t->text[v] == '\n')
            v++;
    }
    t->rstripped = v != t->v0;
    t->v0 = v;
}

static int omit_left(struct tbody *b, size_t i, int multiple)
{
    size_t k = i == NONE ? b->n - 1 : i - 1;
    if (b->n == 0 || (i != NONE && i == 0))
        return 0;
    struct tnode *t = b->v[k];
    if (t->kind != TN_TEXT || (!multiple && t->lstripped))
        return 0;
    size_t v = t->v1;
    while (v > t->v0 && (multiple ? ws_char(t->text[v - 1])
                                  : (t->text[v - 1] == ' ' || t->text[v - 1] == '\t')))
        v--;
    t->lstripped = v != t->v1;
    t->v1 = v;
    return t->lstripped;
}

struct strip {
    int any, open, close, open_sa, close_sa, inline_sa;
};

static void ws_program(struct tbody *b, int is_root);

static struct strip ws_block(struct tnode *blk)
{
    ws_program(&blk->prog, 0);
    struct tbody *inverse = blk->has_inv ? &blk->inv : NULL, *first = inverse, *last = inverse;
    if (inverse && blk->inv_chained && inverse->n) {
        first = &inverse->v[0]->prog;
        /* as Handlebars: the walk stops at the first link's program */
        last = &inverse->v[inverse->n - 1]->prog;
    }
    if (inverse)
        ws_program(inverse, 0);
    struct strip s = {1, blk->open_l, blk->close_r, next_ws(&blk->prog, NONE, 0),
                      prev_ws(first ? first : &blk->prog, NONE, 0), 0};
    if (blk->open_r)
        omit_right(&blk->prog, NONE, 1);
    if (inverse) {
        if (blk->inv_l)
            omit_left(&blk->prog, NONE, 1);
        if (blk->inv_r)
            omit_right(first, NONE, 1);
        if (blk->close_l)
            omit_left(last, NONE, 1);
        if (prev_ws(&blk->prog, NONE, 0) && next_ws(first, NONE, 0)) {
            omit_left(&blk->prog, NONE, 0);
            omit_right(first, NONE, 0);
        }
    } else if (blk->close_l) {
        omit_left(&blk->prog, NONE, 1);
    }
    return s;
}

static void ws_program(struct tbody *b, int is_root)
{
    for (size_t i = 0; i < b->n; i++) {
        struct tnode *cur = b->v[i];
        struct strip s = {0};
        if (cur->kind == TN_VAR)
            s = (struct strip){1, cur->open_l, cur->open_r, 0, 0, 0};
        else if (cur->kind == TN_COMMENT)
            s = (struct strip){1, cur->lstrip, cur->rstrip, 0, 0, 1};
        else if (cur->kind == TN_BLOCK)
            s = ws_block(cur);
        if (!s.any)
            continue;
        int pw = prev_ws(b, i, is_root), nw = next_ws(b, i, is_root);
        if (s.close)
            omit_right(b, i, 1);
        if (s.open)
            omit_left(b, i, 1);
        if (s.inline_sa && pw && nw) {
            omit_right(b, i, 0);
            omit_left(b, i, 0);
        }
        if (s.open_sa && pw) {
            omit_right(&cur->prog, NONE, 0);
            omit_left(b, i, 0);
        }
        if (s.close_sa && nw) {
            omit_right(b, i, 0);
            omit_left(cur->has_inv ? &cur->inv : &cur->prog, NONE, 0);
        }
    }
}

/* ---- compile, free ------------------------------------------------------------ */

static void body_free(struct tbody *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct tnode *n = b->v[i];
        tmpl_expr_free(n->e);
        body_free(&n->prog);
        body_free(&n->inv);
        free(n);
    }
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* Invalid UTF-8 or a NUL: its position, else 0. */
static int check_bytes(struct parser *p)
{
    struct cur *c = &p->c;
    while (c->i < c->n) {
        unsigned char b = (unsigned char)c->s[c->i];
        size_t k = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        if (b == 0) {
            FAIL_HERE(p, "NUL character in template");
            return -1;
        }
        if (k > c->n - c->i || !utf8_valid(c->s + c->i, k)) {
            FAIL_HERE(p, "invalid UTF-8");
            return -1;
        }
        adv(c, k);
    }
    return 0;
}

struct tmpl *tmpl_compile(const char *text, size_t len, struct tmpl_error *err)
{
    memset(err, 0, sizeof *err);
    if (len > TMPL_MAX_SOURCE) {
        err->line = err->col = 1;
        snprintf(err->msg, sizeof err->msg, "template larger than %u bytes", TMPL_MAX_SOURCE);
        return NULL;
    }
    struct tmpl *t = xcalloc(1, sizeof *t);
    t->src = xmalloc(len + 1);
    memcpy(t->src, text, len);
    t->src[len] = '\0';
    struct parser p = {.c = {t->src, len, 0, 1, 1}, .err = err};
    if (len >= 3 && memcmp(t->src, "\xEF\xBB\xBF", 3) == 0)
        p.c.i = 3;
    size_t start = p.c.i;
    if (check_bytes(&p) == 0) {
        p.c = (struct cur){t->src, len, start, 1, 1};
        while (!p.failed && p.c.i < p.c.n) {
            if (++p.parts > TMPL_MAX_PARTS)
                FAIL_HERE(&p, "more than %d tags and texts", TMPL_MAX_PARTS);
            else if (parse_text(&p) && !p.failed)
                parse_tag(&p);
        }
    }
    if (!p.failed && p.depth > 0) {
        int d = p.depth;
        while (d > 1 && p.stack[d - 1].chained)
            d--;
        struct tnode *b = p.stack[d - 1].blk;
        fail_at(&p, b->line, b->col, "{{#%s}} opened here is never closed",
                helper_names[b->helper]);
    }
    t->root = p.root;
    if (p.failed) {
        tmpl_free(t);
        return NULL;
    }
    ws_program(&t->root, 1);
    return t;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    body_free(&t->root);
    free(t->src);
    free(t);
}

int tmpl_mode_parse(const char *s, enum tmpl_mode *m)
{
    static const char *const names[] = {"html", "text", "json"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *m = (enum tmpl_mode)i;
            return 0;
        }
    return -1;
}
