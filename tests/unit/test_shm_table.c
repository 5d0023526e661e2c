/* The shared-memory table and the KV operations on it, in one process. */
#include "shm_table.h"
#include "shm_fixture.h"
#include "unit.h"

static int put(const char *ns, const char *k, const char *v, long ttl)
{
    return kv_put(ns, strlen(ns), k, strlen(k), v, strlen(v), ttl);
}

static char *get(const char *ns, const char *k, int *rc, long *ttl)
{
    struct kv_value v;
    *rc = kv_get(ns, strlen(ns), k, strlen(k), &v);
    if (*rc != KV_OK)
        return NULL;
    if (ttl)
        *ttl = (long)v.ttl_left;
    return v.value;
}

static int getis(const char *ns, const char *k, const char *want)
{
    int rc;
    char *v = get(ns, k, &rc, NULL);
    int ok = want ? (v && !strcmp(v, want)) : (v == NULL && rc == KV_NO_KEY);
    free(v);
    return ok;
}

int main(void)
{
    fixture_open(200, 300, 1000, 6, 50);
    int rc;
    long ttl;

    /* insert, lookup, overwrite, delete */
    CHECK(put("ns", "a", "1", 0) == KV_OK);
    CHECK(getis("ns", "a", "1"));
    CHECK(put("ns", "a", "2", 0) == KV_OK);
    CHECK(getis("ns", "a", "2"));
    CHECK(kv_del("ns", 2, "a", 1) == KV_OK);
    CHECK(getis("ns", "a", NULL));
    CHECK(kv_del("ns", 2, "a", 1) == KV_NO_KEY);
    CHECK(kv_del("nx", 2, "a", 1) == KV_NO_NS);
    free(get("nx", "a", &rc, NULL));
    CHECK(rc == KV_NO_NS);
    CHECK(kv_ns_exists("ns", 2)); /* a namespace outlives its keys */

    /* creation order; overwrite keeps position; delete + rewrite moves to the end */
    put("ord", "x", "1", 0);
    put("ord", "y", "1", 0);
    put("ord", "z", "1", 0);
    put("ord", "x", "2", 0);
    kv_del("ord", 3, "y", 1);
    put("ord", "y", "3", 0);
    struct kv_list l;
    CHECK(kv_keys("ord", 3, &l) == KV_OK);
    CHECK(l.n == 3 && !strcmp(l.s[0], "x") && !strcmp(l.s[1], "z") && !strcmp(l.s[2], "y"));
    kv_list_free(&l);
    kv_namespaces(&l);
    CHECK(l.n == 2 && !strcmp(l.s[0], "ns") && !strcmp(l.s[1], "ord"));
    kv_list_free(&l);

    /* TTL: remaining time reported, expiry, overwrite without TTL clears it */
    CHECK(put("t", "k", "v", 60000) == KV_OK);
    free(get("t", "k", &rc, &ttl));
    CHECK(rc == KV_OK && ttl > 59000 && ttl <= 60000);
    CHECK(put("t", "k", "v", 0) == KV_OK);
    free(get("t", "k", &rc, &ttl));
    CHECK(rc == KV_OK && ttl == -1);
    CHECK(put("t", "short", "v", 30) == KV_OK);
    usleep(60000);
    CHECK(getis("t", "short", NULL));
    CHECK(kv_keys("t", 1, &l) == KV_OK && l.n == 1);
    kv_list_free(&l);
    CHECK(kv_sweep() == 1);
    CHECK(kv_check() == 0);

    /* long keys and binary-safe values */
    char key[301], val[1001];
    memset(key, 'k', 300);
    key[300] = 0;
    for (int i = 0; i < 1000; i++)
        val[i] = (char)(i % 256);
    CHECK(kv_put("bin", 3, key, 300, val, 1000, 0) == KV_OK);
    struct kv_value v;
    CHECK(kv_get("bin", 3, key, 300, &v) == KV_OK && v.len == 1000 && !memcmp(v.value, val, 1000));
    free(v.value);
    CHECK(kv_put("bin", 3, "nul\0key", 7, "a\0b", 3, 0) == KV_OK);
    CHECK(kv_get("bin", 3, "nul\0key", 7, &v) == KV_OK && v.len == 3 && !memcmp(v.value, "a\0b", 3));
    free(v.value);
    CHECK(kv_get("bin", 3, "nul", 3, &v) == KV_NO_KEY);

    /* limits: per namespace, namespaces, whole store; a failed write changes nothing */
    char k[32];
    int i;
    for (i = 0; i < 60; i++) {
        snprintf(k, sizeof k, "k%d", i);
        if ((rc = put("full", k, "v", 0)) != KV_OK)
            break;
    }
    CHECK(i == 50 && rc == KV_FULL_NS);
    CHECK(put("full", "k0", "again", 0) == KV_OK); /* overwriting never fails on a count */
    CHECK(put("n4", "a", "1", 0) == KV_OK);
    CHECK(put("n5", "a", "1", 0) == KV_FULL_NSTAB);
    CHECK(!kv_ns_exists("n5", 2));
    CHECK(kv_del_ns("full", 4) == KV_OK);
    CHECK(!kv_ns_exists("full", 4));
    CHECK(kv_check() == 0);

    /* the store-wide limit, and expired keys do not count towards it */
    int stored = 0;
    for (i = 0; i < 400; i++) {
        snprintf(k, sizeof k, "s%d", i);
        rc = put(i % 2 ? "n4" : "t", k, "v", 40);
        if (rc != KV_OK)
            break;
        stored++;
    }
    CHECK(rc == KV_FULL_KEYS || rc == KV_FULL_NS);
    CHECK(stored > 0);
    usleep(80000);
    CHECK(put("t", "after-expiry", "v", 0) == KV_OK);
    CHECK(kv_check() == 0);

    /* a damaged stripe (a chain that loops) is rebuilt by the repair routine; keys that
     * do not expire first, so that some stripe surely holds two (20 keys, 8 stripes)
     * however many of the ones above a loaded machine let expire already */
    for (i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "d%d", i);
        put("n4", k, "v", 0);
    }
    struct shm_table *t = shm_ptr(shm.hdr->kv_table_off);
    uint32_t s;
    for (s = 0; s < t->nstripes && shm_table_stripe(t, s)->count < 2; s++) {
    }
    CHECK(s < t->nstripes);
    if (s < t->nstripes) {
        uint32_t *b = shm_table_buckets(t, s), bi;
        for (bi = 0; bi < t->nbuckets && !b[bi]; bi++) {
        }
        CHECK(bi < t->nbuckets);
        struct shm_slot *first = shm_table_slot(t, s, b[bi]);
        uint32_t saved = first->next;
        first->next = b[bi]; /* self-loop */
        CHECK(shm_table_check(t, s) != 0);
        CHECK(shm_table_repair(t, s) == 1);
        CHECK(shm_table_check(t, s) == 0);
        (void)saved;
    }
    fixture_close();
    return UNIT_DONE();
}
