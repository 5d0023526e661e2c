/* UTF-8: the one walker over sequences (utf8_seq), and what is built on it. Every
 * string that reaches a handler or a JSON answer goes through here. */
#include "utf8.h"
#include "util.h"

#include <string.h>

/* Length of the well-formed UTF-8 sequence at S (at most N bytes: 1 to 4), or 0 if
 * there is none; then *BAD is the length of the maximal invalid prefix (at least 1).
 * Overlong forms, encoded surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                            : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (k == 0) {
        *bad = 1;
        return 0;
    }
    size_t j = 1;
    for (; j < k && j < n; j++) {
        unsigned char d = s[j];
        unsigned char lo = 0x80, hi = 0xBF;
        if (j == 1) { /* overlongs, surrogates and > U+10FFFF */
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
            else if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        if (d < lo || d > hi)
            break;
    }
    if (j == k)
        return k;
    *bad = j;
    return 0;
}

int utf8_valid(const void *in, size_t n)
{
    const unsigned char *s = in;
    size_t i = 0, bad;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i, &bad);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

char *utf8_repair(const void *in, size_t n, size_t *outlen)
{
    const unsigned char *s = in;
    struct buf b = {0};
    buf_append(&b, "", 0);
    size_t i = 0, bad;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i, &bad);
        if (k) {
            buf_append(&b, s + i, k);
            i += k;
        } else { /* a maximal invalid prefix becomes one U+FFFD */
            buf_append(&b, "\xEF\xBF\xBD", 3);
            i += bad;
        }
    }
    if (outlen)
        *outlen = b.len;
    return b.p;
}

size_t utf8_count(const char *s, size_t n)
{
    size_t cp = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            cp++;
    return cp;
}

size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    size_t i = 0;
    for (size_t chars = 0; i < n && chars < max; chars++)
        for (i++; i < n && ((unsigned char)s[i] & 0xC0) == 0x80; i++)
            ;
    return i;
}

void utf8_append_clean(struct buf *out, const char *s, size_t n, size_t max)
{
    size_t i = 0, bad;
    while (i < n) {
        size_t len = utf8_seq((const unsigned char *)s + i, n - i, &bad);
        int ok = len > 0;
        if (!ok)
            len = 1;
        if (out->len + len > max)
            break;
        buf_append(out, ok ? s + i : "?", len);
        i += len;
    }
    if (!out->p)
        buf_append(out, "", 0);
}

void utf8_strip_controls(char *s, size_t max_cp)
{
    char *d = s;
    size_t cps = 0;
    for (char *p = s; *p;) {
        unsigned char c = (unsigned char)*p;
        size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        for (size_t j = 1; j < k; j++) /* a sequence cut by the end of S */
            if (!p[j]) {
                k = j;
                break;
            }
        if (c < 0x20 || c == 0x7F) {
            p++;
            continue;
        }
        if (cps == max_cp)
            break;
        memmove(d, p, k);
        d += k;
        p += k;
        cps++;
    }
    *d = '\0';
}
