/* The shared-memory segment: created by the master, or re-attached when one survives
 * a master crash, but only if its header (magic, format, size, geometry) matches what
 * this configuration would build; otherwise it is replaced. The layout (header,
 * namespace table, key table, active users, counters) is shm_layout.c's; every
 * reference inside is an offset from the base (shm_region.h). */
#include "shm.h"
#include "cfg.h"
#include "kv_ns.h"
#include "log.h"
#include "ratelimit.h"
#include "shm_layout.h"
#include "shm_table.h"
#include "stats.h"
#include "users.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

void shm_geometry_from_cfg(const struct cfg *c, struct shm_geometry *g)
{
    shm_geometry_make(g, (uint32_t)c->shm.kvMaxKeys, (uint32_t)c->shm.kvMaxKeyBytes,
                      (uint32_t)c->shm.kvMaxValueBytes, (uint32_t)c->shm.kvMaxNamespaces,
                      (uint32_t)c->shm.maxActiveUsers);
    shm_geometry_ratelimit(g, (uint32_t)c->rateLimit.maxClients);
}

uint64_t shm_region_size(const struct cfg *c)
{
    struct shm_geometry g;
    shm_geometry_from_cfg(c, &g);
    return shm_layout_size(&g);
}

static int map(int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        log_error("mmap(%s, %zu bytes) failed", shm.name, size);
        return -1;
    }
    shm.base = p;
    shm.size = size;
    shm.hdr = p;
    return 0;
}

static int try_attach(const struct shm_geometry *g, const struct shm_layout *l)
{
    int fd = shm_open(shm.name, O_RDWR, 0600);
    if (fd < 0) {
        if (errno != ENOENT)
            log_warn("shm_open(%s) failed", shm.name);
        return 0;
    }
    struct stat st;
    int ok = 0;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == l->total && map(fd, l->total) == 0) {
        const struct shm_header *h = shm.hdr;
        ok = !memcmp(h->magic, SHM_MAGIC, sizeof SHM_MAGIC) && h->format == SHM_FORMAT &&
             h->header_size == sizeof *h && h->total_size == l->total &&
             !memcmp(&h->geo, g, sizeof *g) && h->kv_ns_off == l->ns_off &&
             h->kv_table_off == l->table_off && h->users_off == l->users_off &&
             h->stats_off == l->stats_off && h->rl_off == l->rl_off && h->ready == 1;
        if (!ok) {
            munmap(shm.base, shm.size);
            shm.base = NULL;
        }
    }
    close(fd);
    if (!ok) {
        log_warnx("shared memory %s does not match this configuration (other geometry or "
                  "format); replacing it",
                  shm.name);
        shm_unlink(shm.name);
    }
    return ok;
}

int shm_open_region(const struct cfg *c)
{
    struct shm_geometry g;
    struct shm_layout l;
    shm_geometry_from_cfg(c, &g);
    shm_layout_for(&g, &l);
    snprintf(shm.name, sizeof shm.name, "%s.%d", c->shm.name, c->rest.serverPort);

    if (try_attach(&g, &l)) {
        log_info("re-attached shared memory %s (%llu keys)", shm.name,
                 (unsigned long long)((struct kv_nstable *)shm_ptr(l.ns_off))->total);
        return 1;
    }
    int fd = shm_open(shm.name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        log_error("shm_open(%s) failed", shm.name);
        return -1;
    }
    if (ftruncate(fd, (off_t)l.total) < 0) {
        log_error("ftruncate(%s, %llu) failed", shm.name, (unsigned long long)l.total);
        close(fd);
        shm_unlink(shm.name);
        return -1;
    }
    int rc = map(fd, l.total);
    close(fd);
    if (rc < 0) {
        shm_unlink(shm.name);
        return -1;
    }
    struct shm_header *h = shm.hdr;
    memcpy(h->magic, SHM_MAGIC, sizeof SHM_MAGIC);
    h->format = SHM_FORMAT;
    h->header_size = sizeof *h;
    h->total_size = l.total;
    h->geo = g;
    h->kv_ns_off = l.ns_off;
    h->kv_table_off = l.table_off;
    h->users_off = l.users_off;
    h->stats_off = l.stats_off;
    h->rl_off = l.rl_off;
    if (getrandom(&h->hash_seed, sizeof h->hash_seed, 0) != sizeof h->hash_seed)
        h->hash_seed = (uint64_t)now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    kv_ns_init(shm_ptr(l.ns_off), g.kv_max_ns, g.kv_key_bytes);
    if (shm_table_init(shm_ptr(l.table_off), l.table_off, g.kv_stripes, g.kv_slots_per_stripe,
                       g.kv_buckets_per_stripe, 8 + g.kv_key_bytes, g.kv_value_bytes) < 0) {
        log_errorx("cannot initialise robust mutexes in %s", shm.name);
        shm_unlink(shm.name);
        return -1;
    }
    __atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
    log_info("created shared memory %s (%.1f MB address space, %u keys, %u stripes)", shm.name,
             (double)l.total / 1048576.0, g.kv_max_keys, g.kv_stripes);
    return 0;
}

