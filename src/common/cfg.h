/* Configuration: the one table of keys (path, type, default, bounds, reloadable),
 * loading a libconfig file into a fresh struct cfg, and validating all of it. */
#ifndef CFG_H
#define CFG_H

#include "cidr.h"
#include "util.h" /* struct strlist */

#include <stdbool.h>
#include <stddef.h>

/* A list of groups with up to three string members, e.g. {name, value}. */
#define CFG_TUPLE_MAX 6
struct tuple {
    char *m[CFG_TUPLE_MAX]; /* an optional member that is absent is NULL */
};
struct tuplelist {
    size_t n;
    struct tuple *v;
};

/* An API token or a client-certificate identity (butlerd.auth.tokens,
 * butlerd.auth.certificates; butlerd.conf(5)). */
struct cfg_ident {
    char *name;               /* token name, or the certificate subject */
    unsigned char sha256[32]; /* tokens: SHA-256 of the token */
    unsigned scopes;          /* scope_bit() set (scope.h) */
    struct cidrlist allowFrom; /* empty: from anywhere */
};
struct cfg_identlist {
    size_t n;
    struct cfg_ident *v;
};

struct cfg_endpoints {
    bool apiListEnabledEndpoints, activeUserCount, activeUsers, base62ToBase16, base16ToBase62,
        butlerping, createDir, createDirQVD, fileDelete, fileMove, fileCopy, keyValueStore,
        mqttPublishMessage, senseAppReload, senseAppDump, senseListApps, senseStartTask,
        slackPostMessage;
    bool nrMetric, nrEvent;
    bool schedCreate, schedGet, schedStatusAll, schedUpdate, schedDelete, schedStart, schedStop;
};

struct cfg_newrelic_ep {
    struct strlist destinationAccount;
    char *url;
    struct tuplelist header, attributes;
};

/* Butler.emailNotification.smtp (butlerd.8, E-mail alerts). */
struct cfg_smtp {
    char *host;
    int port;
    bool secure, ignoreTLS, requireTLS, rejectUnauthorized, authEnable;
    char *serverName, *user, *password;
};

/* Butler.emailNotification.<kind>; the appOwnerAlert keys exist for failed and
 * aborted only (false and empty for success). */
struct cfg_email_kind {
    bool enable;
    int rateLimit, headScriptLogLines, tailScriptLogLines;
    char *priority, *subject, *bodyFileDirectory, *htmlTemplateFile, *fromAddress;
    struct strlist recipients;
    bool cpEnable;            /* alertEnableByCustomProperty */
    char *cpName, *cpValue;
    char *addrCpName;         /* alertEnabledByEmailAddress.customPropertyName */
    char *addrCpNameAlias;    /* the misspelling alertEnableByEmailAddress */
    bool ownerEnable, ownerIncludeAll;
    struct tuplelist ownerInclude, ownerExclude; /* {directory, userId} */
};

enum { CFG_KIND_FAILED, CFG_KIND_ABORTED, CFG_KIND_SUCCESS, CFG_NKINDS };

/* One kind (reloadTaskFailure, reloadTaskAborted) of Butler.slackNotification or
 * Butler.teamsNotification (butlerd.conf(5), Alerts). */
struct cfg_chat_kind {
    bool enable;
    char *webhookURL, *channel, *fromUser, *iconEmoji, *messageType, *basicMsgTemplate,
        *templateFile;
    int rateLimit, headScriptLogLines, tailScriptLogLines;
};

struct cfg {
    char *file; /* path the configuration was read from */

    /* ---- Butler ---- */
    char *logLevel;
    struct {
        bool enable;
        char *serverHost;
        int serverPort, backgroundServerPort;
        bool tlsEnable;
        char *tlsCert, *tlsKey, *tlsCa;
    } rest;
    struct cfg_endpoints ep;
    struct strlist ep_enabled; /* names of true flags, depth-first in file order */
    struct cfg_newrelic_ep nrEvent, nrMetric;
    struct tuplelist nrCredentials;
    struct {
        bool enable;
        struct strlist taskId, tag;
        struct tuplelist customProperty;
    } startTaskFilter;
    struct tuplelist fileCopyDirs, fileMoveDirs;
    struct strlist fileDeleteDirs;
    char *qvdPath;
    struct {
        bool enable;
        int maxKeysPerNamespace;
    } kvs;
    struct {
        bool enable;
        char *configfile;
        int maxSchedules;
    } scheduler;
    struct {
        bool enable;
        char *brokerHost;
        int brokerPort;
        bool azureEnable;
        char *azureClientId, *azureCertFile, *azureKeyFile;
        bool taskFailureSendFull, taskAbortedSendFull;
        char *subscriptionRootTopic, *taskStartTopic, *taskFailureTopic, *taskFailureFullTopic,
            *taskFailureServerStatusTopic, *taskAbortedTopic, *taskAbortedFullTopic,
            *sessionStartTopic, *sessionStopTopic, *connectionOpenTopic, *connectionCloseTopic,
            *sessionServerStatusTopic, *activeUserCountTopic, *activeUsersTopic;
    } mqtt;
    struct {
        bool enable;
        char *serverHost;
        int portTaskFailure, portSessionConnectionEvents, maxMessageSize;
        bool enableSourceValidation;
        struct strlist allowedSources;
        int mqMaxConcurrent, mqMaxSize, mqBackpressure;
        bool rateEnable;
        int rateMaxPerMinute;
        bool dedupEnable;
        int dedupTtlMinutes;
    } udp;
    char *slackWebhookURL;
    char *clientCert, *clientCertKey, *clientCertCA;
    struct {
        char *host;
        int port;
        bool useSSL, rejectUnauthorized;
        struct tuplelist headers;
        char *engineVersion;
    } engine;
    struct {
        char *authentication, *host;
        int port;
        bool useSSL, rejectUnauthorized;
        struct tuplelist headers;
    } qrs;
    struct {
        bool enable;
        struct cfg_smtp smtp;
        struct cfg_email_kind kind[CFG_NKINDS]; /* indexed by CFG_KIND_* */
    } email;

