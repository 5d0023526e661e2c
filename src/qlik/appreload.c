/* App reload (butlerd-api(7), app reload) through the Qlik Engine: the session and OpenDoc
 * while the
 * caller waits, then DoReload and DoSave on a thread of its own, so a long reload
 * never holds a job thread; afterwards the tasks named for success or failure are
 * started through task.c. Knows nothing about HTTP. */
#include "appreload.h"
#include "cfg.h"
#include "engine.h"
#include "guid.h"
#include "log.h"
#include "qrs.h"
#include "task.h"
#include "util.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reload {
    const struct cfg *c;
    struct engine *e;
    int doc, mode, partial;
    char *app;
    struct strlist on_success, on_failure;
    void (*bg)(int delta);
};

static void reload_free(struct reload *rl)
{
    engine_close(rl->e);
    free(rl->app);
    strlist_free(&rl->on_success);
    strlist_free(&rl->on_failure);
    free(rl);
}

static void start_tasks(const struct reload *rl, const struct strlist *ids, const char *why)
{
    for (size_t i = 0; i < ids->n; i++) {
        char id[37];
        if (!guid_loose(ids->v[i], id)) {
            log_warnx("app reload %s: task ID \"%s\" is not a GUID, skipped", rl->app,
                      ids->v[i]);
            continue;
        }
        long st;
        char msg[200];
        if (task_start_one(rl->c, id, &st, msg, sizeof msg) == 0)
            log_info("app reload %s %s: started task %s", rl->app, why, id);
        else
            log_warnx("app reload %s %s: starting task %s failed: %s", rl->app, why, id, msg);
    }
}

static void *reload_thread(void *arg)
{
    struct reload *rl = arg;
    struct engine_err err;
    int tmo = rl->c->engineReloadTimeoutSeconds * 1000;
    json_object *p = json_object_new_object();
    json_object_object_add(p, "qMode", json_object_new_int(rl->mode));
    json_object_object_add(p, "qPartial", json_object_new_boolean(rl->partial));
    json_object_object_add(p, "qDebug", json_object_new_boolean(0));
    int64_t t0 = now_ms();
    json_object *res = engine_call(rl->e, rl->doc, "DoReload", p, tmo, &err);
    json_object *ok = NULL;
    json_object_object_get_ex(res, "qReturn", &ok);
    if (!res && err.kind != ENGINE_ERPC) {
        /* Session lost or no answer: whether the reload ran is unknown. */
        log_warnx("app reload %s: no result (%s); no task started", rl->app, err.msg);
    } else if (!res || !ok || !json_object_get_boolean(ok)) {
        log_warnx("app reload %s failed after %lld ms%s%s", rl->app, (long long)(now_ms() - t0),
                  res ? "" : ": ", res ? "" : err.msg);
        start_tasks(rl, &rl->on_failure, "failed");
    } else {
        json_object *saved = engine_call(rl->e, rl->doc, "DoSave", NULL, tmo, &err);
        if (!saved) {
            log_warnx("app reload %s: reloaded but saving failed: %s", rl->app, err.msg);
            start_tasks(rl, &rl->on_failure, "failed");
        } else {
            log_info("app reload %s succeeded in %lld ms", rl->app, (long long)(now_ms() - t0));
            start_tasks(rl, &rl->on_success, "succeeded");
        }
        json_object_put(saved);
    }
    json_object_put(res);
    void (*bg)(int) = rl->bg;
    reload_free(rl);
    qrs_thread_done();
    if (bg)
        bg(-1);
    return NULL;
}

void appreload_start(const struct cfg *c, const char *app, struct appreload_opts *o,
                     void (*bg)(int delta), appreload_done_fn done, void *arg)
{
    struct reload *rl = xcalloc(1, sizeof *rl);
    rl->c = c;
    rl->app = xstrdup(app);
    rl->mode = o->mode;
    rl->partial = o->partial;
    rl->on_success = o->on_success;
    rl->on_failure = o->on_failure;
    memset(&o->on_success, 0, sizeof o->on_success);
    memset(&o->on_failure, 0, sizeof o->on_failure);
    rl->bg = bg;

    /* butlerd-api(7), app reload, steps 1 and 2: a session, EngineVersion, OpenDoc with data. */
    struct engine_err eerr;
    json_object *ver = NULL, *v, *cv = NULL;
    rl->doc = -1;
    if ((rl->e = engine_open(c, app, &eerr)) != NULL &&
        (ver = engine_call(rl->e, -1, "EngineVersion", NULL, c->engineTimeoutMs, &eerr)))
        rl->doc = engine_open_doc(rl->e, c, app, 0, &eerr);
    if (ver && json_object_object_get_ex(ver, "qVersion", &v))
        json_object_object_get_ex(v, "qComponentVersion", &cv);
    if (ver)
        log_debug("engine version %s", json_object_get_string(cv));
    json_object_put(ver);
    if (rl->doc < 0) {
        done(arg, engine_app_missing(&eerr) ? APPRELOAD_NOT_FOUND : APPRELOAD_FAILED, NULL);
        reload_free(rl);
        return;
    }
    log_info("app reload %s started (mode %d, partial %s)", app, rl->mode,
             rl->partial ? "true" : "false");
    /* From here the thread owns RL. */
    pthread_attr_t at;
    pthread_t t;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (bg)
        bg(1);
    int rc = pthread_create(&t, &at, reload_thread, rl);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        if (bg)
            bg(-1);
        log_errorx("app reload %s: cannot create a thread: %s", app, strerror(rc));
        done(arg, APPRELOAD_NO_THREAD, strerror(rc));
        reload_free(rl);
        return;
    }
    done(arg, APPRELOAD_STARTED, NULL);
}
