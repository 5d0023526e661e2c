/* Shared bits of the libFuzzer harnesses: quiet but complete logging (every
 * message is formatted, as in the daemon, and written to /dev/null) and a
 * NUL-terminated copy of the input. */
#ifndef FUZZ_H
#define FUZZ_H

#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static inline void fuzz_quiet_log(void)
{
    if (log_configure(LOG_DEST_FILE, LOG_LV_DEBUG, "/dev/null", "butlerd-fuzz", 0) < 0)
        abort();
}

/* A malloc'd copy of DATA with a NUL after it, so ASan sees any read past SIZE. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Aborts with a message: an invariant of the code under test does not hold. */
#define FUZZ_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

#endif
