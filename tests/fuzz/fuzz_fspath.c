/* Lexical path handling of the file endpoints (src/fspath.c). Input: a request path,
 * a NUL byte, an approved directory. Checks the properties the approval decision
 * rests on: the echo form is normalised and stable, an absolute form has no "..",
 * and fspath_inside() only answers for paths really below the directory. */
#include "fspath.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    return 0;
}

static void check_normal(const char *n)
{
    size_t l = strlen(n);
    FUZZ_ASSERT(l > 0);
    FUZZ_ASSERT(!strchr(n, '\\'));
    FUZZ_ASSERT(!strstr(n, "//"));
    FUZZ_ASSERT(l == 1 || n[l - 1] != '/');
    /* no "." segment, except the whole path "." */
    if (strcmp(n, ".") != 0) {
        FUZZ_ASSERT(strncmp(n, "./", 2) != 0 && !strstr(n, "/./"));
        FUZZ_ASSERT(!(l >= 2 && !strcmp(n + l - 2, "/.")));
    }
    if (n[0] == '/') /* ".." never survives at the root */
        FUZZ_ASSERT(!strstr(n, "/../") && !(l >= 3 && !strcmp(n + l - 3, "/..")));
    char *again = fspath_normalise(n);
    FUZZ_ASSERT(!strcmp(again, n));
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3 * FSPATH_MAX)
        return 0;
    char *in = fuzz_str(data, size);
    const char *path = in;
    const char *dir = strlen(in) < size ? in + strlen(in) + 1 : "/srv/qvd";

    (void)fspath_is_unc(path);
    (void)fspath_fits(path);
    char *n = fspath_normalise(path);
    check_normal(n);
    char *ap = fspath_absolute(path), *ad = fspath_absolute(dir);
    FUZZ_ASSERT(ap && ad && ap[0] == '/' && ad[0] == '/');
    check_normal(ap);
    check_normal(ad);
    const char *rest = fspath_inside(ap, ad);
    if (rest) {
        size_t dl = strlen(ad);
        FUZZ_ASSERT(rest >= ap && rest <= ap + strlen(ap));
        if (strcmp(ad, "/") == 0) {
            FUZZ_ASSERT(rest == ap + 1);
        } else {
            FUZZ_ASSERT(!strncmp(ap, ad, dl));
            FUZZ_ASSERT(*rest == '\0' ? ap[dl] == '\0' : ap[dl] == '/' && rest == ap + dl + 1);
        }
        /* below the directory lexically: no ".." segment left */
        FUZZ_ASSERT(strcmp(rest, "..") && strncmp(rest, "../", 3));
    }
    free(n);
    free(ap);
    free(ad);
    free(in);
    return 0;
}
