/* Connections to the Redis that holds the shared state of several instances
 * (butlerd(8), "Several instances"; butlerd.conf(5), butlerd.store.redis).
 *
 * One connection per thread, made on first use, with connect and command
 * timeouts. With butlerd.store.redis.sentinels set, the master's address is asked
 * of the Sentinels (each in turn) at every connect, and the node answering is
 * checked to be a master with ROLE, so a failover is followed by the next
 * reconnect. A connection the server closed while idle is replaced before a
 * command is sent on it; one whose server answers READONLY (a primary demoted by
 * a failover) is replaced at once and the command sent again, once; neither
 * counts as a failure. A connection lost after a command was sent is a failure:
 * the command may have run, so it is not sent again. After a failure a thread
 * waits 50 ms, doubling to 1 s, before it
 * tries again and meanwhile answers RS_UNAVAIL at once. An outage is logged
 * once per process: it begins with the first failure and ends with the first
 * answer. A connection inherited across fork() is dropped, never used. */
#ifndef REDIS_CONN_H
#define REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>


enum { RS_OK = 0, RS_UNAVAIL = -1, RS_ERROR = -2 };

/* The butlerd.store.redis settings (butlerd.conf(5)); the strings are copied. */
struct redis_settings {
    int in_use; /* butlerd.store.backend is "redis" */
    const char *host;
    int port;
    char *const *sentinels; /* "host:port", checked by the configuration check */
    size_t nsentinels;
    const char *master_name, *password, *sentinel_password, *prefix;
    int database, connect_ms, command_ms;
};

/* Takes the settings S; the master, before it forks (and the command-line tools).
 * Makes no connection. kv_redis_settings() fills them from a configuration. */
void redis_configure(const struct redis_settings *s);
/* 1 once redis_configure has run with in_use set. */
int redis_in_use(void);
/* The key prefix (butlerd.store.redis.keyPrefix). */
const char *redis_prefix(void);
/* "host:port" of the Redis or "master NAME via N Sentinels", for messages. */
const char *redis_where(void);

/* Runs one command on this thread's connection. Returns the reply (the caller
 * frees it with freeReplyObject), or NULL with *RC = RS_UNAVAIL (Redis cannot
 * be reached or cannot serve now: LOADING, READONLY, MASTERDOWN, BUSY, NOAUTH,
 * OOM) or RS_ERROR (Redis answered an error: logged with WHAT). */
redisReply *redis_cmd(const char *what, int argc, const char **argv, const size_t *len, int *rc);

/* A Lua script run by its SHA1 (EVALSHA, EVAL when Redis does not know it). */
struct redis_script {
    const char *text;
    char sha[41]; /* filled by redis_cmd_script on first use */
};

/* Runs script S with no KEYS and ARGV = the prefix, then the N arguments (at most
 * 16). Returns as redis_cmd does. */
redisReply *redis_script(const char *what, struct redis_script *s, int n, const char **args,
                         const size_t *lens, int *rc);

/* Bounds every wait of this thread's connection (connect, each command) to MS if
 * that is lower than the configured timeouts; 0 lifts the bound. For a thread that
 * must not stall long: an HTTP worker's MHD thread asking for the rate limit. */
void redis_thread_limit(int ms);

/* 1 while this process sees Redis as unreachable (since the last failure, until
 * the next answer). */
int redis_outage(void);

/* PING on this thread's connection: 0 if Redis answered, -1 with a reason in WHY. */
int redis_ping(char *why, size_t whylen);

#endif
