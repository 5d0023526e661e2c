/* UTF-8 text: validating, repairing, counting and cutting by code points, and the
 * sanitising the HTTP, Slack and UDP paths need. Strings are (pointer, length). */
#ifndef UTF8_H
#define UTF8_H

#include <stddef.h>

struct buf;

/* True if LEN bytes of IN are well-formed UTF-8: no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF. */
int utf8_valid(const void *in, size_t len);
/* A copy of LEN bytes of IN as valid UTF-8: each maximal invalid sequence becomes one
 * U+FFFD (as the WHATWG decoder does). NUL-terminated; its length in *OUTLEN. */
char *utf8_repair(const void *in, size_t len, size_t *outlen);
/* Code points in N bytes of S: the bytes that are not continuation bytes. */
size_t utf8_count(const char *s, size_t n);
/* Length in bytes of the longest prefix of S (N bytes) of at most MAX code points. */
size_t utf8_prefix(const char *s, size_t n, size_t max);
/* Appends S (N bytes) to OUT as valid UTF-8, each byte of a broken or cut sequence
 * as '?', stopping before OUT would pass MAX bytes. OUT is NUL-terminated. */
void utf8_append_clean(struct buf *out, const char *s, size_t n, size_t max);
/* In place: drops C0 controls and DEL and keeps at most MAX_CP code points of the
 * NUL-terminated S (valid UTF-8; a sequence cut by the end is kept as it is). */
void utf8_strip_controls(char *s, size_t max_cp);

#endif
