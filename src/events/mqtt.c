/* The MQTT client of the master (butlerd(8), MQTT) and the publish socket.
 *
 * libmosquitto runs without its own thread: the master polls the client's socket
 * and calls loop_read/loop_write/loop_misc, and connects with connect_async so a
 * broker that is down or slow never holds up the loop. Workers and the events
 * process publish by sending a frame to an abstract Unix socket that only the
 * master listens on; for QoS 1/2 the answer waits for the broker's acknowledgement. */
#include "mqtt.h"
#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "util.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define MAX_CONNS 4096

struct pubconn {
    int fd;
    struct ipc_reader rd;
    int mid;          /* message id awaiting acknowledgement, 0 if none */
    int64_t deadline; /* for MID */
};

struct later {
    char *topic, *text;
};

static struct {
    const struct cfg *cfg;
    struct mosquitto *m;
    char client_id[64];
    int connected, connecting, started;
    int64_t retry_at, connect_deadline, next_misc;
    int backoff;
    int listen_fd;
    struct pubconn *conns;
    size_t nconns;
    struct later *later;
    size_t nlater;
    void (*start_handler)(const char *, size_t);
    void (*connect_handler)(void);
    uint64_t dropped_since_warn;
    int64_t last_drop_warn;
    bool start_covered; /* the subscription covers taskStartTopic */
} mq = {.listen_fd = -1};

/* ------------------------------------------------------------ callbacks */

static void reply(struct pubconn *c, enum mqtt_result r);

/* No Local on a shared subscription ($share/...) is a protocol error in MQTT 5, so
 * a shared subscription is made without it (butlerd.conf(5), mqtt.protocolVersion). */
static int no_local(const struct cfg *c)
{
    return c->bmqtt.protocolVersion == 5 && strncmp(c->mqtt.subscriptionRootTopic, "$share/", 7);
}

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    const struct cfg *c = mq.cfg;
    mq.connecting = 0;
    if (rc != 0) {
        log_warnx("MQTT broker %s:%d refused the connection: %s", c->mqtt.brokerHost,
                  c->mqtt.brokerPort, mosquitto_connack_string(rc));
        return; /* the library closes the socket and calls on_disconnect */
    }
    mq.connected = 1;
    mq.backoff = BACKOFF_MIN_MS;
    STAT_INC(mqtt_connects);
    metrics_note_mqtt(1); /* after the count: a scrape that sees 1 sees it */
    log_info("connected to MQTT broker %s:%d as %s", c->mqtt.brokerHost, c->mqtt.brokerPort,
             mq.client_id);
    /* With MQTT 5 the broker is asked not to send back butlerd's own publications
     * (No Local): with the default "qliksense/#" every session event would
     * otherwise come back to the master that published it (butlerd(8), MQTT). */
    int src = no_local(c)
                  ? mosquitto_subscribe_v5(m, NULL, c->mqtt.subscriptionRootTopic, 0,
                                           MQTT_SUB_OPT_NO_LOCAL, NULL)
                  : mosquitto_subscribe(m, NULL, c->mqtt.subscriptionRootTopic, 0);
    if (src != MOSQ_ERR_SUCCESS)
        log_warnx("MQTT subscribe to %s failed: %s", c->mqtt.subscriptionRootTopic,
                  mosquitto_strerror(src));
    char *status = xasprintf("Connected to MQTT broker %s:%d with client ID %s",
                             c->mqtt.brokerHost, c->mqtt.brokerPort, mq.client_id);
    mqtt_event_str("qliksense/butler/mqtt/status", status);
    free(status);
    for (size_t i = 0; i < mq.nlater; i++) {
        mqtt_event_str(mq.later[i].topic, mq.later[i].text);
        free(mq.later[i].topic);
        free(mq.later[i].text);
    }
    mq.nlater = 0;
    if (mq.connect_handler)
        mq.connect_handler();
}

