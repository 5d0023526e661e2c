/* JSON arrays read in pieces (butlerd(8), PERFORMANCE, the apps list): cut at every
 * byte, or fed one byte at a time, the elements and the verdict are those of the
 * whole text read at once. */
#include "jsonarr.h"
#include "unit.h"

#include <stdlib.h>

/* The elements seen, one line each: the object as JSON text, or "-" for a scalar. */
static void note(json_object *o, void *arg)
{
    struct buf *b = arg;
    const char *s = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "-";
    buf_append(b, s, strlen(s));
    buf_append(b, "\n", 1);
}

static long whole(const char *t, struct buf *seen)
{
    return jsonarr_each(t, strlen(t), note, seen);
}

/* Fed in two pieces cut at AT, or (AT = -1) one byte at a time. */
static long pieces(const char *t, long at, struct buf *seen)
{
    struct jsonarr a;
    size_t len = strlen(t);
    jsonarr_init(&a, note, seen);
    if (at >= 0) {
        jsonarr_feed(&a, t, (size_t)at);
        jsonarr_feed(&a, t + at, len - (size_t)at);
    } else {
        for (size_t i = 0; i < len; i++)
            jsonarr_feed(&a, t + i, 1);
    }
    return jsonarr_end(&a);
}

static void same_in_pieces(const char *t, long want)
{
    struct buf ref = {0};
    long n = whole(t, &ref);
    CHECK(n == want);
    if (n != want)
        fprintf(stderr, "  text %s: got %ld, want %ld\n", t, n, want);
    for (long at = -1; at <= (long)strlen(t); at++) {
        struct buf got = {0};
        long m = pieces(t, at, &got);
        CHECK(m == n);
        CHECK_STR(got.p ? got.p : "", ref.p ? ref.p : "");
        if (m != n)
            fprintf(stderr, "  text %s cut at %ld: got %ld, want %ld\n", t, at, m, n);
        buf_free(&got);
    }
    buf_free(&ref);
}

int main(void)
{
    /* lists as QRS sends them */
    same_in_pieces("[]", 0);
    same_in_pieces(" \r\n[ \t] trailing bytes are ignored", 0);
    same_in_pieces("[{\"id\":\"a\",\"name\":\"x\"}]", 1);
    same_in_pieces("[{\"id\":\"a\",\"name\":\"x, ]}\"} , {\"id\":\"b\",\"tags\":[{\"n\":[1,2]}]}]", 2);
    /* escapes, a backslash before a quote, brackets and commas inside strings */
    same_in_pieces("[{\"n\":\"a\\\"]},\\\\\"},{\"n\":\"\\u00e9\\\\\"}]", 2);
    /* scalars are counted, not parsed */
    same_in_pieces("[1, \"s\\\"]\", true,null ,{\"a\":1}]", 5);
    same_in_pieces("[[1,[2]],{}]", 2);
    /* not arrays, or broken in the middle */
    same_in_pieces("", -1);
    same_in_pieces("{\"a\":1}", -1);
    same_in_pieces("[{\"a\":1},]", -1);
    same_in_pieces("[,{\"a\":1}]", -1);
    same_in_pieces("[{\"a\":1} {\"b\":2}]", -1);
    same_in_pieces("[{\"a\":1},{\"b\":2", -1);
    same_in_pieces("[{\"a\":1},{\"b\":2}", -1);
    same_in_pieces("[{\"a\":1},{\"b\":tru}]", -1);
    same_in_pieces("[{\"a\":1},{\"b\":2}}]", -1);
    same_in_pieces("[{\"a\":1},\"open", -1);
    same_in_pieces("[{\"a\":1},12", -1);

    /* an element that ends where a piece ends is seen at once, not with the next piece */
    struct buf early = {0};
    struct jsonarr ea;
    jsonarr_init(&ea, note, &early);
    CHECK(jsonarr_feed(&ea, "[{\"a\":1}", 8) == 0);
    CHECK_STR(early.p, "{\"a\":1}\n");
    CHECK(jsonarr_feed(&ea, "]", 1) == 0);
    CHECK(jsonarr_end(&ea) == 1);
    buf_free(&early);

    /* a fault stops the elements: none after it is seen, even in later pieces */
    struct buf seen = {0};
    struct jsonarr a;
    jsonarr_init(&a, note, &seen);
    CHECK(jsonarr_feed(&a, "[{\"a\":1},{\"b\":", 14) == 0);
    CHECK(jsonarr_feed(&a, "x},{\"c\":3}", 10) == -1);
    CHECK(jsonarr_feed(&a, ",{\"d\":4}]", 9) == -1);
    CHECK(jsonarr_end(&a) == -1);
    CHECK_STR(seen.p, "{\"a\":1}\n");
    buf_free(&seen);

    /* a large list in uneven pieces */
    struct buf big = {0}, ref = {0}, got = {0};
    buf_append(&big, "[", 1);
    for (int i = 0; i < 2000; i++) {
        char e[96];
        int n = snprintf(e, sizeof e, "%s{\"id\":\"%08d\",\"name\":\"app \\\"%d\\\"\",\"x\":[%d]}",
                         i ? "," : "", i, i, i);
        buf_append(&big, e, (size_t)n);
    }
    buf_append(&big, "]", 1);
    CHECK(jsonarr_each(big.p, big.len, note, &ref) == 2000);
    jsonarr_init(&a, note, &got);
    for (size_t i = 0, step = 1; i < big.len; i += step, step = step * 7 % 4093 + 1)
        CHECK(jsonarr_feed(&a, big.p + i, i + step > big.len ? big.len - i : step) == 0);
    CHECK(jsonarr_end(&a) == 2000);
    CHECK(got.len == ref.len && memcmp(got.p, ref.p, ref.len) == 0);
    buf_free(&big);
    buf_free(&ref);
    buf_free(&got);
    return UNIT_DONE();
}
