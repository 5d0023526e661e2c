/* A worker process: one libmicrohttpd daemon on the master's listen socket. */
#ifndef WORKER_H
#define WORKER_H

struct cfg;

struct worker_args {
    const struct cfg *cfg;
    int listen_fd;   /* -1 if the REST server is off */
    int ctl_fd;      /* worker end of the socketpair to the master */
    int slot;
    unsigned gen;
    const char *tls_cert, *tls_key; /* PEM text read by the master, or NULL */
    const char *tls_client_ca; /* PEM of butlerd.http.clientCertCa, or NULL */
    int health_fd; /* Butler.dockerHealthCheck port, or -1 */
};

/* Runs the worker until told to stop or the master dies; never returns. */
void worker_main(const struct worker_args *a) __attribute__((noreturn));

#endif
