/* The alert template context's field names, for the unknown-field warnings of
 * butlerd-templates(7), and the example context of a failed reload. */
#include "tmpl_fields.h"
#include "tmpl.h"
#include "util.h"

#include <string.h>

static const char *const top_fields[] = {
    "hostName", "user", "taskName", "taskId", "appName", "appId", "logTimeStamp", "logLevel",
    "logMessage", "executionId", "taskTags", "taskCustomProperties", "taskIsManuallyTriggered",
    "taskIsPartialReload", "taskMaxRetries", "taskSessionTimeout", "taskModifiedByUsername",
    "taskModifiedDate", "taskNextExecution", "appUrl", "appDescription", "appFileSize",
    "appLastSuccessfulReload", "appLastModifiedDate", "appLastModifiedByUserName",
    "appPublishTime", "appPublished", "appStreamName", "appTags", "appCustomProperties",
    "executingNodeName", "executionStatusNum", "executionStatusText", "executionDuration",
    "executionStartTime", "executionStopTime", "executionDetails",
    "executionDetailsConcatenated", "scriptLogAvailable", "scriptLogSize", "scriptLogSizeRows",
    "scriptLogSizeCharacters", "scriptLogHeadCount", "scriptLogTailCount", "scriptLogHead",
    "scriptLogTail", "qlikSenseQMC", "qlikSenseHub", "genericUrls", "appOwnerName",
    "appOwnerUserId", "appOwnerUserDirectory", "appOwnerEmail", NULL};

/* Fields whose value (or element) is an object with known members. */
static const struct {
    const char *field;
    const char *members[8];
} shapes[] = {
    {"genericUrls", {"id", "linkText", "comment", "url"}},
    {"executionDetails", {"timestampUTC", "timestampLocal1", "timestampLocal2", "timestampLocal3",
                          "timestampLocal4", "timestampLocal5", "message", "detailsType"}},
    {"appCustomProperties", {"name", "value"}},
    {"taskCustomProperties", {"name", "value"}},
    {"executionDuration", {"hours", "minutes", "seconds"}},
    {"executionStartTime", {"startTimeUTC", "startTimeLocal1", "startTimeLocal2",
                            "startTimeLocal3", "startTimeLocal4", "startTimeLocal5"}},
    {"executionStopTime", {"stopTimeUTC", "stopTimeLocal1", "stopTimeLocal2", "stopTimeLocal3",
                           "stopTimeLocal4", "stopTimeLocal5"}},
};
#define NSHAPES (sizeof shapes / sizeof *shapes)

static int in_list(const char *const *l, size_t n, const char *name)
{
    for (size_t i = 0; i < n && l[i]; i++)
        if (strcmp(l[i], name) == 0)
            return 1;
    return 0;
}

static int shape_of(const char *field)
{
    for (size_t i = 0; i < NSHAPES; i++)
        if (strcmp(shapes[i].field, field) == 0)
            return (int)i;
    return -1;
}

struct check {
    struct strlist *out;
    int added;
};

static void warn(struct check *c, int line, int col, const char *a, const char *b)
{
    strlist_add(c->out, xasprintf("%d:%d: warning: unknown field '%s%s%s'", line, col, a,
                                  b ? "." : "", b ? b : ""));
    c->added++;
}

static void on_ref(void *arg, int line, int col, const char *scope, const char *name,
                   const char *member)
{
    struct check *c = arg;
    if (!scope)
        return; /* inside something whose shape is not known */
    if (*scope) {
        int s = shape_of(scope);
        if (s >= 0 && strcmp(name, "length") != 0 && !in_list(shapes[s].members, 8, name))
            warn(c, line, col, name, NULL);
        return;
    }
    if (!in_list(top_fields, sizeof top_fields / sizeof *top_fields, name)) {
        warn(c, line, col, name, NULL);
        return;
    }
    int s = shape_of(name);
    /* a member of a field that is one object (not an array of them) */
    if (s >= 4 && member && strcmp(member, "length") != 0 &&
        !in_list(shapes[s].members, 8, member))
        warn(c, line, col, name, member);
}

int tmpl_fields_check(const struct tmpl *t, struct strlist *out)
{
    struct check c = {out, 0};
    tmpl_refs(t, on_ref, &c);
    return c.added;
}

/* butlerd-templates(7): the example context (the same text as
 * tests/blackbox/tmpl/context-example.json). */
