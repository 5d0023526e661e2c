/* The key-value snapshot as the master runs it: the directory check and the load at
 * start, the periodic snapshot (a one-shot child of the process table, so the loop
 * never waits on the disk) and the final one at an orderly stop. */
#ifndef SNAPSHOT_H
#define SNAPSHOT_H

struct cfg;

/* Before the store is loaded: the snapshot directory must pass the check butlerd -t
 * makes (kv_snapshot.h), and temporary files of snapshots killed while writing are
 * removed. -1 if butlerd must not start. */
int snapshot_check(const struct cfg *c);
/* The store is ready (ATTACHED: an existing segment was re-attached, else it was
 * loaded from the snapshot); C is the configuration until snapshot_set_cfg. */
void snapshot_init(const struct cfg *c, int attached);
void snapshot_set_cfg(const struct cfg *c);
/* Timer for the loop: starts the periodic snapshot child every intervalSeconds if
 * anything changed; ms until the next one, or -1. */
int snapshot_timer(void);
/* Waits for a running snapshot child, then writes the snapshot if persistence is on
 * and anything changed, so the final snapshot is the last rename. 0 or -1. */
int snapshot_final(void);

#endif
