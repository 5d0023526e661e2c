/* The key table of butlerd-import: every Butler key butlerd reads, with its type,
 * and the Butler sections butlerd accepts and ignores, with the reason
 * (butlerd.conf(5), "Butler keys that are accepted and ignored"). First match wins,
 * so specific entries come before the wildcards that cover their siblings. */
#include "imp_keys.h"

#include <string.h>
#include <strings.h>

#define G(p) {p, IK_GROUP, IS_MAPPED, NULL}
#define B(p) {p, IK_BOOL, IS_MAPPED, NULL}
#define I(p) {p, IK_INT, IS_MAPPED, NULL}
#define S(p) {p, IK_STR, IS_MAPPED, NULL}
#define L(p) {p, IK_STRLIST, IS_MAPPED, NULL}
#define T(p, m) {p, IK_TUPLES, IS_MAPPED, m}
#define X(p, why) {p, IK_ANY, IS_IGNORED, why}
#define A(p) {p, IK_ANY, IS_ALERT, NULL}

#define SCOPE "feature out of scope"
#define NV "name,value"

static const struct imp_key keys[] = {
    S("logLevel"),
    X("fileLogging", "replaced by butlerd.logging.destination and butlerd.logging.file"),
    X("logDirectory", "replaced by butlerd.logging.destination and butlerd.logging.file"),
    X("anonTelemetry", SCOPE " (telemetry)"),
    X("systemInfo", SCOPE " (system information)"),
    X("configVisualisation", SCOPE " (configuration visualisation page)"),
    X("heartbeat", SCOPE " (heartbeat)"),
    X("dockerHealthCheck", "replaced by butlerd's own process supervision (systemd)"),
    X("uptimeMonitor", SCOPE " (uptime monitor)"),
    X("influxDb", SCOPE " (InfluxDB)"),
    X("scriptLog", SCOPE " (script log storage)"),
    X("qlikSenseVersion", SCOPE " (version monitor)"),
    X("qlikSenseLicense", SCOPE " (licence monitor)"),
    X("incidentTool", SCOPE " (Signl4, New Relic incidents)"),
    X("serviceMonitor", "Windows-only (monitors Windows services)"),
    X("qlikSenseCloud", SCOPE " (Qlik Cloud)"),
    X("restServerApiDocGenerate", SCOPE " (API documentation generator)"),
    /* out-of-scope parts of the alert groups (notifications: configuration) */
    X("*.serviceStopped", SCOPE " (service monitor alerts)"),
    X("*.serviceStarted", SCOPE " (service monitor alerts)"),
    X("*.serviceMonitor", SCOPE " (service monitor alerts)"),
    X("*.distributeTaskSuccess", SCOPE " (distribute tasks)"),
    X("*.distributeTaskFailure", SCOPE " (distribute tasks)"),
    X("*.preloadTaskSuccess", SCOPE " (preload tasks)"),
    X("*.preloadTaskFailure", SCOPE " (preload tasks)"),
    X("*.qlikSenseServerLicenseMonitor", SCOPE " (licence monitor)"),
    X("*.qlikSenseServerLicenseExpiryAlert", SCOPE " (licence monitor)"),
    A("qlikSenseUrls"),
    A("genericUrls"),
    A("emailNotification"),
    A("teamsNotification"),
    A("webhookNotification"),

    G("restServerConfig"),
    B("restServerConfig.enable"),
    S("restServerConfig.serverHost"),
    I("restServerConfig.serverPort"),
    X("restServerConfig.backgroundServerPort", "replaced: butlerd has one listener, serverPort"),
    G("restServerConfig.tls"),
    B("restServerConfig.tls.enable"),
    S("restServerConfig.tls.cert"),
    S("restServerConfig.tls.key"),
    S("restServerConfig.tls.ca"),

    G("restServerEndpointsEnable"),
    G("restServerEndpointsEnable.newRelic"),
    B("restServerEndpointsEnable.newRelic.postNewRelicMetric"),
    B("restServerEndpointsEnable.newRelic.postNewRelicEvent"),
    G("restServerEndpointsEnable.scheduler"),
    B("restServerEndpointsEnable.scheduler.createNewSchedule"),
    B("restServerEndpointsEnable.scheduler.getSchedule"),
    B("restServerEndpointsEnable.scheduler.getScheduleStatusAll"),
    B("restServerEndpointsEnable.scheduler.updateSchedule"),
    B("restServerEndpointsEnable.scheduler.deleteSchedule"),
    B("restServerEndpointsEnable.scheduler.startSchedule"),
    B("restServerEndpointsEnable.scheduler.stopSchedule"),
    B("restServerEndpointsEnable.apiListEnabledEndpoints"),
    B("restServerEndpointsEnable.activeUserCount"),
    B("restServerEndpointsEnable.activeUsers"),
    B("restServerEndpointsEnable.base62ToBase16"),
    B("restServerEndpointsEnable.base16ToBase62"),
    B("restServerEndpointsEnable.butlerping"),
    B("restServerEndpointsEnable.createDir"),
    B("restServerEndpointsEnable.createDirQVD"),
    B("restServerEndpointsEnable.fileDelete"),
    B("restServerEndpointsEnable.fileMove"),
    B("restServerEndpointsEnable.fileCopy"),
    B("restServerEndpointsEnable.keyValueStore"),
    B("restServerEndpointsEnable.mqttPublishMessage"),
    B("restServerEndpointsEnable.senseAppReload"),
    B("restServerEndpointsEnable.senseAppDump"),
    B("restServerEndpointsEnable.senseListApps"),
    B("restServerEndpointsEnable.senseStartTask"),
    B("restServerEndpointsEnable.slackPostMessage"),

    G("restServerEndpointsConfig"),
    G("restServerEndpointsConfig.newRelic"),
    G("restServerEndpointsConfig.newRelic.*"),
    L("restServerEndpointsConfig.newRelic.*.destinationAccount"),
    S("restServerEndpointsConfig.newRelic.*.url"),
    T("restServerEndpointsConfig.newRelic.*.header", NV),
    G("restServerEndpointsConfig.newRelic.*.attribute"),
    T("restServerEndpointsConfig.newRelic.*.attribute.static", NV),
    X("restServerEndpointsConfig.newRelic.*.attribute.dynamic", SCOPE " (dynamic attributes)"),

    G("thirdPartyToolsCredentials"),
    T("thirdPartyToolsCredentials.newRelic", "accountName,insertApiKey,accountId"),
    X("thirdPartyToolsCredentials.*", SCOPE " (only the New Relic credentials are used)"),

    G("startTaskFilter"),
    B("startTaskFilter.enable"),
    G("startTaskFilter.allowTask"),
    L("startTaskFilter.allowTask.taskId"),
    L("startTaskFilter.allowTask.tag"),
    T("startTaskFilter.allowTask.customProperty", NV),

    T("fileCopyApprovedDirectories", "fromDirectory,toDirectory"),
    T("fileMoveApprovedDirectories", "fromDirectory,toDirectory"),
    L("fileDeleteApprovedDirectories"),
    G("configDirectories"),
    S("configDirectories.qvdPath"),
    G("keyValueStore"),
    B("keyValueStore.enable"),
    I("keyValueStore.maxKeysPerNamespace"),
    G("scheduler"),
    B("scheduler.enable"),
    S("scheduler.configfile"),

    G("mqttConfig"),
    B("mqttConfig.enable"),
    S("mqttConfig.brokerHost"),
    I("mqttConfig.brokerPort"),
    G("mqttConfig.azureEventGrid"),
    B("mqttConfig.azureEventGrid.enable"),
    S("mqttConfig.azureEventGrid.clientId"),
    S("mqttConfig.azureEventGrid.clientCertFile"),
    S("mqttConfig.azureEventGrid.clientKeyFile"),
    B("mqttConfig.taskFailureSendFull"),
    B("mqttConfig.taskAbortedSendFull"),
    S("mqttConfig.subscriptionRootTopic"),
    S("mqttConfig.taskStartTopic"),
    S("mqttConfig.taskFailureTopic"),
    S("mqttConfig.taskFailureFullTopic"),
    S("mqttConfig.taskFailureServerStatusTopic"),
    S("mqttConfig.taskAbortedTopic"),
    S("mqttConfig.taskAbortedFullTopic"),
    S("mqttConfig.sessionStartTopic"),
    S("mqttConfig.sessionStopTopic"),
    S("mqttConfig.connectionOpenTopic"),
    S("mqttConfig.connectionCloseTopic"),
    S("mqttConfig.sessionServerStatusTopic"),
    S("mqttConfig.activeUserCountTopic"),
    S("mqttConfig.activeUsersTopic"),
    X("mqttConfig.serviceRunningTopic", SCOPE " (service monitor)"),
    X("mqttConfig.serviceStoppedTopic", SCOPE " (service monitor)"),
    X("mqttConfig.serviceStatusTopic", SCOPE " (service monitor)"),
    X("mqttConfig.qlikSenseServerLicenseTopic", SCOPE " (licence monitor)"),
    X("mqttConfig.qlikSenseServerLicenseExpireTopic", SCOPE " (licence monitor)"),
    X("mqttConfig.qlikSenseCloud", SCOPE " (Qlik Cloud)"),

    G("udpServerConfig"),
    B("udpServerConfig.enable"),
    S("udpServerConfig.serverHost"),
    I("udpServerConfig.portTaskFailure"),
    I("udpServerConfig.portSessionConnectionEvents"),
    I("udpServerConfig.maxMessageSize"),
    B("udpServerConfig.enableSourceValidation"),
    L("udpServerConfig.allowedSources"),
    G("udpServerConfig.messageQueue"),
    I("udpServerConfig.messageQueue.maxConcurrent"),
    I("udpServerConfig.messageQueue.maxSize"),
    I("udpServerConfig.messageQueue.backpressureThreshold"),
    G("udpServerConfig.rateLimit"),
    B("udpServerConfig.rateLimit.enable"),
    I("udpServerConfig.rateLimit.maxMessagesPerMinute"),
    G("udpServerConfig.deduplication"),
    B("udpServerConfig.deduplication.enable"),
    I("udpServerConfig.deduplication.ttlMinutes"),
    X("udpServerConfig.queueMetrics", SCOPE " (queue metrics go to InfluxDB)"),

    G("slackNotification"),
    G("slackNotification.restMessage"),
    S("slackNotification.restMessage.webhookURL"),
    {"slackNotification.enable", IK_ANY, IS_ALERT, NULL},
    A("slackNotification.reloadTaskFailure"),
    A("slackNotification.reloadTaskAborted"),
    X("slackNotification.*", SCOPE " (service monitor alerts)"),

    G("cert"),
    S("cert.clientCert"),
    S("cert.clientCertKey"),
    S("cert.clientCertCA"),

    G("configEngine"),
    X("configEngine.engineVersion", "not needed: butlerd talks to any engine version"),
    S("configEngine.host"),
    I("configEngine.port"),
    B("configEngine.useSSL"),
    G("configEngine.headers"),
    T("configEngine.headers.static", NV),
    B("configEngine.rejectUnauthorized"),

    G("configQRS"),
    S("configQRS.authentication"),
    S("configQRS.host"),
    I("configQRS.port"),
    B("configQRS.useSSL"),
    G("configQRS.headers"),
    T("configQRS.headers.static", NV),
    B("configQRS.rejectUnauthorized"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Does PATTERN (with "*" segments) match PATH exactly? */
static int match(const char *pat, const char *path)
{
    while (*pat && *path) {
        if (*pat == '*') {
            pat++;
            while (*path && *path != '.')
                path++;
            continue;
        }
        if (*pat != *path)
            return 0;
        pat++, path++;
    }
    return !*pat && !*path;
}

const struct imp_key *imp_key_find(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (match(keys[i].path, path))
            return &keys[i];
    return NULL;
}

int imp_key_secret(const char *name)
{
    static const char *const words[] = {"password", "passwd", "secret", "token",
                                        "apikey", "webhookurl", "insertapikey", "apitoken"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]), l = strlen(name);
        for (size_t j = 0; j + n <= l; j++)
            if (!strncasecmp(name + j, words[i], n))
                return 1;
    }
    return 0;
}

int imp_key_name_ok(const char *name)
{
    const char *p = name;
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '*'))
        return 0;
    for (p++; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '*'))
            return 0;
    return 1;
}
