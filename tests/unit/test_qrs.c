/* jsonarr_each(): a QRS list read one element at a time (issue 11: a reply just
 * below butlerd.qrs.maxReplyBytes must not become one huge parse tree). */
#include "qrs.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static void collect(json_object *o, void *arg)
{
    struct buf *b = arg;
    const char *s = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "-";
    if (b->len)
        buf_append(b, "|", 1);
    buf_append(b, s, strlen(s));
}

/* The elements seen, "|"-separated ("-" for a scalar), then "#" and the count. */
static char out[4096];
static const char *each(const char *body)
{
    struct buf b = {0};
    size_t len = strlen(body);
    char *exact = malloc(len ? len : 1); /* no NUL after it: a sanitizer sees any over-read */
    memcpy(exact, body, len);
    long n = jsonarr_each(exact, len, collect, &b);
    free(exact);
    snprintf(out, sizeof out, "%s#%ld", b.p ? b.p : "", n);
    buf_free(&b);
    return out;
}

int main(void)
{
    CHECK_STR(each("[]"), "#0");
    CHECK_STR(each(" [ \n] "), "#0");
    CHECK_STR(each("[{\"id\":\"a\"}]"), "{\"id\":\"a\"}#1");
    CHECK_STR(each(" [ {\"id\" : \"a]\\\"}\" , \"n\":[1,{\"x\":\"[\"}]} ,{}\t]"),
              "{\"id\":\"a]\\\"}\",\"n\":[1,{\"x\":\"[\"}]}|{}#2");
    CHECK_STR(each("[1, \"s\", true, null, [2], {\"a\":1}]"), "-|-|-|-|[2]|{\"a\":1}#6");
    CHECK_STR(each("[{}] trailing"), "{}#1"); /* as json_tokener_parse: the rest is ignored */
    /* not an array, or broken: -1 */
    CHECK(jsonarr_each("", 0, collect, NULL) == -1);
    CHECK_STR(each("{\"id\":\"a\"}"), "#-1");
    CHECK_STR(each("[{\"id\":\"a\"}"), "{\"id\":\"a\"}#-1");
    CHECK_STR(each("[{\"id\":}]"), "#-1");
    CHECK_STR(each("[{} {}]"), "{}#-1");
    CHECK_STR(each("[,]"), "#-1");
    CHECK_STR(each("[{\"a\":\"unterminated}]"), "#-1");
    /* the length is respected: no read past LEN */
    const char *b = "[{\"a\":1},{\"b\":2}]";
    struct buf got = {0};
    CHECK(jsonarr_each(b, 9, collect, &got) == -1);
    CHECK_STR(got.p, "{\"a\":1}");
    buf_free(&got);
    return UNIT_DONE();
}
