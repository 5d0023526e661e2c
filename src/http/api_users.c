/* Active users (butlerd-api(7), active users; butlerd-api(7), Legacy /v2 routes): read from
 * the shared table the master keeps, or from Redis (butlerd(8), ACTIVE USERS). */
#include "api.h"
#include "http.h"
#include "redis_conn.h"
#include "users.h"

/* The view, or a 503 sent (Redis cannot be reached) and -1. */
static int view(struct req *r, struct users_view *v)
{
    if (users_view(v) == 0)
        return 0;
    users_view_free(v);
    http_reply_error(r, 503, NULL, "Active users unavailable: their Redis server cannot be "
                                   "reached, try again later");
    return -1;
}

static void reply_count(struct req *r, int bare)
{
    struct users_view v;
    if (view(r, &v) < 0)
        return;
    json_object *n = json_object_new_int64((int64_t)v.nusers);
    users_view_free(&v);
    if (bare) {
        http_reply_json(r, 200, n);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "response", n);
    http_reply_json(r, 200, o);
}

static void reply_list(struct req *r)
{
    struct users_view v;
    if (view(r, &v) < 0)
        return;
    http_reply_json(r, 200, users_view_json(&v));
    users_view_free(&v);
}

static void count_job(struct req *r) { reply_count(r, 0); }
static void v2_count_job(struct req *r) { reply_count(r, 1); }

/* On Redis a read waits for the network: it runs on a "store" job thread, so a
 * hung Redis holds up only these requests, not the worker's MHD thread (butlerd(8),
 * SEVERAL INSTANCES). The shared table answers at once, on the MHD thread. */
static void run(struct req *r, api_handler fn)
{
    if (redis_in_use())
        http_defer(r, fn);
    else
        fn(r);
}

void api_active_user_count(struct req *r) { run(r, count_job); }
void api_v2_active_user_count(struct req *r) { run(r, v2_count_job); }
void api_active_users(struct req *r) { run(r, reply_list); }
