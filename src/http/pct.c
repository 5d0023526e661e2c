/* Percent-decoding (RFC 3986) of request inputs: the lenient form rules of query
 * strings and the strict rules of path parameters. Results are valid UTF-8. */
#include "pct.h"
#include "utf8.h"
#include "util.h"

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

char *pct_decode_form(const char *s, size_t n, size_t *outlen)
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
    /* %XX escapes decode as UTF-8 (butlerd-api(7), Query strings): invalid sequences become
     * U+FFFD, so
     * every string that reaches a handler, and every JSON answer, is valid UTF-8. */
    char *clean = utf8_repair(out, o, outlen);
    free(out);
    return clean;
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
