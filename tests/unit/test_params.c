/* Query-string decoding and schema coercion (spec 1.5, 1.6). */
#include "pct.h"
#include "query.h"
#include "schema.h"
#include "unit.h"

#include <stdlib.h>

static const char *qs_get(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static char *check(const char *json, const struct sch_prop *props)
{
    json_object *o = json_tokener_parse(json);
    char *err = NULL;
    if (sch_check(o, "body", props, &err) == 0)
        err = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return err;
}

int main(void)
{
    const char *raw = "a=1&b=x+y&c=%41%zz&d&=e&&a=2&f=%e2%82%ac";
    json_object *q = qs_parse(raw, strlen(raw));
    CHECK_STR(qs_get(q, "b"), "x y");
    CHECK_STR(qs_get(q, "c"), "A%zz");   /* malformed escape kept literally */
    CHECK_STR(qs_get(q, "d"), "");       /* name without '=' */
    CHECK_STR(qs_get(q, "f"), "\xe2\x82\xac");
    json_object *a = json_object_object_get(q, "a");
    CHECK(json_object_is_type(a, json_type_array) && json_object_array_length(a) == 2);
    const struct sch_prop qp[] = {{"a", SCH_STRING, 1, 0, NULL}, {NULL, 0, 0, 0, NULL}};
    char *err = NULL;
    CHECK(sch_check(q, "querystring", qp, &err) < 0);
    CHECK_STR(err, "querystring/a must be string");
    free(err);
    const struct sch_prop qm[] = {{"zz", SCH_STRING, 1, 0, NULL}, {NULL, 0, 0, 0, NULL}};
    err = NULL;
    CHECK(sch_check(q, "querystring", qm, &err) < 0);
    CHECK_STR(err, "querystring must have required property 'zz'");
    free(err);
    json_object_put(q);

    /* escapes decode as UTF-8: an invalid sequence becomes U+FFFD, in names too */
    raw = "u=%FF%C3%A9&v=%E2%82&%C3=x";
    q = qs_parse(raw, strlen(raw));
    CHECK_STR(qs_get(q, "u"), "\xef\xbf\xbd\xc3\xa9");
    CHECK_STR(qs_get(q, "v"), "\xef\xbf\xbd");
    CHECK_STR(qs_get(q, "\xef\xbf\xbd"), "x");
    json_object_put(q);

    CHECK(pct_decode_path("a%FFb", 5) == NULL);      /* not UTF-8 */
    CHECK(pct_decode_path("%C3", 3) == NULL);        /* cut sequence */
    CHECK(pct_decode_path("%ED%A0%80", 9) == NULL);  /* surrogate */
    char *u8 = pct_decode_path("%C3%A9", 6);
    CHECK_STR(u8, "\xc3\xa9");
    free(u8);

    char *p = pct_decode_path("a%2Fb%20c", 9);
    CHECK_STR(p, "a/b c");
    free(p);
    CHECK(pct_decode_path("%zz", 3) == NULL);
    CHECK(pct_decode_path("ab%2", 4) == NULL);
    CHECK(pct_decode_path("%00", 3) == NULL);

    const char *const types[] = {"a", "b", NULL};
    const struct sch_prop props[] = {
        {"key", SCH_STRING, 1, 5, NULL},
        {"ttl", SCH_NUMBER, 0, 0, NULL},
        {"n", SCH_INTEGER, 0, 0, NULL},
        {"ow", SCH_BOOLEAN, 0, 0, NULL},
        {"type", SCH_STRING, 0, 0, types},
        {NULL, 0, 0, 0, NULL},
    };
    char *r;
    r = check("{\"key\":\"k\",\"ttl\":\"5000\",\"ow\":\"true\"}", props);
    CHECK_STR(r, "{\"key\":\"k\",\"ttl\":5000,\"ow\":true}");
    free(r);
    r = check("{\"key\":123,\"n\":2.0,\"ow\":0}", props);
    CHECK_STR(r, "{\"key\":\"123\",\"n\":2,\"ow\":false}");
    free(r);
    r = check("{\"key\":1.5,\"ttl\":null}", props);
    CHECK_STR(r, "{\"key\":\"1.5\",\"ttl\":0}");
    free(r);
    r = check("{\"key\":[\"x\"]}", props); /* one-element array becomes its element */
    CHECK_STR(r, "{\"key\":\"x\"}");
    free(r);
    r = check("{\"ttl\":1}", props);
    CHECK_STR(r, "body must have required property 'key'");
    free(r);
    r = check("{\"key\":{\"a\":1}}", props);
    CHECK_STR(r, "body/key must be string");
    free(r);
    r = check("{\"key\":\"k\",\"ttl\":\"\"}", props);
    CHECK_STR(r, "body/ttl must be number");
    free(r);
    r = check("{\"key\":\"k\",\"ttl\":\" 5\"}", props);
    CHECK_STR(r, "body/ttl must be number");
    free(r);
    r = check("{\"key\":\"k\",\"n\":\"2.5\"}", props);
    CHECK_STR(r, "body/n must be integer");
    free(r);
    r = check("{\"key\":\"k\",\"ow\":\"yes\"}", props);
    CHECK_STR(r, "body/ow must be boolean");
    free(r);
    r = check("{\"key\":\"k\",\"ow\":2}", props);
    CHECK_STR(r, "body/ow must be boolean");
    free(r);
    r = check("{\"key\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", props); /* 5 code points */
    CHECK(r && strncmp(r, "{", 1) == 0);
    free(r);
    r = check("{\"key\":\"abcdef\"}", props);
    CHECK_STR(r, "body/key must NOT have more than 5 characters");
    free(r);
    r = check("{\"key\":\"k\",\"type\":\"c\"}", props);
    CHECK_STR(r, "body/type must be equal to one of the allowed values");
    free(r);
    return UNIT_DONE();
}
