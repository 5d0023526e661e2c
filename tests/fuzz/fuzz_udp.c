/* The UDP intake pipeline (src/udp.c datagram()): source check, size limit, UTF-8
 * repair, field split, sanitising, session events into the shared active-user
 * table, task events with de-duplication. udp.c is compiled into this harness to
 * reach its static datagram(); the shared-memory region is a private one, as the
 * unit tests make it. MQTT is off, so task events end at the "dispatched" step
 * (the events process is not fuzzed here).
 *
 * Input: one byte (bit 0: session socket; bit 1: a source outside the allow-list),
 * then the datagram. */
#include "udp.c"

#include "shm.h"
#include "fuzz.h"

#include <signal.h>

static struct cfg cfg;
static char shm_name[64];
static struct sockaddr_in from_ok, from_bad;

static void cleanup(void) { shm_unlink_region(); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_log();
    snprintf(shm_name, sizeof shm_name, "/butlerd-fuzz-udp-%ld", (long)getpid());
    cfg.shm.name = shm_name;
    cfg.rest.serverPort = 1;
    cfg.shm.kvMaxKeys = 16;
    cfg.shm.kvMaxKeyBytes = 64;
    cfg.shm.kvMaxValueBytes = 64;
    cfg.shm.kvMaxNamespaces = 4;
    cfg.shm.maxActiveUsers = 256;
    if (shm_open_region(&cfg) != 0) {
        fprintf(stderr, "cannot create the shared-memory region\n");
        abort();
    }
    atexit(cleanup);
    shm_reset_volatile(); /* the active-user table, as the master sets it up */
    users_add("fuzzhost", "FUZZ", "keeper", 1);
    cfg.udp.enable = true;
    cfg.udp.maxMessageSize = 4096;
    cfg.udp.dedupEnable = true;
    cfg.udp.dedupTtlMinutes = 5;
    cfg.udp.rateEnable = false;
    cfg.mqtt.enable = false;
    u.cfg = &cfg;
    /* the allow-list as resolve_allowed() leaves it: 127.0.0.1 only */
    u.validate = 1;
    u.nallowed = 1;
    u.allowed = xcalloc(1, sizeof *u.allowed);
    u.allowed[0].family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", u.allowed[0].a);
    from_ok.sin_family = from_bad.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &from_ok.sin_addr);
    inet_pton(AF_INET, "192.0.2.7", &from_bad.sin_addr);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    int s = data[0] & 1 ? UDP_SESSION : UDP_TASK;
    const struct sockaddr *from =
        (const struct sockaddr *)(data[0] & 2 ? &from_bad : &from_ok);
    /* exact-size copy: the datagram is not NUL-terminated in the receive buffer */
    unsigned char *p = malloc(size - 1 ? size - 1 : 1);
    memcpy(p, data + 1, size - 1);
    datagram(s, p, size - 1, 0, from);
    free(p);
    /* Now and then what publish_users() and /v4/activeusers do with the table, then
     * an expiry (a timer does that in the daemon) so the table does not stay full.
     * One entry is always kept: the view of an empty table is the known qsort(NULL, 0)
     * report in users.c, fixed on another branch. */
    static unsigned n;
    if (++n % 64 == 0) {
        struct users_view v;
        users_view(&v);
        json_object_put(users_view_json(&v));
        size_t *counts = xcalloc(u.nhosts + 1, sizeof *counts);
        users_view_host_counts(&v, (const char *const *)u.hosts, u.nhosts, counts);
        free(counts);
        users_view_free(&v);
        users_expire(INT64_MAX);
        users_add("fuzzhost", "FUZZ", "keeper", 1);
    }
    return 0;
}
