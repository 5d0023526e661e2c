/* A Butler YAML file read into a tree (libyaml events), with the bounds that keep a
 * hostile file harmless: file size, nesting depth and a node budget that alias
 * expansion counts against (an "alias bomb" stops there). Duplicate keys and
 * non-scalar keys are errors. Every node keeps its line for the report. */
#ifndef IMP_YAML_H
#define IMP_YAML_H

#include <stddef.h>

#define IMP_YAML_MAX_BYTES (16u << 20)
#define IMP_YAML_MAX_DEPTH 64
#define IMP_YAML_MAX_NODES 200000
#define IMP_YAML_MAX_KEYS 10000 /* in one mapping: duplicate checks stay cheap */

enum imp_kind { IMP_SCALAR, IMP_MAP, IMP_SEQ };

/* What a scalar means under YAML 1.2's core schema (the one js-yaml uses). */
enum imp_stype { IMP_S_NULL, IMP_S_BOOL, IMP_S_INT, IMP_S_FLOAT, IMP_S_STR };

struct imp_node {
    enum imp_kind kind;
    char *text;          /* scalar text */
    int quoted;          /* quoted or block scalar: a string whatever it looks like */
    int line, endline;   /* 1-based */
    size_t n;
    char **keys;         /* map: key texts */
    int *keylines;       /* map: key lines */
    struct imp_node **vals;
};

/* Line-level view of the source for comments (imp_comment.c). */
struct imp_lines {
    size_t n;            /* lines */
    char **text;         /* each line without its newline */
    int *content_end;    /* column after the last YAML token on the line, -1 none */
    unsigned char *inside; /* line lies inside a multi-line scalar */
};

struct imp_doc {
    struct imp_node *root;
    struct imp_lines lines;
    char err[600];       /* "file:line: message" after a failure */
};

/* Reads FILE into DOC: 0, or -1 with DOC->err set (DOC is then empty). */
int imp_yaml_load(const char *file, struct imp_doc *doc);
void imp_yaml_free(struct imp_doc *doc);

enum imp_stype imp_stype(const struct imp_node *n);
/* Member NAME of map M, or NULL. */
struct imp_node *imp_map_get(const struct imp_node *m, const char *name);
/* The scalar as an integer: 0 and *V, or -1 if it is not one (or out of range). */
int imp_scalar_int(const struct imp_node *n, long long *v);
/* The scalar as a boolean: 0 and *V, or -1. */
int imp_scalar_bool(const struct imp_node *n, int *v);

#endif
