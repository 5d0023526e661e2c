/* Checks of the alert configuration (see notify_check.c), run by cfg_load() at
 * start, on SIGHUP and for -t. */
#ifndef NOTIFY_CHECK_H
#define NOTIFY_CHECK_H

#include <stddef.h>

struct cfg;
struct strlist;

/* Appends "file:line: text" errors and warnings for the enabled alert destinations. */
void notify_check(const struct cfg *c, struct strlist *errors, struct strlist *warnings);

/* The text of template file PATH (malloc'd, NUL-terminated, at most a little over
 * TMPL_MAX_SOURCE bytes, which the compiler then refuses), or NULL. */
char *notify_read_template(const char *path, size_t *len);

#endif
