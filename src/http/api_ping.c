/* GET /v4/butlerping and GET /v2/butlerPing. The replies never change: they are
 * written out here and built once per worker (http_reply_static). */
#include "api.h"
#include "butlerd.h"
#include "http.h"

static const char ping_v4[] =
    "{\"response\":\"Butler reporting for duty\",\"butlerVersion\":\"" BUTLERD_VERSION "\"}";
static const char ping_v2[] = "{\"response\":\"Butler reporting for duty\"}";

void api_ping(struct req *r) { http_reply_static(r, 200, ping_v4, sizeof ping_v4 - 1); }

void api_v2_ping(struct req *r) { http_reply_static(r, 200, ping_v2, sizeof ping_v2 - 1); }
