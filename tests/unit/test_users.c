/* The active-users table (users.c): adding, removing, expiring and the view the
 * endpoints render, including an empty table. Built with -fsanitize=undefined when
 * the compiler has it (configure: UBSAN_CFLAGS), so calls such as qsort(NULL, 0, ...)
 * on an empty table fail this test instead of passing unnoticed. */
#include "users.h"
#include "shm_region.h"
#include "shm_table.h"
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

    /* Split slots (USERS_SLOT_HEAD): keys that fit in the head, keys that spill into
     * the tail by one byte, and the longest key allowed, are stored, found again,
     * listed, refreshed, removed and expired exactly as short ones; the table stays
     * valid and a damaged chain is repaired. */
    struct shm_table *t = shm_ptr(shm.hdr->users_off);
    CHECK(t->head_size == USERS_SLOT_HEAD);
    uint32_t in = USERS_SLOT_HEAD - (uint32_t)sizeof(struct shm_slot);
    char fit[USERS_KEY_MAX], over[USERS_KEY_MAX], max[USERS_KEY_MAX];
    /* "h1\0D\0" + user: the user makes the key exactly IN - 8 bytes (the time fits) */
    memset(fit, 'f', sizeof fit);
    fit[in - 8 - 5] = '\0';
    memset(over, 'o', sizeof over);
    over[in - 5 + 1] = '\0'; /* one byte past the head */
    memset(max, 'm', sizeof max);
    max[USERS_KEY_MAX - 5] = '\0'; /* host + dir + user + two NULs = 768 */
    CHECK(users_add("h1", "D", fit, 2000) == USERS_NEW);
    CHECK(users_add("h1", "D", over, 2001) == USERS_NEW);
    CHECK(users_add("h2", "D", max, 2002) == USERS_NEW);
    CHECK(users_add("h2", "D", "m", 2003) == USERS_NEW); /* a prefix of MAX's user */
    max[0] = 'x';
    CHECK(users_add("h2", "D", max, 2004) == USERS_NEW); /* differs in the head only */
    max[0] = 'm';
    max[700] = 'y';
    CHECK(users_add("h2", "D", max, 2005) == USERS_NEW); /* differs in the tail only */
    max[700] = 'm';
    max[USERS_KEY_MAX - 5] = 'm'; /* one byte too long */
    max[USERS_KEY_MAX - 4] = '\0';
    CHECK(users_add("h2", "D", max, 2006) == USERS_TOO_LONG);
    max[USERS_KEY_MAX - 5] = '\0';
    CHECK(users_add("h2", "D", max, 3000) == USERS_REFRESHED);
    CHECK(users_add("h1", "D", over, 3001) == USERS_REFRESHED);
    CHECK(shm_table_check(t, 0) == 0);
    struct users_view v;
    CHECK(users_view(&v) == 0);
    CHECK(v.nentries == 6 && v.nusers == 6);
    char want[USERS_KEY_MAX + 8];
    snprintf(want, sizeof want, "D/%s", max);
    CHECK(v.nusers == 6 && !strcmp(v.names[2], want)); /* in order of creation */
    snprintf(want, sizeof want, "D/%s", over);
    CHECK(v.nusers == 6 && !strcmp(v.names[1], want));
    users_view_free(&v);
    /* only the entries last seen before 2500 expire: the refreshed long ones stay */
    CHECK(users_expire(2500) == 4);
    CHECK(users_view(&v) == 0);
    CHECK(v.nentries == 2);
    users_view_free(&v);
    CHECK(users_remove("h2", "D", max) == 1);
    CHECK(users_remove("h1", "D", over) == 1);
    CHECK(users_remove("h1", "D", over) == 0);
    CHECK(users_add("h1", "D", over, 4000) == USERS_NEW); /* a recycled slot */
    CHECK(users_add("h1", "D", "short", 4001) == USERS_NEW);
    CHECK(shm_table_check(t, 0) == 0);
    {
        uint32_t *b = shm_table_buckets(t, 0), bi;
        for (bi = 0; bi < t->nbuckets && !b[bi]; bi++) {
        }
        CHECK(bi < t->nbuckets);
        shm_table_slot(t, 0, b[bi])->next = b[bi]; /* a chain that loops */
        CHECK(shm_table_check(t, 0) != 0);
        CHECK(shm_table_repair(t, 0) == 1);
        CHECK(shm_table_check(t, 0) == 0);
    }

    /* The view: distinct (dir, user) pairs in order of their earliest entry, the
     * per-host counts, and the JSON text, byte for byte what json-c writes, for
     * names with every character JSON escapes. */
    users_table_init();
    const char *hs[] = {"h1", "h2", "h3"};
    const char *us[] = {"b", "a", "q\"uote", "back\\slash/", "ctl\x01\x1f\b\f\n\r\t\x7f",
                        "utf8-\xc3\xa9\xe2\x82\xac"};
    int nadd = 0;
    shm.hdr->seq = 0x00fffff8; /* the seqs cross a carry into the fourth byte */
    for (int i = 0; i < 14; i++) { /* pairs come back on other hosts, out of order */
        int ui = (i * 5) % 6, hi = i % 3;
        int rc = users_add(hs[hi], i % 4 == 3 ? "LAB" : "ACME", us[ui], 5000 + i);
        CHECK(rc == USERS_NEW || rc == USERS_REFRESHED);
        nadd += rc == USERS_NEW;
    }
    CHECK(users_view(&v) == 0);
    CHECK(v.nentries == (size_t)nadd);
    /* the reference, in O(n^2): the same adds, in order, first time each pair */
    char want_names[14][64];
    int nwant = 0;
    for (int i = 0; i < 14; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s/%s", i % 4 == 3 ? "LAB" : "ACME", us[(i * 5) % 6]);
        int seen = 0;
        for (int j = 0; j < nwant; j++)
            seen |= !strcmp(want_names[j], nm);
        if (!seen)
            strcpy(want_names[nwant++], nm);
    }
    CHECK(v.nusers == (size_t)nwant);
    for (int i = 0; i < nwant && (size_t)i < v.nusers; i++)
        CHECK_STR(v.names[i], want_names[i]);
    json_object *jv = users_view_json(&v);
    size_t tlen;
    char *text = users_view_json_text(&v, &tlen);
    const char *js = json_object_to_json_string_ext(jv, JSON_C_TO_STRING_PLAIN |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
    CHECK_STR(text, js);
    CHECK(tlen == strlen(js));
    free(text);
    json_object_put(jv);
    const char *q[] = {"h2", "none", "h1", "h2", "h3"};
    size_t qc[5];
    users_view_host_counts(&v, q, 5, qc);
    size_t per[3] = {0, 0, 0};
    for (size_t e = 0; e < v.nentries; e++)
        for (int h = 0; h < 3; h++)
            per[h] += !strcmp(v.hosts[e], hs[h]);
    CHECK(qc[0] == per[1] && qc[1] == 0 && qc[2] == per[0] && qc[3] == per[1] &&
          qc[4] == per[2]);
    CHECK(per[0] + per[1] + per[2] == v.nentries);
    users_view_host_counts(&v, q, 0, qc); /* no host asked: nothing written */
    users_view_free(&v);
    users_table_init(); /* empty: "[]" as text too */
    CHECK(users_view(&v) == 0);
    text = users_view_json_text(&v, &tlen);
    CHECK_STR(text, "[]");
    free(text);
    users_view_free(&v);

    /* a re-attached region's table starts empty too */
    users_table_init();
    check_view("[]", 0);
    CHECK(shm_table_check(t, 0) == 0);

    fixture_close();
    return UNIT_DONE();
}
