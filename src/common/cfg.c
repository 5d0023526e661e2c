/* Configuration. The key table below is the only list of keys butlerd knows: loading,
 * defaults, type checks, bounds and the restart-needed check all walk it. The file is
 * parsed into a fresh struct cfg; the caller swaps it in only if cfg_load() succeeds. */
#include "cfg.h"
#include "butlerd.h"
#include "guid.h"
#include "log.h"
#include "mailaddr.h"
#include "notify_check.h"
#include "scope.h"
#include "shm_layout.h"
#include "utf8.h"
#include "util.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

enum ktype { KT_BOOL, KT_INT, KT_STR, KT_STRLIST, KT_TUPLES, KT_IDENTS };

#define K_RESTART 1u /* not applied on reload: needs a restart */

struct key {
    const char *path;
    enum ktype type;
    size_t off;
    long long def;        /* bool/int default */
    const char *defstr;   /* string default */
    long long min, max;   /* int bounds */
    unsigned flags;
    const char *members;  /* KT_TUPLES: comma-separated member names, at most
                           * CFG_TUPLE_MAX; "?name" optional, "a.b" in group a */
};

#define O(f) offsetof(struct cfg, f)
#define B(p, f, d) {p, KT_BOOL, O(f), d, NULL, 0, 0, 0, NULL}
#define BR(p, f, d) {p, KT_BOOL, O(f), d, NULL, 0, 0, K_RESTART, NULL}
#define I(p, f, d, lo, hi) {p, KT_INT, O(f), d, NULL, lo, hi, 0, NULL}
#define IR(p, f, d, lo, hi) {p, KT_INT, O(f), d, NULL, lo, hi, K_RESTART, NULL}
#define S(p, f, d) {p, KT_STR, O(f), 0, d, 0, 0, 0, NULL}
#define SR(p, f, d) {p, KT_STR, O(f), 0, d, 0, 0, K_RESTART, NULL}
#define L(p, f) {p, KT_STRLIST, O(f), 0, NULL, 0, 0, 0, NULL}
#define LR(p, f) {p, KT_STRLIST, O(f), 0, NULL, 0, 0, K_RESTART, NULL}
#define T(p, f, m) {p, KT_TUPLES, O(f), 0, NULL, 0, 0, 0, m}
/* A list of identities: m is "token" (name, sha256) or "certificate" (subject). */
#define ID(p, f, m) {p, KT_IDENTS, O(f), 0, NULL, 0, 0, 0, m}

#define EP "Butler.restServerEndpointsEnable."
#define NR "Butler.restServerEndpointsConfig.newRelic."
#define MQ "Butler.mqttConfig."
#define UDP "Butler.udpServerConfig."
#define EM "Butler.emailNotification."

/* The keys of one e-mail kind (butlerd.conf(5), E-mail alerts); W is the word in the
 * default subject and custom property names. */
#define EMAIL_KIND(KN, N, W, WC)                                                          \
    B(EM KN ".enable", email.kind[N].enable, 0),                                          \
    I(EM KN ".rateLimit", email.kind[N].rateLimit, 300, 0, INT_MAX),                      \
    I(EM KN ".headScriptLogLines", email.kind[N].headScriptLogLines, 15, 0, 10000),       \
    I(EM KN ".tailScriptLogLines", email.kind[N].tailScriptLogLines, 15, 0, 10000),       \
    S(EM KN ".priority", email.kind[N].priority, "normal"),                               \
    S(EM KN ".subject", email.kind[N].subject, "Qlik Sense reload " W ": \"{{taskName}}\""), \
    S(EM KN ".bodyFileDirectory", email.kind[N].bodyFileDirectory, ""),                   \
    S(EM KN ".htmlTemplateFile", email.kind[N].htmlTemplateFile, ""),                     \
    S(EM KN ".fromAddress", email.kind[N].fromAddress, ""),                               \
    L(EM KN ".recipients", email.kind[N].recipients),                                     \
    B(EM KN ".alertEnableByCustomProperty.enable", email.kind[N].cpEnable, 0),            \
    S(EM KN ".alertEnableByCustomProperty.customPropertyName", email.kind[N].cpName,      \
      "Butler_" WC "AlertEnableEmail"),                                                   \
    S(EM KN ".alertEnableByCustomProperty.enabledValue", email.kind[N].cpValue, "Yes"),   \
    S(EM KN ".alertEnabledByEmailAddress.customPropertyName", email.kind[N].addrCpName,   \
      "Butler_" WC "AlertSendToEmail"),                                                   \
    S(EM KN ".alertEnableByEmailAddress.customPropertyName", email.kind[N].addrCpNameAlias, "")
#define EMAIL_OWNER(KN, N)                                                                \
    B(EM KN ".appOwnerAlert.enable", email.kind[N].ownerEnable, 0),                       \
    B(EM KN ".appOwnerAlert.includeOwner.includeAll", email.kind[N].ownerIncludeAll, 1),  \
    T(EM KN ".appOwnerAlert.includeOwner.user", email.kind[N].ownerInclude, "directory,userId"), \
    T(EM KN ".appOwnerAlert.excludeOwner.user", email.kind[N].ownerExclude, "directory,userId")
#define NT "butlerd.notifications."
/* Members of a webhook: "?" optional, "a.b" inside group a (see load_key). */
#define WEBHOOK_MEMBERS                                                                       \
    "webhookURL,httpMethod,?description,?cert.enable,?cert.rejectUnauthorized,?cert.certCA"