const char tmpl_fields_example[] =
    "{\n"
    "  \"hostName\": \"sense1.acme.local\", \"user\": \"INTERNAL\\\\sa_scheduler\",\n"
    "  \"taskName\": \"Reload of Sales\", \"taskId\": \"e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e\",\n"
    "  \"appName\": \"Sales\", \"appId\": \"6c9e4a8b-2f1d-4e3a-9b7c-1d2e3f4a5b6c\",\n"
    "  \"logTimeStamp\": \"2026-11-22 23:49:53,123\", \"logLevel\": \"ERROR\", \"logMessage\": \"Max retries reached\",\n"
    "  \"executionId\": \"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\",\n"
    "  \"taskTags\": [\"Finance\"], \"taskCustomProperties\": [{\"name\": \"Butler_FailedAlertEnableEmail\", \"value\": \"Yes\"}],\n"
    "  \"taskIsManuallyTriggered\": false, \"taskIsPartialReload\": false, \"taskMaxRetries\": 0,\n"
    "  \"taskModifiedByUsername\": \"ACME\\\\anna\", \"taskModifiedDate\": \"2026-10-01T08:00:00.000Z\",\n"
    "  \"taskSessionTimeout\": 1440, \"taskNextExecution\": \"Never\",\n"
    "  \"appUrl\": \"https://sense.acme.local/sense/app/6c9e4a8b-2f1d-4e3a-9b7c-1d2e3f4a5b6c\",\n"
    "  \"appDescription\": \"Sales & margin <Q4>\", \"appFileSize\": 1048576,\n"
    "  \"appLastSuccessfulReload\": \"2026-11-21T22:50:01.000Z\", \"appLastModifiedDate\": \"2026-11-20T10:00:00.000Z\",\n"
    "  \"appLastModifiedByUserName\": \"ACME\\\\anna\", \"appPublishTime\": \"2026-01-15T09:00:00.000Z\",\n"
    "  \"appPublished\": true, \"appStreamName\": \"Everyone\",\n"
    "  \"appTags\": [\"Finance\", \"Nightly\"], \"appCustomProperties\": [{\"name\": \"Department\", \"value\": \"Sales\"}],\n"
    "  \"executingNodeName\": \"sense1\", \"executionStatusNum\": 8, \"executionStatusText\": \"FinishedFail\",\n"
    "  \"executionDuration\": {\"hours\": 0, \"minutes\": 1, \"seconds\": 43},\n"
    "  \"executionStartTime\": {\"startTimeUTC\": \"2026-11-22T22:48:10.000Z\", \"startTimeLocal1\": \"2026-11-22 23:48:10\",\n"
    "    \"startTimeLocal2\": \"11/22/2026, 11:48:10 PM\", \"startTimeLocal3\": \"Nov 22, 2026, 11:48:10 PM\",\n"
    "    \"startTimeLocal4\": \"November 22, 2026 at 11:48:10 PM GMT+1\", \"startTimeLocal5\": \"November 22, 2026 at 11:48:10 PM GMT+1\"},\n"
    "  \"executionStopTime\": {\"stopTimeUTC\": \"2026-11-22T22:49:53.000Z\", \"stopTimeLocal1\": \"2026-11-22 23:49:53\",\n"
    "    \"stopTimeLocal2\": \"11/22/2026, 11:49:53 PM\", \"stopTimeLocal3\": \"Nov 22, 2026, 11:49:53 PM\",\n"
    "    \"stopTimeLocal4\": \"November 22, 2026 at 11:49:53 PM GMT+1\", \"stopTimeLocal5\": \"November 22, 2026 at 11:49:53 PM GMT+1\"},\n"
    "  \"executionDetails\": [\n"
    "    {\"timestampUTC\": \"2026-11-22T22:48:10.010Z\", \"timestampLocal1\": \"2026-11-22 23:48:10\",\n"
    "     \"timestampLocal2\": \"11/22/2026, 11:48:10 PM\", \"timestampLocal3\": \"Nov 22, 2026, 11:48:10 PM\",\n"
    "     \"timestampLocal4\": \"November 22, 2026 at 11:48:10 PM GMT+1\", \"timestampLocal5\": \"November 22, 2026 at 11:48:10 PM GMT+1\",\n"
    "     \"message\": \"Changing task state from Triggered to Started\", \"detailsType\": 2},\n"
    "    {\"timestampUTC\": \"2026-11-22T22:49:53.000Z\", \"timestampLocal1\": \"2026-11-22 23:49:53\",\n"
    "     \"timestampLocal2\": \"11/22/2026, 11:49:53 PM\", \"timestampLocal3\": \"Nov 22, 2026, 11:49:53 PM\",\n"
    "     \"timestampLocal4\": \"November 22, 2026 at 11:49:53 PM GMT+1\", \"timestampLocal5\": \"November 22, 2026 at 11:49:53 PM GMT+1\",\n"
    "     \"message\": \"Changing task state from Started to FinishedFail\", \"detailsType\": 2}],\n"
    "  \"executionDetailsConcatenated\": \"2026-11-22T22:48:10.010Z\\tChanging task state from Triggered to Started\\n2026-11-22T22:49:53.000Z\\tChanging task state from Started to FinishedFail\\n\",\n"
    "  \"scriptLogAvailable\": true, \"scriptLogSize\": 234, \"scriptLogSizeRows\": 5, \"scriptLogSizeCharacters\": 234,\n"
    "  \"scriptLogHeadCount\": 15, \"scriptLogTailCount\": 15,\n"
    "  \"scriptLogHead\": \"2026-11-22 23:48:11 0001  LOAD * FROM [lib://Data/sales.qvd] (qvd);\\r\\n2026-11-22 23:49:52       Error: Cannot open file 'lib://Data/sales.qvd'\\r\\n2026-11-22 23:49:52       Execution Failed\\r\\n2026-11-22 23:49:53       Execution finished.\\r\\n\",\n"
    "  \"scriptLogTail\": \"2026-11-22 23:48:11 0001  LOAD * FROM [lib://Data/sales.qvd] (qvd);\\r\\n2026-11-22 23:49:52       Error: Cannot open file 'lib://Data/sales.qvd'\\r\\n2026-11-22 23:49:52       Execution Failed\\r\\n2026-11-22 23:49:53       Execution finished.\\r\\n\",\n"
    "  \"qlikSenseQMC\": \"https://sense.acme.local/qmc\", \"qlikSenseHub\": \"https://sense.acme.local/hub\",\n"
    "  \"genericUrls\": [{\"id\": \"runbook\", \"linkText\": \"Runbook\", \"comment\": \"Reload failure runbook\", \"url\": \"https://wiki.acme.local/qlik/runbook\"}],\n"
    "  \"appOwnerName\": \"Anna Berg\", \"appOwnerUserId\": \"anna\", \"appOwnerUserDirectory\": \"ACME\", \"appOwnerEmail\": \"anna.berg@acme.local\"\n"
    "}\n";
