/* JSON arrays read one element at a time (see jsonarr.h). */
#include "jsonarr.h"

#include <stdint.h>

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* The end of the JSON value starting at P[I] (one past it), found by counting
 * brackets outside strings; the value itself is checked by json-c. */
static size_t value_end(const char *p, size_t i, size_t len)
{
    int depth = 0, in_str = 0;
    for (; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            if (!in_str && depth == 0)
                return i + 1;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i; /* a scalar before the array's end */
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
    }
    return len;
}

long jsonarr_each(const char *p, size_t len, void (*fn)(json_object *, void *), void *arg)
{
    size_t i = skip_ws(p, 0, len);
    long n = 0;
    if (i >= len || p[i] != '[')
        return -1;
    i = skip_ws(p, i + 1, len);
    if (i < len && p[i] == ']')
        return 0;
    json_tokener *tok = json_tokener_new();
    for (;;) {
        size_t end = value_end(p, i, len);
        if (end <= i || end - i > INT32_MAX)
            break;
        if (p[i] != '{' && p[i] != '[') {
            fn(NULL, arg); /* the callers want objects: a scalar is not parsed */
        } else {
            json_tokener_reset(tok);
            json_object *o = json_tokener_parse_ex(tok, p + i, (int)(end - i));
            if (json_tokener_get_error(tok) != json_tokener_success ||
                (size_t)tok->char_offset != end - i) {
                json_object_put(o);
                break;
            }
            fn(o, arg);
            json_object_put(o);
        }
        n++;
        i = skip_ws(p, end, len);
        if (i < len && p[i] == ']') {
            json_tokener_free(tok);
            return n;
        }
        if (i >= len || p[i] != ',')
            break;
        i = skip_ws(p, i + 1, len);
    }
    json_tokener_free(tok);
    return -1;
}
