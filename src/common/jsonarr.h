/* JSON arrays read one element at a time: a QRS list or the schedule list costs
 * about one element's parse tree at a time rather than the whole array's, and a
 * list can be read as it arrives, chunk by chunk, without ever holding all of it
 * (butlerd(8), PERFORMANCE). */
#ifndef JSONARR_H
#define JSONARR_H

#include "util.h"

#include <json-c/json.h>
#include <stddef.h>

/* Calls FN for each element of the JSON array in BODY[0..LEN), parsed one at a time,
 * so a large list costs about one element's parse tree rather than the whole
 * list's; FN does not own the element, which is NULL for a scalar (not parsed).
 * Returns the number of elements, or -1 if BODY is not a JSON array (FN may have
 * been called for the elements before the fault). */
long jsonarr_each(const char *body, size_t len, void (*fn)(json_object *elem, void *arg),
                    void *arg);

/* The same reading, fed in pieces of any size (a reply as it arrives): the split
 * state (depth, in a string, after a backslash) is kept between pieces, and only
 * the bytes of an element cut by a piece's end are copied, until it is complete.
 * Set up with jsonarr_init(), then jsonarr_feed() each piece in order, then
 * jsonarr_end(). Fields are private. */
struct jsonarr {
    void (*fn)(json_object *elem, void *arg);
    void *arg;
    json_tokener *tok; /* made at the first object or array */
    struct buf part;   /* the start of an element cut by a piece's end */
    long n;
    int state, kind, depth, in_str, esc;
};
void jsonarr_init(struct jsonarr *a, void (*fn)(json_object *elem, void *arg), void *arg);
/* Reads the next LEN bytes, calling FN for each element they complete. Returns 0, or
 * -1 once the text is known not to be a JSON array (the following pieces are then
 * ignored). Bytes after the array's closing bracket are ignored. */
int jsonarr_feed(struct jsonarr *a, const char *p, size_t len);
/* The end of the text: frees A and returns what jsonarr_each() would have returned
 * for all the pieces together. */
long jsonarr_end(struct jsonarr *a);

#endif
