/* MQTT (butlerd(8), MQTT): one libmosquitto client, owned by the master and driven from its
 * poll loop without ever blocking it; a publish socket through which workers and the
 * events process publish; and the client side of that socket. */
#ifndef MQTT_H
#define MQTT_H

#include <poll.h>
#include <stddef.h>

struct cfg;

enum mqtt_result {
    MQTT_OK,
    MQTT_DISABLED,      /* Butler.mqttConfig.enable is false */
    MQTT_NOT_CONNECTED, /* no broker connection at this moment */
    MQTT_TIMEOUT,       /* QoS 1/2: no acknowledgement within publishTimeoutMs */
    MQTT_FAILED,        /* library error, or the master could not be reached */
};

/* ---- master ---- */

/* Opens the publish socket and, if MQTT is enabled, starts connecting. */
int mqtt_start(const struct cfg *cfg);
/* The configuration changed (topics, QoS defaults; connection keys need a restart). */
void mqtt_set_cfg(const struct cfg *cfg);
int mqtt_pollfds(struct pollfd *p, int max);
void mqtt_handle(const struct pollfd *p, int n);
/* Runs timers (reconnect, keep-alive, acknowledgement timeouts); returns ms to the
 * next one. */
int mqtt_timers(void);
int mqtt_connected(void);
/* Event publication (QoS 0, no retain); dropped with a warning if not connected. */
void mqtt_event(const char *topic, const void *payload, size_t len);
void mqtt_event_str(const char *topic, const char *text);
/* Between mqtt_batch(1) and mqtt_batch(0), event publications are held back by the
 * kernel (TCP_CORK) and leave together: for a burst of UDP events, a few large
 * segments to the broker instead of one per event (butlerd(8), PERFORMANCE). */
void mqtt_batch(int on);
/* Publishes TEXT on TOPIC now if connected, else right after the next connect. */
void mqtt_event_on_connect(const char *topic, const char *text);
/* Called after every successful connect. */
void mqtt_set_connect_handler(void (*fn)(void));
/* Called with every message on Butler.mqttConfig.taskStartTopic. */
void mqtt_set_start_handler(void (*fn)(const char *payload, size_t len));
/* Fds a forked child must close; returns how many were stored. */
int mqtt_child_fds(int *out, int max);
/* Disconnects cleanly (orderly stop). */
void mqtt_stop(void);

/* ---- workers and the events process ---- */

/* Asks the master to publish; waits for its answer (for QoS 1/2: the broker's). */
enum mqtt_result mqtt_request_publish(const struct cfg *cfg, const char *topic,
                                      const void *payload, size_t len, int qos, int retain);

/* Topic name check for publishing: non-empty, no + or #, no NUL, <= 65535 bytes. */
int mqtt_topic_valid(const char *topic, size_t len);

#endif
