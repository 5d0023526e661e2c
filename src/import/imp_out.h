/* Output files: written to a temporary file beside the target and renamed into
 * place, never over an existing file without --force. */
#ifndef IMP_OUT_H
#define IMP_OUT_H

#include <stdio.h>

struct imp_out {
    char *tmp;      /* temporary file name */
    const char *final; /* NULL: standard output */
    FILE *f;
};

/* Opens a temporary file beside FINAL (or in $TMPDIR for standard output) with
 * MODE bits: 0, or -1 with a message on stderr. */
int imp_out_open(struct imp_out *o, const char *final, unsigned mode);
/* Flushes and closes, then moves the file into place (or copies it to standard
 * output): 0, or -1 with a message. FORCE allows replacing an existing file. */
int imp_out_commit(struct imp_out *o, int force);
/* Removes the temporary file (after a failure, or after --check). */
void imp_out_discard(struct imp_out *o);

#endif
