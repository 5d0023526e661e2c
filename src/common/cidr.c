/* CIDR lists: the networks a client may come from. Parsed once when the
 * configuration is loaded (a bad entry is a configuration error), matched per
 * connection with a few byte comparisons and no allocation. */
#include "cidr.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int cidr_parse(const char *text, struct cidr *out)
{
    char buf[64];
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n + 1);
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        const char *b = slash + 1;
        if (!*b || strspn(b, "0123456789") != strlen(b) || strlen(b) > 3)
            return -1;
        bits = strtol(b, NULL, 10);
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = 4;
        if (bits < 0)
            bits = 32;
        if (bits > 32)
            return -1;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = 6;
        if (bits < 0)
            bits = 128;
        if (bits > 128)
            return -1;
    } else {
        return -1;
    }
    out->bits = (uint8_t)bits;
    return 0;
}

long cidr_list_parse(struct cidrlist *l, char *const *texts, size_t n)
{
    l->n = 0;
    l->v = n ? xcalloc(n, sizeof *l->v) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (cidr_parse(texts[i], &l->v[i]) < 0) {
            cidr_list_free(l);
            return (long)i;
        }
        l->n++;
    }
    return -1;
}

void cidr_list_free(struct cidrlist *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

size_t cidr_key(const struct sockaddr *sa, uint8_t key[17])
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key[0] = 4;
        memcpy(key + 1, &in->sin_addr, 4);
        return 5;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            key[0] = 4;
            memcpy(key + 1, in6->sin6_addr.s6_addr + 12, 4);
            return 5;
        }
        key[0] = 6;
        memcpy(key + 1, &in6->sin6_addr, 16); /* the zone (scope id) is not part of it */
        return 17;
    }
    return 0;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int cidr_list_match(const struct cidrlist *l, const uint8_t *key, size_t klen)
{
    if (klen != 5 && klen != 17)
        return 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct cidr *c = &l->v[i];
        if (c->family == key[0] && prefix_equal(c->addr, key + 1, c->bits))
            return 1;
    }
    return 0;
}

void cidr_key_text(const uint8_t *key, size_t klen, char *out, size_t outlen)
{
    if (!(klen == 5 || klen == 17) ||
        !inet_ntop(key[0] == 4 ? AF_INET : AF_INET6, key + 1, out, (socklen_t)outlen))
        snprintf(out, outlen, "?");
}
