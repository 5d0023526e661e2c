/* GUID checks (butlerd-api(7), Task IDs): one place decides what a task ID or an app ID looks
 * like,
 * for the configuration check, starting tasks, app reload and the UDP intake. */
#include "guid.h"

#include <ctype.h>
#include <string.h>

/* True if S matches PAT, where x is a hex digit, 5 is 0-5, 8 is 8/9/a/b and - is
 * itself, case-insensitively; OUT (if not NULL) gets S lower-cased. */
static int guid_match(const char *s, const char *pat, char *out)
{
    if (strlen(s) != GUID_LEN)
        return 0;
    char low[GUID_LEN + 1];
    for (int i = 0; i < GUID_LEN; i++) {
        char c = (char)tolower((unsigned char)s[i]);
        int ok = pat[i] == '-' ? c == '-'
                 : pat[i] == '5' ? (c >= '0' && c <= '5')
                 : pat[i] == '8' ? (c == '8' || c == '9' || c == 'a' || c == 'b')
                                 : isxdigit((unsigned char)c) != 0;
        if (!ok)
            return 0;
        low[i] = c;
    }
    low[GUID_LEN] = '\0';
    if (out)
        memcpy(out, low, sizeof low);
    return 1;
}

int guid_task_id(const char *s, char *out)
{
    return guid_match(s, "xxxxxxxx-xxxx-5xxx-8xxx-xxxxxxxxxxxx", out);
}

int guid_loose(const char *s, char *out)
{
    return guid_match(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", out);
}
