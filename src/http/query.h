/* Query strings (butlerd-api(7), Query strings). */
#ifndef QUERY_H
#define QUERY_H

#include <json-c/json.h>
#include <stddef.h>

/* Form-decodes a raw query string (without '?') into an object of strings; a name
 * given more than once becomes an array of strings. Never fails. */
json_object *qs_parse(const char *raw, size_t len);

#endif
