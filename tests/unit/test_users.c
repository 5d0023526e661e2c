/* The active-users table (users.c): adding, removing, expiring and the view the
 * endpoints render, including an empty table. Built with -fsanitize=undefined when
 * the compiler has it (configure: UBSAN_CFLAGS), so calls such as qsort(NULL, 0, ...)
 * on an empty table fail this test instead of passing unnoticed. */
#include "users.h"
#include "shm_fixture.h"
#include "unit.h"

#include <stdlib.h>

static void check_view(const char *want_json, size_t want_entries)
{
    struct users_view v;
    CHECK(users_view(&v) == 0);
    json_object *j = users_view_json(&v);
    CHECK_STR(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE),
              want_json);
    json_object_put(j);
    CHECK(v.nentries == want_entries);
    const char *hosts[] = {"h1", "h2", "none"};
    size_t counts[3] = {9, 9, 9};
    users_view_host_counts(&v, hosts, 3, counts);
    CHECK(counts[2] == 0);
    CHECK(counts[0] + counts[1] == want_entries);
    users_view_free(&v);
}

int main(void)
{
    fixture_open(100, 256, 1000, 10, 100);
    shm_reset_volatile(); /* as the master does: builds the users table */

    /* no user at all: an empty view, no undefined behaviour */
    check_view("[]", 0);

    CHECK(users_add("h1", "ACME", "joe", 1000) == USERS_NEW);
    check_view("[\"ACME/joe\"]", 1);
    CHECK(users_add("h2", "LAB", "ann", 1001) == USERS_NEW);
    CHECK(users_add("h2", "ACME", "joe", 1002) == USERS_NEW); /* same user, second host */
    CHECK(users_add("h1", "ACME", "joe", 1003) == USERS_REFRESHED);
    check_view("[\"ACME/joe\",\"LAB/ann\"]", 3);

    CHECK(users_remove("h1", "ACME", "joe") == 1);
    CHECK(users_remove("h1", "ACME", "joe") == 0);
    check_view("[\"LAB/ann\",\"ACME/joe\"]", 2);

    /* everything expires: empty again */
    CHECK(users_expire(5000) == 2);
    check_view("[]", 0);

    fixture_close();
    return UNIT_DONE();
}
