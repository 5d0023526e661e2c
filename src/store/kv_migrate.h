/* butlerd -M (butlerd(8), OPTIONS and SEVERAL INSTANCES, "Moving a store to
 * Redis"): copies a shared-memory key-value store into the Redis of
 * butlerd.store.redis - from the running instance's segment if there is one,
 * else from the snapshot file - with namespaces and keys in creation order,
 * values and remaining TTLs. */
#ifndef KV_MIGRATE_H
#define KV_MIGRATE_H

struct cfg;

/* Runs the copy for configuration C and prints what it did (stdout) or why not
 * (stderr). Unless FORCE, refuses if Redis already holds keys under the prefix.
 * Returns the process exit code. C's shm.name may be changed. */
int kv_migrate(struct cfg *c, int force);

#endif