static const struct key keys[] = {
    S("Butler.logLevel", logLevel, "info"),
    BR("Butler.restServerConfig.enable", rest.enable, 0),
    SR("Butler.restServerConfig.serverHost", rest.serverHost, "127.0.0.1"),
    IR("Butler.restServerConfig.serverPort", rest.serverPort, 8080, 1, 65535),
    I("Butler.restServerConfig.backgroundServerPort", rest.backgroundServerPort, 0, 0, 65535),
    BR("Butler.restServerConfig.tls.enable", rest.tlsEnable, 0),
    SR("Butler.restServerConfig.tls.cert", rest.tlsCert, ""),
    SR("Butler.restServerConfig.tls.key", rest.tlsKey, ""),
    SR("Butler.restServerConfig.tls.ca", rest.tlsCa, ""),

    B(EP "apiListEnabledEndpoints", ep.apiListEnabledEndpoints, 0),
    B(EP "activeUserCount", ep.activeUserCount, 0),
    B(EP "activeUsers", ep.activeUsers, 0),
    B(EP "base62ToBase16", ep.base62ToBase16, 0),
    B(EP "base16ToBase62", ep.base16ToBase62, 0),
    B(EP "butlerping", ep.butlerping, 0),
    B(EP "createDir", ep.createDir, 0),
    B(EP "createDirQVD", ep.createDirQVD, 0),
    B(EP "fileDelete", ep.fileDelete, 0),
    B(EP "fileMove", ep.fileMove, 0),
    B(EP "fileCopy", ep.fileCopy, 0),
    B(EP "keyValueStore", ep.keyValueStore, 0),
    B(EP "mqttPublishMessage", ep.mqttPublishMessage, 0),
    B(EP "senseAppReload", ep.senseAppReload, 0),
    B(EP "senseAppDump", ep.senseAppDump, 0),
    B(EP "senseListApps", ep.senseListApps, 0),
    B(EP "senseStartTask", ep.senseStartTask, 0),
    B(EP "slackPostMessage", ep.slackPostMessage, 0),
    B(EP "newRelic.postNewRelicMetric", ep.nrMetric, 0),
    B(EP "newRelic.postNewRelicEvent", ep.nrEvent, 0),
    B(EP "scheduler.createNewSchedule", ep.schedCreate, 0),
    B(EP "scheduler.getSchedule", ep.schedGet, 0),
    B(EP "scheduler.getScheduleStatusAll", ep.schedStatusAll, 0),
    B(EP "scheduler.updateSchedule", ep.schedUpdate, 0),
    B(EP "scheduler.deleteSchedule", ep.schedDelete, 0),
    B(EP "scheduler.startSchedule", ep.schedStart, 0),
    B(EP "scheduler.stopSchedule", ep.schedStop, 0),

    L(NR "postNewRelicEvent.destinationAccount", nrEvent.destinationAccount),
    S(NR "postNewRelicEvent.url", nrEvent.url, "https://insights-collector.eu01.nr-data.net/"),
    T(NR "postNewRelicEvent.header", nrEvent.header, "name,value"),
    T(NR "postNewRelicEvent.attribute.static", nrEvent.attributes, "name,value"),
    L(NR "postNewRelicMetric.destinationAccount", nrMetric.destinationAccount),
    S(NR "postNewRelicMetric.url", nrMetric.url,
      "https://insights-collector.eu01.nr-data.net/metric/v1"),
    T(NR "postNewRelicMetric.header", nrMetric.header, "name,value"),
    T(NR "postNewRelicMetric.attribute.static", nrMetric.attributes, "name,value"),
    T("Butler.thirdPartyToolsCredentials.newRelic", nrCredentials,
      "accountName,insertApiKey,accountId"),

    B("Butler.startTaskFilter.enable", startTaskFilter.enable, 0),
    L("Butler.startTaskFilter.allowTask.taskId", startTaskFilter.taskId),
    L("Butler.startTaskFilter.allowTask.tag", startTaskFilter.tag),
    T("Butler.startTaskFilter.allowTask.customProperty", startTaskFilter.customProperty,
      "name,value"),
    T("Butler.fileCopyApprovedDirectories", fileCopyDirs, "fromDirectory,toDirectory"),
    T("Butler.fileMoveApprovedDirectories", fileMoveDirs, "fromDirectory,toDirectory"),
    L("Butler.fileDeleteApprovedDirectories", fileDeleteDirs),
    S("Butler.configDirectories.qvdPath", qvdPath, ""),
    B("Butler.keyValueStore.enable", kvs.enable, 0),
    I("Butler.keyValueStore.maxKeysPerNamespace", kvs.maxKeysPerNamespace, 1000, 1, INT_MAX),
    BR("Butler.scheduler.enable", scheduler.enable, 0),
    SR("Butler.scheduler.configfile", scheduler.configfile, "schedule.json"),
    IR("butlerd.scheduler.maxSchedules", scheduler.maxSchedules, 10000, 1, 1000000),

    BR(MQ "enable", mqtt.enable, 0),
    SR(MQ "brokerHost", mqtt.brokerHost, ""),
    IR(MQ "brokerPort", mqtt.brokerPort, 1883, 1, 65535),
    BR(MQ "azureEventGrid.enable", mqtt.azureEnable, 0),
    SR(MQ "azureEventGrid.clientId", mqtt.azureClientId, ""),
    SR(MQ "azureEventGrid.clientCertFile", mqtt.azureCertFile, ""),
    SR(MQ "azureEventGrid.clientKeyFile", mqtt.azureKeyFile, ""),
    B(MQ "taskFailureSendFull", mqtt.taskFailureSendFull, 1),
    B(MQ "taskAbortedSendFull", mqtt.taskAbortedSendFull, 1),
    SR(MQ "subscriptionRootTopic", mqtt.subscriptionRootTopic, "qliksense/#"),
    S(MQ "taskStartTopic", mqtt.taskStartTopic, "qliksense/start_task"),
    S(MQ "taskFailureTopic", mqtt.taskFailureTopic, "qliksense/task_failure"),
    S(MQ "taskFailureFullTopic", mqtt.taskFailureFullTopic, "qliksense/task_failure_full"),
    S(MQ "taskFailureServerStatusTopic", mqtt.taskFailureServerStatusTopic,
      "qliksense/butler/task_failure_server"),
    S(MQ "taskAbortedTopic", mqtt.taskAbortedTopic, "qliksense/task_aborted"),
    S(MQ "taskAbortedFullTopic", mqtt.taskAbortedFullTopic, "qliksense/task_aborted_full"),
    S(MQ "sessionStartTopic", mqtt.sessionStartTopic, "qliksense/session/start"),
    S(MQ "sessionStopTopic", mqtt.sessionStopTopic, "qliksense/session/stop"),
    S(MQ "connectionOpenTopic", mqtt.connectionOpenTopic, "qliksense/connection/open"),
    S(MQ "connectionCloseTopic", mqtt.connectionCloseTopic, "qliksense/connection/close"),
    S(MQ "sessionServerStatusTopic", mqtt.sessionServerStatusTopic,
      "qliksense/butler/session_server"),
    S(MQ "activeUserCountTopic", mqtt.activeUserCountTopic, "qliksense/users/active/count"),
    S(MQ "activeUsersTopic", mqtt.activeUsersTopic, "qliksense/users/active/usernames"),

    BR(UDP "enable", udp.enable, 0),
    SR(UDP "serverHost", udp.serverHost, "127.0.0.1"),
    IR(UDP "portTaskFailure", udp.portTaskFailure, 9998, 1, 65535),
    IR(UDP "portSessionConnectionEvents", udp.portSessionConnectionEvents, 0, 0, 65535),
    I(UDP "maxMessageSize", udp.maxMessageSize, 65507, 1, 65535),
    B(UDP "enableSourceValidation", udp.enableSourceValidation, 0),
    L(UDP "allowedSources", udp.allowedSources),
    I(UDP "messageQueue.maxConcurrent", udp.mqMaxConcurrent, 10, 1, 100000),
    I(UDP "messageQueue.maxSize", udp.mqMaxSize, 200, 1, 10000000),
    I(UDP "messageQueue.backpressureThreshold", udp.mqBackpressure, 80, 1, 100),
    B(UDP "rateLimit.enable", udp.rateEnable, 0),
    I(UDP "rateLimit.maxMessagesPerMinute", udp.rateMaxPerMinute, 600, 1, INT_MAX),
    B(UDP "deduplication.enable", udp.dedupEnable, 1),
    I(UDP "deduplication.ttlMinutes", udp.dedupTtlMinutes, 10, 1, 525600),

    S("Butler.slackNotification.restMessage.webhookURL", slackWebhookURL, ""),
    B("Butler.slackNotification.enable", slack.enable, 0),
    B("Butler.slackNotification.reloadTaskFailure.enable", slack.k[0].enable, 0),
    S("Butler.slackNotification.reloadTaskFailure.webhookURL", slack.k[0].webhookURL, ""),
    S("Butler.slackNotification.reloadTaskFailure.channel", slack.k[0].channel, ""),
    S("Butler.slackNotification.reloadTaskFailure.fromUser", slack.k[0].fromUser, ""),
    S("Butler.slackNotification.reloadTaskFailure.iconEmoji", slack.k[0].iconEmoji, ""),
    S("Butler.slackNotification.reloadTaskFailure.messageType", slack.k[0].messageType, "basic"),
    S("Butler.slackNotification.reloadTaskFailure.basicMsgTemplate", slack.k[0].basicMsgTemplate, "Qlik Sense reload failed: \"{{taskName}}\""),
    S("Butler.slackNotification.reloadTaskFailure.templateFile", slack.k[0].templateFile, ""),
    I("Butler.slackNotification.reloadTaskFailure.rateLimit", slack.k[0].rateLimit, 300, 0, INT_MAX),
    I("Butler.slackNotification.reloadTaskFailure.headScriptLogLines", slack.k[0].headScriptLogLines, 15, 0, 10000),
    I("Butler.slackNotification.reloadTaskFailure.tailScriptLogLines", slack.k[0].tailScriptLogLines, 15, 0, 10000),
    B("Butler.slackNotification.reloadTaskAborted.enable", slack.k[1].enable, 0),
    S("Butler.slackNotification.reloadTaskAborted.webhookURL", slack.k[1].webhookURL, ""),
    S("Butler.slackNotification.reloadTaskAborted.channel", slack.k[1].channel, ""),
    S("Butler.slackNotification.reloadTaskAborted.fromUser", slack.k[1].fromUser, ""),
    S("Butler.slackNotification.reloadTaskAborted.iconEmoji", slack.k[1].iconEmoji, ""),
    S("Butler.slackNotification.reloadTaskAborted.messageType", slack.k[1].messageType, "basic"),
    S("Butler.slackNotification.reloadTaskAborted.basicMsgTemplate", slack.k[1].basicMsgTemplate, "Qlik Sense reload aborted: \"{{taskName}}\""),
    S("Butler.slackNotification.reloadTaskAborted.templateFile", slack.k[1].templateFile, ""),
    I("Butler.slackNotification.reloadTaskAborted.rateLimit", slack.k[1].rateLimit, 300, 0, INT_MAX),
    I("Butler.slackNotification.reloadTaskAborted.headScriptLogLines", slack.k[1].headScriptLogLines, 15, 0, 10000),
    I("Butler.slackNotification.reloadTaskAborted.tailScriptLogLines", slack.k[1].tailScriptLogLines, 15, 0, 10000),
    B("Butler.teamsNotification.enable", teams.enable, 0),
    B("Butler.teamsNotification.reloadTaskFailure.enable", teams.k[0].enable, 0),
    S("Butler.teamsNotification.reloadTaskFailure.webhookURL", teams.k[0].webhookURL, ""),
    S("Butler.teamsNotification.reloadTaskFailure.messageType", teams.k[0].messageType, "basic"),
    S("Butler.teamsNotification.reloadTaskFailure.basicMsgTemplate", teams.k[0].basicMsgTemplate, "Qlik Sense reload failed: \"{{taskName}}\""),
    S("Butler.teamsNotification.reloadTaskFailure.templateFile", teams.k[0].templateFile, ""),
    I("Butler.teamsNotification.reloadTaskFailure.rateLimit", teams.k[0].rateLimit, 300, 0, INT_MAX),
    I("Butler.teamsNotification.reloadTaskFailure.headScriptLogLines", teams.k[0].headScriptLogLines, 15, 0, 10000),
    I("Butler.teamsNotification.reloadTaskFailure.tailScriptLogLines", teams.k[0].tailScriptLogLines, 15, 0, 10000),
    B("Butler.teamsNotification.reloadTaskAborted.enable", teams.k[1].enable, 0),
    S("Butler.teamsNotification.reloadTaskAborted.webhookURL", teams.k[1].webhookURL, ""),
    S("Butler.teamsNotification.reloadTaskAborted.messageType", teams.k[1].messageType, "basic"),
    S("Butler.teamsNotification.reloadTaskAborted.basicMsgTemplate", teams.k[1].basicMsgTemplate, "Qlik Sense reload aborted: \"{{taskName}}\""),
    S("Butler.teamsNotification.reloadTaskAborted.templateFile", teams.k[1].templateFile, ""),
    I("Butler.teamsNotification.reloadTaskAborted.rateLimit", teams.k[1].rateLimit, 300, 0, INT_MAX),
    I("Butler.teamsNotification.reloadTaskAborted.headScriptLogLines", teams.k[1].headScriptLogLines, 15, 0, 10000),
    I("Butler.teamsNotification.reloadTaskAborted.tailScriptLogLines", teams.k[1].tailScriptLogLines, 15, 0, 10000),
    B("Butler.webhookNotification.enable", webhook.enable, 0),
    I("Butler.webhookNotification.reloadTaskFailure.rateLimit", webhook.rateLimit[0], 300, 0, INT_MAX),
    T("Butler.webhookNotification.reloadTaskFailure.webhooks", webhook.hooks[0], WEBHOOK_MEMBERS),
    I("Butler.webhookNotification.reloadTaskAborted.rateLimit", webhook.rateLimit[1], 300, 0, INT_MAX),
    T("Butler.webhookNotification.reloadTaskAborted.webhooks", webhook.hooks[1], WEBHOOK_MEMBERS),
    S("Butler.qlikSenseUrls.qmc", qsUrls.qmc, ""),
    S("Butler.qlikSenseUrls.hub", qsUrls.hub, ""),
    S("Butler.qlikSenseUrls.appBaseUrl", qsUrls.appBaseUrl, ""),
    T("Butler.genericUrls", genericUrls, "id,linkText,comment,url"),
    SR(NT "spoolDirectory", notify.spoolDirectory, LOCALSTATEDIR "/spool/butlerd"),
    I(NT "maxAgeSeconds", notify.maxAgeSeconds, 86400, 1, INT_MAX),
    I(NT "retryInitialSeconds", notify.retryInitialSeconds, 10, 1, 86400),
    I(NT "retryMaxSeconds", notify.retryMaxSeconds, 600, 1, 86400 * 7),
    I(NT "maxQueueEntries", notify.maxQueueEntries, 10000, 1, 10000000),
    I(NT "maxConcurrent", notify.maxConcurrent, 4, 1, 64),
    I(NT "deadLetterMaxAgeDays", notify.deadLetterMaxAgeDays, 30, 0, 36500),
    I(NT "httpTimeoutSeconds", notify.httpTimeoutSeconds, 10, 1, 3600),
    I(NT "smtpTimeoutSeconds", notify.smtpTimeoutSeconds, 60, 1, 3600),
    S(NT "timeZone", notify.timeZone, ""),
    S(NT "teamsBasicCard", notify.teamsBasicCard, "adaptive"),
    S("Butler.cert.clientCert", clientCert, ""),
    S("Butler.cert.clientCertKey", clientCertKey, ""),
    S("Butler.cert.clientCertCA", clientCertCA, ""),
    S("Butler.configEngine.host", engine.host, ""),
    I("Butler.configEngine.port", engine.port, 4747, 1, 65535),
    B("Butler.configEngine.useSSL", engine.useSSL, 1),
    T("Butler.configEngine.headers.static", engine.headers, "name,value"),
    B("Butler.configEngine.rejectUnauthorized", engine.rejectUnauthorized, 0),
    S("Butler.configEngine.engineVersion", engine.engineVersion, ""),
    S("Butler.configQRS.authentication", qrs.authentication, "certificates"),
    S("Butler.configQRS.host", qrs.host, ""),
    I("Butler.configQRS.port", qrs.port, 4242, 1, 65535),
    B("Butler.configQRS.useSSL", qrs.useSSL, 1),
    T("Butler.configQRS.headers.static", qrs.headers, "name,value"),
    B("Butler.configQRS.rejectUnauthorized", qrs.rejectUnauthorized, 0),

    B(EM "enable", email.enable, 0),
    S(EM "smtp.host", email.smtp.host, ""),
    I(EM "smtp.port", email.smtp.port, 25, 1, 65535),
    B(EM "smtp.secure", email.smtp.secure, 0),
    S(EM "smtp.tls.serverName", email.smtp.serverName, ""),
    B(EM "smtp.tls.ignoreTLS", email.smtp.ignoreTLS, 0),
    B(EM "smtp.tls.requireTLS", email.smtp.requireTLS, 0),
    B(EM "smtp.tls.rejectUnauthorized", email.smtp.rejectUnauthorized, 1),
    B(EM "smtp.auth.enable", email.smtp.authEnable, 0),
    S(EM "smtp.auth.user", email.smtp.user, ""),
    S(EM "smtp.auth.password", email.smtp.password, ""),
    EMAIL_KIND("reloadTaskFailure", CFG_KIND_FAILED, "failed", "Failed"),
    EMAIL_OWNER("reloadTaskFailure", CFG_KIND_FAILED),
    EMAIL_KIND("reloadTaskAborted", CFG_KIND_ABORTED, "aborted", "Aborted"),
    EMAIL_OWNER("reloadTaskAborted", CFG_KIND_ABORTED),
    EMAIL_KIND("reloadTaskSuccess", CFG_KIND_SUCCESS, "succeeded", "Success"),

    I("butlerd.workers", workers, 0, 0, 256),
    SR("butlerd.workingDirectory", workingDirectory, ""),
    SR("butlerd.pidfile", pidfile, ""),
    SR("butlerd.user", user, ""),
    SR("butlerd.group", group, ""),
    I("butlerd.shutdownTimeout", shutdownTimeout, 10, 1, 3600),
    S("butlerd.logging.destination", log.destination, "stderr"),
    S("butlerd.logging.level", log.level, ""),
    S("butlerd.logging.syslogFacility", log.syslogFacility, "daemon"),
    S("butlerd.logging.ident", log.ident, "butlerd"),
    S("butlerd.logging.file", log.file, ""),
    I("butlerd.http.maxBodyBytes", http.maxBodyBytes, 1048576, 1, 1 << 30),
    I("butlerd.http.maxHeaderBytes", http.maxHeaderBytes, 16384, 1024, 1 << 20),
    I("butlerd.http.maxHeaderFields", http.maxHeaderFields, 128, 8, 10000),
    I("butlerd.http.keepAliveTimeout", http.keepAliveTimeout, 72, 1, 86400),
    I("butlerd.http.requestTimeout", http.requestTimeout, 30, 1, 3600),
    I("butlerd.http.maxConnections", http.maxConnections, 1024, 1, 1000000),
    I("butlerd.http.headerTimeout", http.headerTimeout, 10, 1, 3600),
    I("butlerd.http.maxConnectionsPerClient", http.maxConnectionsPerClient, 128, 0, 1000000),
    L("butlerd.http.allowFrom", http.allowFrom),
    S("butlerd.http.clientCertCa", http.clientCertCa, ""),
    B("butlerd.http.requireClientCert", http.requireClientCert, 0),
    B("butlerd.auth.enable", auth.enable, 0),
    ID("butlerd.auth.tokens", auth.tokens, "token"),
    ID("butlerd.auth.certificates", auth.certs, "certificate"),
    S("butlerd.audit.destination", audit.destination, "off"),
    S("butlerd.audit.file", audit.file, ""),
    S("butlerd.audit.syslogFacility", audit.syslogFacility, "local0"),
    B("butlerd.rateLimit.enable", rateLimit.enable, 0),
    I("butlerd.rateLimit.maxRequests", rateLimit.maxRequests, 100, 1, INT_MAX),
    I("butlerd.rateLimit.windowSeconds", rateLimit.windowSeconds, 60, 1, 86400),
    IR("butlerd.rateLimit.maxClients", rateLimit.maxClients, 10000, 1, 10000000),
    SR("butlerd.shm.name", shm.name, "/butlerd"),
    IR("butlerd.shm.kvMaxNamespaces", shm.kvMaxNamespaces, 1000, 1, 10000000),
    IR("butlerd.shm.kvMaxKeys", shm.kvMaxKeys, 10000, 1, 100000000),
    IR("butlerd.shm.kvMaxKeyBytes", shm.kvMaxKeyBytes, 256, 1, 65536),
    IR("butlerd.shm.kvMaxValueBytes", shm.kvMaxValueBytes, 4096, 1, 16777216),
    IR("butlerd.shm.maxActiveUsers", shm.maxActiveUsers, 10000, 1, 10000000),
    S("butlerd.kvPersistence.file", kvPersistence.file, LOCALSTATEDIR "/lib/butlerd/kv.snapshot"),
    I("butlerd.kvPersistence.intervalSeconds", kvPersistence.intervalSeconds, 60, 0, 86400 * 7),
    SR("butlerd.store.backend", store.backend, "shm"),
    SR("butlerd.store.redis.host", store.host, "127.0.0.1"),
    IR("butlerd.store.redis.port", store.port, 6379, 1, 65535),
    SR("butlerd.store.redis.password", store.password, ""),
    LR("butlerd.store.redis.sentinels", store.sentinels),
    SR("butlerd.store.redis.masterName", store.masterName, "mymaster"),
    SR("butlerd.store.redis.sentinelPassword", store.sentinelPassword, ""),
    IR("butlerd.store.redis.database", store.database, 0, 0, 1000000),
    SR("butlerd.store.redis.keyPrefix", store.keyPrefix, "butlerd:"),
    IR("butlerd.store.redis.connectTimeoutMs", store.connectTimeoutMs, 1000, 10, 600000),
    IR("butlerd.store.redis.commandTimeoutMs", store.commandTimeoutMs, 1000, 10, 600000),
    IR("butlerd.store.redis.leaseMs", store.leaseMs, 5000, 1000, 600000),
    I("butlerd.activeUsers.maxIdleSeconds", activeUsersMaxIdleSeconds, 0, 0, INT_MAX),
    SR("butlerd.mqtt.clientId", bmqtt.clientId, ""),
    SR("butlerd.mqtt.username", bmqtt.username, ""),
    SR("butlerd.mqtt.password", bmqtt.password, ""),
    IR("butlerd.mqtt.keepAliveSeconds", bmqtt.keepAliveSeconds, 60, 5, 65535),
    I("butlerd.mqtt.defaultQos", bmqtt.defaultQos, 0, 0, 2),
    I("butlerd.mqtt.publishTimeoutMs", bmqtt.publishTimeoutMs, 5000, 1, 600000),
    IR("butlerd.mqtt.protocolVersion", bmqtt.protocolVersion, 4, 4, 5),
    BR("butlerd.mqtt.tls.enable", bmqtt.tlsEnable, 0),
    SR("butlerd.mqtt.tls.caFile", bmqtt.tlsCaFile, ""),
    SR("butlerd.mqtt.tls.certFile", bmqtt.tlsCertFile, ""),
    SR("butlerd.mqtt.tls.keyFile", bmqtt.tlsKeyFile, ""),
    BR("butlerd.mqtt.tls.verifyPeer", bmqtt.tlsVerifyPeer, 1),
    B("butlerd.v2Api.enable", v2Enable, 1),
    B("butlerd.metrics.enable", metrics.enable, 0),
    BR("Butler.dockerHealthCheck.enable", dockerHealth.enable, 0),
    IR("Butler.dockerHealthCheck.port", dockerHealth.port, 12398, 1, 65535),
    B("butlerd.health.enable", health.enable, 1),
    I("butlerd.health.qrsFailSeconds", health.qrsFailSeconds, 60, 0, 86400),
    B("butlerd.documentation.enable", documentation.enable, 1),
    I("butlerd.qrs.timeoutMs", qrsTimeoutMs, 30000, 100, 600000),
    I("butlerd.qrs.connectTimeoutMs", qrsConnectTimeoutMs, 10000, 100, 600000),
    I("butlerd.qrs.maxReplyBytes", qrsMaxReplyBytes, 67108864, 4096, 1073741824),
    I("butlerd.startTask.maxItems", startTaskMaxItems, 1000, 1, 1000000),
    I("butlerd.engine.connectTimeoutMs", engineConnectTimeoutMs, 30000, 100, 600000),
    I("butlerd.engine.timeoutMs", engineTimeoutMs, 30000, 100, 3600000),
    I("butlerd.engine.reloadTimeoutSeconds", engineReloadTimeoutSeconds, 21600, 1, 604800),
    I("butlerd.engine.maxMessageBytes", engineMaxMessageBytes, 67108864, 65536, 1073741824),
};
#define NKEYS (sizeof keys / sizeof keys[0])

