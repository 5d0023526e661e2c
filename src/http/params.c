/* Request inputs. Query strings are decoded with form rules and kept as JSON
 * strings so the same schema check and coercion serve query strings and bodies. */
#include "params.h"
#include "utf8.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Form decoding: '+' is a space, %XX is a byte, a malformed escape stays literal. */
static char *form_decode(const char *s, size_t n, size_t *outlen)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n &&
                   hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    /* %XX escapes decode as UTF-8 (spec 1.5): invalid sequences become U+FFFD, so
     * every string that reaches a handler, and every JSON answer, is valid UTF-8. */
    char *clean = utf8_repair(out, o, outlen);
    free(out);
    return clean;
}

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
            char *name = form_decode(p, (size_t)((eq ? eq : pe) - p), &nlen);
            char *val = eq ? form_decode(eq + 1, (size_t)(pe - eq - 1), &vlen) : xstrdup("");
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

char *pct_decode_path(const char *raw, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] != '%') {
            out[o++] = raw[i];
            continue;
        }
        if (i + 2 >= len) {
            free(out);
            return NULL;
        }
        int hi = hexval(raw[i + 1]), lo = hexval(raw[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    /* Like decodeURIComponent: bytes that are not UTF-8 make the component invalid. */
    size_t clen;
    char *check = utf8_repair(out, o, &clen);
    int valid = clen == o && !memcmp(check, out, o);
    free(check);
    if (!valid) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---------------------------------------------------------------- coercion */

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
    return json_object_new_double(d);
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
