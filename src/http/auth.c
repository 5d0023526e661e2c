/* Request authentication. The configuration holds only the SHA-256 of each token;
 * a presented token is hashed and compared with every configured hash in constant
 * time (CRYPTO_memcmp, no early exit), so neither timing nor the log reveals which
 * bytes matched. The token itself is never stored, logged or echoed. */
#include "auth.h"
#include "butlerd.h"
#include "cfg.h"
#include "scope.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The token in "Bearer <token>", trimmed, or NULL; its length in *LEN. */
static const char *bearer(const char *h, size_t *len)
{
    if (!h)
        return NULL;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    *len = n;
    return n ? h : NULL;
}

/* The digest is fetched from the provider once per process and each thread keeps
 * its context: fetching it per call (what EVP_Digest(..., EVP_sha256(), ...)
 * does in OpenSSL 3) costs more than hashing a token. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

static int sha256(const void *p, size_t n, unsigned char out[32])
{
    static __thread EVP_MD_CTX *ctx;
    unsigned int olen = 0;
    pthread_once(&sha256_once, sha256_fetch);
    if (!ctx)
        ctx = EVP_MD_CTX_new();
    if (!sha256_md || !ctx || EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, p, n) != 1 || EVP_DigestFinal_ex(ctx, out, &olen) != 1)
        return -1;
    return olen == 32 ? 0 : -1;
}

static const struct cfg_ident *find_token(const struct cfg *cfg, const char *tok, size_t n)
{
    unsigned char h[32];
    if (sha256(tok, n, h) < 0)
        return NULL;
    const struct cfg_ident *found = NULL;
    for (size_t i = 0; i < cfg->auth.tokens.n; i++) {
        const struct cfg_ident *id = &cfg->auth.tokens.v[i];
        int eq = CRYPTO_memcmp(h, id->sha256, sizeof h) == 0;
        if (eq && !found)
            found = id;
    }
    OPENSSL_cleanse(h, sizeof h);
    return found;
}

static const struct cfg_ident *find_cert(const struct cfg *cfg, const char *subject)
{
    for (size_t i = 0; subject && i < cfg->auth.certs.n; i++)
        if (!strcmp(cfg->auth.certs.v[i].name, subject))
            return &cfg->auth.certs.v[i];
    return NULL;
}

unsigned auth_check(const struct cfg *cfg, const char *authorization, const char *cert_subject,
                    const uint8_t *peer, size_t peerlen, const char *scope,
                    struct auth_result *out)
{
    memset(out, 0, sizeof *out);
    if (!cfg->auth.enable)
        return 0;
    const struct cfg_ident *id = NULL;
    size_t tlen = 0;
    const char *tok = bearer(authorization, &tlen);
    const char *kind = "API token";
    if (tok) {
        id = find_token(cfg, tok, tlen);
        if (!id) {
            out->status = 401;
            out->invalid = 1;
            snprintf(out->message, sizeof out->message, "Invalid API token");
            return out->status;
        }
    } else if ((id = find_cert(cfg, cert_subject)) != NULL) {
        kind = "client certificate";
    } else {
        out->status = 401;
        snprintf(out->message, sizeof out->message,
                 authorization ? "Authorization must be \"Bearer <token>\""
                               : "An API token is required (Authorization: Bearer <token>)");
        return out->status;
    }
    out->who = id->name;
    if (id->allowFrom.n && !cidr_list_match(&id->allowFrom, peer, peerlen)) {
        out->status = 403;
        snprintf(out->message, sizeof out->message, "This %s may not be used from this address",
                 kind);
        return out->status;
    }
    unsigned need = scope_bit(scope);
    if (need == 0 ? id->scopes != SCOPE_ALL : (id->scopes & need) == 0) {
        out->status = 403;
        snprintf(out->message, sizeof out->message, "This %s lacks the scope %s", kind,
                 need ? scope : "*");
        return out->status;
    }
    return 0;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(v >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = a[(v << (6 - bits)) & 63];
    out[o] = '\0';
}

int auth_make_token(const char *name)
{
    if (!*name || strlen(name) > 1024 || strpbrk(name, "\"\\")) {
        fprintf(stderr, "butlerd: -k: the token name must be non-empty and contain no \" or \\\n");
        return EXIT_USAGE;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "butlerd: -k: the token name must be printable\n");
            return EXIT_USAGE;
        }
    unsigned char raw[32], h[32];
    char tok[64];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        fprintf(stderr, "butlerd: -k: no random bytes from OpenSSL\n");
        return EXIT_FATAL;
    }
    memcpy(tok, "bd_", 3);
    b64url(raw, sizeof raw, tok + 3);
    OPENSSL_cleanse(raw, sizeof raw);
    if (sha256(tok, strlen(tok), h) < 0) {
        fprintf(stderr, "butlerd: -k: SHA-256 failed\n");
        return EXIT_FATAL;
    }
    printf("token: %s\n", tok);
    printf("# Give the token to the client now: it is not shown again, and butlerd keeps\n"
           "# only its hash. Add this entry to butlerd.auth.tokens (butlerd.conf(5)) with\n"
           "# the scopes the client needs, then send butlerd SIGHUP:\n");
    printf("{ name = \"%s\"; sha256 = \"", name);
    for (int i = 0; i < 32; i++)
        printf("%02x", h[i]);
    printf("\"; scopes = [ ]; }\n");
    OPENSSL_cleanse(tok, sizeof tok);
    fflush(stdout);
    return EXIT_OK;
}
