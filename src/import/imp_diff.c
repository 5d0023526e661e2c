/* One row per difference: the keys that must be true for it to matter, and what
 * changes. The texts follow butlerd-api(7), "Deliberate differences from Butler". */
#include "imp_diff.h"

#include <string.h>

struct diff {
    const char *when, *also; /* both must be true (also may be NULL) */
    const char *text;
};

static const struct diff diffs[] = {
    {"restServerConfig.enable", NULL,
     "REST rate limit: Butler allowed 100 requests a minute shared by all clients and could "
     "not turn it off; butlerd limits each client on its own and only when "
     "butlerd.rateLimit.enable is true (written false)"},
    {"restServerConfig.enable", NULL,
     "one HTTP listener on serverPort (no proxy, no 10-second proxy timeout); every JSON "
     "answer is application/json"},
    {"startTaskFilter.enable", "mqttConfig.enable",
     "the start-task filter now applies to tasks started over MQTT (taskStartTopic) too; "
     "Butler applied it to REST starts only"},
    {"startTaskFilter.enable", NULL,
     "task IDs are accepted in any letter case and compared in lower case"},
    {"scheduler.enable", NULL,
     "schedules: the schedule file is JSON, cron months are numbered 1-12 (Butler: 0-11), "
     "time zones are honoured and invalid cron expressions are refused; convert the file "
     "with butlerd-import --schedules"},
    {"restServerEndpointsEnable.senseStartTask", NULL,
     "start task: each task is started at most once per request and listed as started only "
     "after QRS accepted it; failures are listed under tasksFailed"},
    {"restServerEndpointsEnable.fileCopy", NULL,
     "file copy: a missing source answers 400 and an existing destination with "
     "overwrite=false answers 409 (Butler: 200 and 201)"},
    {"restServerEndpointsEnable.fileMove", NULL,
     "file move: an existing destination with overwrite=false answers 409; a directory is "
     "never replaced"},
    {"restServerEndpointsEnable.fileDelete", NULL,
     "file delete: a directory is refused with 400 (Butler deleted it recursively)"},
    {"restServerEndpointsEnable.keyValueStore", NULL,
     "key-value store: maxKeysPerNamespace is enforced (507), a POST without value answers "
     "400, GET shows the ttl left"},
    {"restServerEndpointsEnable.mqttPublishMessage", NULL,
     "MQTT publish endpoint: answers 503 when MQTT is off or not connected"},
    {"restServerEndpointsEnable.slackPostMessage", NULL,
     "Slack post: Slack's errors are passed on as 502; messages use markdown"},
    {"restServerEndpointsEnable.newRelic.postNewRelicEvent", NULL,
     "New Relic: 202 with a JSON body, every destination account posted, failures 502"},
    {"restServerEndpointsEnable.newRelic.postNewRelicMetric", NULL,
     "New Relic: 202 with a JSON body, every destination account posted, failures 502"},
    {"mqttConfig.enable", NULL,
     "MQTT: event publications are dropped while the broker is away; credentials and TLS "
     "for a standard broker go under butlerd.mqtt"},
    {"udpServerConfig.enable", NULL,
     "UDP: both success-message spellings are accepted and a ';' in the log message no "
     "longer drops the event"},
    {"scheduler.enable", NULL,
     "scheduler routes exist only while scheduler.enable is true"},
};

static const struct imp_node *at(const struct imp_node *m, const char *path)
{
    char buf[256], *save;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = strtok_r(buf, ".", &save); p && m; p = strtok_r(NULL, ".", &save))
        m = imp_map_get(m, p);
    return m;
}

int imp_diff_true(const struct imp_node *butler, const char *path)
{
    int b = 0;
    return imp_scalar_bool(at(butler, path), &b) == 0 && b;
}

void imp_diff_report(const struct imp_node *butler, struct imp_report *rep)
{
    for (size_t i = 0; i < sizeof diffs / sizeof diffs[0]; i++) {
        const struct diff *d = &diffs[i];
        if (!imp_diff_true(butler, d->when) || (d->also && !imp_diff_true(butler, d->also)))
            continue;
        if (!imp_report_has(rep, IR_DIFF, d->text))
            imp_report_add(rep, IR_DIFF, "%s", d->text);
    }
}
