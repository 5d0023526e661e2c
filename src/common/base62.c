/* Base conversion on OpenSSL bignums. Digits are folded in chunks of ten base62
 * digits (62^10 < 2^64) so a long input costs one word operation per chunk rather
 * than one per digit. */
#include "base62.h"
#include "util.h"

#include <openssl/bn.h>
#include <string.h>

static const char b62[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
#define CHUNK 10
#define CHUNK_BASE 839299365868340224ULL /* 62^10 */

static int b62_val(char ch)
{
    const char *p = ch ? strchr(b62, ch) : NULL;
    return p ? (int)(p - b62) : -1;
}

/* Drops leading zeros; "" becomes "0". Works in place. */
static char *strip_zeros(char *s)
{
    size_t z = strspn(s, "0");
    if (s[z] == '\0')
        z = z ? z - 1 : 0;
    memmove(s, s + z, strlen(s + z) + 1);
    if (*s == '\0') {
        s[0] = '0';
        s[1] = '\0';
    }
    return s;
}

char *base62_to_base16(const char *in)
{
    size_t n = strlen(in);
    for (size_t i = 0; i < n; i++)
        if (b62_val(in[i]) < 0)
            return NULL;
    BIGNUM *bn = BN_new();
    if (!bn)
        return NULL;
    BN_zero(bn);
    int ok = 1;
    for (size_t i = 0; i < n && ok;) {
        size_t take = n - i < CHUNK ? n - i : CHUNK;
        BN_ULONG mul = 1, add = 0;
        for (size_t j = 0; j < take; j++, i++) {
            mul *= 62;
            add = add * 62 + (BN_ULONG)b62_val(in[i]);
        }
        ok = BN_mul_word(bn, mul) && BN_add_word(bn, add);
    }
    char *out = NULL;
    if (ok) {
        char *hex = BN_bn2hex(bn); /* upper case, "0" for zero */
        if (hex) {
            for (char *p = hex; *p; p++)
                if (*p >= 'A' && *p <= 'F')
                    *p = (char)(*p - 'A' + 'a');
            out = xmalloc(strlen(hex) + 2);
            strcpy(out, hex);
            strip_zeros(out);
            OPENSSL_free(hex);
        }
    }
    BN_free(bn);
    return out;
}

char *base16_to_base62(const char *in)
{
    size_t n = strlen(in);
    if (n == 0)
        return xstrdup("0");
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", in[i]) || in[i] == '\0')
            return NULL;
    BIGNUM *bn = NULL;
    if (BN_hex2bn(&bn, in) != (int)n) {
        BN_free(bn);
        return NULL;
    }
    /* At most ceil(n * 4 / log2(62)) digits; 4/5.95 < 0.68. */
    size_t cap = n * 68 / 100 + CHUNK + 2;
    char *out = xmalloc(cap + 1);
    size_t len = 0;
    while (!BN_is_zero(bn)) {
        BN_ULONG r = BN_div_word(bn, CHUNK_BASE);
        if (r == (BN_ULONG)-1) {
            free(out);
            BN_free(bn);
            return NULL;
        }
        for (int j = 0; j < CHUNK; j++) { /* digits come out least significant first */
            out[len++] = b62[r % 62];
            r /= 62;
        }
    }
    BN_free(bn);
    out[len] = '\0';
    for (size_t i = 0; i < len / 2; i++) {
        char t = out[i];
        out[i] = out[len - 1 - i];
        out[len - 1 - i] = t;
    }
    return strip_zeros(out);
}
