/* Percent-decoding (RFC 3986) of request inputs. */
#ifndef PCT_H
#define PCT_H

#include <stddef.h>

/* Form decoding of N bytes of S: '+' is a space, %XX is a byte, a malformed escape
 * stays literal; invalid UTF-8 becomes U+FFFD. Malloc'd, NUL-terminated, its length
 * in *OUTLEN (it may contain NUL bytes). */
char *pct_decode_form(const char *s, size_t n, size_t *outlen);

/* Strict percent-decoding of a path parameter: returns a malloc'd string, or NULL
 * for a bad escape, a decoded NUL byte or a result that is not valid UTF-8. */
char *pct_decode_path(const char *raw, size_t len);

#endif
