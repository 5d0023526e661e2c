/* UDP intake text handling: UTF-8 repair (each maximal invalid sequence becomes one
 * U+FFFD, as WHATWG/Unicode recommend) and field sanitising (spec 6.2 steps 4, 7). */
#include "udp.h"
#include "utf8.h"
#include "util.h"
#include "unit.h"

#include <stdlib.h>

#define FFFD "\xEF\xBF\xBD"

static void clean_n(const char *in, size_t len, const char *want, size_t wlen)
{
    size_t n;
    char *out = utf8_repair(in, len, &n);
    CHECK(n == wlen && !memcmp(out, want, wlen));
    CHECK(out[n] == '\0');
    free(out);
}

static void clean(const char *in, size_t len, const char *want)
{
    clean_n(in, len, want, strlen(want));
}

static void sanitise(const char *in, size_t max, const char *want)
{
    char *s = strdup(in);
    udp_sanitise(s, max);
    CHECK_STR(s, want);
    free(s);
}

int main(void)
{
    /* valid text passes unchanged, in every length class */
    clean("plain ascii;x", 13, "plain ascii;x");
    clean("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    clean("", 0, "");
    /* stray bytes */
    clean("a\x80" "b", 3, "a" FFFD "b");
    clean("\xFF\xFE", 2, FFFD FFFD);
    clean("\xC0\xAF", 2, FFFD FFFD);               /* overlong lead bytes are never valid */
    clean("\xE0\x80\xAF", 3, FFFD FFFD FFFD);      /* overlong 3-byte form */
    clean("\xED\xA0\x80", 3, FFFD FFFD FFFD);      /* UTF-16 surrogate */
    clean("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); /* above U+10FFFF */
    clean("\xF5\x80", 2, FFFD FFFD);
    /* truncated sequences: the valid prefix is one replacement */
    clean("x\xE2\x82", 3, "x" FFFD);
    clean("\xF0\x9F\x98;", 4, FFFD ";");
    clean("\xE2\x82" "A", 3, FFFD "A");
    /* an embedded NUL is kept here and removed by sanitising */
    clean_n("a\0b", 3, "a\0b", 3);

    /* control characters go, everything else stays */
    sanitise("a\tb\r\nc\x7F" "d\x1F", 500, "abcd");
    sanitise("", 500, "");
    sanitise("\x01\x02", 500, "");
    /* cut to N code points, never inside a character */
    sanitise("abcdef", 3, "abc");
    sanitise("\xC3\xA9\xC3\xA9\xC3\xA9", 2, "\xC3\xA9\xC3\xA9");
    sanitise("\xF0\x9F\x98\x80x", 1, "\xF0\x9F\x98\x80");
    sanitise("\x01" "ab", 1, "a"); /* removed characters do not count */
    sanitise("ab\xe2\x82", 500, "ab\xe2\x82"); /* cut sequence: not read past the end */
    sanitise("\xf0", 500, "\xf0");
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *s = strdup(big);
    udp_sanitise(s, 500);
    CHECK(strlen(s) == 500);
    free(s);
    return UNIT_DONE();
}
