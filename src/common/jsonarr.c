/* JSON arrays read one element at a time, whole or in pieces (see jsonarr.h). */
#include "jsonarr.h"

#include <stdint.h>
#include <string.h>

enum { S_OPEN, S_FIRST, S_NEXT, S_ELEM, S_AFTER, S_DONE, S_FAULT };
enum { K_TREE, K_STRING, K_BARE }; /* object or array; "string"; number, true, ... */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void jsonarr_init(struct jsonarr *a, void (*fn)(json_object *, void *), void *arg)
{
    memset(a, 0, sizeof *a);
    a->fn = fn;
    a->arg = arg;
    a->state = S_OPEN;
}

/* Where the element being read ends in P[I..LEN) (one past it), or SIZE_MAX if it
 * goes on into the next piece. Brackets are counted outside strings; the element itself
 * is checked by json-c. A scalar ends before the separator or bracket after it.
 * The state is kept in locals while scanning: this loop sees every byte of a reply
 * (butlerd(8), PERFORMANCE). */
static size_t elem_end(struct jsonarr *a, const char *p, size_t i, size_t len)
{
    int depth = a->depth, in_str = a->in_str, esc = a->esc;
    size_t end = SIZE_MAX;
    for (; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (esc) {
                esc = 0;
                continue;
            }
            /* most bytes of a QRS object are string text: skip it in one go */
            while (c != '"' && c != '\\' && ++i < len)
                c = p[i];
            if (i == len)
                break;
            if (c == '\\') {
                esc = 1;
            } else {
                in_str = 0;
                if (depth == 0) {
                    end = i + 1;
                    break;
                }
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                end = i;
                break;
            }
            if (--depth == 0) {
                end = i + 1;
                break;
            }
        } else if (depth == 0 && (c == ',' || is_ws(c))) {
            end = i;
            break;
        }
    }
    a->depth = depth;
    a->in_str = in_str;
    a->esc = esc;
    return end;
}

/* One complete element in TEXT[0..LEN): parsed when it is an object or array. */
static int elem_done(struct jsonarr *a, const char *text, size_t len)
{
    if (a->kind != K_TREE) {
        a->fn(NULL, a->arg); /* the callers want objects: a scalar is not parsed */
    } else {
        if (len > INT32_MAX)
            return -1;
        if (!a->tok)
            a->tok = json_tokener_new();
        json_tokener_reset(a->tok);
        json_object *o = json_tokener_parse_ex(a->tok, text, (int)len);
        if (json_tokener_get_error(a->tok) != json_tokener_success ||
            (size_t)a->tok->char_offset != len) {
            json_object_put(o);
            return -1;
        }
        a->fn(o, a->arg);
        json_object_put(o);
    }
    a->n++;
    return 0;
}

int jsonarr_feed(struct jsonarr *a, const char *p, size_t len)
{
    size_t i = 0, start = 0; /* START: where the element being read begins in P */
    while (i < len && a->state != S_DONE && a->state != S_FAULT) {
        char c = p[i];
        switch (a->state) {
        case S_OPEN:
            if (c == '[')
                a->state = S_FIRST;
            else if (!is_ws(c))
                a->state = S_FAULT;
            i++;
            break;
        case S_FIRST:
        case S_NEXT:
            if (is_ws(c)) {
                i++;
            } else if (c == ']') {
                a->state = a->state == S_FIRST ? S_DONE : S_FAULT; /* "[1,]" is not JSON */
            } else if (c == ',' || c == '}') {
                a->state = S_FAULT;
            } else {
                a->kind = c == '{' || c == '[' ? K_TREE : c == '"' ? K_STRING : K_BARE;
                a->depth = a->in_str = a->esc = 0;
                a->part.len = 0;
                a->state = S_ELEM;
                start = i;
            }
            break;
        case S_ELEM: {
            size_t end = elem_end(a, p, i, len);
            if (end == SIZE_MAX) { /* cut by the piece's end: kept until complete */
                buf_append(&a->part, p + start, len - start);
                i = len;
                break;
            }
            int rc;
            if (a->part.len) {
                buf_append(&a->part, p + start, end - start);
                rc = elem_done(a, a->part.p, a->part.len);
            } else {
                rc = elem_done(a, p + start, end - start);
            }
            a->state = rc == 0 ? S_AFTER : S_FAULT;
            i = end;
            break;
        }
        case S_AFTER:
            if (c == ',')
                a->state = S_NEXT;
            else if (c == ']')
                a->state = S_DONE;
            else if (!is_ws(c))
                a->state = S_FAULT;
            i++;
            break;
        }
    }
    return a->state == S_FAULT ? -1 : 0;
}

long jsonarr_end(struct jsonarr *a)
{
    long n = a->state == S_DONE ? a->n : -1;
    if (a->tok)
        json_tokener_free(a->tok);
    buf_free(&a->part);
    memset(a, 0, sizeof *a);
    a->state = S_FAULT;
    return n;
}

long jsonarr_each(const char *p, size_t len, void (*fn)(json_object *, void *), void *arg)
{
    struct jsonarr a;
    jsonarr_init(&a, fn, arg);
    jsonarr_feed(&a, p, len);
    return jsonarr_end(&a);
}
