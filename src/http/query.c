/* Query strings: form-decoded and kept as JSON strings, so the same schema check and
 * coercion (schema.c) serve query strings and bodies. */
#include "query.h"
#include "pct.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

json_object *qs_parse(const char *raw, size_t len)
{
    json_object *obj = json_object_new_object();
    const char *p = raw, *end = raw + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if (pe > p) {
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            size_t nlen, vlen;
            char *name = pct_decode_form(p, (size_t)((eq ? eq : pe) - p), &nlen);
            char *val = eq ? pct_decode_form(eq + 1, (size_t)(pe - eq - 1), &vlen) : xstrdup("");
            if (!eq)
                vlen = 0;
            json_object *v = json_object_new_string_len(val, (int)vlen);
            json_object *prev;
            if (memchr(name, '\0', nlen)) {
                json_object_put(v); /* a name with NUL cannot be a schema property */
            } else if (json_object_object_get_ex(obj, name, &prev)) {
                if (!json_object_is_type(prev, json_type_array)) {
                    json_object *arr = json_object_new_array();
                    json_object_array_add(arr, json_object_get(prev));
                    json_object_object_add(obj, name, arr);
                    prev = arr;
                }
                json_object_array_add(prev, v);
            } else {
                json_object_object_add(obj, name, v);
            }
            free(name);
            free(val);
        }
        p = pe + 1;
    }
    return obj;
}
