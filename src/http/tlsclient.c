/* Client-certificate checks on libmicrohttpd's GnuTLS sessions. libmicrohttpd asks
 * for a certificate when it is given a trust list (MHD_OPTION_HTTPS_MEM_TRUST) but
 * lets the handshake finish without one, so the verdict is taken here, once per
 * connection, and the HTTP layer decides what a missing or untrusted certificate
 * means for the request. */
#include "tlsclient.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>

enum tlsc_state tlsclient_check(void *gnutls_session, char *subject, size_t size)
{
    gnutls_session_t s = gnutls_session;
    unsigned int n = 0;
    const gnutls_datum_t *certs = s ? gnutls_certificate_get_peers(s, &n) : NULL;
    if (!certs || n == 0)
        return TLSC_NONE;
    /* Chain, dates and the CA, and the certificate must be meant for TLS clients. */
    gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
                                     (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};
    unsigned int status = 0;
    if (gnutls_certificate_verify_peers(s, &purpose, 1, &status) < 0 || status != 0)
        return TLSC_UNTRUSTED;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return TLSC_UNTRUSTED;
    gnutls_datum_t dn = {NULL, 0};
    int ok = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
             gnutls_x509_crt_get_dn3(crt, &dn, 0) >= 0;
    /* A subject that does not fit is not cut short (a prefix could match another
     * entry): it stays empty, and the certificate, trusted, maps to no entry. */
    if (ok && dn.size < size) {
        memcpy(subject, dn.data, dn.size);
        subject[dn.size] = '\0';
    } else if (ok) {
        subject[0] = '\0';
    }
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
    return ok ? TLSC_OK : TLSC_UNTRUSTED;
}
