/* Client for the Qlik Sense Engine (QIX): JSON-RPC 2.0 over a WebSocket, wss with
 * the client certificate (or ws), the static headers, timeouts, and answers matched
 * to requests by id so several requests can be in flight on one session. */
#ifndef ENGINE_H
#define ENGINE_H

#include <json-c/json.h>

struct cfg;
struct engine;

/* Requests one session may have in flight (sent, answer not yet taken); with
 * answers capped at butlerd.engine.maxMessageBytes this bounds a session's memory. */
#define ENGINE_MAX_INFLIGHT 80

enum engine_fail {
    ENGINE_OK,
    ENGINE_EIO,      /* no session or session lost: connect, TLS, upgrade, closed, protocol */
    ENGINE_ETIMEOUT, /* no answer in time; the session is then given up */
    ENGINE_ERPC,     /* the engine answered with a JSON-RPC error; the session stays usable */
};

struct engine_err {
    enum engine_fail kind;
    int code;        /* JSON-RPC error code (ENGINE_ERPC) */
    char msg[256];   /* short reason for logs */
};

/* Opens a session on /app/APP (APP "engineData" for global calls). Blocking, at most
 * butlerd.engine.connectTimeoutMs. Returns NULL with ERR filled on failure. */
struct engine *engine_open(const struct cfg *cfg, const char *app, struct engine_err *err);
/* Sends a close frame if the session is still up, and frees everything. NULL is fine. */
void engine_close(struct engine *e);

/* Queues METHOD on HANDLE with PARAMS (taken; NULL means []) and returns its id (> 0),
 * or -1 with ERR filled. Nothing is written until a wait needs it. */
int engine_send(struct engine *e, int handle, const char *method, json_object *params,
                struct engine_err *err);
/* Like engine_send, but nobody waits for the answer: it is dropped when it comes. */
int engine_post(struct engine *e, int handle, const char *method, json_object *params,
                struct engine_err *err);
/* Waits at most TIMEOUT_MS for the answer to ID and returns its "result" (caller
 * owns it), or NULL with ERR filled. */
json_object *engine_wait(struct engine *e, int id, int timeout_ms, struct engine_err *err);
/* engine_send + engine_wait. */
json_object *engine_call(struct engine *e, int handle, const char *method, json_object *params,
                         int timeout_ms, struct engine_err *err);

/* The qReturn.qHandle of a call that returns an object, or -1. */
int engine_handle_of(json_object *result);

/* OpenDoc APP (QNODATA: without its data) on session E: the doc handle, or -1 with
 * ERR filled (and logged). */
int engine_open_doc(struct engine *e, const struct cfg *c, const char *app, int no_data,
                    struct engine_err *err);
/* True if ERR is the engine's "app not found" answer. */
int engine_app_missing(const struct engine_err *err);

#endif
