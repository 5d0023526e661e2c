/* The start-task body (spec 3.1, src/api_task.c task_items_validate), as PUT/POST
 * /v4/reloadtask/:taskId/start and the MQTT start topic hand it over: parsed as
 * http.c parses bodies, then validated. A valid body yields an array whose typed
 * items have the payload members the start code reads. */
#include "task.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *in = fuzz_str(data, size);
    json_tokener *tok = json_tokener_new_ex(64);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *body = json_tokener_parse_ex(tok, in, (int)size + 1);
    int ok = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    if (!ok) {
        /* the MQTT start topic also takes a bare task ID: a string body */
        json_object_put(body);
        body = json_object_new_string_len(in, (int)size);
    }
    char *err = NULL;
    json_object *items = task_items_validate(body, 1000, &err);
    if (items) {
        FUZZ_ASSERT(err == NULL && json_object_is_type(items, json_type_array));
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            json_object *it = json_object_array_get_idx(items, i), *type, *p;
            FUZZ_ASSERT(json_object_is_type(it, json_type_object));
            if (!json_object_object_get_ex(it, "type", &type))
                continue;
            FUZZ_ASSERT(json_object_is_type(type, json_type_string));
            FUZZ_ASSERT(json_object_object_get_ex(it, "payload", &p) &&
                        json_object_is_type(p, json_type_object));
            const char *t = json_object_get_string(type);
            json_object *m;
            if (!strcmp(t, "starttaskid"))
                FUZZ_ASSERT(json_object_object_get_ex(p, "taskId", &m) &&
                            json_object_is_type(m, json_type_string));
            if (!strcmp(t, "starttasktag"))
                FUZZ_ASSERT(json_object_object_get_ex(p, "tag", &m) &&
                            json_object_is_type(m, json_type_string));
        }
        json_object_put(items);
    } else {
        FUZZ_ASSERT(err != NULL);
        free(err);
    }
    json_object_put(body);
    free(in);
    return 0;
}
