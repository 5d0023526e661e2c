/* The names of API token scopes (butlerd-api(7), "Authentication"): one list, so
 * that the configuration check and the route table agree. Each route names the
 * scope it needs in src/http/router.c; a token's scopes are a bit set. */
#ifndef SCOPE_H
#define SCOPE_H

/* Every scope: what "*" in a token's scopes gives. */
#define SCOPE_ALL 0xffffffffu

/* The bit of scope NAME, SCOPE_ALL for "*", or 0 if NAME is not a scope. */
unsigned scope_bit(const char *name);
/* True if routes of scope NAME change something (and so go to the audit trail,
 * butlerd(8) "AUDIT TRAIL"); also true for a route without a scope. */
int scope_changes(const char *name);
/* The known scope names, NULL-terminated (for messages and documentation checks). */
extern const char *const scope_names[];

#endif
