/* Publishing over MQTT from REST (butlerd-api(7), mqttpublishmessage, /v2/mqttPublishMessage).
 * The master
 * owns the broker connection; the job thread asks it and waits for its answer. */
#include "api.h"
#include "cfg.h"
#include "http.h"
#include "mqtt.h"

#include <stdlib.h>
#include <string.h>

/* Publishes and replies; ECHO (taken) is the success body. */
static void publish(struct req *r, json_object *echo, const char *topic, size_t tlen,
                    const char *msg, size_t mlen, int qos, int retain, unsigned ok_status)
{
    const struct cfg *c = r->cfg;
    if (!mqtt_topic_valid(topic, tlen)) {
        http_reply_error_bytes(r, 400, "Invalid MQTT topic: ", topic, tlen);
        json_object_put(echo);
        return;
    }
    enum mqtt_result res = mqtt_request_publish(c, topic, msg, mlen, qos, retain);
    switch (res) {
    case MQTT_OK:
        http_reply_json(r, ok_status, echo);
        return;
    case MQTT_DISABLED:
        http_reply_error(r, 503, NULL, "MQTT is disabled in the configuration");
        break;
    case MQTT_NOT_CONNECTED:
        http_reply_error(r, 503, NULL, "Not connected to MQTT broker %s:%d", c->mqtt.brokerHost,
                         c->mqtt.brokerPort);
        break;
    case MQTT_TIMEOUT:
        http_reply_error(r, 504, NULL,
                         "Timed out waiting for the MQTT broker to acknowledge the message");
        break;
    default:
        http_reply_error(r, 500, NULL, "Failed publishing MQTT message");
    }
    json_object_put(echo);
}

static void publish_job(struct req *r)
{
    static const struct sch_prop props[] = {{"topic", SCH_STRING, 1, 0, NULL},
                                            {"message", SCH_STRING, 1, 0, NULL},
                                            {"qos", SCH_INTEGER, 0, 0, NULL},
                                            {"retain", SCH_BOOLEAN, 0, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};
    json_object *b = http_body(r, props), *t, *m, *q, *rt;
    if (!b)
        return;
    int has_q = json_object_object_get_ex(b, "qos", &q);
    int has_r = json_object_object_get_ex(b, "retain", &rt);
    int64_t qos = has_q ? json_object_get_int64(q) : r->cfg->bmqtt.defaultQos;
    if (qos < 0 || qos > 2) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION",
                         "body/qos must be equal to one of the allowed values");
        return;
    }
    json_object_object_get_ex(b, "topic", &t);
    json_object_object_get_ex(b, "message", &m);
    json_object *echo = json_object_new_object();
    json_object_object_add(echo, "topic", json_object_get(t));
    json_object_object_add(echo, "message", json_object_get(m));
    if (has_q)
        json_object_object_add(echo, "qos", json_object_new_int((int)qos));
    if (has_r)
        json_object_object_add(echo, "retain", json_object_get(rt));
    publish(r, echo, json_object_get_string(t), (size_t)json_object_get_string_len(t),
            json_object_get_string(m), (size_t)json_object_get_string_len(m), (int)qos,
            has_r && json_object_get_boolean(rt), 201);
}

void api_mqtt_publish(struct req *r) { http_defer(r, publish_job); }

static void v2_publish_job(struct req *r)
{
    static const struct sch_prop props[] = {{"topic", SCH_STRING, 1, 0, NULL},
                                            {"message", SCH_STRING, 1, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};
    json_object *q = http_query(r, props), *t, *m;
    if (!q)
        return;
    json_object_object_get_ex(q, "topic", &t);
    json_object_object_get_ex(q, "message", &m);
    json_object *echo = json_object_new_object();
    json_object_object_add(echo, "topic", json_object_get(t));
    json_object_object_add(echo, "message", json_object_get(m));
    publish(r, echo, json_object_get_string(t), (size_t)json_object_get_string_len(t),
            json_object_get_string(m), (size_t)json_object_get_string_len(m),
            r->cfg->bmqtt.defaultQos, 0, 200);
}

void api_v2_mqtt_publish(struct req *r) { http_defer(r, v2_publish_job); }