    /* ---- butlerd ---- */
    int workers;
    char *workingDirectory, *pidfile, *user, *group;
    int shutdownTimeout;
    struct {
        char *destination, *level, *syslogFacility, *ident, *file;
    } log;
    struct {
        int maxBodyBytes, maxHeaderBytes, maxHeaderFields, keepAliveTimeout, requestTimeout, maxConnections;
        int headerTimeout, maxConnectionsPerClient;
        struct strlist allowFrom;
        struct cidrlist allowNets; /* allowFrom parsed; empty: every address */
        char *clientCertCa;        /* CA file of REST client certificates */
        bool requireClientCert;
    } http;
    struct {
        bool enable;
        struct cfg_identlist tokens, certs;
    } auth;
    struct {
        char *destination, *file, *syslogFacility;
    } audit;
    struct {
        bool enable;
        int maxRequests, windowSeconds, maxClients;
    } rateLimit;
    struct {
        char *name;
        int kvMaxNamespaces, kvMaxKeys, kvMaxKeyBytes, kvMaxValueBytes, maxActiveUsers;
    } shm;
    struct {
        char *file;
        int intervalSeconds;
    } kvPersistence;
    struct {
        char *backend; /* "shm" or "redis" */
        char *host, *password, *keyPrefix, *masterName, *sentinelPassword;
        struct strlist sentinels; /* "host:port"; empty: host and port are the Redis */
        int port, database, connectTimeoutMs, commandTimeoutMs;
        int leaseMs; /* the scheduler's firing lease (butlerd(8), SCHEDULER) */
    } store;
    int activeUsersMaxIdleSeconds;
    struct {
        char *clientId, *username, *password;
        int keepAliveSeconds, defaultQos, publishTimeoutMs;
        int protocolVersion; /* 4 = MQTT 3.1.1, 5 = MQTT 5 with No Local (butlerd(8), MQTT) */
        bool tlsEnable, tlsVerifyPeer;
        char *tlsCaFile, *tlsCertFile, *tlsKeyFile;
    } bmqtt;
    bool v2Enable;
    struct {
        bool enable;
    } metrics; /* GET /metrics */
    struct {
        bool enable;
        int port;
    } dockerHealth; /* Butler.dockerHealthCheck */
    struct {
        bool enable;
        int qrsFailSeconds;
    } health; /* GET /health and /ready */
    struct {
        bool enable;
    } documentation; /* GET /documentation[/json|/yaml] */
    int qrsTimeoutMs, qrsConnectTimeoutMs, qrsMaxReplyBytes;
    int startTaskMaxItems;
    int engineConnectTimeoutMs, engineTimeoutMs, engineReloadTimeoutSeconds,
        engineMaxMessageBytes;

    /* Alerts (butlerd(8), Alerts); index 0 failed, 1 aborted. */
    struct {
        char *qmc, *hub, *appBaseUrl;
    } qsUrls;
    struct tuplelist genericUrls; /* id, linkText, comment, url */
    struct {
        bool enable;
        struct cfg_chat_kind k[2];
    } slack, teams;
    struct {
        bool enable;
        int rateLimit[2];
        /* webhookURL, httpMethod, description, cert.enable, cert.rejectUnauthorized,
         * cert.certCA ("true"/"false" for the flags; NULL when absent) */
        struct tuplelist hooks[2];
    } webhook;
    struct {
        char *spoolDirectory, *timeZone, *teamsBasicCard;
        int maxAgeSeconds, retryInitialSeconds, retryMaxSeconds, maxQueueEntries,
            maxConcurrent, deadLetterMaxAgeDays, httpTimeoutSeconds, smtpTimeoutSeconds;
    } notify;

    /* Source line of each table key (0 = not in the file), indexed like the table. */
    int *lines;
};

/* Messages collected while loading: errors make the file unusable, notes are
 * warnings and info lines; all are "file:line: text". */
struct cfg_msgs {
    struct strlist errors, warnings, infos;
};

/* Loads and validates FILE. Returns a new cfg, or NULL if there was any error;
 * every error, warning and info line is appended to MSGS either way. */
struct cfg *cfg_load(const char *file, struct cfg_msgs *msgs);
void cfg_free(struct cfg *c);
void cfg_msgs_free(struct cfg_msgs *m);
/* Source line of table key PATH in C's file (0 if not there). */
int cfg_key_line(const struct cfg *c, const char *path);

/* Keys that need a restart keep OLD's value in NEU; those that differed are
 * appended to OUT so the caller can warn about them. */
/* Errors for a reload from OLD to NEU that would turn off a running listener or every
 * route; 0 if the reload may go ahead. */
int cfg_check_reload(const struct cfg *old, const struct cfg *neu, struct strlist *errors);
void cfg_keep_restart_keys(const struct cfg *old, struct cfg *neu, struct strlist *out);


/* Access to a bool field by offset, used by the route table's enable flags. */
static inline bool cfg_flag(const struct cfg *c, size_t off)
{
    return *(const bool *)((const char *)c + off);
}

#endif