#define FIELD(c, k, T) ((T *)((char *)(c) + (k)->off))

static void tuplelist_free(struct tuplelist *l)
{
    for (size_t i = 0; i < l->n; i++)
        for (int j = 0; j < CFG_TUPLE_MAX; j++)
            free(l->v[i].m[j]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void identlist_free(struct cfg_identlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        cidr_list_free(&l->v[i].allowFrom);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void cfg_free(struct cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        switch (k->type) {
        case KT_STR:
            free(*FIELD(c, k, char *));
            break;
        case KT_STRLIST:
            strlist_free(FIELD(c, k, struct strlist));
            break;
        case KT_TUPLES:
            tuplelist_free(FIELD(c, k, struct tuplelist));
            break;
        case KT_IDENTS:
            identlist_free(FIELD(c, k, struct cfg_identlist));
            break;
        default:
            break;
        }
    }
    cidr_list_free(&c->http.allowNets);
    strlist_free(&c->ep_enabled);
    free(c->lines);
    free(c->file);
    free(c);
}

void cfg_msgs_free(struct cfg_msgs *m)
{
    strlist_free(&m->errors);
    strlist_free(&m->warnings);
    strlist_free(&m->infos);
}

/* ---------------------------------------------------------------- loading */

struct loader {
    struct cfg *c;
    struct cfg_msgs *msgs;
    const char *file;
};

static void msg(struct strlist *to, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void msg(struct strlist *to, const char *file, int line, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (line > 0)
        strlist_add(to, xasprintf("%s:%d: %s", file, line, text));
    else
        strlist_add(to, xasprintf("%s: %s", file, text));
}

static const char *file_of(struct loader *ld, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f ? f : ld->file;
}

static int find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* True if PATH names a group that holds known keys. */
static int is_group_path(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
            return 1;
    return 0;
}

static const char *type_name(enum ktype t)
{
    switch (t) {
    case KT_BOOL: return "a boolean (true or false)";
    case KT_INT: return "an integer";
    case KT_STR: return "a string";
    case KT_STRLIST: return "an array or list of strings";
    case KT_TUPLES: return "a list of groups";
    case KT_IDENTS: return "a list of groups";
    }
    return "?";
}

static int is_int(const config_setting_t *s)
{
    int t = config_setting_type(s);
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* Scalar member of a tuple group: strings as they are, integers as decimal text. */
static char *scalar_text(const config_setting_t *s)
{
    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        return xstrdup(config_setting_get_string(s));
    if (is_int(s))
        return xasprintf("%lld", config_setting_get_int64(s));
    return NULL;
}

/* Strings of array member NAME of group E into OUT; -1 (reported) if it is not an
 * array of strings. */
static int ident_strings(struct loader *ld, const config_setting_t *e, const char *name,
                         const char *path, int i, struct strlist *out)
{
    const config_setting_t *a = config_setting_get_member(e, name);
    if (!a)
        return 0;
    int line = (int)config_setting_source_line(a);
    int t = config_setting_type(a);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        msg(&ld->msgs->errors, file_of(ld, a), line, "%s[%d].%s must be an array of strings",
            path, i, name);
        return -1;
    }
    for (int j = 0; j < config_setting_length(a); j++) {
        const config_setting_t *v = config_setting_get_elem(a, j);
        if (config_setting_type(v) != CONFIG_TYPE_STRING) {
            msg(&ld->msgs->errors, file_of(ld, a), line, "%s[%d].%s[%d] must be a string",
                path, i, name, j);
            return -1;
        }
        strlist_add(out, xstrdup(config_setting_get_string(v)));
    }
    return 0;
}

/* Valid UTF-8 without control characters: a name that goes into log lines. */
static int printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return utf8_valid(s, strlen(s));
}

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* One group of butlerd.auth.tokens or butlerd.auth.certificates (KIND "token" or
 * "certificate"); 0 and *ID filled, or -1 with every problem reported. */
static int load_ident(struct loader *ld, const char *kind, const config_setting_t *e,
                      const char *path, int i, struct cfg_ident *id)
{
    const char *f = file_of(ld, e);
    int line = (int)config_setting_source_line(e);
    int token = !strcmp(kind, "token");
    const char *namekey = token ? "name" : "subject";
    int ok = 1;
    memset(id, 0, sizeof *id);
    for (int m = 0; m < config_setting_length(e); m++) {
        const char *mn = config_setting_name(config_setting_get_elem(e, m));
        if (strcmp(mn, namekey) && strcmp(mn, "scopes") && strcmp(mn, "allowFrom") &&
            !(token && !strcmp(mn, "sha256"))) {
            msg(&ld->msgs->errors, f, line, "%s[%d] has unknown member %s", path, i, mn);
            ok = 0;
        }
    }
    const char *name = NULL;
    if (!config_setting_lookup_string(e, namekey, &name) || !*name || strlen(name) > 1024 ||
        !printable(name)) {
        msg(&ld->msgs->errors, f, line, "%s[%d].%s must be a non-empty printable string",
            path, i, namekey);
        ok = 0;
    }
    if (token) {
        const char *hex = NULL;
        int good = config_setting_lookup_string(e, "sha256", &hex) && strlen(hex) == 64;
        for (int j = 0; good && j < 32; j++) {
            int hi = hexval(hex[2 * j]), lo = hexval(hex[2 * j + 1]);
            if (hi < 0 || lo < 0)
                good = 0;
            else
                id->sha256[j] = (unsigned char)(hi << 4 | lo);
        }
        if (!good) {
            /* never echo the value: it might be the token itself, pasted by mistake */
            msg(&ld->msgs->errors, f, line,
                "%s[%d].sha256 must be 64 hexadecimal digits (the SHA-256 of the token; "
                "butlerd -k makes one)",
                path, i);
            ok = 0;
        }
    }
    struct strlist sc = {0}, af = {0};
    if (!config_setting_get_member(e, "scopes")) {
        msg(&ld->msgs->errors, f, line, "%s[%d] lacks member scopes", path, i);
        ok = 0;
    } else if (ident_strings(ld, e, "scopes", path, i, &sc) < 0) {
        ok = 0;
    }
    for (size_t j = 0; j < sc.n; j++) {
        unsigned b = scope_bit(sc.v[j]);
        if (!b) {
            msg(&ld->msgs->errors, f, line, "%s[%d].scopes: \"%s\" is not a scope", path, i,
                sc.v[j]);
            ok = 0;
        }
        id->scopes |= b;
    }
    if (ident_strings(ld, e, "allowFrom", path, i, &af) < 0) {
        ok = 0;
    } else {
        long bad = cidr_list_parse(&id->allowFrom, af.v, af.n);
        if (bad >= 0) {
            msg(&ld->msgs->errors, f, line,
                "%s[%d].allowFrom: \"%s\" is not an address or network (a.b.c.d/n, x:y::z/n)",
                path, i, af.v[bad]);
            ok = 0;
        }
    }
    strlist_free(&sc);
    strlist_free(&af);
    if (!ok) {
        cidr_list_free(&id->allowFrom);
        return -1;
    }
    id->name = xstrdup(name);
    return 0;
}

static void load_key(struct loader *ld, int ki, const config_setting_t *s, const char *path)
{
    const struct key *k = &keys[ki];
    struct cfg *c = ld->c;
    const char *f = file_of(ld, s);
    int line = (int)config_setting_source_line(s);
    int t = config_setting_type(s);
    c->lines[ki] = line;

    switch (k->type) {
    case KT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            goto badtype;
        *FIELD(c, k, bool) = config_setting_get_bool(s);
        return;
    case KT_INT: {
        if (!is_int(s))
            goto badtype;
        long long v = config_setting_get_int64(s);
        if (v < k->min || v > k->max) {
            msg(&ld->msgs->errors, f, line, "%s = %lld is out of range (%lld to %lld)", path, v,
                k->min, k->max);
            return;
        }
        *FIELD(c, k, int) = (int)v;
        return;
    }
    case KT_STR:
        if (t != CONFIG_TYPE_STRING)
            goto badtype;
        free(*FIELD(c, k, char *));
        *FIELD(c, k, char *) = xstrdup(config_setting_get_string(s));
        return;
    case KT_STRLIST: {
        if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
            goto badtype;
        struct strlist *l = FIELD(c, k, struct strlist);
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                msg(&ld->msgs->errors, f, (int)config_setting_source_line(e),
                    "%s[%d] must be a string", path, i);
                continue;
            }
            strlist_add(l, xstrdup(config_setting_get_string(e)));
        }
        return;
    }
    case KT_TUPLES: {
        if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
            goto badtype;
        struct tuplelist *l = FIELD(c, k, struct tuplelist);
        char names[160];
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, i);
            int eline = (int)config_setting_source_line(e);
            if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
                msg(&ld->msgs->errors, f, eline, "%s[%d] must be a group { %s }", path, i,
                    k->members);
                continue;
            }
            struct tuple tp = {{NULL}};
            int ok = 1, m = 0;
            snprintf(names, sizeof names, "%s", k->members);
            /* "?name" is optional; "a.b" is member b of group a. */
            for (char *save, *mn = strtok_r(names, ",", &save); mn && m < CFG_TUPLE_MAX;
                 mn = strtok_r(NULL, ",", &save), m++) {
                int opt = *mn == '?';
                mn += opt;
                const config_setting_t *ms = config_setting_lookup((config_setting_t *)e, mn);
                char *v = ms ? scalar_text(ms) : NULL;
                if (!v && ms && opt && config_setting_type(ms) == CONFIG_TYPE_BOOL)
                    v = xstrdup(config_setting_get_bool(ms) ? "true" : "false");
                if (!v && !(opt && !ms)) {
                    msg(&ld->msgs->errors, f, ms ? (int)config_setting_source_line(ms) : eline,
                        ms ? "%s[%d].%s must be a string" : "%s[%d] lacks member %s", path, i,
                        mn);
                    ok = 0;
                }
                tp.m[m] = v;
            }
            if (!ok) {
                for (int j = 0; j < CFG_TUPLE_MAX; j++)
                    free(tp.m[j]);
                continue;
            }
            l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
            l->v[l->n++] = tp;
        }
        return;
    }
    case KT_IDENTS: {
        if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
            goto badtype;
        struct cfg_identlist *l = FIELD(c, k, struct cfg_identlist);
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, i);
            struct cfg_ident id;
            if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
                msg(&ld->msgs->errors, f, (int)config_setting_source_line(e),
                    "%s[%d] must be a group { ... }", path, i);
                continue;
            }
            if (load_ident(ld, k->members, e, path, i, &id) < 0)
                continue;
            for (size_t j = 0; j < l->n; j++)
                if (!strcmp(l->v[j].name, id.name) ||
                    (!strcmp(k->members, "token") && !memcmp(l->v[j].sha256, id.sha256, 32)))
                    msg(&ld->msgs->errors, f, (int)config_setting_source_line(e),
                        "%s[%d] has the same %s as entry %zu", path, i,
                        !strcmp(l->v[j].name, id.name) ? "name" : "sha256", j);
            l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
            l->v[l->n++] = id;
        }
        return;
    }
    }
