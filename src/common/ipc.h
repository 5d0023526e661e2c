/* The protocol between butlerd's processes, in one place.
 *
 * Framed messages over Unix stream sockets: a 4-byte length, a type byte, then the
 * payload. Used for MQTT publish requests from workers and the events process to
 * the master, and for jobs from the master to the events process.
 *
 * A worker's control socket to the master is not framed: the worker writes the
 * single byte IPC_READY once it serves, and nothing else; each side sees the
 * other's end as EOF (the master reaps, a worker drains and exits). */
#ifndef IPC_H
#define IPC_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

#define IPC_MAX_FRAME (64u << 20) /* larger frames are a protocol error */

/* Message types. */
enum {
    IPC_PUBLISH = 'P', /* u8 qos, u8 retain, u8 want_reply, u8 0, u32 topic len, topic, payload */
    IPC_REPLY = 'R',   /* u8 code (enum mqtt_result) */
    IPC_JOB = 'J',     /* u8 kind, then the job's data */
    IPC_DONE = 'D',    /* u8 kind: the events process finished one job */
};

/* The kinds of IPC_JOB: the u8 after the type byte. */
enum ev_kind {
    EV_START_TASK = 1, /* data: the MQTT message payload */
    EV_TASK_EVENT = 2, /* data: JSON {"outcome": "failed"|"aborted", "fields": [11 strings]} */
};

/* The worker ready handshake on the control socket (one unframed byte). */
#define IPC_READY 'R'

/* Non-blocking reader: feed it from a readable fd, take whole frames out. */
struct ipc_reader {
    struct buf in;
    size_t pos; /* start of the first unconsumed frame */
};
/* Reads what is available. Returns 0, or -1 on EOF, error or a bad frame. */
int ipc_fill(struct ipc_reader *r, int fd);
/* Takes the next whole frame: 1 and TYPE/DATA/LEN set, or 0 if none yet. DATA stays
 * valid until the next ipc_fill. */
int ipc_take(struct ipc_reader *r, int *type, const unsigned char **data, size_t *len);
void ipc_reader_free(struct ipc_reader *r);

/* Appends a frame made of TYPE and up to three parts to OUT. */
void ipc_frame(struct buf *out, int type, const void *a, size_t alen, const void *b,
               size_t blen, const void *c, size_t clen);
/* Writes all of BUF to a blocking FD; 0 or -1. */
int ipc_write_all(int fd, const void *p, size_t n);
/* Reads one frame from a blocking FD within TIMEOUT_MS into OUT (type in *TYPE);
 * 0, or -1 on timeout/EOF/error. */
int ipc_read_frame(int fd, int timeout_ms, int *type, struct buf *out);

struct sockaddr_un;
/* The master's publish socket: an abstract Unix socket named after the master pid.
 * Fills A and returns the address length to pass to bind/connect. */
unsigned ipc_pub_addr(struct sockaddr_un *a, long master_pid);

#endif
