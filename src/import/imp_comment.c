/* Finds comments in the source lines: a '#' at the start of a line or after a
 * blank, after the last YAML token of the line (so a '#' inside a value is never
 * taken for one), on lines that are not inside a multi-line scalar. Columns from
 * libyaml count characters, so they are turned into byte offsets for UTF-8. */
#include "imp_comment.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static size_t byte_of_column(const char *s, int col)
{
    size_t i = 0;
    for (int c = 0; s[i] && c < col; c++) {
        i++;
        while ((s[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

static char *clean(const char *hash)
{
    size_t n = strlen(hash);
    while (n && (hash[n - 1] == ' ' || hash[n - 1] == '\t'))
        n--;
    char *s = xmalloc(n + 1);
    memcpy(s, hash, n);
    s[n] = '\0';
    return s;
}

void imp_comment_scan(const struct imp_lines *L, struct imp_comments *c)
{
    memset(c, 0, sizeof *c);
    c->n = L->n;
    c->full = xcalloc(L->n ? L->n : 1, sizeof *c->full);
    c->trail = xcalloc(L->n ? L->n : 1, sizeof *c->trail);
    for (size_t i = 0; i < L->n; i++) {
        const char *s = L->text[i];
        if (L->inside[i])
            continue;
        if (!s[strspn(s, " \t")] && L->content_end[i] < 0) { /* blank: kept as one */
            c->full[i] = xstrdup("");
            continue;
        }
        size_t from = L->content_end[i] < 0 ? 0 : byte_of_column(s, L->content_end[i]);
        for (size_t j = from; s[j]; j++) {
            if (s[j] != '#' || (j > 0 && s[j - 1] != ' ' && s[j - 1] != '\t'))
                continue;
            if (L->content_end[i] < 0 && strspn(s, " \t") == j)
                c->full[i] = clean(s + j);
            else
                c->trail[i] = clean(s + j);
            break;
        }
    }
}

void imp_comment_free(struct imp_comments *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->full[i]);
        free(c->trail[i]);
    }
    free(c->full);
    free(c->trail);
    memset(c, 0, sizeof *c);
}

void imp_comment_flush(struct imp_comments *c, int line, FILE *out, int indent)
{
    size_t upto = line > 0 ? (size_t)line - 1 : 0;
    if (upto > c->n)
        upto = c->n;
    for (; c->next < upto; c->next++) {
        const char *t = c->full[c->next] ? c->full[c->next] : c->trail[c->next];
        if (t && !*t && c->next > 0 && c->full[c->next - 1] && !*c->full[c->next - 1])
            ; /* a run of blank lines becomes one */
        else if (t && !*t)
            fputc('\n', out);
        else if (t)
            fprintf(out, "%*s%s\n", indent, "", t);
        free(c->trail[c->next]);
        c->trail[c->next] = NULL;
    }
}

char *imp_comment_trailing(struct imp_comments *c, int line)
{
    if (line < 1 || (size_t)line > c->n)
        return NULL;
    char *t = c->trail[line - 1];
    c->trail[line - 1] = NULL;
    return t;
}
