/* Lexical path rules of spec 2.4.1: normalisation (echo form), absolute form,
 * containment, UNC detection and length limits. */
#include "fspath.h"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

static void norm(const char *in, const char *want)
{
    char *got = fspath_normalise(in);
    CHECK_STR(got, want);
    free(got);
}

static void inside(const char *path, const char *dir, const char *want)
{
    CHECK_STR(fspath_inside(path, dir), want);
}

int main(void)
{
    norm("/data/src/copyme.txt", "/data/src/copyme.txt");
    norm("\\data\\src\\x.txt", "/data/src/x.txt");
    norm("/data//src///x", "/data/src/x");
    norm("/data/./src/.", "/data/src");
    norm("/data/src/", "/data/src");
    norm("/", "/");
    norm("//", "/");
    norm("/..", "/");
    norm("/../../etc", "/etc");
    norm("/data/src/../../etc/passwd", "/etc/passwd");
    norm("a/b/../c", "a/c");
    norm("a/..", ".");
    norm("", ".");
    norm(".", ".");
    norm("./", ".");
    norm("../a", "../a");
    norm("../../a", "../../a");
    norm("a/../../b", "../b");
    norm("..\\..\\Windows", "../../Windows");
    norm("d:/abc/def", "d:/abc/def");
    norm("%2e%2e/%2e%2e/x", "%2e%2e/%2e%2e/x"); /* no decoding here */
    norm("...", "...");
    norm("a/.../b", "a/.../b");

    CHECK(fspath_is_unc("\\\\server\\share"));
    CHECK(fspath_is_unc("//server/share"));
    CHECK(!fspath_is_unc("/server/share"));
    CHECK(!fspath_is_unc("\\server"));
    CHECK(!fspath_is_unc(""));

    inside("/data/src/x", "/data/src", "x");
    inside("/data/src/a/b", "/data/src", "a/b");
    inside("/data/src", "/data/src", "");
    inside("/data/srcx/y", "/data/src", NULL);
    inside("/data", "/data/src", NULL);
    inside("/etc/passwd", "/", "etc/passwd");
    inside("/", "/", "");
    inside("/Data/src/x", "/data/src", NULL);
    inside("data/src/x", "/data/src", NULL);

    char *cwd = getcwd(NULL, 0), *abs = fspath_absolute("x/../y"), *want = NULL;
    if (cwd && abs) {
        size_t n = strlen(cwd);
        want = malloc(n + 3);
        memcpy(want, cwd, n);
        memcpy(want + n, n > 1 ? "/y" : "y", 3);
        CHECK_STR(abs, want);
    }
    free(abs);
    free(want);
    abs = fspath_absolute("/a/./b/");
    CHECK_STR(abs, "/a/b");
    free(abs);
    free(cwd);

    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(!fspath_fits(big));
    for (size_t i = 100; i < sizeof big - 1; i += 100)
        big[i] = '/';
    CHECK(!fspath_fits(big)); /* short names, too long in all */
    big[4095] = '\0';
    CHECK(fspath_fits(big));
    big[256] = '\0';
    memset(big, 'n', 256);
    CHECK(!fspath_fits(big)); /* one name of 256 bytes */
    big[255] = '\0';
    CHECK(fspath_fits(big));
    return UNIT_DONE();
}
