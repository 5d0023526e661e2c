/* Connections to Redis, one per thread, with Sentinel discovery (redis_conn.h). */
#include "redis_conn.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define MAX_SENTINELS 16

struct hostport {
    char *host;
    int port;
};

static struct {
    int in_use;
    struct hostport node; /* the Redis, without Sentinels */
    struct hostport sentinel[MAX_SENTINELS];
    int nsentinels;
    char *master_name, *password, *sentinel_password, *prefix;
    int database, connect_ms, command_ms;
    char where[300];
} rc_cfg;
static atomic_int outage;       /* 1 while this process sees Redis as unreachable */
static atomic_int first_sentinel; /* the Sentinel that answered last is asked first */

struct conn {
    redisContext *c;
    redisContext *orphan; /* another thread's, inherited across fork(): never used */
    pid_t pid; /* the process that made it: a child never uses its parent's */
    int64_t retry_at;
    int backoff;
    struct conn *prev, *next;
};
static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
/* Every thread's connection, so that one still open when the process exits is
 * reachable (leak checkers) rather than lost. */
static struct conn *conns;
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ settings */

static void settings_free(void)
{
    free(rc_cfg.node.host);
    for (int i = 0; i < rc_cfg.nsentinels; i++)
        free(rc_cfg.sentinel[i].host);
    free(rc_cfg.master_name);
    free(rc_cfg.password);
    free(rc_cfg.sentinel_password);
    free(rc_cfg.prefix);
    int was = rc_cfg.in_use;
    memset(&rc_cfg, 0, sizeof rc_cfg);
    rc_cfg.in_use = was;
}

void redis_configure(const struct redis_settings *s)
{
    settings_free();
    rc_cfg.in_use = s->in_use;
    rc_cfg.node.host = xstrdup(s->host);
    rc_cfg.node.port = s->port;
    rc_cfg.master_name = xstrdup(s->master_name);
    rc_cfg.password = xstrdup(s->password);
    rc_cfg.sentinel_password = xstrdup(s->sentinel_password);
    rc_cfg.prefix = xstrdup(s->prefix);
    rc_cfg.database = s->database;
    rc_cfg.connect_ms = s->connect_ms;
    rc_cfg.command_ms = s->command_ms;
    for (size_t i = 0; i < s->nsentinels && rc_cfg.nsentinels < MAX_SENTINELS; i++) {
        struct hostport *hp = &rc_cfg.sentinel[rc_cfg.nsentinels];
        if (hostport_parse(s->sentinels[i], 26379, &hp->host, &hp->port) == 0)
            rc_cfg.nsentinels++; /* the configuration check has refused malformed ones */
    }
    if (rc_cfg.nsentinels)
        snprintf(rc_cfg.where, sizeof rc_cfg.where, "master \"%s\" via %d Sentinel%s",
                 rc_cfg.master_name, rc_cfg.nsentinels, rc_cfg.nsentinels == 1 ? "" : "s");
    else
        snprintf(rc_cfg.where, sizeof rc_cfg.where, "%s:%d", rc_cfg.node.host, rc_cfg.node.port);
}

int redis_in_use(void) { return rc_cfg.in_use; }
const char *redis_prefix(void) { return rc_cfg.prefix ? rc_cfg.prefix : ""; }
const char *redis_where(void) { return rc_cfg.where; }
int redis_outage(void) { return atomic_load(&outage); }

/* ------------------------------------------------------------------ outages */

static void outage_begin(const char *why)
{
    if (!atomic_exchange(&outage, 1))
        log_warnx("Redis (%s) cannot be reached (%s): the shared state (key-value store, "
                  "active users, schedules, rate limits) is unavailable until it is back",
                  rc_cfg.where, why);
}

static void outage_end(void)
{
    if (atomic_exchange(&outage, 0))
        log_info("Redis (%s) reachable again", rc_cfg.where);
}

/* A write refused because Redis is full: logged at most once a minute. */
static void full_warn(const char *msg)
{
    static atomic_llong last;
    long long now = mono_ms(), was = atomic_load(&last);
    if ((!was || now - was >= 60000) && atomic_compare_exchange_strong(&last, &was, now))
        log_warnx("Redis (%s) is out of memory (%s): writes to the shared state answer 503 "
                  "until it has room again", rc_cfg.where, msg);
}

/* ------------------------------------------------------------------ connections */

static void conn_free(void *p)
{
    struct conn *k = p;
    pthread_mutex_lock(&conns_mu);
    if (k->prev)
        k->prev->next = k->next;
    else
        conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    pthread_mutex_unlock(&conns_mu);
    if (k->c)
        redisFree(k->c);
    free(k);
}

