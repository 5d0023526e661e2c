/* Route matching: exact /v4, case-insensitive /v2, methods, enable flags. */
#include "cfg.h"
#include "router.h"
#include "unit.h"

static const struct route *m(const char *method, const char *path)
{
    return router_match(method, path, strlen(path), NULL);
}

int main(void)
{
    CHECK(m("GET", "/v4/butlerping") != NULL);
    CHECK_STR(m("GET", "/v4/butlerping")->pattern, "/v4/butlerping");
    CHECK(m("GET", "/v4/ButlerPing") == NULL);   /* /v4 is case-sensitive */
    CHECK(m("GET", "/v4/butlerping/") == NULL);  /* no trailing-slash tolerance */
    CHECK(m("GET", "//v4/butlerping") == NULL);  /* repeated slashes are not collapsed */
    CHECK(m("GET", "/v4//butlerping") == NULL);
    CHECK(m("POST", "/v4/butlerping") == NULL);
    CHECK(m("GET", "/v4/butlerpingx") == NULL);
    CHECK(m("GET", "/v4") == NULL);
    CHECK(m("GET", "") == NULL);
    CHECK(m("GET", "/v2/butlerping") != NULL);   /* /v2 is case-insensitive */
    CHECK(m("GET", "/V2/BUTLERPING") != NULL);
    CHECK(m("GET", "/v2/base16tobase62") != NULL);
    CHECK(m("GET", "/v2/butlerPing/") == NULL);
    CHECK(m("GET", "/v4/configfile/endpointsenabled") != NULL);
    CHECK(m("GET", "/v4/configfile") == NULL);

    /* the path handed to the router excludes the query string */
    const char *t = "/v4/base62tobase16?base62=1";
    CHECK(router_match("GET", t, 18, NULL) != NULL);

    /* enable flags: REST on, the endpoint's flag, and for /v2 the v2Api switch */
    struct cfg c;
    memset(&c, 0, sizeof c);
    const struct route *ping = m("GET", "/v4/butlerping"), *v2 = m("GET", "/v2/butlerPing");
    CHECK(!router_enabled(ping, &c));
    c.rest.enable = 1;
    CHECK(!router_enabled(ping, &c));
    c.ep.butlerping = 1;
    CHECK(router_enabled(ping, &c));
    CHECK(!router_enabled(v2, &c));
    c.v2Enable = 1;
    CHECK(router_enabled(v2, &c));
    c.rest.enable = 0;
    CHECK(!router_enabled(v2, &c));

    /* scheduler routes: a static segment wins over :scheduleId; the flag and
     * Butler.scheduler.enable are both needed */
    CHECK_STR(m("PUT", "/v4/schedules/startall")->pattern, "/v4/schedules/startall");
    CHECK_STR(m("PUT", "/v4/schedules/stopall")->pattern, "/v4/schedules/stopall");
    CHECK_STR(m("PUT", "/v4/schedules/abc/start")->pattern, "/v4/schedules/:scheduleId/start");
    CHECK_STR(m("PUT", "/v4/schedules//start")->pattern, "/v4/schedules/:scheduleId/start");
    CHECK_STR(m("GET", "/v4/schedules/status")->pattern, "/v4/schedules/status");
    CHECK(m("GET", "/v4/schedules/abc") == NULL);
    CHECK_STR(m("DELETE", "/v4/schedules/status")->pattern, "/v4/schedules/:scheduleId");
    const struct route *st = m("GET", "/v4/schedules/status");
    c.rest.enable = 1;
    c.ep.schedStatusAll = 1;
    CHECK(!router_enabled(st, &c));
    c.scheduler.enable = 1;
    CHECK(router_enabled(st, &c));
    c.ep.schedStatusAll = 0;
    CHECK(!router_enabled(st, &c));
    return UNIT_DONE();
}
