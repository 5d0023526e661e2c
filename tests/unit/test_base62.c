/* base62 <-> base16 conversion: examples from the spec, edge cases, long input. */
#include "base62.h"
#include "unit.h"

#include <stdlib.h>

static void both(const char *b62, const char *b16)
{
    char *a = base62_to_base16(b62), *b = base16_to_base62(b16);
    CHECK_STR(a, b16);
    CHECK_STR(b, b62);
    free(a);
    free(b);
}

static void one(char *(*fn)(const char *), const char *in, const char *want)
{
    char *got = fn(in);
    CHECK_STR(got, want);
    free(got);
}

int main(void)
{
    both("6DMW88LpSok9Z7P7hUK0wv7bF", "3199af08bfeeaf5d420f27ed9c01e74370077");
    both("3t5Na7R7Hj5yaBCv80S", "1f5848b5f8ba4e85a57c7ca55a9e");
    both("1", "1");
    both("Z", "3d");
    both("10", "3e");

    /* leading zeros vanish; empty and all-zero give "0" */
    one(base62_to_base16, "0X96HlegVXzQfJVIBWC31", "816c8710661a0a69e51ac8dc4ccf13");
    one(base62_to_base16, "", "0");
    one(base16_to_base62, "", "0");
    one(base62_to_base16, "0000", "0");
    one(base16_to_base62, "000", "0");
    one(base16_to_base62, "00ff", "47");

    /* characters outside the alphabet */
    one(base62_to_base16, "abc-!", NULL);
    one(base62_to_base16, " 1", NULL);
    one(base16_to_base62, "ABC", NULL);
    one(base16_to_base62, "12g", NULL);
    one(base16_to_base62, "0x12", NULL);
    one(base62_to_base16, "\xc3\xa9", NULL);

    /* 62^k boundaries across the 10-digit chunking */
    one(base62_to_base16, "10000000000", "ba5ca5392cb0400"); /* 62^10 */
    one(base16_to_base62, "ba5ca5392cb0400", "10000000000");
    one(base16_to_base62, "ba5ca5392cb03ff", "ZZZZZZZZZZ");

    /* very long input round-trips (20000 hex digits) */
    size_t n = 20000;
    char *hex = malloc(n + 1);
    srand(7);
    for (size_t i = 0; i < n; i++)
        hex[i] = "0123456789abcdef"[rand() % 16];
    hex[0] = 'f';
    hex[n] = '\0';
    char *b62 = base16_to_base62(hex);
    CHECK(b62 != NULL);
    char *back = b62 ? base62_to_base16(b62) : NULL;
    CHECK_STR(back, hex);
    free(hex);
    free(b62);
    free(back);
    return UNIT_DONE();
}
