/* The UTF-8 module: validity, code points, prefixes by code points, the '?' cleaning
 * of Slack's answer and the control stripping of UDP fields. Repair is covered by
 * test_udp.c. */
#include "utf8.h"
#include "util.h"
#include "unit.h"

#include <stdlib.h>

static void clean(const char *in, size_t n, size_t max, const char *want)
{
    struct buf b = {0};
    utf8_append_clean(&b, in, n, max);
    CHECK_STR(b.p, want);
    buf_free(&b);
}

static void strip(const char *in, size_t max, const char *want)
{
    char *s = xstrdup(in);
    utf8_strip_controls(s, max);
    CHECK_STR(s, want);
    free(s);
}

int main(void)
{
    /* valid: every length class; invalid: stray continuation, overlong, surrogate,
     * above U+10FFFF, cut at the end */
    CHECK(utf8_valid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14));
    CHECK(utf8_valid("", 0));
    CHECK(!utf8_valid("\x80", 1));
    CHECK(!utf8_valid("\xC0\xAF", 2));
    CHECK(!utf8_valid("\xE0\x80\xAF", 3));
    CHECK(!utf8_valid("\xED\xA0\x80", 3));
    CHECK(!utf8_valid("\xF4\x90\x80\x80", 4));
    CHECK(!utf8_valid("\xE2\x82", 2));
    /* code points and prefixes */
    CHECK(utf8_count("caf\xC3\xA9", 5) == 4);
    CHECK(utf8_count("\xF0\x9F\x98\x80x", 5) == 2);
    CHECK(utf8_prefix("caf\xC3\xA9!", 6, 4) == 5);
    CHECK(utf8_prefix("caf\xC3\xA9!", 6, 3) == 3);
    CHECK(utf8_prefix("ab", 2, 10) == 2);
    CHECK(utf8_prefix("ab", 2, 0) == 0);
    /* cleaning: a broken byte becomes '?', nothing passes MAX bytes, a sequence that
     * does not fit is left out whole */
    clean("ok \xC3\xA9", 5, 100, "ok \xC3\xA9");
    clean("a\xFF" "b", 3, 100, "a?b");
    clean("a\xE2\x82", 3, 100, "a??");
    clean("ab\xE2\x82\xAC", 5, 4, "ab");
    clean("", 0, 10, "");
    /* stripping: C0 controls and DEL go, code points are capped */
    strip("a\tb\x7F" "c\r\n", 10, "abc");
    strip("\xC3\xA9\xC3\xA9\xC3\xA9", 2, "\xC3\xA9\xC3\xA9");
    strip("abc", 0, "");
    return UNIT_DONE();
}
