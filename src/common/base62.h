/* Arbitrary-length conversion between Butler's base62 and lower-case base16. */
#ifndef BASE62_H
#define BASE62_H

/* Both return a malloc'd string, or NULL if IN holds a character outside the
 * source alphabet. Empty and all-zero input give "0"; leading zeros vanish. */
char *base62_to_base16(const char *in);
char *base16_to_base62(const char *in);

#endif