badtype:
    msg(&ld->msgs->errors, f, line, "%s must be %s", path, type_name(k->type));
}

static void walk(struct loader *ld, const config_setting_t *grp, const char *prefix)
{
    for (int i = 0; i < config_setting_length(grp); i++) {
        const config_setting_t *s = config_setting_get_elem(grp, i);
        const char *name = config_setting_name(s);
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name ? name : "?");
        const char *f = file_of(ld, s);
        int line = (int)config_setting_source_line(s);

        int ki = find_key(path);
        if (ki >= 0) {
            load_key(ld, ki, s, path);
        } else if (is_group_path(path)) {
            if (config_setting_type(s) != CONFIG_TYPE_GROUP)
                msg(&ld->msgs->errors, f, line, "%s must be a group { ... }", path);
            else
                walk(ld, s, path);
        } else if (strncmp(path, "Butler.", 7) == 0) {
            /* Butler keys for features butlerd lacks: a converted file must load. */
            msg(&ld->msgs->infos, f, line, "%s is not used by butlerd, ignored", path);
        } else if (*prefix == '\0') {
            msg(&ld->msgs->errors, f, line,
                "unknown top-level setting %s (only Butler and butlerd are allowed)", path);
        } else {
            msg(&ld->msgs->errors, f, line, "unknown key %s", path);
        }
    }
}

