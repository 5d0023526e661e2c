/* The compiled form of a template, shared by the compiler (tmpl.c) and the
 * renderer (tmpl_render.c) only. */
#ifndef TMPL_INT_H
#define TMPL_INT_H


#include <stddef.h>

enum texpr_kind { TE_PATH, TE_STR, TE_NUM, TE_BOOL, TE_NULL, TE_UNDEF, TE_EQ };

struct texpr {
    enum texpr_kind kind;
    int line, col;
    /* TE_PATH: @ (data), @root, ../ count, segments (none: the context itself) */
    int data, root, up, nseg;
    char **seg;
    char *str; /* TE_STR */
    size_t slen;
    double num;         /* TE_NUM */
    int bval;           /* TE_BOOL */
    struct texpr *a, *b; /* TE_EQ: the operands */
};

enum tnode_kind { TN_TEXT, TN_VAR, TN_COMMENT, TN_BLOCK };
enum { TH_IF, TH_UNLESS, TH_EACH, TH_WITH };

struct tnode;
struct tbody {
    struct tnode **v;
    size_t n, cap;
};

struct tnode {
    enum tnode_kind kind;
    int line, col;
    /* TN_TEXT: the text as written and the part [v0, v1) left after stripping */
    const char *text;
    size_t len, v0, v1;
    int lstripped, rstripped;
    /* TN_VAR: expression, raw ({{{ }}} or {{& }}); TN_BLOCK: helper and argument */
    struct texpr *e;
    int raw, helper;
    /* "~" flags: of the opening tag (a variable's only tag), the else, the close */
    int open_l, open_r, inv_l, inv_r, close_l, close_r;
    int lstrip, rstrip; /* TN_COMMENT */
    /* TN_BLOCK: the block and its else part; an else-if chain is an else part
     * holding one block */
    struct tbody prog, inv;
    int has_inv, inv_chained;
};

struct tmpl {
    char *src;
    struct tbody root;
};

void tmpl_expr_free(struct texpr *e);

#endif
