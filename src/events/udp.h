/* UDP intake (butlerd-api(7), UDP EVENTS), in the master: the task-event and session-event
 * sockets, the
 * intake pipeline (allow-list, size, rate, decode, de-duplication, queue, sanitise,
 * dispatch), active-user tracking and the active-user publications. */
#ifndef UDP_H
#define UDP_H

#include <poll.h>
#include <stddef.h>

struct cfg;

/* Binds the sockets (a port that cannot be bound is fatal: -1). */
int udp_start(const struct cfg *cfg);
/* New configuration (limits, allow-list, topics; addresses and ports need a restart). */
void udp_set_cfg(const struct cfg *cfg);
int udp_pollfds(struct pollfd *p, int max);
void udp_handle(const struct pollfd *p, int n);
/* Idle expiry, drop summaries; returns ms to the next timer or -1. */
int udp_timers(void);
int udp_child_fds(int *out, int max);
/* The MQTT client (re)connected: the aggregates are published again. */
void udp_on_connect(void);
void udp_stop(void);

/* Exposed for the unit tests. */
/* Removes U+0000-U+001F and U+007F and cuts S to MAX code points, in place. S is
 * UTF-8; a sequence cut short by the end of S is kept as it is, never read past. */
void udp_sanitise(char *s, size_t max_cp);

/* Kinds of scheduler and engine events on the task socket. */
enum udp_ttype { UDP_T_NONE, UDP_T_FAILED, UDP_T_ABORTED, UDP_T_SUCCESS, UDP_T_DISTRIBUTE,
                 UDP_T_ENGINE };

/* A datagram split into sanitised fields (butlerd-api(7), Processing of a datagram steps 4 and
 * 7). */
struct udp_msg {
    char *text;          /* malloc'd; the fields point into it */
    char *f[16];
    size_t n;            /* fields: at most 11 (task), 9 (engine) or 8 (session) */
    enum udp_ttype type; /* task socket: the kind from field 0; session socket: NONE */
};
/* Parses LEN bytes of P received on socket SOCK (UDP_TASK or UDP_SESSION, stats.h).
 * The caller frees M->text. */
void udp_parse(int sock, const void *p, size_t len, struct udp_msg *m);

#endif