/* Names of true flags under restServerEndpointsEnable, depth-first in file order. */
static void collect_enabled(const config_setting_t *grp, struct strlist *out)
{
    for (int i = 0; i < config_setting_length(grp); i++) {
        const config_setting_t *s = config_setting_get_elem(grp, i);
        if (config_setting_type(s) == CONFIG_TYPE_GROUP)
            collect_enabled(s, out);
        else if (config_setting_type(s) == CONFIG_TYPE_BOOL && config_setting_get_bool(s))
            strlist_add(out, xstrdup(config_setting_name(s)));
    }
}

static void set_defaults(struct cfg *c)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        switch (k->type) {
        case KT_BOOL: *FIELD(c, k, bool) = k->def != 0; break;
        case KT_INT: *FIELD(c, k, int) = (int)k->def; break;
        case KT_STR: *FIELD(c, k, char *) = xstrdup(k->defstr); break;
        default: break;
        }
    }
}

/* ------------------------------------------------------------- semantics */

static int line_of(const struct cfg *c, const char *path)
{
    int ki = find_key(path);
    return ki >= 0 ? c->lines[ki] : 0;
}

static void check_readable(struct loader *ld, const char *key, const char *val, int fatal)
{
    const struct cfg *c = ld->c;
    if (*val && access(val, R_OK) == 0)
        return;
    msg(fatal ? &ld->msgs->errors : &ld->msgs->warnings, c->file, line_of(c, key),
        *val ? "%s: cannot read %s" : "%s is empty%s", key, val);
}

