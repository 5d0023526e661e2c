/* Request inputs: query-string and path decoding, and the small JSON-schema check
 * with Butler's type coercion (spec 1.5, 1.6). Knows nothing about HTTP itself. */
#ifndef PARAMS_H
#define PARAMS_H

#include <json-c/json.h>
#include <stddef.h>

/* Form-decodes a raw query string (without '?') into an object of strings; a name
 * given more than once becomes an array of strings. Never fails. */
json_object *qs_parse(const char *raw, size_t len);

/* Strict percent-decoding of a path parameter: returns a malloc'd string, or NULL
 * for a bad escape, a decoded NUL byte or a result that is not valid UTF-8. */
char *pct_decode_path(const char *raw, size_t len);

enum sch_type { SCH_STRING, SCH_NUMBER, SCH_INTEGER, SCH_BOOLEAN, SCH_ARRAY, SCH_OBJECT };

struct sch_prop {
    const char *name;
    enum sch_type type;
    int required;
    int maxlen;                /* strings: maximum code points, 0 = none */
    const char *const *enumv;  /* strings: allowed values, NULL-terminated, or NULL */
};

/* Checks OBJ against PROPS (terminated by a NULL name): required properties first,
 * then types, both in schema order; values are coerced in place. On failure returns
 * -1 and sets *ERR to a malloc'd message such as "querystring/ttl must be number". */
int sch_check(json_object *obj, const char *loc, const struct sch_prop *props, char **err);

/* Coerces V to type T (spec 1.6); returns a new reference or NULL if impossible. */
json_object *sch_coerce(json_object *v, enum sch_type t);

#endif
