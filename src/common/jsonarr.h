/* JSON arrays read one element at a time: a QRS list or the schedule list costs
 * about one element's parse tree at a time rather than the whole array's. */
#ifndef JSONARR_H
#define JSONARR_H

#include <json-c/json.h>
#include <stddef.h>

/* Calls FN for each element of the JSON array in BODY[0..LEN), parsed one at a time,
 * so a large list costs about one element's parse tree rather than the whole
 * list's; FN does not own the element, which is NULL for a scalar (not parsed).
 * Returns the number of elements, or -1 if BODY is not a JSON array (FN may have
 * been called for the elements before the fault). */
long jsonarr_each(const char *body, size_t len, void (*fn)(json_object *elem, void *arg),
                    void *arg);

#endif