/* New Relic header names and values, and API keys, go on the wire as they are: a CR or
 * LF would start a header of its own (butlerd.conf(5), New Relic pass-through). */
static int http_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return 0;
    return 1;
}

static int header_text(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return 0;
    return 1;
}

static void check_nr_headers(struct loader *ld, const char *key, const struct tuplelist *h)
{
    for (size_t i = 0; i < h->n; i++) {
        if (!http_token(h->v[i].m[0]))
            msg(&ld->msgs->errors, ld->c->file, line_of(ld->c, key),
                "%s[%zu].name is not a valid HTTP header name (letters, digits and "
                "!#$%%&'*+-.^_`|~ only)",
                key, i);
        if (!header_text(h->v[i].m[1]))
            msg(&ld->msgs->errors, ld->c->file, line_of(ld->c, key),
                "%s[%zu].value has a control character (CR, LF, ...)", key, i);
    }
}

static int nr_account_known(const struct cfg *c, const struct strlist *names)
{
    for (size_t i = 0; i < names->n; i++)
        for (size_t j = 0; j < c->nrCredentials.n; j++)
            if (!strcmp(names->v[i], c->nrCredentials.v[j].m[0]))
                return 1;
    return 0;
}

/* butlerd.conf(5), "STARTUP CHECKS": a file holding a secret that other users can
 * read (or change) gets a warning, as OpenSSH and Postfix give one. KEY names the
 * setting (NULL for the configuration file itself). */
static void check_private(struct loader *ld, const char *key, const char *path)
{
    struct stat st;
    if (!*path || stat(path, &st) < 0 || !(st.st_mode & (S_IROTH | S_IWOTH)))
        return;
    const struct cfg *c = ld->c;
    msg(&ld->msgs->warnings, c->file, key ? line_of(c, key) : 0,
        "%s%s%s is %s by other users (mode %04o): chmod o-rwx %s", key ? key : "",
        key ? " file " : "the configuration file ", path,
        (st.st_mode & S_IWOTH) ? "writable" : "readable", (unsigned)(st.st_mode & 07777), path);
}

static void check_secrets(struct loader *ld)
{
    const struct cfg *c = ld->c;
    /* The configuration file itself, when it holds something secret. */
    int secret = *c->bmqtt.password || *c->store.password || *c->store.sentinelPassword ||
                 *c->slackWebhookURL || c->nrCredentials.n || c->auth.tokens.n || c->auth.certs.n;
    if (secret)
        check_private(ld, NULL, c->file);
    if (c->rest.enable && c->rest.tlsEnable)
        check_private(ld, "Butler.restServerConfig.tls.key", c->rest.tlsKey);
    check_private(ld, "Butler.cert.clientCertKey", c->clientCertKey);
    if (c->mqtt.enable && c->mqtt.azureEnable)
        check_private(ld, "Butler.mqttConfig.azureEventGrid.clientKeyFile",
                      c->mqtt.azureKeyFile);
    if (c->mqtt.enable && c->bmqtt.tlsEnable)
        check_private(ld, "butlerd.mqtt.tls.keyFile", c->bmqtt.tlsKeyFile);
}

/* butlerd.conf(5), "E-mail alerts": checked only when e-mail is on, and per kind only
 * for enabled kinds (sample files are full of placeholders). */
static const char *const email_kinds[CFG_NKINDS] = {"reloadTaskFailure", "reloadTaskAborted",
                                                    "reloadTaskSuccess"};

static void email_err(struct loader *ld, int warn, const char *kind, const char *key,
                      const char *text, const char *val)
{
    char path[200];
    snprintf(path, sizeof path, EM "%s%s%s", kind ? kind : "", kind ? "." : "", key);
    int line = line_of(ld->c, path);
    if (!line && kind) { /* a missing key: point at the kind's enable flag */
        snprintf(path, sizeof path, EM "%s.enable", kind);
        line = line_of(ld->c, path);
        snprintf(path, sizeof path, EM "%s.%s", kind, key);
    }
    msg(warn ? &ld->msgs->warnings : &ld->msgs->errors, ld->c->file, line,
        "%s%s%s%s %s", path, val ? " \"" : "", val ? val : "", val ? "\"" : "", text);
}

static void check_email_kind(struct loader *ld, int i)
{
    struct cfg_email_kind *k = &ld->c->email.kind[i];
    const char *kn = email_kinds[i];
    char path[200], *name = NULL, *addr = NULL;
    snprintf(path, sizeof path, EM "%s.alertEnableByEmailAddress.customPropertyName", kn);
    int alias = line_of(ld->c, path);
    snprintf(path, sizeof path, EM "%s.alertEnabledByEmailAddress.customPropertyName", kn);
    if (alias && !line_of(ld->c, path)) {
        free(k->addrCpName);
        k->addrCpName = xstrdup(k->addrCpNameAlias);
    }
    if (alias)
        email_err(ld, 1, kn, "alertEnableByEmailAddress.customPropertyName", "is Butler's documented misspelling; "
                  "use alertEnabledByEmailAddress", NULL);
    if (!k->enable || !ld->c->email.enable)
        return;
    if (!*k->fromAddress)
        email_err(ld, 0, kn, "fromAddress", "is empty", NULL);
    else if (mailaddr_parse(k->fromAddress, &name, &addr) < 0 || !mailaddr_valid(addr))
        email_err(ld, 0, kn, "fromAddress", "is not a mailbox with a valid address "
                  "(user@domain or Name <user@domain>)", k->fromAddress);
    free(name);
    free(addr);
    for (size_t j = 0; j < k->recipients.n; j++)
        if (!mailaddr_valid(k->recipients.v[j]))
            email_err(ld, 0, kn, "recipients", "entry is not a valid e-mail address",
                      k->recipients.v[j]);
    if (!*k->bodyFileDirectory)
        email_err(ld, 0, kn, "bodyFileDirectory", "is empty", NULL);
    if (!*k->htmlTemplateFile)
        email_err(ld, 0, kn, "htmlTemplateFile", "is empty", NULL);
    char pr[16];
    snprintf(pr, sizeof pr, "%.*s", (int)strcspn(k->priority + strspn(k->priority, " \t"), " \t"),
             k->priority + strspn(k->priority, " \t"));
    if (strcasecmp(pr, "high") && strcasecmp(pr, "normal") && strcasecmp(pr, "low"))
        email_err(ld, 0, kn, "priority", "is not one of high, normal, low", k->priority);
    if (!k->recipients.n && !*k->addrCpName && !k->ownerEnable)
        email_err(ld, 1, kn, "recipients", "is empty and neither a custom property nor the app "
                  "owner can add one: no e-mail will be sent", NULL);
}

static void check_email(struct loader *ld)
{
    const struct cfg_smtp *s = &ld->c->email.smtp;
    int any = 0;
    for (int i = 0; i < CFG_NKINDS; i++) {
        check_email_kind(ld, i);
        any |= ld->c->email.kind[i].enable;
    }
    if (!ld->c->email.enable || !any)
        return;
    if (!*s->host)
        email_err(ld, 0, NULL, "smtp.host", "is empty", NULL);
    if (s->ignoreTLS && s->requireTLS)
        email_err(ld, 0, NULL, "smtp.tls.ignoreTLS", "and smtp.tls.requireTLS are both true", NULL);
    if (s->authEnable && !*s->user)
        email_err(ld, 0, NULL, "smtp.auth.user", "is empty while smtp.auth.enable is true", NULL);
    if (s->authEnable && !s->secure && s->ignoreTLS)
        email_err(ld, 1, NULL, "smtp.auth.enable",
                  "with secure false and ignoreTLS true: credentials are sent in clear", NULL);
}