int shm_chown_region(uid_t uid, gid_t gid)
{
    int fd = shm_open(shm.name, O_RDWR, 0600);
    if (fd < 0 || fchown(fd, uid, gid) < 0) {
        log_error("cannot hand shared memory %s to uid %ld", shm.name, (long)uid);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Zeroes LEN bytes at offset OFF of the region. The whole pages inside are handed
 * back to tmpfs (MADV_REMOVE: they read as zeros again, and take no memory until
 * written), so a table that is mostly never used is not brought into memory by
 * clearing it at every start (butlerd(8), PERFORMANCE); the partial pages at the
 * ends are cleared by hand, and everything is if the kernel refuses. */
static void shm_zero(uint64_t off, uint64_t len)
{
    uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t a = (off + pg - 1) & ~(pg - 1), b = (off + len) & ~(pg - 1);
    if (b > a && madvise(shm.base + a, b - a, MADV_REMOVE) == 0) {
        memset(shm.base + off, 0, a - off);
        memset(shm.base + b, 0, off + len - b);
        return;
    }
    memset(shm.base + off, 0, len);
}

void shm_reset_volatile(void)
{
    const struct shm_geometry *g = &shm.hdr->geo;
    /* No other process is attached yet, so the table is simply rebuilt. */
    users_table_init();
    shm_zero(shm.hdr->stats_off, sizeof(struct stats));
    /* The rate-limit counters too: a window cannot outlive the master that timed it.
     * Zeroed first, as a re-attached segment still holds the old chains. */
    shm_zero(shm.hdr->rl_off, shm_table_bytes(g->rl_stripes, g->rl_slots_per_stripe,
                                              g->rl_buckets_per_stripe, RL_KEY_MAX,
                                              RL_VALUE_BYTES));
    shm_table_init(shm_ptr(shm.hdr->rl_off), shm.hdr->rl_off, g->rl_stripes,
                   g->rl_slots_per_stripe, g->rl_buckets_per_stripe, RL_KEY_MAX,
                   RL_VALUE_BYTES);
    shm.hdr->master_pid = (int32_t)getpid();
}

int shm_attach_readonly(const struct cfg *c)
{
    snprintf(shm.name, sizeof shm.name, "%s.%d", c->shm.name, c->rest.serverPort);
    int fd = shm_open(shm.name, O_RDONLY, 0);
    if (fd < 0)
        return -1;
    struct stat st;
    void *p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(struct shm_header))
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    const struct shm_header *h = p;
    if (memcmp(h->magic, SHM_MAGIC, sizeof SHM_MAGIC) || h->format != SHM_FORMAT ||
        h->total_size != (uint64_t)st.st_size || !h->ready) {
        munmap(p, (size_t)st.st_size);
        errno = EPROTO;
        return -1;
    }
    shm.base = p;
    shm.size = (size_t)st.st_size;
    shm.hdr = p;
    return 0;
}

void shm_unlink_region(void)
{
    if (shm.name[0] && shm_unlink(shm.name) < 0 && errno != ENOENT)
        log_warn("shm_unlink(%s) failed", shm.name);
}
