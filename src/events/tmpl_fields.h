/* The fields of the alert template context (butlerd-templates(7)): the
 * unknown-field warnings and the example context butlerd -T renders by default. */
#ifndef TMPL_FIELDS_H
#define TMPL_FIELDS_H

struct strlist;
struct tmpl;

/* The example context of a failed reload, as JSON text. */
extern const char tmpl_fields_example[];

/* Adds "LINE:COL: warning: unknown field 'NAME'" to OUT for every name T looks up
 * that is not a context field (or not a member of the element type a #each or
 * #with on a known field gives). Returns the number added. */
int tmpl_fields_check(const struct tmpl *t, struct strlist *out);

#endif