/* fork() while another thread (the master's active-users thread) holds conns_mu
 * would leave the child a lock nobody releases; and the child must not share its
 * parent's Redis sockets. So conns_mu is held across fork(), and the child closes
 * every connection it inherited (a thread's own is made anew on its next use).
 * Another thread's context may have been in the middle of a command at the fork
 * (a buffer just reallocated, its pointer not yet stored): the child only closes
 * its socket and never frees or reuses it (that thread does not exist here). */
static void fork_prepare(void) { pthread_mutex_lock(&conns_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&conns_mu); }
static void fork_child(void)
{
    struct conn *mine = pthread_getspecific(conn_key);
    for (struct conn *k = conns; k; k = k->next) {
        if (!k->c)
            continue;
        if (k == mine) {
            redisFree(k->c);
        } else {
            if (k->c->fd >= 0)
                close(k->c->fd);
            k->c->fd = -1;
            k->orphan = k->c; /* still reachable, for leak checkers */
        }
        k->c = NULL;
        k->retry_at = 0;
        k->backoff = 0;
    }
    pthread_mutex_unlock(&conns_mu);
}

static void conn_key_make(void)
{
    pthread_key_create(&conn_key, conn_free);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Closes K's connection without counting a failure: the next use makes a new one. */
static void conn_drop(struct conn *k)
{
    if (k->c) {
        redisFree(k->c);
        k->c = NULL;
    }
    k->retry_at = 0;
}

static void conn_fail(struct conn *k, const char *why)
{
    outage_begin(why);
    if (k->c) {
        redisFree(k->c);
        k->c = NULL;
    }
    k->backoff = k->backoff ? k->backoff * 2 : BACKOFF_MIN_MS;
    if (k->backoff > BACKOFF_MAX_MS)
        k->backoff = BACKOFF_MAX_MS;
    k->retry_at = mono_ms() + k->backoff;
}

/* Sends one set-up command; the reply if it is not an error, else NULL with WHY. */
static redisReply *setup_cmd(redisContext *c, int argc, const char **argv, char *why,
                             size_t whylen)
{
    size_t len[4];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, len);
    if (!r) {
        snprintf(why, whylen, "%s", c->errstr[0] ? c->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* This thread's bound on every wait, if lower than the configured ones
 * (redis_thread_limit). */
static __thread int thread_limit_ms;

static int limited(int ms) { return thread_limit_ms && thread_limit_ms < ms ? thread_limit_ms : ms; }

void redis_thread_limit(int ms)
{
    if (ms == thread_limit_ms)
        return;
    thread_limit_ms = ms;
    pthread_once(&conn_once, conn_key_make);
    struct conn *k = pthread_getspecific(conn_key);
    if (k && k->c) {
        int c = limited(rc_cfg.command_ms);
        redisSetTimeout(k->c, (struct timeval){c / 1000, (c % 1000) * 1000});
    }
}

static redisContext *connect_to(const char *host, int port, char *why, size_t whylen)
{
    int cms = limited(rc_cfg.connect_ms), ms = limited(rc_cfg.command_ms);
    struct timeval ct = {cms / 1000, (cms % 1000) * 1000};
    struct timeval cmd = {ms / 1000, (ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, ct);
    if (!c || c->err) {
        snprintf(why, whylen, "%s:%d: %s", host, port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, cmd);
    return c;
}

/* Asks the Sentinels, the last one that answered first, for the master's address.
 * 0 with *HOST (to free) and *PORT, or -1 with WHY. */
static int ask_sentinels(char **host, int *port, char *why, size_t whylen)
{
    int first = atomic_load(&first_sentinel);
    snprintf(why, whylen, "no Sentinel answered");
    for (int j = 0; j < rc_cfg.nsentinels; j++) {
        int i = (first + j) % rc_cfg.nsentinels;
        char w[200];
        redisContext *s = connect_to(rc_cfg.sentinel[i].host, rc_cfg.sentinel[i].port, w, sizeof w);
        if (!s) {
            snprintf(why, whylen, "Sentinel %s", w);
            continue;
        }
        redisReply *r = NULL;
        if (*rc_cfg.sentinel_password) {
            const char *auth[] = {"AUTH", rc_cfg.sentinel_password};
            r = setup_cmd(s, 2, auth, w, sizeof w);
            if (!r) {
                snprintf(why, whylen, "Sentinel %s:%d: %s", rc_cfg.sentinel[i].host,
                         rc_cfg.sentinel[i].port, w);
                redisFree(s);
                continue;
            }
            freeReplyObject(r);
        }
        const char *q[] = {"SENTINEL", "get-master-addr-by-name", rc_cfg.master_name};
        r = setup_cmd(s, 3, q, w, sizeof w);
        redisFree(s);
        if (!r) {
            snprintf(why, whylen, "Sentinel %s:%d: %s", rc_cfg.sentinel[i].host,
                     rc_cfg.sentinel[i].port, w);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
            *host = strdup(r->element[0]->str);
            *port = atoi(r->element[1]->str);
            freeReplyObject(r);
            if (!*host)
                return -1;
            atomic_store(&first_sentinel, i);
            return 0;
        }
        snprintf(why, whylen, "Sentinel %s:%d does not know master \"%s\"",
                 rc_cfg.sentinel[i].host, rc_cfg.sentinel[i].port, rc_cfg.master_name);
        freeReplyObject(r);
    }
    return -1;
}

/* A new connection to the Redis master, authenticated, its database selected. */
static redisContext *connect_master(char *why, size_t whylen)
{
    redisContext *c;
    if (rc_cfg.nsentinels) {
        char *host;
        int port;
        if (ask_sentinels(&host, &port, why, whylen) < 0)
            return NULL;
        c = connect_to(host, port, why, whylen);
        free(host);
    } else {
        c = connect_to(rc_cfg.node.host, rc_cfg.node.port, why, whylen);
    }
    if (!c)
        return NULL;
    redisReply *r;
    if (*rc_cfg.password) {
        const char *auth[] = {"AUTH", rc_cfg.password};
        if (!(r = setup_cmd(c, 2, auth, why, whylen)))
            goto fail;
        freeReplyObject(r);
    }
    if (rc_cfg.database) {
        char db[16];
        snprintf(db, sizeof db, "%d", rc_cfg.database);
        const char *sel[] = {"SELECT", db};
        if (!(r = setup_cmd(c, 2, sel, why, whylen)))
            goto fail;
        freeReplyObject(r);
    }
    if (rc_cfg.nsentinels) {
        /* Between a failover and the Sentinels' next answer, the address may still
         * be the old master, now a replica: writes there would fail. */
        const char *role[] = {"ROLE"};
        if (!(r = setup_cmd(c, 1, role, why, whylen)))
            goto fail;
        int master = r->type == REDIS_REPLY_ARRAY && r->elements &&
                     r->element[0]->type == REDIS_REPLY_STRING &&
                     !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        if (!master) {
            snprintf(why, whylen, "the node the Sentinels named is not a master (yet)");
            goto fail;
        }
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

static struct conn *conn_mine(void)
{
    pthread_once(&conn_once, conn_key_make);
    struct conn *k = pthread_getspecific(conn_key);
    if (!k) {
        k = calloc(1, sizeof *k);
        if (!k)
            return NULL;
        pthread_mutex_lock(&conns_mu);
        k->next = conns;
        if (conns)
            conns->prev = k;
        conns = k;
        pthread_mutex_unlock(&conns_mu);
        pthread_setspecific(conn_key, k);
    }
    if (k->c && k->pid != getpid()) {
        redisFree(k->c); /* closes our copy of the parent's socket only */
        k->c = NULL;
        k->retry_at = 0;
        k->backoff = 0;
    }
    return k;
}

/* This thread's connection, made if need be; NULL while Redis cannot be reached. */
static redisContext *conn_get(struct conn *k)
{
    if (!k)
        return NULL;
    if (k->c)
        return k->c;
    if (k->retry_at && mono_ms() < k->retry_at)
        return NULL;
    char why[256];
    k->c = connect_master(why, sizeof why);
    if (!k->c) {
        conn_fail(k, why);
        return NULL;
    }
    k->pid = getpid();
    k->retry_at = 0; /* the backoff is reset by the first answer */
    return k->c;
}

/* Replies that mean "Redis cannot serve us now" rather than "we asked wrongly". */
static int transient(const char *msg)
{
    return !strncmp(msg, "LOADING", 7) || !strncmp(msg, "READONLY", 8) ||
           !strncmp(msg, "MASTERDOWN", 10) || !strncmp(msg, "BUSY", 4) ||
           !strncmp(msg, "NOAUTH", 6) || !strncmp(msg, "OOM", 3) ||
           !strncmp(msg, "TRYAGAIN", 8) || !strncmp(msg, "CLUSTERDOWN", 11);
}

/* 1 if the server closed C while it was idle (its timeout, CLIENT KILL, a restart),
 * or sent something nobody asked for: checked before a command goes out on a
 * connection that has served before. Once a command is sent, a closed connection
 * no longer tells whether the server ran it (it may have, then closed before the
 * answer went out), so it is never sent again then: a claim made twice would lose
 * to itself, a count would go up twice. */
static int closed_while_idle(const redisContext *c)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    return poll(&p, 1, 0) != 0; /* readable (EOF), hung up, in error, or poll failed */
}

/* A failure that a new connection may not have, on a command the server did not
 * run: it is a replica now (READONLY: a failover demoted it, and the Sentinels
 * name the new primary). */
static int worth_retry(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "READONLY", 8);
}

/* Sends ARGV on this thread's connection and sorts the outcome as redis_cmd
 * describes. A connection the server closed while idle is replaced before the
 * command is sent; one that had served before and answers as worth_retry says is
 * replaced once and the command sent again, silently, so that neither a request
 * nor the outage warning is spent on it. With NOSCRIPT_OK, a NOSCRIPT error reply
 * is handed back for the caller to retry. */
static redisReply *send_cmd(const char *what, int argc, const char **argv, const size_t *len,
                            int *rc, int noscript_ok)
{
    struct conn *k = conn_mine();
    for (int attempt = 0;; attempt++) {
        if (k && k->c && closed_while_idle(k->c))
            conn_drop(k);
        int reused = k && k->c;
        redisContext *c = conn_get(k);
        if (!c) {
            *rc = RS_UNAVAIL;
            return NULL;
        }
        redisReply *r = redisCommandArgv(c, argc, argv, len);
        if (attempt == 0 && reused && worth_retry(r)) {
            freeReplyObject(r);
            conn_drop(k);
            continue;
        }
        if (!r) {
            conn_fail(k, c->errstr[0] ? c->errstr : "connection lost");
            *rc = RS_UNAVAIL;
            return NULL;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            if (noscript_ok && !strncmp(r->str, "NOSCRIPT", 8))
                return r;
            if (!strncmp(r->str, "OOM", 3)) {
                /* Full (maxmemory): this write is refused, but the server and this
                 * connection are fine, and reads go on: no outage, no backoff. */
                full_warn(r->str);
                *rc = RS_UNAVAIL;
            } else if (transient(r->str)) {
                conn_fail(k, r->str);
                *rc = RS_UNAVAIL;
            } else {
                log_warnx("Redis %s failed: %s", what, r->str);
                *rc = RS_ERROR;
            }
            freeReplyObject(r);
            return NULL;
        }
        /* A connection is not enough (a hung Redis still accepts them): the outage
         * ends with the first answer. */
        k->backoff = 0;
        outage_end();
        *rc = RS_OK;
        return r;
    }
}

redisReply *redis_cmd(const char *what, int argc, const char **argv, const size_t *len, int *rc)
{
    return send_cmd(what, argc, argv, len, rc, 0);
}

static void script_sha(struct redis_script *s)
{
    if (s->sha[0])
        return;
    unsigned char md[SHA_DIGEST_LENGTH];
    char hex[41];
    SHA1((const unsigned char *)s->text, strlen(s->text), md);
    for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
        snprintf(hex + 2 * j, 3, "%02x", md[j]);
    memcpy(s->sha, hex, sizeof hex); /* same bytes from any thread: a benign race */
}

redisReply *redis_script(const char *what, struct redis_script *s, int n, const char **args,
                         const size_t *lens, int *rc)
{
    if (n > 16) {
        *rc = RS_ERROR;
        return NULL;
    }
    script_sha(s);
    const char *argv[20];
    size_t len[20];
    argv[0] = "EVALSHA";
    argv[1] = s->sha;
    argv[2] = "0";
    argv[3] = redis_prefix();
    len[0] = 7;
    len[1] = 40;
    len[2] = 1;
    len[3] = strlen(argv[3]);
    for (int i = 0; i < n; i++) {
        argv[4 + i] = args[i];
        len[4 + i] = lens[i];
    }
    redisReply *r = send_cmd(what, 4 + n, argv, len, rc, 1);
    if (r && r->type == REDIS_REPLY_ERROR) { /* NOSCRIPT: Redis was restarted or flushed */
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = s->text;
        len[0] = 4;
        len[1] = strlen(s->text);
        r = send_cmd(what, 4 + n, argv, len, rc, 0);
    }
    return r;
}

int redis_ping(char *why, size_t whylen)
{
    const char *argv[] = {"PING"};
    size_t len[] = {4};
    int rc;
    redisReply *r = redis_cmd("PING", 1, argv, len, &rc);
    if (!r) {
        snprintf(why, whylen, "Redis (%s) %s", rc_cfg.where,
                 rc == RS_UNAVAIL ? "cannot be reached" : "answered an error");
        return -1;
    }
    freeReplyObject(r);
    return 0;
}
