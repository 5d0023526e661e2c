/* Body and query validation with Butler's coercion (src/params.c sch_check and
 * sch_coerce). The route schemas are static inside the api_*.c handlers, so the
 * ones below are copies of them (every type, required and optional properties, an
 * enum and a length limit). Input: one byte choosing the schema and the source,
 * then a JSON body (parsed exactly as http.c does: strict, UTF-8 checked, trailing
 * white space only) or a raw query string (qs_parse, as http_query does). */
#include "query.h"
#include "pct.h"
#include "schema.h"
#include "fuzz.h"

#define END {NULL, 0, 0, 0, NULL}
static const char *const item_types[] = {"starttaskid", "starttasktag",
                                         "starttaskcustomproperty", "keyvaluestore", NULL};
static const struct sch_prop kv_body[] = {{"key", SCH_STRING, 0, 0, NULL},
                                          {"value", SCH_STRING, 0, 0, NULL},
                                          {"ttl", SCH_NUMBER, 0, 0, NULL}, END};
static const struct sch_prop mqtt_body[] = {{"topic", SCH_STRING, 1, 0, NULL},
                                            {"message", SCH_STRING, 1, 0, NULL},
                                            {"qos", SCH_INTEGER, 0, 0, NULL},
                                            {"retain", SCH_BOOLEAN, 0, 0, NULL}, END};
static const struct sch_prop copy_body[] = {{"fromFile", SCH_STRING, 0, 0, NULL},
                                            {"toFile", SCH_STRING, 0, 0, NULL},
                                            {"overwrite", SCH_BOOLEAN, 0, 0, NULL},
                                            {"preserveTimestamp", SCH_BOOLEAN, 0, 0, NULL}, END};
static const struct sch_prop reload_body[] = {{"reloadMode", SCH_INTEGER, 0, 0, NULL},
                                              {"partialReload", SCH_BOOLEAN, 0, 0, NULL},
                                              {"startQSEoWTaskOnSuccess", SCH_ARRAY, 0, 0, NULL},
                                              {"startQSEoWTaskOnFailure", SCH_ARRAY, 0, 0, NULL},
                                              END};
static const struct sch_prop slack_body[] = {{"channel", SCH_STRING, 1, 0, NULL},
                                             {"from_user", SCH_STRING, 1, 0, NULL},
                                             {"msg", SCH_STRING, 1, 0, NULL},
                                             {"emoji", SCH_STRING, 0, 0, NULL}, END};
static const struct sch_prop item_body[] = {{"type", SCH_STRING, 0, 0, item_types},
                                            {"payload", SCH_OBJECT, 1, 0, NULL},
                                            {"name", SCH_STRING, 0, 8, NULL}, END};
static const struct sch_prop task_query[] = {{"allTaskIdsMustExist", SCH_BOOLEAN, 0, 0, NULL},
                                             END};
static const struct sch_prop key_query[] = {{"key", SCH_STRING, 1, 0, NULL}, END};
static const struct sch_prop *const schemas[] = {kv_body,    mqtt_body, copy_body,
                                                 reload_body, slack_body, item_body,
                                                 task_query, key_query};
#define NSCHEMAS (sizeof schemas / sizeof schemas[0])

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    return 0;
}

static json_object *parse_body(const char *p, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, p, (int)len + 1);
    size_t used = json_tokener_get_parse_end(tok);
    int bad = json_tokener_get_error(tok) != json_tokener_success;
    for (size_t i = used; !bad && i < len; i++)
        if (!strchr(" \t\r\n", p[i]))
            bad = 1;
    json_tokener_free(tok);
    if (bad) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    unsigned sel = data[0];
    const struct sch_prop *props = schemas[(sel & 0x7f) % NSCHEMAS];
    char *in = fuzz_str(data + 1, size - 1);
    json_object *o = sel & 0x80 ? qs_parse(in, size - 1) : parse_body(in, size - 1);
    if (o) {
        /* every coercion of the value itself, as task items and ttl use it */
        for (int t = SCH_STRING; t <= SCH_OBJECT; t++)
            json_object_put(sch_coerce(o, (enum sch_type)t));
        if (json_object_is_type(o, json_type_object)) {
            char *err = NULL;
            int rc = sch_check(o, sel & 0x80 ? "querystring" : "body", props, &err);
            FUZZ_ASSERT(rc == 0 ? err == NULL : err != NULL);
            if (rc == 0) {
                /* after a successful check every property present has its type */
                for (const struct sch_prop *p = props; p->name; p++) {
                    json_object *v;
                    if (!json_object_object_get_ex(o, p->name, &v))
                        continue;
                    static const enum json_type want[] = {json_type_string, json_type_double,
                                                          json_type_int, json_type_boolean,
                                                          json_type_array, json_type_object};
                    enum json_type vt = json_object_get_type(v);
                    if (p->type == SCH_NUMBER || p->type == SCH_INTEGER)
                        FUZZ_ASSERT(vt == json_type_int || vt == json_type_double);
                    else
                        FUZZ_ASSERT(vt == want[p->type]);
                }
                (void)json_object_to_json_string(o);
            }
            free(err);
        }
        json_object_put(o);
    }
    free(in);
    return 0;
}
