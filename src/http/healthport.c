/* Butler's health port: a container runtime's liveness probe. It lives in each
 * worker, next to the REST daemon, so an answer means a worker is serving. Only
 * the request line matters: no body is read, no header is looked at. */
#include "healthport.h"
#include "log.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char ok_body[] = "{\"statusCode\":200,\"status\":\"ok\"}";
static const char missing_body[] =
    "{\"statusCode\":404,\"error\":\"Not Found\",\"message\":\"Not Found\"}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    if (*upload_data_size) { /* a body nobody asked for: skip it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    int ok = (!strcmp(method, "GET") || !strcmp(method, "HEAD")) && !strcmp(url, "/health");
    const char *body = ok ? ok_body : missing_body;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    enum MHD_Result res = MHD_queue_response(c, ok ? 200 : 404, r);
    MHD_destroy_response(r);
    return res;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_verbose("libmicrohttpd (health port): %s", line);
}

/* MHD_USE_ITC: without it libmicrohttpd would wake its thread at the end by
 * shutting the listen socket down - for every process that shares it. */
struct MHD_Daemon *healthport_start(int fd)
{
    return MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT, 64u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
}

void healthport_stop(struct MHD_Daemon *d)
{
    if (!d)
        return;
    MHD_socket fd = MHD_quiesce_daemon(d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd); /* our copy: the master keeps the socket */
    MHD_stop_daemon(d);
}
