/* Lexical path handling (butlerd-api(7), File endpoints). The approval decision of the file
 * endpoints is
 * made on these strings; fsop.c then makes the kernel resolve the same path below
 * the approved directory, so a symbolic link cannot take it anywhere else. */
#include "fspath.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fspath_is_unc(const char *p)
{
    return (p[0] == '\\' && p[1] == '\\') || (p[0] == '/' && p[1] == '/');
}

int fspath_fits(const char *p)
{
    size_t seg = 0, len = 0;
    for (; *p; p++, len++) {
        if (*p == '/' || *p == '\\')
            seg = 0;
        else if (++seg > FSPATH_NAME_MAX)
            return 0;
    }
    return len <= FSPATH_MAX;
}

char *fspath_normalise(const char *p)
{
    size_t n = strlen(p);
    char *out = xmalloc(n + 2);
    size_t len = 0;
    int absolute = p[0] == '/' || p[0] == '\\';
    size_t base = absolute ? 1 : 0; /* segments start here */
    if (absolute)
        out[len++] = '/';

    const char *s = p;
    while (*s) {
        while (*s == '/' || *s == '\\')
            s++;
        const char *e = s;
        while (*e && *e != '/' && *e != '\\')
            e++;
        size_t sl = (size_t)(e - s);
        if (sl == 0 || (sl == 1 && s[0] == '.')) {
            /* empty or "." segment: nothing */
        } else if (sl == 2 && s[0] == '.' && s[1] == '.') {
            /* ".." cancels the last segment unless that is itself a kept ".." */
            size_t start = len;
            while (start > base && out[start - 1] != '/')
                start--;
            int last_dotdot = len - start == 2 && out[start] == '.' && out[start + 1] == '.';
            if (len > base && !last_dotdot) {
                len = start > base ? start - 1 : base;
            } else if (!absolute) {
                if (len > base)
                    out[len++] = '/';
                out[len++] = '.';
                out[len++] = '.';
            }
        } else {
            if (len > base)
                out[len++] = '/';
            memcpy(out + len, s, sl);
            len += sl;
        }
        s = e;
    }
    if (len == 0)
        out[len++] = '.';
    out[len] = '\0';
    return out;
}

char *fspath_absolute(const char *p)
{
    char *n = fspath_normalise(p);
    if (n[0] == '/')
        return n;
    char *cwd = getcwd(NULL, 0);
    if (!cwd) {
        free(n);
        return NULL;
    }
    char *joined = xasprintf("%s/%s", cwd, n);
    free(cwd);
    free(n);
    n = fspath_normalise(joined);
    free(joined);
    return n;
}

const char *fspath_inside(const char *path, const char *dir)
{
    if (dir[0] != '/' || path[0] != '/')
        return NULL;
    if (dir[1] == '\0')
        return path + 1;
    size_t dl = strlen(dir);
    if (strncmp(path, dir, dl) != 0)
        return NULL;
    if (path[dl] == '\0')
        return path + dl;
    return path[dl] == '/' ? path + dl + 1 : NULL;
}
