/* File operations confined to an approved directory: copy, move, delete and
 * mkdir -p. Knows nothing about HTTP; api_files.c maps the results to answers. */
#ifndef FSOP_H
#define FSOP_H

enum fsop_rc {
    FSOP_OK = 0,
    FSOP_ESCAPE, /* the path resolves outside its approved directory */
    FSOP_NOENT,  /* the source (or the file to delete) does not exist */
    FSOP_SAME,   /* source and destination are the same file */
    FSOP_EXISTS, /* the destination exists and overwrite is false */
    FSOP_ISDIR,  /* the destination (or the file to delete) is a directory */
    FSOP_NOTDIR, /* the source is a directory and the destination exists as a non-directory */
    FSOP_INSIDE, /* the destination lies inside the source directory */
    FSOP_FAIL,   /* anything else; the cause has been logged */
};

/* A location: an approved directory and a path below it. The kernel resolves REL
 * below ROOT with RESOLVE_BENEATH when CONFINED: ".." cannot leave ROOT, symbolic
 * links are followed only while they stay inside it, absolute symbolic links and
 * /proc magic links are refused. ROOT itself is taken as configured. */
struct fsop_loc {
    const char *root; /* absolute, normalised */
    const char *rel;  /* normalised, relative, no ".." segment; "" is ROOT itself */
    const char *abs;  /* the whole absolute path, for messages and the same-path check */
    int confined;
};

/* Copies FROM to TO (butlerd-api(7), File endpoints). A symbolic link given as FROM is followed; a
 * directory is copied recursively (symbolic links in it as links) into a temporary
 * directory that is renamed into place, or merged into an existing directory when
 * OVERWRITE. Files are written without a name where the file system has O_TMPFILE
 * (else under a temporary name), fsync'ed and put in place over the destination
 * (newfile.h). PRESERVE copies access and modification times. */
int fsop_copy(const struct fsop_loc *from, const struct fsop_loc *to, int overwrite,
              int preserve);

/* Moves FROM (not followed if it is a link) to TO with rename(2); across file systems
 * it copies with times preserved, fsyncs, renames into place and only then removes
 * the source. An existing directory at TO is never replaced. */
int fsop_move(const struct fsop_loc *from, const struct fsop_loc *to, int overwrite);

/* Unlinks the file or symbolic link at LOC; directories are refused. */
int fsop_delete(const struct fsop_loc *loc);

/* mkdir -p of LOC (mode 0777 minus umask); the approved directory itself is created
 * too if it is missing. An existing directory is success. */
int fsop_mkdirs(const struct fsop_loc *loc);

#endif
