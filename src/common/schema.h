/* The small JSON-schema check with Butler's type coercion (butlerd-api(7), Query strings;
 * butlerd-api(7), Validation), for query
 * strings, request bodies and MQTT start-task messages alike. */
#ifndef SCHEMA_H
#define SCHEMA_H

#include <json-c/json.h>
#include <stddef.h>

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

/* Coerces V to type T (butlerd-api(7), Validation); returns a new reference or NULL if
 * impossible. */
json_object *sch_coerce(json_object *v, enum sch_type t);

#endif