static void schedule_retry(void)
{
    mq.retry_at = now_ms() + mq.backoff;
    mq.backoff = mq.backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : mq.backoff * 2;
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc)
{
    const struct cfg *c = mq.cfg;
    if (!mq.started)
        log_info("disconnected from MQTT broker %s:%d", c->mqtt.brokerHost, c->mqtt.brokerPort);
    else if (mq.connected)
        log_warnx("lost the connection to MQTT broker %s:%d (%s)", c->mqtt.brokerHost,
                  c->mqtt.brokerPort, rc ? mosquitto_strerror(rc) : "closed");
    mq.connected = 0;
    metrics_note_mqtt(0);
    mq.connecting = 0;
    if (mq.started)
        schedule_retry();
}

static void on_publish(struct mosquitto *m, void *arg, int mid)
{
    for (size_t i = 0; i < mq.nconns; i++)
        if (mq.conns[i].mid == mid) {
            mq.conns[i].mid = 0;
            STAT_INC(mqtt_published);
            reply(&mq.conns[i], MQTT_OK);
            return;
        }
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    STAT_INC(mqtt_received);
    if (log_enabled(LOG_LV_DEBUG))
        log_debug("MQTT message on %s (%d bytes)", msg->topic, msg->payloadlen);
    if (!strcmp(msg->topic, mq.cfg->mqtt.taskStartTopic) && mq.start_handler)
        mq.start_handler(msg->payload ? msg->payload : "", (size_t)msg->payloadlen);
}

/* ------------------------------------------------------------ connection */

static int configure_client(const struct cfg *c);

/* A connection attempt failed in a way libmosquitto does not report through
 * on_disconnect (e.g. the TLS handshake): start over with a fresh client, which
 * also closes the socket. */
static void connect_failed(const char *why)
{
    const struct cfg *c = mq.cfg;
    log_warnx("cannot connect to MQTT broker %s:%d: %s; retrying in %d s", c->mqtt.brokerHost,
              c->mqtt.brokerPort, why, mq.backoff / 1000);
    mosquitto_destroy(mq.m);
    mq.m = NULL;
    mq.connecting = 0;
    if (configure_client(c) < 0) {
        log_errorx("MQTT client could not be set up again; MQTT stays off until a restart");
        mq.started = 0;
        return;
    }
    schedule_retry();
}

static void io_result(int rc)
{
    if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_CONN_PENDING || !mq.connecting || !mq.m)
        return;
    connect_failed(rc == MOSQ_ERR_ERRNO ? strerror(errno)
                   : rc == MOSQ_ERR_TLS ? "TLS handshake failed (certificate not accepted?)"
                                        : mosquitto_strerror(rc));
}

static void attempt(void)
{
    const struct cfg *c = mq.cfg;
    int rc = mosquitto_connect_async(mq.m, c->mqtt.brokerHost, c->mqtt.brokerPort,
                                     c->bmqtt.keepAliveSeconds);
    if (rc == MOSQ_ERR_SUCCESS) {
        mq.connecting = 1;
        mq.connect_deadline = now_ms() + CONNECT_TIMEOUT_MS;
        return;
    }
    log_warnx("cannot connect to MQTT broker %s:%d: %s; retrying in %d s", c->mqtt.brokerHost,
              c->mqtt.brokerPort,
              rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
              mq.backoff / 1000);
    schedule_retry();
}

