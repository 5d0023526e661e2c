/* JSON-schema checks and Butler's type coercion (butlerd-api(7), Query strings;
 * butlerd-api(7), Validation): messages are worded
 * as Butler's (Fastify, AJV) are, e.g. "querystring/ttl must be number". */
#include "schema.h"
#include "utf8.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_decimal_literal(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!(*p >= '0' && *p <= '9'))
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Shortest text that reads back as the same double. */
static char *double_text(double d)
{
    char tmp[40];
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(tmp, sizeof tmp, "%.0f", d);
        return xstrdup(tmp);
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    return xstrdup(tmp);
}

static json_object *number_from(double d)
{
    if (d == floor(d) && fabs(d) < 9.007199254740992e15)
        return json_object_new_int64((int64_t)d);
    /* json-c would print 2.3 as 2.2999999999999998: keep the shortest text instead. */
    char *s = double_text(d);
    json_object *o = json_object_new_double_s(d, s);
    free(s);
    return o;
}

json_object *sch_coerce(json_object *v, enum sch_type t)
{
    enum json_type vt = json_object_get_type(v);
    if (t == SCH_ARRAY) {
        if (vt == json_type_array)
            return json_object_get(v);
        json_object *a = json_object_new_array();
        json_object_array_add(a, json_object_get(v));
        return a;
    }
    if (vt == json_type_array && t != SCH_OBJECT) {
        if (json_object_array_length(v) != 1)
            return NULL;
        return sch_coerce(json_object_array_get_idx(v, 0), t);
    }
    switch (t) {
    case SCH_STRING:
        switch (vt) {
        case json_type_string: return json_object_get(v);
        case json_type_null: return json_object_new_string("");
        case json_type_boolean:
            return json_object_new_string(json_object_get_boolean(v) ? "true" : "false");
        case json_type_int: {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%lld", (long long)json_object_get_int64(v));
            return json_object_new_string(tmp);
        }
        case json_type_double: {
            char *s = double_text(json_object_get_double(v));
            json_object *r = json_object_new_string(s);
            free(s);
            return r;
        }
        default: return NULL;
        }
    case SCH_NUMBER:
    case SCH_INTEGER: {
        double d;
        switch (vt) {
        case json_type_int: d = (double)json_object_get_int64(v); break;
        case json_type_double: d = json_object_get_double(v); break;
        case json_type_boolean: d = json_object_get_boolean(v) ? 1 : 0; break;
        case json_type_null: d = 0; break;
        case json_type_string: {
            const char *s = json_object_get_string(v);
            if (!is_decimal_literal(s))
                return NULL;
            d = strtod(s, NULL);
            if (!isfinite(d))
                return NULL;
            break;
        }
        default: return NULL;
        }
        if (t == SCH_INTEGER && d != floor(d))
            return NULL;
        if (vt == json_type_int)
            return json_object_get(v);
        return number_from(d);
    }
    case SCH_BOOLEAN:
        switch (vt) {
        case json_type_boolean: return json_object_get(v);
        case json_type_null: return json_object_new_boolean(0);
        case json_type_string: {
            const char *s = json_object_get_string(v);
            if (!strcmp(s, "true"))
                return json_object_new_boolean(1);
            if (!strcmp(s, "false"))
                return json_object_new_boolean(0);
            return NULL;
        }
        case json_type_int:
        case json_type_double: {
            double d = json_object_get_double(v);
            if (d == 1)
                return json_object_new_boolean(1);
            if (d == 0)
                return json_object_new_boolean(0);
            return NULL;
        }
        default: return NULL;
        }
    case SCH_OBJECT:
        return vt == json_type_object ? json_object_get(v) : NULL;
    default:
        return NULL;
    }
}

static const char *type_word(enum sch_type t)
{
    static const char *const w[] = {"string", "number", "integer", "boolean", "array", "object"};
    return w[t];
}

int sch_check(json_object *obj, const char *loc, const struct sch_prop *props, char **err)
{
    const struct sch_prop *p;
    for (p = props; p->name; p++)
        if (p->required && !json_object_object_get_ex(obj, p->name, NULL)) {
            *err = xasprintf("%s must have required property '%s'", loc, p->name);
            return -1;
        }
    for (p = props; p->name; p++) {
        json_object *v;
        if (!json_object_object_get_ex(obj, p->name, &v))
            continue;
        json_object *c = sch_coerce(v, p->type);
        if (!c) {
            *err = xasprintf("%s/%s must be %s", loc, p->name, type_word(p->type));
            return -1;
        }
        json_object_object_add(obj, p->name, c);
        if (p->type == SCH_STRING) {
            const char *s = json_object_get_string(c);
            size_t n = (size_t)json_object_get_string_len(c);
            if (p->maxlen && utf8_count(s, n) > (size_t)p->maxlen) {
                *err = xasprintf("%s/%s must NOT have more than %d characters", loc, p->name,
                                 p->maxlen);
                return -1;
            }
            if (p->enumv) {
                const char *const *e = p->enumv;
                while (*e && strcmp(*e, s))
                    e++;
                if (!*e) {
                    *err = xasprintf("%s/%s must be equal to one of the allowed values", loc,
                                     p->name);
                    return -1;
                }
            }
        }
    }
    return 0;
}
