/* The POSIX shared-memory segment: created (or re-attached) by the master before the
 * first fork, handed to the run-time user, unlinked at shutdown; workers inherit the
 * mapping. Its header and the offset helper are in shm_region.h, its layout in
 * shm_layout.h. */
#ifndef SHM_H
#define SHM_H

#include "shm_region.h"

#include <pthread.h> /* for files that got it from here */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cfg;

/* Opens the segment named after butlerd.shm.name and the REST port: re-attaches an
 * existing one whose header matches CFG's geometry, else creates a new one.
 * Returns 1 if re-attached, 0 if created, -1 on error (logged). */
int shm_open_region(const struct cfg *cfg);
/* Gives the segment to the user butlerd switches to, so it can remove it later. */
int shm_chown_region(uid_t uid, gid_t gid);
/* Removes the segment name (orderly shutdown); the mapping stays valid. */
void shm_unlink_region(void);
/* Empties the active-user table and zeroes the counters (master, before forking:
 * both are memory-only and start empty with every master). */
void shm_reset_volatile(void);
/* Maps the running instance's segment read-only (butlerd -S); 0 or -1. */
int shm_attach_readonly(const struct cfg *cfg);
void shm_geometry_from_cfg(const struct cfg *cfg, struct shm_geometry *g);
/* Bytes of address space the configuration's geometry needs. */
uint64_t shm_region_size(const struct cfg *cfg);

#endif
