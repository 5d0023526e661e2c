/* Alert templates: the Handlebars subset of butlerd-templates(7) (compile
 * text into a program, render a program with a json-c context in one of three
 * output modes). Pure code: no globals, no I/O; bounded nesting, work and output so
 * that a hostile template or context cannot exhaust the stack, the CPU or memory. */
#ifndef TMPL_H
#define TMPL_H

#include <json-c/json.h>

#include <stddef.h>

enum tmpl_mode { TMPL_HTML, TMPL_TEXT, TMPL_JSON };

#define TMPL_MAX_SOURCE (1u << 20) /* bytes of template text */
#define TMPL_MAX_PARTS 100000      /* tags and texts in one template */
#define TMPL_MAX_DEPTH 64          /* blocks nested in blocks, else-if links included */
#define TMPL_MAX_SUBEXPR 8         /* (eq (eq ...)) nesting */
#define TMPL_MAX_OUTPUT (8u << 20) /* bytes of rendered text */
#define TMPL_MAX_STEPS 1000000L    /* nodes visited by one rendering */

struct tmpl;

/* Position (1-based; COL counts characters) and text of a compile error. */
struct tmpl_error {
    int line, col;
    char msg[200];
};

/* Compiles LEN bytes of TEXT (UTF-8, an optional BOM is skipped). NULL on error,
 * with *ERR filled. */
struct tmpl *tmpl_compile(const char *text, size_t len, struct tmpl_error *err);
void tmpl_free(struct tmpl *t);

/* Renders T with CTX (any json-c value; NULL is JSON null) in MODE. Returns a
 * malloc'd NUL-terminated string of *LEN bytes (it may hold NULs from the context).
 * Rendering never fails; *CUT is set when a limit above stopped it early. */
char *tmpl_render(const struct tmpl *t, json_object *ctx, enum tmpl_mode mode, size_t *len,
                  int *cut);

/* Every name the template looks up, for the unknown-field check: SCOPE is "" at the
 * top level, the field a #each or #with iterates when it is one top-level field,
 * NULL when it is anything else; NAME the first segment looked up there; MEMBER the
 * second one or NULL. this, @data and literals are not reported. */
typedef void (*tmpl_ref_fn)(void *arg, int line, int col, const char *scope, const char *name,
                            const char *member);
void tmpl_refs(const struct tmpl *t, tmpl_ref_fn fn, void *arg);

/* "html", "text" or "json" to *M; -1 for anything else. */
int tmpl_mode_parse(const char *s, enum tmpl_mode *m);

#endif
