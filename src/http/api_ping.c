/* GET /v4/butlerping and GET /v2/butlerPing. */
#include "api.h"
#include "butlerd.h"
#include "http.h"

void api_ping(struct req *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "response", json_object_new_string("Butler reporting for duty"));
    json_object_object_add(o, "butlerVersion", json_object_new_string(BUTLERD_VERSION));
    http_reply_json(r, 200, o);
}

void api_v2_ping(struct req *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "response", json_object_new_string("Butler reporting for duty"));
    http_reply_json(r, 200, o);
}
