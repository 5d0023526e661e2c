/* The audit trail (butlerd(8), "AUDIT TRAIL"): one line per request to a route
 * that changes something, to its own file or to syslog (butlerd.audit.*). */
#ifndef AUDIT_H
#define AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct cfg;

/* Opens the destination CFG names (in each worker, after the privilege drop); a
 * file that cannot be opened is logged and the trail is then lost, not fatal. */
void audit_open(const struct cfg *cfg);
/* Reopens the file (SIGUSR1), so that logrotate can move it away. */
int audit_reopen(void);
/* True if lines are being written. */
int audit_enabled(void);
/* One line: CLIENT address text, WHO (token name, certificate subject or NULL),
 * METHOD, the raw PATH (PATHLEN bytes, no query), STATUS sent (0: none), MS taken. */
void audit_request(const char *client, const char *who, const char *method, const char *path,
                   size_t pathlen, unsigned status, int64_t ms);

#endif