static void validate(struct loader *ld)
{
    struct cfg *c = ld->c;
    struct cfg_msgs *m = ld->msgs;
    enum log_level lv;
    int fac;

    if (log_level_parse(c->logLevel, &lv) < 0)
        msg(&m->errors, c->file, line_of(c, "Butler.logLevel"),
            "Butler.logLevel \"%s\" is not one of error, warn, info, verbose, debug, silly",
            c->logLevel);
    if (*c->log.level && log_level_parse(c->log.level, &lv) < 0)
        msg(&m->errors, c->file, line_of(c, "butlerd.logging.level"),
            "butlerd.logging.level \"%s\" is not one of error, warn, info, verbose, debug, silly",
            c->log.level);
    if (strcmp(c->log.destination, "stderr") && strcmp(c->log.destination, "syslog") &&
        strcmp(c->log.destination, "file"))
        msg(&m->errors, c->file, line_of(c, "butlerd.logging.destination"),
            "butlerd.logging.destination \"%s\" is not one of stderr, syslog, file",
            c->log.destination);
    if (!strcmp(c->log.destination, "file") && !*c->log.file)
        msg(&m->errors, c->file, line_of(c, "butlerd.logging.destination"),
            "butlerd.logging.destination is \"file\" but butlerd.logging.file is empty");
    if (log_facility_parse(c->log.syslogFacility, &fac) < 0)
        msg(&m->errors, c->file, line_of(c, "butlerd.logging.syslogFacility"),
            "butlerd.logging.syslogFacility \"%s\" is not one of daemon, local0 ... local7",
            c->log.syslogFacility);
    if (strcmp(c->qrs.authentication, "certificates"))
        msg(&m->errors, c->file, line_of(c, "Butler.configQRS.authentication"),
            "Butler.configQRS.authentication \"%s\" is not supported (only \"certificates\")",
            c->qrs.authentication);
    if (c->rest.enable && !*c->rest.serverHost)
        msg(&m->errors, c->file, line_of(c, "Butler.restServerConfig.serverHost"),
            "Butler.restServerConfig.serverHost is empty");
    if (c->rest.enable && c->rest.tlsEnable) {
        check_readable(ld, "Butler.restServerConfig.tls.cert", c->rest.tlsCert, 1);
        check_readable(ld, "Butler.restServerConfig.tls.key", c->rest.tlsKey, 1);
        if (*c->rest.tlsCa)
            check_readable(ld, "Butler.restServerConfig.tls.ca", c->rest.tlsCa, 1);
    }
    {
        long bad = cidr_list_parse(&c->http.allowNets, c->http.allowFrom.v, c->http.allowFrom.n);
        if (bad >= 0)
            msg(&m->errors, c->file, line_of(c, "butlerd.http.allowFrom"),
                "butlerd.http.allowFrom: \"%s\" is not an address or network (a.b.c.d/n, "
                "x:y::z/n)",
                c->http.allowFrom.v[bad]);
    }
    if (strcmp(c->store.backend, "shm") && strcmp(c->store.backend, "redis"))
        msg(&m->errors, c->file, line_of(c, "butlerd.store.backend"),
            "butlerd.store.backend \"%s\" is not one of shm, redis", c->store.backend);
    else if (!strcmp(c->store.backend, "redis") && !*c->store.host)
        msg(&m->errors, c->file, line_of(c, "butlerd.store.redis.host"),
            "butlerd.store.backend is \"redis\" but butlerd.store.redis.host is empty");
    for (size_t i = 0; i < c->store.sentinels.n; i++) {
        char *h;
        int port;
        if (hostport_parse(c->store.sentinels.v[i], 26379, &h, &port) < 0)
            msg(&m->errors, c->file, line_of(c, "butlerd.store.redis.sentinels"),
                "butlerd.store.redis.sentinels: \"%s\" is not host:port ([address]:port for IPv6)",
                c->store.sentinels.v[i]);
        else
            free(h);
    }
    if (c->store.sentinels.n > 16)
        msg(&m->errors, c->file, line_of(c, "butlerd.store.redis.sentinels"),
            "butlerd.store.redis.sentinels lists %zu Sentinels; at most 16 are used",
            c->store.sentinels.n);
    if (c->store.sentinels.n && !*c->store.masterName)
        msg(&m->errors, c->file, line_of(c, "butlerd.store.redis.masterName"),
            "butlerd.store.redis.sentinels is set but butlerd.store.redis.masterName is empty");
    if (strcmp(c->audit.destination, "off") && strcmp(c->audit.destination, "file") &&
        strcmp(c->audit.destination, "syslog"))
        msg(&m->errors, c->file, line_of(c, "butlerd.audit.destination"),
            "butlerd.audit.destination \"%s\" is not one of off, file, syslog",
            c->audit.destination);
    if (!strcmp(c->audit.destination, "file") && !*c->audit.file)
        msg(&m->errors, c->file, line_of(c, "butlerd.audit.destination"),
            "butlerd.audit.destination is \"file\" but butlerd.audit.file is empty");
    if (log_facility_parse(c->audit.syslogFacility, &fac) < 0)
        msg(&m->errors, c->file, line_of(c, "butlerd.audit.syslogFacility"),
            "butlerd.audit.syslogFacility \"%s\" is not one of daemon, local0 ... local7",
            c->audit.syslogFacility);
    if (c->auth.enable && c->auth.tokens.n == 0 && c->auth.certs.n == 0)
        msg(&m->warnings, c->file, line_of(c, "butlerd.auth.enable"),
            "butlerd.auth.enable is true but there are no tokens or certificates: every "
            "request will get 401");
    if (*c->http.clientCertCa && c->rest.enable && c->rest.tlsEnable)
        check_readable(ld, "butlerd.http.clientCertCa", c->http.clientCertCa, 1);
    if ((*c->http.clientCertCa || c->http.requireClientCert) && !c->rest.tlsEnable)
        msg(&m->errors, c->file, line_of(c, "butlerd.http.clientCertCa"),
            "butlerd.http.clientCertCa and requireClientCert need "
            "Butler.restServerConfig.tls.enable");
    if (c->http.requireClientCert && !*c->http.clientCertCa)
        msg(&m->errors, c->file, line_of(c, "butlerd.http.requireClientCert"),
            "butlerd.http.requireClientCert is true but butlerd.http.clientCertCa is empty");
    if (c->auth.certs.n && !*c->http.clientCertCa)
        msg(&m->warnings, c->file, line_of(c, "butlerd.auth.certificates"),
            "butlerd.auth.certificates needs butlerd.http.clientCertCa (and TLS): no client "
            "certificate is asked for, the entries are not used");
    if (c->mqtt.enable && !*c->mqtt.brokerHost)
        msg(&m->errors, c->file, line_of(c, "Butler.mqttConfig.enable"),
            "Butler.mqttConfig.enable is true but Butler.mqttConfig.brokerHost is empty");
    if (c->mqtt.enable && c->mqtt.azureEnable) {
        check_readable(ld, "Butler.mqttConfig.azureEventGrid.clientCertFile",
                       c->mqtt.azureCertFile, 1);
        check_readable(ld, "Butler.mqttConfig.azureEventGrid.clientKeyFile",
                       c->mqtt.azureKeyFile, 1);
    } else if (c->mqtt.enable && c->bmqtt.tlsEnable) {
        if (*c->bmqtt.tlsCaFile)
            check_readable(ld, "butlerd.mqtt.tls.caFile", c->bmqtt.tlsCaFile, 1);
        if (*c->bmqtt.tlsCertFile || *c->bmqtt.tlsKeyFile) {
            check_readable(ld, "butlerd.mqtt.tls.certFile", c->bmqtt.tlsCertFile, 1);
            check_readable(ld, "butlerd.mqtt.tls.keyFile", c->bmqtt.tlsKeyFile, 1);
        }
    }
    if (c->shm.name[0] != '/' || strchr(c->shm.name + 1, '/') || strlen(c->shm.name) > 200)
        msg(&m->errors, c->file, line_of(c, "butlerd.shm.name"),
            "butlerd.shm.name \"%s\" must start with / and contain no other /", c->shm.name);

    struct shm_geometry geo;
    shm_geometry_make(&geo, (uint32_t)c->shm.kvMaxKeys, (uint32_t)c->shm.kvMaxKeyBytes,
                      (uint32_t)c->shm.kvMaxValueBytes, (uint32_t)c->shm.kvMaxNamespaces,
                      (uint32_t)c->shm.maxActiveUsers);
    shm_geometry_ratelimit(&geo, (uint32_t)c->rateLimit.maxClients);
    uint64_t shm_bytes = shm_layout_size(&geo);
    struct statvfs vfs;
    if (shm_bytes > ((uint64_t)1 << 40))
        msg(&m->errors, c->file, line_of(c, "butlerd.shm.kvMaxKeys"),
            "butlerd.shm.* needs %.1f GB of shared memory: lower kvMaxKeys, kvMaxKeyBytes or "
            "kvMaxValueBytes",
            (double)shm_bytes / 1e9);
    else if (statvfs("/dev/shm", &vfs) == 0 &&
             shm_bytes > (uint64_t)vfs.f_blocks * vfs.f_frsize)
        msg(&m->warnings, c->file, line_of(c, "butlerd.shm.kvMaxKeys"),
            "butlerd.shm.* allows up to %.1f MB of data but /dev/shm holds %.1f MB: a full "
            "store would fail before its limits",
            (double)shm_bytes / 1048576.0, (double)vfs.f_blocks * vfs.f_frsize / 1048576.0);

    check_email(ld);

    /* Warnings: butlerd starts anyway. */
    check_secrets(ld);
    if (!c->rest.enable && !c->udp.enable && !c->mqtt.enable)
        msg(&m->warnings, c->file, 0,
            "no listener is enabled (Butler.restServerConfig, Butler.udpServerConfig, "
            "Butler.mqttConfig): butlerd will do nothing");
    else if (c->rest.enable && c->ep_enabled.n == 0)
        msg(&m->warnings, c->file, line_of(c, "Butler.restServerConfig.enable"),
            "the REST API is enabled but no endpoint in Butler.restServerEndpointsEnable is: "
            "every request will get 404");
    for (size_t i = 0; i < c->startTaskFilter.taskId.n; i++)
        if (!guid_task_id(c->startTaskFilter.taskId.v[i], NULL))
            msg(&m->warnings, c->file, line_of(c, "Butler.startTaskFilter.allowTask.taskId"),
                "Butler.startTaskFilter.allowTask.taskId entry \"%s\" is not a valid task ID",
                c->startTaskFilter.taskId.v[i]);
    if (c->ep.createDirQVD && !*c->qvdPath)
        msg(&m->warnings, c->file, line_of(c, EP "createDirQVD"),
            "createDirQVD is enabled but Butler.configDirectories.qvdPath is empty");
    if (c->ep.slackPostMessage && !*c->slackWebhookURL)
        msg(&m->warnings, c->file, line_of(c, EP "slackPostMessage"),
            "slackPostMessage is enabled but "
            "Butler.slackNotification.restMessage.webhookURL is empty");
    if (c->ep.nrEvent && !nr_account_known(c, &c->nrEvent.destinationAccount))
        msg(&m->warnings, c->file, line_of(c, EP "newRelic.postNewRelicEvent"),
            "postNewRelicEvent is enabled but no name in its destinationAccount is in "
            "Butler.thirdPartyToolsCredentials.newRelic: every event will get 503");
    if (c->ep.nrMetric && !nr_account_known(c, &c->nrMetric.destinationAccount))
        msg(&m->warnings, c->file, line_of(c, EP "newRelic.postNewRelicMetric"),
            "postNewRelicMetric is enabled but no name in its destinationAccount is in "
            "Butler.thirdPartyToolsCredentials.newRelic: every metric will get 503");
    check_nr_headers(ld, NR "postNewRelicEvent.header", &c->nrEvent.header);
    check_nr_headers(ld, NR "postNewRelicMetric.header", &c->nrMetric.header);
    for (size_t i = 0; i < c->nrCredentials.n; i++)
        if (!header_text(c->nrCredentials.v[i].m[1]))
            msg(&m->errors, c->file, line_of(c, "Butler.thirdPartyToolsCredentials.newRelic"),
                "Butler.thirdPartyToolsCredentials.newRelic[%zu].insertApiKey has a control "
                "character (CR, LF, ...)",
                i);
    if (c->udp.enable && c->udp.enableSourceValidation && c->udp.allowedSources.n == 0)
        msg(&m->warnings, c->file, line_of(c, UDP "enableSourceValidation"),
            "enableSourceValidation is on but allowedSources is empty: validation is off");
    if (c->ep.senseStartTask || c->ep.senseListApps || c->ep.senseAppDump ||
        c->ep.senseAppReload) {
        if (!*c->qrs.host)
            msg(&m->warnings, c->file, line_of(c, "Butler.configQRS.host"),
                "an endpoint that needs Qlik Sense is enabled but Butler.configQRS.host is "
                "empty");
        check_readable(ld, "Butler.cert.clientCert", c->clientCert, 0);
        check_readable(ld, "Butler.cert.clientCertKey", c->clientCertKey, 0);
    }
    if ((c->ep.senseAppDump || c->ep.senseAppReload) && !*c->engine.host)
        msg(&m->warnings, c->file, line_of(c, "Butler.configEngine.host"),
            "an endpoint that needs the Qlik Sense engine is enabled but "
            "Butler.configEngine.host is empty");
    notify_check(c, &m->errors, &m->warnings);
}

