/* The butlerd group written after the converted Butler group: butlerd's own
 * settings with defaults that keep Butler's behaviour where they can. */
#ifndef IMP_BUTLERD_H
#define IMP_BUTLERD_H

#include "imp_report.h"
#include "imp_yaml.h"

#include <stdio.h>

void imp_butlerd_write(FILE *out, const struct imp_node *butler, struct imp_report *rep);

#endif
