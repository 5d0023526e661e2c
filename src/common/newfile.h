/* A new file that appears under its name complete or not at all, and leaves
 * nothing behind if the process dies while writing it: the key-value snapshot and
 * the files PUT /v4/filecopy and cross-file-system moves write (butlerd(8),
 * "Persistence" and "Temporary files"). */
#ifndef NEWFILE_H
#define NEWFILE_H

#include <sys/types.h>

struct newfile {
    int dirfd; /* the directory, borrowed from the caller */
    int fd;    /* open for writing */
    int named; /* 0: unnamed (O_TMPFILE); 1: a named temporary file exists */
    char name[256]; /* the temporary name (named, or while committing) */
    const char *fixed; /* the caller's temporary name, or NULL for random ones */
};

/* ".butlerd-" and 12 random hex digits: a name no reader mistakes for a file of
 * its own. OUT has room for 32 bytes. */
void newfile_random_name(char out[32]);

/* Opens a new file in DIRFD with MODE: unnamed (O_TMPFILE) where the file system
 * supports it, else a new named temporary file, created with O_EXCL | O_NOFOLLOW
 * so a planted symbolic link is never followed. FIXED is the temporary name to
 * use, or NULL for random ones; an entry FIXED that already exists is removed
 * first (only for a directory only butlerd can write). 0, or -1 with errno. */
int newfile_open(struct newfile *f, int dirfd, const char *fixed, mode_t mode);

/* Puts the written (and fsync'ed) file in place as DEST in the same directory and
 * closes it: over an existing DEST when REPLACE, else only into a free name (EEXIST
 * otherwise). 0, or -1 with errno; on failure nothing is left behind except when a
 * temporary name cannot be removed (logged). */
int newfile_commit(struct newfile *f, const char *dest, int replace);

/* Closes and forgets the file (removes the temporary name if there is one). */
void newfile_abort(struct newfile *f);

/* rename(2) within or between directories that never replaces unless REPLACE;
 * 0, or -1 with errno (EEXIST when DNAME exists). */
int newfile_rename(int sdir, const char *sname, int ddir, const char *dname, int replace);

/* Tests only: 1 makes newfile_open behave as on a file system without O_TMPFILE. */
void newfile_force_named(int on);

#endif