int cfg_key_line(const struct cfg *c, const char *path) { return line_of(c, path); }

struct cfg *cfg_load(const char *file, struct cfg_msgs *msgs)
{
    config_t lc;
    config_init(&lc);
    struct cfg *c = xcalloc(1, sizeof *c);
    c->file = xstrdup(file);
    c->lines = xcalloc(NKEYS, sizeof *c->lines);
    set_defaults(c);
    size_t errs_before = msgs->errors.n;

    if (access(file, R_OK) < 0) {
        msg(&msgs->errors, file, 0, "cannot read configuration file: %s", strerror(errno));
        goto fail;
    }
    if (!config_read_file(&lc, file)) {
        const char *ef = config_error_file(&lc);
        msg(&msgs->errors, ef ? ef : file, config_error_line(&lc), "%s", config_error_text(&lc));
        goto fail;
    }

    /* An empty or foreign file would otherwise load as "everything off" and, on a
     * reload, silently turn every route into a 404. */
    const config_setting_t *bg = config_lookup(&lc, "Butler");
    if (!bg || config_setting_type(bg) != CONFIG_TYPE_GROUP) {
        msg(&msgs->errors, file, 0,
            "no \"Butler\" group: this is not a butlerd configuration file");
        goto fail;
    }
    struct loader ld = {c, msgs, file};
    walk(&ld, config_root_setting(&lc), "");
    const config_setting_t *ep = config_lookup(&lc, "Butler.restServerEndpointsEnable");
    if (ep && config_setting_type(ep) == CONFIG_TYPE_GROUP)
        collect_enabled(ep, &c->ep_enabled);
    if (msgs->errors.n == errs_before)
        validate(&ld);
    if (msgs->errors.n != errs_before)
        goto fail;
    config_destroy(&lc);
    return c;
fail:
    config_destroy(&lc);
    cfg_free(c);
    return NULL;
}

/* A reload must not take away what the running instance serves: the listeners are
 * restart keys anyway, and a file that turns them (or every route) off is far more
 * likely a mistake - a truncated or half-written file - than an intention. */
int cfg_check_reload(const struct cfg *old, const struct cfg *neu, struct strlist *errors)
{
    size_t before = errors->n;
    static const struct {
        size_t off;
        const char *key;
    } listeners[] = {
        {offsetof(struct cfg, rest.enable), "Butler.restServerConfig.enable"},
        {offsetof(struct cfg, udp.enable), "Butler.udpServerConfig.enable"},
        {offsetof(struct cfg, mqtt.enable), "Butler.mqttConfig.enable"},
    };
    for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
        bool was = *(const bool *)((const char *)old + listeners[i].off);
        bool is = *(const bool *)((const char *)neu + listeners[i].off);
        if (was && !is)
            msg(errors, neu->file, line_of(neu, listeners[i].key),
                "%s is not true but that listener is running: a reload cannot turn it off "
                "(restart butlerd to do so)",
                listeners[i].key);
    }
    if (old->rest.enable && old->ep_enabled.n > 0 && neu->ep_enabled.n == 0)
        msg(errors, neu->file, 0,
            "no endpoint in Butler.restServerEndpointsEnable is enabled: the reload would "
            "turn every route of the running REST API off");
    return errors->n == before ? 0 : -1;
}

void cfg_keep_restart_keys(const struct cfg *a, struct cfg *b, struct strlist *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (!(k->flags & K_RESTART))
            continue;
        int same = 1;
        switch (k->type) {
        case KT_BOOL:
            same = *FIELD(a, k, bool) == *FIELD(b, k, bool);
            *FIELD(b, k, bool) = *FIELD(a, k, bool);
            break;
        case KT_INT:
            same = *FIELD(a, k, int) == *FIELD(b, k, int);
            *FIELD(b, k, int) = *FIELD(a, k, int);
            break;
        case KT_STR:
            same = !strcmp(*FIELD(a, k, char *), *FIELD(b, k, char *));
            free(*FIELD(b, k, char *));
            *FIELD(b, k, char *) = xstrdup(*FIELD(a, k, char *));
            break;
        case KT_STRLIST: {
            struct strlist *la = FIELD(a, k, struct strlist), *lb = FIELD(b, k, struct strlist);
            same = la->n == lb->n;
            for (size_t j = 0; same && j < la->n; j++)
                same = !strcmp(la->v[j], lb->v[j]);
            strlist_free(lb);
            for (size_t j = 0; j < la->n; j++)
                strlist_add(lb, xstrdup(la->v[j]));
            break;
        }
        default:
            break;
        }
        if (!same)
            strlist_add(out, xstrdup(k->path));
    }
}
