/* Base conversion endpoints: /v4 answer JSON with both values, /v2 the bare result. */
#include "api.h"
#include "base62.h"
#include "http.h"

#include <stdlib.h>
#include <string.h>

enum dir { TO16, TO62 };

static void convert(struct req *r, enum dir d, int v2)
{
    const char *in_name = d == TO16 ? "base62" : "base16";
    const struct sch_prop props[] = {{in_name, SCH_STRING, 1, 0, NULL}, {NULL, 0, 0, 0, NULL}};
    json_object *q = http_query(r, props);
    if (!q)
        return;
    json_object *in = json_object_object_get(q, in_name);
    const char *s = json_object_get_string(in);
    /* A decoded %00 would end the C string early: it is simply not a digit. */
    int has_nul = (size_t)json_object_get_string_len(in) != strlen(s);
    char *out = has_nul ? NULL : d == TO16 ? base62_to_base16(s) : base16_to_base62(s);
    if (!out) {
        http_reply_error(r, 500, NULL, "Failed converting from %s to %s", in_name,
                         d == TO16 ? "base16" : "base62");
        return;
    }
    if (v2) {
        http_reply_text(r, 200, out);
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "base62", d == TO16 ? json_object_get(in)
                                                      : json_object_new_string(out));
        json_object_object_add(o, "base16", d == TO16 ? json_object_new_string(out)
                                                      : json_object_get(in));
        http_reply_json(r, 200, o);
    }
    free(out);
}

void api_base62tobase16(struct req *r) { convert(r, TO16, 0); }
void api_base16tobase62(struct req *r) { convert(r, TO62, 0); }
void api_v2_base62tobase16(struct req *r) { convert(r, TO16, 1); }
void api_v2_base16tobase62(struct req *r) { convert(r, TO62, 1); }
