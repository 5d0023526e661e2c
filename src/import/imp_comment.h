/* The comments of a YAML file, which libyaml does not report: found from the line
 * marks imp_yaml.c records, and handed out in source order so the libconfig output
 * keeps each comment next to the key it described. */
#ifndef IMP_COMMENT_H
#define IMP_COMMENT_H

#include "imp_yaml.h"

#include <stdio.h>

struct imp_comments {
    size_t n;       /* lines */
    char **full;    /* full[i]: comment filling line i+1 ("# ..."), or NULL */
    char **trail;   /* trail[i]: comment after YAML content on line i+1, or NULL */
    size_t next;    /* lines before this one have been written */
};

void imp_comment_scan(const struct imp_lines *L, struct imp_comments *c);
void imp_comment_free(struct imp_comments *c);
/* Writes every comment on lines before LINE not yet written, at INDENT spaces. */
void imp_comment_flush(struct imp_comments *c, int line, FILE *out, int indent);
/* The trailing comment of LINE, once (NULL if none or already taken); the caller
 * frees it. */
char *imp_comment_trailing(struct imp_comments *c, int line);

#endif
