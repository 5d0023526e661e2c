/* Configuration loading: defaults, types, bounds, unknown keys, file:line errors. */
#include "cfg.h"
#include "cfg_fixture.h"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    struct cfg_msgs m;
    struct cfg *c;

    /* an empty file is not a configuration (it would turn everything off) */
    c = load("", &m);
    CHECK(c == NULL);
    CHECK(has(&m.errors, 0, "no \"Butler\" group"));
    cfg_msgs_free(&m);

    /* an empty Butler group: every default */
    c = load("Butler = { };\n", &m);
    CHECK(c != NULL);
    if (c) {
        CHECK(!c->rest.enable);
        CHECK_STR(c->rest.serverHost, "127.0.0.1");
        CHECK(c->rest.serverPort == 8080);
        CHECK(c->http.maxBodyBytes == 1048576);
        CHECK(c->http.keepAliveTimeout == 72);
        CHECK(c->v2Enable);
        CHECK(c->udp.dedupEnable);
        CHECK(c->kvs.maxKeysPerNamespace == 1000);
        CHECK_STR(c->mqtt.taskStartTopic, "qliksense/start_task");
        CHECK_STR(c->shm.name, "/butlerd");
        CHECK(c->ep_enabled.n == 0);
    }
    cfg_free(c);
    cfg_msgs_free(&m);

    /* values, nesting, lists in both spellings, int64, endpoint order */
    c = load("Butler = {\n"
             "  restServerConfig = { enable = true; serverPort = 9090L; };\n"
             "  restServerEndpointsEnable = { butlerping = true; scheduler = { getSchedule = "
             "true; stopSchedule = false; }; base62ToBase16 = true; };\n"
             "  startTaskFilter = { allowTask = { taskId = ( ); tag = [ \"a\", \"b\" ];\n"
             "    customProperty = ( { name = \"p\"; value = \"v\"; } ); }; };\n"
             "  thirdPartyToolsCredentials = { newRelic = ( { accountName = \"x\"; "
             "insertApiKey = \"k\"; accountId = 123; } ); };\n"
             "  heartbeat = { enable = true; };\n"
             "};\n"
             "butlerd = { workers = 3; http = { maxBodyBytes = 1000; }; };\n",
             &m);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->rest.enable && c->rest.serverPort == 9090);
        CHECK(c->ep.butlerping && c->ep.schedGet && !c->ep.schedStop && c->ep.base62ToBase16);
        CHECK(c->ep_enabled.n == 3);
        if (c->ep_enabled.n == 3) {
            CHECK_STR(c->ep_enabled.v[0], "butlerping");
            CHECK_STR(c->ep_enabled.v[1], "getSchedule");
            CHECK_STR(c->ep_enabled.v[2], "base62ToBase16");
        }
        CHECK(c->startTaskFilter.taskId.n == 0 && c->startTaskFilter.tag.n == 2);
        CHECK(c->startTaskFilter.customProperty.n == 1);
        CHECK(c->nrCredentials.n == 1);
        if (c->nrCredentials.n == 1)
            CHECK_STR(c->nrCredentials.v[0].m[2], "123");
        CHECK(c->workers == 3 && c->http.maxBodyBytes == 1000);
    }
    CHECK(has(&m.infos, 7, "Butler.heartbeat is not used by butlerd")); /* info, not error */
    cfg_free(c);
    cfg_msgs_free(&m);

    /* every error is reported, with its line */
    c = load("Butler = {\n"
             "  restServerConfig = { serverPort = 70000; };\n"
             "  logLevel = 3;\n"
             "  restServerEndpointsEnable = { butlerping = \"yes\"; };\n"
             "  startTaskFilter = { allowTask = { tag = [ 1, 2 ]; }; };\n"
             "};\n"
             "butlerd = {\n"
             "  bogus = 1;\n"
             "  http = { maxBodyBytes = 1.5; };\n"
             "};\n"
             "other = 1;\n",
             &m);
    CHECK(c == NULL);
    CHECK(has(&m.errors, 2, "serverPort = 70000 is out of range"));
    CHECK(has(&m.errors, 3, "Butler.logLevel must be a string"));
    CHECK(has(&m.errors, 4, "butlerping must be a boolean"));
    CHECK(has(&m.errors, 5, "tag[0] must be a string"));
    CHECK(has(&m.errors, 8, "unknown key butlerd.bogus"));
    CHECK(has(&m.errors, 9, "maxBodyBytes must be an integer"));
    CHECK(has(&m.errors, 11, "unknown top-level setting other"));
    CHECK(m.errors.n == 8);
    cfg_free(c);
    cfg_msgs_free(&m);

    /* syntax error carries file:line */
    c = load("Butler = {\n restServerConfig = { enable = true \n};\n", &m);
    CHECK(c == NULL);
    CHECK(m.errors.n == 1 && strstr(m.errors.v[0], "/tmp/butlerd-test-cfg-"));
    CHECK(has(&m.errors, 0, "syntax error"));
    cfg_free(c);
    cfg_msgs_free(&m);

    /* semantic checks */
    c = load("Butler = { logLevel = \"loud\"; mqttConfig = { enable = true; };\n"
             "  configQRS = { authentication = \"header\"; }; };\n"
             "butlerd = { logging = { destination = \"file\"; }; shm = { name = \"x\"; }; };\n",
             &m);
    CHECK(c == NULL);
    CHECK(has(&m.errors, 1, "Butler.logLevel \"loud\""));
    CHECK(has(&m.errors, 1, "brokerHost is empty"));
    CHECK(has(&m.errors, 2, "authentication \"header\" is not supported"));
    CHECK(has(&m.errors, 3, "butlerd.logging.file is empty"));
    CHECK(has(&m.errors, 3, "butlerd.shm.name"));
    cfg_free(c);
    cfg_msgs_free(&m);

    /* warnings do not stop loading */
    c = load("Butler = { startTaskFilter = { allowTask = { taskId = [ \"nope\" ]; }; };\n"
             " restServerEndpointsEnable = { slackPostMessage = true; }; };\n",
             &m);
    CHECK(c != NULL);
    CHECK(has(&m.warnings, 1, "\"nope\" is not a valid task ID"));
    CHECK(has(&m.warnings, 2, "webhookURL is empty"));
    cfg_free(c);
    cfg_msgs_free(&m);

    /* restart-only keys keep their old value on reload */
    struct cfg *a = load("Butler = { restServerConfig = { serverPort = 1000; }; };", &m);
    cfg_msgs_free(&m);
    struct cfg *b = load("Butler = { restServerConfig = { serverPort = 2000; }; "
                         "restServerEndpointsEnable = { butlerping = true; }; };", &m);
    cfg_msgs_free(&m);
    struct strlist changed = {0};
    CHECK(a && b);
    if (a && b) {
        cfg_keep_restart_keys(a, b, &changed);
        CHECK(b->rest.serverPort == 1000 && b->ep.butlerping);
        CHECK(changed.n == 1 && !strcmp(changed.v[0], "Butler.restServerConfig.serverPort"));
    }
    strlist_free(&changed);
    cfg_free(a);
    cfg_free(b);

    /* missing file */
    memset(&m, 0, sizeof m);
    CHECK(cfg_load("/nonexistent/butlerd.conf", &m) == NULL);
    CHECK(has(&m.errors, 0, "cannot read configuration file"));
    cfg_msgs_free(&m);
    return UNIT_DONE();
}
