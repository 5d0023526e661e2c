/* Base62 <-> base16 (src/base62.c), as /v4/base62tobase16 and /v4/base16tobase62
 * call it on a query parameter. A conversion either fails (a character outside the
 * alphabet) or round-trips. */
#include "base62.h"
#include "fuzz.h"

#include <ctype.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    return 0;
}

/* IN without leading zeros, lower case; "0" if nothing is left. */
static char *canon16(const char *in)
{
    while (*in == '0')
        in++;
    char *s = strdup(*in ? in : "0");
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) /* the query string limit is smaller still */
        return 0;
    char *in = fuzz_str(data, size);

    char *h = base62_to_base16(in);
    if (h) {
        FUZZ_ASSERT(*h && strspn(h, "0123456789abcdef") == strlen(h));
        FUZZ_ASSERT(h[0] != '0' || h[1] == '\0');
        char *b = base16_to_base62(h);
        FUZZ_ASSERT(b != NULL);
        char *h2 = base62_to_base16(b);
        FUZZ_ASSERT(h2 && !strcmp(h, h2));
        free(b);
        free(h2);
        free(h);
    }

    char *b = base16_to_base62(in);
    if (b) {
        FUZZ_ASSERT(*b);
        char *h2 = base62_to_base16(b);
        char *want = canon16(in);
        FUZZ_ASSERT(h2 && !strcmp(h2, want));
        free(want);
        free(h2);
        free(b);
    }
    free(in);
    return 0;
}
