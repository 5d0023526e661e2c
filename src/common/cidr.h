/* Address lists in CIDR notation (butlerd.http.allowFrom, a token's allowFrom;
 * butlerd.conf(5)): parsing and matching a peer address. An IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d) is matched as the IPv4 address it carries. */
#ifndef CIDR_H
#define CIDR_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

struct cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16];
};

struct cidrlist {
    size_t n;
    struct cidr *v;
};

/* Parses "a.b.c.d/n", "x::y/n" or a bare address (a host: /32 or /128) into *OUT;
 * 0, or -1 if TEXT is not one of those. */
int cidr_parse(const char *text, struct cidr *out);
/* Parses every entry of TEXTS[0..N) into *L (empty on error); returns the index of
 * the first bad entry, or -1 if all are good. */
long cidr_list_parse(struct cidrlist *l, char *const *texts, size_t n);
void cidr_list_free(struct cidrlist *l);

/* The peer address SA as a family byte (4 or 6) and its bytes, mapped IPv4 turned
 * into IPv4: KEY gets 5 or 17 bytes; returns the length, 0 for another family. */
size_t cidr_key(const struct sockaddr *sa, uint8_t key[17]);
/* True if the address KEY (from cidr_key) is inside one of L's networks. */
int cidr_list_match(const struct cidrlist *l, const uint8_t *key, size_t klen);
/* Printable form of KEY into OUT (at least 46 bytes). */
void cidr_key_text(const uint8_t *key, size_t klen, char *out, size_t outlen);

#endif
