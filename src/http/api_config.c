/* GET /v4/configfile/endpointsenabled: the true flags, in file order. */
#include "api.h"
#include "cfg.h"
#include "http.h"

void api_endpointsenabled(struct req *r)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < r->cfg->ep_enabled.n; i++)
        json_object_array_add(a, json_object_new_string(r->cfg->ep_enabled.v[i]));
    http_reply_json(r, 200, a);
}
