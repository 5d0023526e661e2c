/* The New Relic pass-through (butlerd-api(7), New Relic): checking the attribute list
 * of a request, building the event or metric body and posting it to every configured
 * account. Knows nothing about HTTP serving; the REST handler renders the outcome. */
#ifndef NEWRELIC_H
#define NEWRELIC_H

#include <json-c/json.h>

struct cfg;

enum nr_kind { NR_EVENT, NR_METRIC };

/* At most this many request attributes: New Relic keeps 255 attributes per event
 * and a longer list can only be a mistake or an attack (butlerd-api(7), New Relic). */
#define NR_MAX_ATTRIBUTES 255
#define NR_NAME_MAX 254         /* eventType, metric name, attribute name: code points */
#define NR_EVENT_VALUE_MAX 4096 /* event attribute value: code points */

enum nr_result {
    NR_SENT,       /* every account answered 2xx */
    NR_NO_ACCOUNT, /* no destination name matched a credential */
    NR_FAILED      /* at least one account failed; message names the first */
};

struct nr_outcome {
    long status;       /* NR_SENT: status of the last New Relic answer */
    char reason[128];  /* NR_SENT: its reason phrase */
    char message[640]; /* NR_FAILED: "Failed posting event to New Relic account 'a': ..." */
};

/* Checks the "attributes" member of BODY (already a JSON array after the schema
 * check, or absent): at most NR_MAX_ATTRIBUTES items, each an object whose name and
 * value are strings (coerced in place) within the limits of KIND. Returns 0, or -1
 * with *ERR a malloc'd AJV-style message such as "body/attributes/2/name must be
 * string". */
int nr_check_attributes(json_object *body, enum nr_kind kind, char **err);

/* Builds the New Relic body of KIND from the validated BODY and posts it to every
 * destination account of C, in list order, each with a 5 s limit. */
enum nr_result nr_post(const struct cfg *c, enum nr_kind kind, json_object *body,
                       struct nr_outcome *out);

#endif
