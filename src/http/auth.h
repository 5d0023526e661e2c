/* Who may call a route (butlerd-api(7), "Authentication"): API tokens with scopes,
 * client-certificate subjects standing in for tokens, each optionally limited to
 * source networks. Pure decisions: the HTTP layer renders the answer. */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>
#include <stdint.h>

struct cfg;

struct auth_result {
    unsigned status;  /* 0 allowed, 401 or 403 */
    int invalid;      /* 401 for a token that matched none (not a missing one) */
    const char *who;  /* the token name or certificate subject (points into cfg), or NULL */
    char message[192];
};

/* Decides a request to a route needing SCOPE (the route table's name, NULL if the
 * route names none: then only a "*" token may call it) from client PEER (cidr_key
 * form), with AUTHORIZATION the header value (or NULL) and CERT_SUBJECT the verified
 * client certificate's subject (or NULL). With butlerd.auth off everything is
 * allowed. Returns out->status. */
unsigned auth_check(const struct cfg *cfg, const char *authorization, const char *cert_subject,
                    const uint8_t *peer, size_t peerlen, const char *scope,
                    struct auth_result *out);

/* Makes a new random token for NAME and prints it with its configuration entry to
 * stdout (butlerd -k NAME). Returns an exit code. */
int auth_make_token(const char *name);

#endif
