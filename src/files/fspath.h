/* Lexical path handling for the file endpoints (butlerd-api(7), File endpoints): UNC
 * detection, the
 * normalised "echo form", the absolute form and segment-wise containment. Pure
 * string work: nothing here looks at the file system except getcwd(). */
#ifndef FSPATH_H
#define FSPATH_H

#include <stddef.h>

/* Longest path butlerd accepts, whole and per name (PATH_MAX - 1, NAME_MAX). */
#define FSPATH_MAX 4095
#define FSPATH_NAME_MAX 255

/* True if P starts with \\ or // (a Windows UNC path). */
int fspath_is_unc(const char *p);

/* True if every segment of P fits NAME_MAX and P fits FSPATH_MAX. */
int fspath_fits(const char *p);

/* Echo form: \ -> /, runs of / collapsed, "." dropped, ".." cancels the segment
 * before it (kept at the start of a relative path, dropped at the root), no
 * trailing /. "" and "a/.." give ".". Returns a malloc'd string. */
char *fspath_normalise(const char *p);

/* Absolute form: a relative path is resolved against the working directory and
 * normalised again. Returns a malloc'd string, or NULL if getcwd() failed. */
char *fspath_absolute(const char *p);

/* If the absolute path PATH lies inside the absolute directory DIR (segment-wise,
 * byte-exact; DIR itself counts), returns the rest of PATH below DIR without a
 * leading / ("" for DIR itself); otherwise NULL. */
const char *fspath_inside(const char *path, const char *dir);

#endif
