/* REST client certificates (butlerd-api(7), "Authentication"): what the TLS session
 * of a connection says about the client's certificate. libmicrohttpd serves TLS
 * with GnuTLS, so the session is a GnuTLS one. */
#ifndef TLSCLIENT_H
#define TLSCLIENT_H

#include <stddef.h>

enum tlsc_state {
    TLSC_NONE = 1,  /* no certificate presented */
    TLSC_OK,        /* verified against butlerd.http.clientCertCa, for client use */
    TLSC_UNTRUSTED, /* presented but not verified (other CA, expired, wrong purpose) */
};

/* Checks the peer certificate of GNUTLS_SESSION (a gnutls_session_t); on TLSC_OK the
 * subject (RFC 4514, e.g. "CN=etl,O=Example") is copied to SUBJECT. */
enum tlsc_state tlsclient_check(void *gnutls_session, char *subject, size_t size);

#endif