static int configure_client(const struct cfg *c)
{
    const char *user = NULL, *pass = NULL;
    if (c->mqtt.azureEnable) {
        snprintf(mq.client_id, sizeof mq.client_id, "%s", c->mqtt.azureClientId);
        user = c->mqtt.azureClientId;
    } else if (*c->bmqtt.username) {
        user = c->bmqtt.username;
        pass = *c->bmqtt.password ? c->bmqtt.password : NULL;
    }
    mq.m = mosquitto_new(mq.client_id, true, NULL);
    if (!mq.m) {
        log_error("mosquitto_new");
        return -1;
    }
    mosquitto_int_option(mq.m, MOSQ_OPT_PROTOCOL_VERSION,
                         c->bmqtt.protocolVersion == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(mq.m, on_connect);
    mosquitto_disconnect_callback_set(mq.m, on_disconnect);
    mosquitto_publish_callback_set(mq.m, on_publish);
    mosquitto_message_callback_set(mq.m, on_message);
    if (user && mosquitto_username_pw_set(mq.m, user, pass) != MOSQ_ERR_SUCCESS)
        return -1;
    int rc = MOSQ_ERR_SUCCESS;
    if (c->mqtt.azureEnable) {
        mosquitto_int_option(mq.m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        rc = mosquitto_tls_set(mq.m, NULL, NULL, c->mqtt.azureCertFile, c->mqtt.azureKeyFile,
                               NULL);
    } else if (c->bmqtt.tlsEnable) {
        if (!*c->bmqtt.tlsCaFile)
            mosquitto_int_option(mq.m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        rc = mosquitto_tls_set(mq.m, *c->bmqtt.tlsCaFile ? c->bmqtt.tlsCaFile : NULL, NULL,
                               *c->bmqtt.tlsCertFile ? c->bmqtt.tlsCertFile : NULL,
                               *c->bmqtt.tlsKeyFile ? c->bmqtt.tlsKeyFile : NULL, NULL);
        if (rc == MOSQ_ERR_SUCCESS && !c->bmqtt.tlsVerifyPeer) {
            mosquitto_tls_insecure_set(mq.m, true);
            rc = mosquitto_tls_opts_set(mq.m, 0, NULL, NULL);
        }
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        log_errorx("MQTT TLS settings rejected: %s", mosquitto_strerror(rc));
        return -1;
    }
    return 0;
}

static int open_listener(void)
{
    struct sockaddr_un a;
    socklen_t len = ipc_pub_addr(&a, (long)getpid());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 512) < 0) {
        log_error("cannot open the MQTT publish socket");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int mqtt_start(const struct cfg *c)
{
    mq.cfg = c;
    mq.backoff = BACKOFF_MIN_MS;
    mq.listen_fd = open_listener();
    if (mq.listen_fd < 0)
        return -1;
    if (!c->mqtt.enable)
        return 0;
    mosquitto_lib_init();
    if (*c->bmqtt.clientId) {
        snprintf(mq.client_id, sizeof mq.client_id, "%s", c->bmqtt.clientId);
    } else {
        unsigned char r[4];
        if (getrandom(r, sizeof r, 0) != sizeof r) {
            uint32_t x = (uint32_t)now_ms() ^ (uint32_t)getpid() * 2654435761u;
            memcpy(r, &x, 4);
        }
        snprintf(mq.client_id, sizeof mq.client_id, "butlerd_%02x%02x%02x%02x", r[0], r[1], r[2],
                 r[3]);
    }
    if (configure_client(c) < 0)
        return -1;
    /* A shared subscription ($share/<group>/<filter>) delivers each message to one
     * member of the group: what several load-balanced instances want. */
    const char *filter = c->mqtt.subscriptionRootTopic;
    if (!strncmp(filter, "$share/", 7) && strchr(filter + 7, '/'))
        filter = strchr(filter + 7, '/') + 1;
    bool covered = false;
    if (mosquitto_topic_matches_sub(filter, c->mqtt.taskStartTopic, &covered) !=
            MOSQ_ERR_SUCCESS ||
        !covered)
        log_warnx("Butler.mqttConfig.taskStartTopic %s is not covered by subscriptionRootTopic "
                  "%s: tasks cannot be started over MQTT",
                  c->mqtt.taskStartTopic, c->mqtt.subscriptionRootTopic);
    mq.start_covered = covered;
    mq.started = 1;
    attempt();
    return 0;
}

void mqtt_set_cfg(const struct cfg *c) { mq.cfg = c; }

int mqtt_connected(void) { return mq.connected; }

void mqtt_set_start_handler(void (*fn)(const char *, size_t)) { mq.start_handler = fn; }

void mqtt_set_connect_handler(void (*fn)(void)) { mq.connect_handler = fn; }

void mqtt_stop(void)
{
    mq.started = 0;
    if (mq.m) {
        if (mq.connected) {
            mosquitto_disconnect(mq.m);
            mosquitto_loop_write(mq.m, 1);
        }
        mosquitto_destroy(mq.m);
        mq.m = NULL;
        mosquitto_lib_cleanup();
    }
    mq.connected = 0;
    metrics_note_mqtt(0);
    for (size_t i = 0; i < mq.nconns; i++) {
        close(mq.conns[i].fd);
        ipc_reader_free(&mq.conns[i].rd);
    }
    mq.nconns = 0;
    if (mq.listen_fd >= 0)
        close(mq.listen_fd);
    mq.listen_fd = -1;
}

/* ------------------------------------------------------------ publishing */

static void note_not_connected(const char *topic)
{
    STAT_INC(mqtt_not_connected);
    mq.dropped_since_warn++;
    int64_t now = now_ms();
    if (now - mq.last_drop_warn >= 10000) {
        log_warnx("not connected to the MQTT broker: dropped %llu event message(s), last on %s",
                  (unsigned long long)mq.dropped_since_warn, topic);
        mq.dropped_since_warn = 0;
        mq.last_drop_warn = now;
    }
}

void mqtt_event(const char *topic, const void *payload, size_t len)
{
    if (!mq.m)
        return;
    if (!mq.connected) {
        note_not_connected(topic);
        return;
    }
    int rc = mosquitto_publish(mq.m, NULL, topic, (int)len, payload, 0, false);
    if (rc == MOSQ_ERR_SUCCESS) {
        STAT_INC(mqtt_published);
    } else {
        STAT_INC(mqtt_publish_failed);
        log_warnx("MQTT publish on %s failed: %s", topic, mosquitto_strerror(rc));
    }
}

void mqtt_event_str(const char *topic, const char *text) { mqtt_event(topic, text, strlen(text)); }

void mqtt_batch(int on)
{
    static int corked_fd = -1;
    if (on && corked_fd < 0 && mq.m && mq.connected) {
        int fd = mosquitto_socket(mq.m), one = 1;
        if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0)
            corked_fd = fd;
    } else if (!on && corked_fd >= 0) {
        /* the socket may have been closed meanwhile (a lost connection): only the
         * same descriptor, still libmosquitto's, is uncorked */
        int zero = 0;
        if (mq.m && mosquitto_socket(mq.m) == corked_fd)
            (void)setsockopt(corked_fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
        corked_fd = -1;
    }
}

void mqtt_event_on_connect(const char *topic, const char *text)
{
    if (mq.connected) {
        mqtt_event_str(topic, text);
        return;
    }
    mq.later = xrealloc(mq.later, (mq.nlater + 1) * sizeof *mq.later);
    mq.later[mq.nlater].topic = xstrdup(topic);
    mq.later[mq.nlater].text = xstrdup(text);
    mq.nlater++;
}

int mqtt_topic_valid(const char *t, size_t len)
{
    return len > 0 && len <= 65535 && !memchr(t, '\0', len) && !memchr(t, '+', len) &&
           !memchr(t, '#', len);
}

/* ------------------------------------------------------------ publish socket */

static void drop_conn(size_t i)
{
    close(mq.conns[i].fd);
    ipc_reader_free(&mq.conns[i].rd);
    mq.conns[i] = mq.conns[--mq.nconns];
}

static void reply(struct pubconn *c, enum mqtt_result r)
{
    struct buf b = {0};
    unsigned char code = (unsigned char)r;
    ipc_frame(&b, IPC_REPLY, &code, 1, NULL, 0, NULL, 0);
    /* A few bytes into an empty socket buffer: never blocks. */
    if (write(c->fd, b.p, b.len) != (ssize_t)b.len)
        log_debug("publish reply to a client that is gone");
    buf_free(&b);
}

static enum mqtt_result publish_request(struct pubconn *c, const unsigned char *d, size_t len)
{
    uint32_t tlen;
    if (len < 8)
        return MQTT_FAILED;
    memcpy(&tlen, d + 4, 4);
    int qos = d[0], retain = d[1];
    if (qos > 2 || tlen > len - 8)
        return MQTT_FAILED;
    char *topic = xmalloc(tlen + 1);
    memcpy(topic, d + 8, tlen);
    topic[tlen] = '\0';
    enum mqtt_result r;
    int mid = 0;
    if (!mq.cfg->mqtt.enable || !mq.m) {
        r = MQTT_DISABLED;
    } else if (!mq.connected) {
        STAT_INC(mqtt_not_connected);
        r = MQTT_NOT_CONNECTED;
    } else if (!mqtt_topic_valid(topic, tlen)) {
        r = MQTT_FAILED;
    } else {
        int rc = mosquitto_publish(mq.m, &mid, topic, (int)(len - 8 - tlen), d + 8 + tlen, qos,
                                   retain != 0);
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
            STAT_INC(mqtt_not_connected);
            r = MQTT_NOT_CONNECTED;
        } else if (rc != MOSQ_ERR_SUCCESS) {
            STAT_INC(mqtt_publish_failed);
            log_warnx("MQTT publish on %s failed: %s", topic, mosquitto_strerror(rc));
            r = MQTT_FAILED;
        } else {
            /* Without No Local a REST publish on the start topic comes back through
             * the subscription and starts tasks; with it, it starts them here. */
            if (no_local(mq.cfg) && mq.start_covered && mq.start_handler &&
                !strcmp(topic, mq.cfg->mqtt.taskStartTopic))
                mq.start_handler((const char *)d + 8 + tlen, len - 8 - tlen);
            if (qos == 0) {
                STAT_INC(mqtt_published);
                free(topic);
                return MQTT_OK;
            }
            c->mid = mid; /* answered by on_publish or the timeout */
            c->deadline = now_ms() + mq.cfg->bmqtt.publishTimeoutMs;
            free(topic);
            return (enum mqtt_result)-1;
        }
    }
    free(topic);
    return r;
}

static void accept_conns(void)
{
    for (;;) {
        int fd = accept4(mq.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept on the MQTT publish socket");
            return;
        }
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
            (cr.uid != geteuid() && cr.uid != 0) || mq.nconns >= MAX_CONNS) {
            close(fd);
            continue;
        }
        mq.conns = xrealloc(mq.conns, (mq.nconns + 1) * sizeof *mq.conns);
        memset(&mq.conns[mq.nconns], 0, sizeof *mq.conns);
        mq.conns[mq.nconns++].fd = fd;
    }
}

/* Reads from connection I; returns 0 to keep it, -1 to drop it. */
static int serve_conn(struct pubconn *c)
{
    if (ipc_fill(&c->rd, c->fd) < 0)
        return -1;
    int type;
    const unsigned char *d;
    size_t len;
    while (!c->mid && ipc_take(&c->rd, &type, &d, &len)) {
        if (type != IPC_PUBLISH)
            return -1;
        enum mqtt_result r = publish_request(c, d, len);
        if ((int)r >= 0)
            reply(c, r);
    }
    return 0;
}

int mqtt_pollfds(struct pollfd *p, int max)
{
    int n = 0;
    if (mq.m && mosquitto_socket(mq.m) >= 0 && n < max) {
        p[n].fd = mosquitto_socket(mq.m);
        p[n].events = POLLIN | (mosquitto_want_write(mq.m) ? POLLOUT : 0);
        p[n++].revents = 0;
    }
    if (mq.listen_fd >= 0 && n < max) {
        p[n].fd = mq.listen_fd;
        p[n].events = POLLIN;
        p[n++].revents = 0;
    }
    for (size_t i = 0; i < mq.nconns && n < max; i++) {
        p[n].fd = mq.conns[i].fd;
        p[n].events = POLLIN;
        p[n++].revents = 0;
    }
    return n;
}

void mqtt_handle(const struct pollfd *p, int n)
{
    for (int i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        if (mq.m && p[i].fd == mosquitto_socket(mq.m)) {
            if (p[i].revents & (POLLIN | POLLERR | POLLHUP))
                io_result(mosquitto_loop_read(mq.m, 64));
            if (mq.m && mosquitto_socket(mq.m) == p[i].fd && (p[i].revents & POLLOUT))
                io_result(mosquitto_loop_write(mq.m, 64));
        } else if (p[i].fd == mq.listen_fd) {
            accept_conns();
        } else {
            for (size_t j = 0; j < mq.nconns; j++)
                if (mq.conns[j].fd == p[i].fd) {
                    if (serve_conn(&mq.conns[j]) < 0)
                        drop_conn(j);
                    break;
                }
        }
    }
}

int mqtt_timers(void)
{
    int64_t now = now_ms(), next = now + 1000;
    for (size_t i = 0; i < mq.nconns;) {
        struct pubconn *c = &mq.conns[i];
        if (c->mid && now >= c->deadline) {
            c->mid = 0;
            STAT_INC(mqtt_publish_failed);
            reply(c, MQTT_TIMEOUT);
            if (serve_conn(c) < 0) { /* a pipelined request may be waiting */
                drop_conn(i);
                continue;
            }
        }
        if (c->mid && c->deadline < next)
            next = c->deadline;
        i++;
    }
    if (mq.started) {
        if (!mq.connected && !mq.connecting && now >= mq.retry_at)
            attempt();
        if (mq.connecting && now >= mq.connect_deadline)
            connect_failed("no answer within 10 s");
        if (mq.m && (mq.connected || mq.connecting) && now >= mq.next_misc) {
            mosquitto_loop_misc(mq.m);
            mq.next_misc = now + 1000;
        }
        if (!mq.connected && !mq.connecting && mq.retry_at < next)
            next = mq.retry_at;
        if (mq.connecting && mq.connect_deadline < next)
            next = mq.connect_deadline;
    }
    return next > now ? (int)(next - now) : 0;
}

int mqtt_child_fds(int *out, int max)
{
    int n = 0;
    if (mq.m && mosquitto_socket(mq.m) >= 0 && n < max)
        out[n++] = mosquitto_socket(mq.m);
    if (mq.listen_fd >= 0 && n < max)
        out[n++] = mq.listen_fd;
    for (size_t i = 0; i < mq.nconns && n < max; i++)
        out[n++] = mq.conns[i].fd;
    return n;
}

/* ------------------------------------------------------------ client side */

enum mqtt_result mqtt_request_publish(const struct cfg *cfg, const char *topic,
                                      const void *payload, size_t len, int qos, int retain)
{
    if (!cfg->mqtt.enable)
        return MQTT_DISABLED;
    struct sockaddr_un a;
    socklen_t alen = ipc_pub_addr(&a, (long)getppid());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return MQTT_FAILED;
    if (connect(fd, (struct sockaddr *)&a, alen) < 0) {
        log_warn("cannot reach the master's MQTT publish socket");
        close(fd);
        return MQTT_FAILED;
    }
    unsigned char h[8] = {(unsigned char)qos, (unsigned char)(retain != 0), 1, 0};
    uint32_t tlen = (uint32_t)strlen(topic);
    memcpy(h + 4, &tlen, 4);
    struct buf b = {0};
    ipc_frame(&b, IPC_PUBLISH, h, 8, topic, tlen, payload, len);
    enum mqtt_result r = MQTT_FAILED;
    int type;
    struct buf in = {0};
    if (ipc_write_all(fd, b.p, b.len) == 0 &&
        ipc_read_frame(fd, cfg->bmqtt.publishTimeoutMs + 2000, &type, &in) == 0 &&
        type == IPC_REPLY && in.len == 1 && in.p[0] <= MQTT_FAILED)
        r = (enum mqtt_result)in.p[0];
    buf_free(&b);
    buf_free(&in);
    close(fd);
    return r;
}
