/* Address validation and mailbox parsing for e-mail alerts (butlerd.conf(5),
 * "E-mail alerts"). */
#include "mailaddr.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int atext(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-/=?^_`{|}~", ch));
}

/* N bytes of S: atext runs separated by single dots. */
static int local_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' ? s[i + 1] == '.' : !atext((unsigned char)s[i]))
            return 0;
    return 1;
}

static int label_ok(const char *s, size_t n, int last)
{
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return 0;
    if (last && (n < 2 || !isalpha((unsigned char)s[0])))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return 0;
    return 1;
}

static int domain_ok(const char *s)
{
    int labels = 0;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (!label_ok(s, n, !dot))
            return 0;
        labels++;
        if (!dot)
            return labels >= 2;
        s = dot + 1;
    }
}

int mailaddr_valid(const char *s)
{
    size_t n = strlen(s);
    if (n > 254)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    const char *at = strchr(s, '@');
    return at && local_ok(s, (size_t)(at - s)) && domain_ok(at + 1);
}

/* A copy of N bytes of S without leading and trailing blanks. */
static char *trimmed(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *r = xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* In place: "a \"b\"" -> a "b"; -1 for an unterminated quoted string. */
static int unquote(char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] != '"')
        return strchr(s, '"') ? -1 : 0;
    char *w = s;
    for (size_t i = 1; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n - 1)
            *w++ = s[++i];
        else if (s[i] == '"')
            return i == n - 1 ? (*w = 0, 0) : -1;
        else
            *w++ = s[i];
    }
    return -1;
}

int mailaddr_parse(const char *s, char **name, char **addr)
{
    *name = *addr = NULL;
    char *all = trimmed(s, strlen(s));
    size_t n = strlen(all);
    char *lt = strrchr(all, '<');
    if (!lt) {
        *name = xstrdup("");
        *addr = all;
        return strchr(all, '>') || strchr(all, ' ') ? -1 : 0;
    }
    int bad = n == 0 || all[n - 1] != '>' || strchr(lt + 1, '>') != all + n - 1;
    *addr = trimmed(lt + 1, bad ? 0 : (size_t)(all + n - 1 - (lt + 1)));
    *name = trimmed(all, (size_t)(lt - all));
    free(all);
    return bad || unquote(*name) < 0 ? -1 : 0;
}
