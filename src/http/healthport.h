/* Butler's health port (Butler.dockerHealthCheck; butlerd(8), "MONITORING"): GET
 * /health answers {"statusCode":200,"status":"ok"}, anything else 404. */
#ifndef HEALTHPORT_H
#define HEALTHPORT_H

struct MHD_Daemon;

/* A small libmicrohttpd daemon on the master's socket FD, or NULL. */
struct MHD_Daemon *healthport_start(int fd);
void healthport_stop(struct MHD_Daemon *d);

#endif
