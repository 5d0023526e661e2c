/* Minimal assertions for the C unit tests: each failure prints file:line and the
 * expression; main() returns the failure count so automake marks the test FAIL. */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failures, unit_checks;

#define CHECK(expr)                                                                         \
    do {                                                                                    \
        unit_checks++;                                                                      \
        if (!(expr)) {                                                                      \
            unit_failures++;                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);        \
        }                                                                                   \
    } while (0)

#define CHECK_STR(got, want)                                                                \
    do {                                                                                    \
        const char *g_ = (got), *w_ = (want);                                               \
        unit_checks++;                                                                      \
        if (!g_ || !w_ ? g_ != w_ : strcmp(g_, w_) != 0) {                                  \
            unit_failures++;                                                                \
            fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", __FILE__, __LINE__,     \
                    #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");                          \
        }                                                                                   \
    } while (0)

#define UNIT_DONE()                                                                         \
    (printf("%d checks, %d failed\n", unit_checks, unit_failures), unit_failures ? 1 : 0)

#endif
