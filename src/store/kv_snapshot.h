/* The key-value snapshot file (butlerd(8), "Persistence"): its directory's
 * safety, writing, loading (this format and the JSON one of older versions) and
 * the temporary files a killed snapshot leaves. */
#ifndef KV_SNAPSHOT_H
#define KV_SNAPSHOT_H

#include <sys/types.h>

struct cfg;
struct strlist;

/* The check butlerd -t and the start both make when butlerd.kvPersistence.file
 * is set: the file's directory must be owned by root or by the user butlerd runs
 * as and not writable by group or others, and so must every directory above it
 * unless it has the sticky bit. Problems that refuse the configuration go to
 * ERRS, a directory that does not exist (yet) to WARNS. Returns 0 if ERRS got
 * nothing. */
int kv_snapshot_check(const struct cfg *c, struct strlist *errs, struct strlist *warns);

/* The uid butlerd runs as once it has dropped privileges (butlerd.user). */
uid_t kv_snapshot_uid(const struct cfg *c);

/* Removes PATH.tmp.*: what snapshots killed while writing left in the directory. */
void kv_snapshot_cleanup(const char *path, uid_t uid);

/* Writes the whole store to PATH: a new file (newfile.h) in a directory that
 * passes the check above for the current user, fsync'ed and renamed over PATH,
 * mode 0600. 0, or -1 (logged). */
int kv_snapshot_save(const char *path);

/* Loads PATH into an empty store, if it exists; UID is the user the directory may
 * belong to besides root. A file that is damaged or not a snapshot is renamed to
 * PATH.bad and nothing of it is loaded. Returns the number of keys loaded, or -1. */
long kv_snapshot_load(const char *path, uid_t uid);

#endif
