/* Query strings and percent-decoding (src/http/query.c, src/http/pct.c): qs_parse() on the raw query of
 * a request, pct_decode_path() on a path parameter. Whatever comes in, the results
 * are valid UTF-8 (butlerd-api(7), Query strings) and serialise as JSON. */
#include "query.h"
#include "pct.h"
#include "schema.h"
#include "utf8.h"
#include "util.h"
#include "fuzz.h"

static int valid_utf8(const char *s, size_t n)
{
    size_t m;
    char *r = utf8_repair(s, n, &m);
    int ok = m == n && !memcmp(r, s, n);
    free(r);
    return ok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copy: both parsers take a length and must not read past it */
    char *raw = malloc(size ? size : 1);
    memcpy(raw, data, size);

    json_object *q = qs_parse(raw, size);
    FUZZ_ASSERT(json_object_is_type(q, json_type_object));
    json_object_object_foreach(q, k, v) {
        FUZZ_ASSERT(valid_utf8(k, strlen(k)));
        if (json_object_is_type(v, json_type_array)) {
            FUZZ_ASSERT(json_object_array_length(v) >= 2);
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *e = json_object_array_get_idx(v, i);
                FUZZ_ASSERT(json_object_is_type(e, json_type_string));
                FUZZ_ASSERT(valid_utf8(json_object_get_string(e),
                                       (size_t)json_object_get_string_len(e)));
            }
        } else {
            FUZZ_ASSERT(json_object_is_type(v, json_type_string));
            FUZZ_ASSERT(valid_utf8(json_object_get_string(v),
                                   (size_t)json_object_get_string_len(v)));
        }
    }
    size_t jl;
    const char *js = json_object_to_json_string_length(q, JSON_C_TO_STRING_PLAIN, &jl);
    json_object *back = json_tokener_parse(js);
    FUZZ_ASSERT(back != NULL);
    json_object_put(back);
    json_object_put(q);

    char *p = pct_decode_path(raw, size);
    if (p) {
        size_t pl = strlen(p);
        FUZZ_ASSERT(pl <= size);
        FUZZ_ASSERT(valid_utf8(p, pl));
        free(p);
    }
    free(raw);
    return 0;
}
