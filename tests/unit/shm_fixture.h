/* Creates a private shared-memory region for a test, as the master would. */
#ifndef SHM_FIXTURE_H
#define SHM_FIXTURE_H

#include "cfg.h"
#include "kv.h"
#include "shm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cfg fixture_cfg;
static char fixture_name[64];
static int fixture_rl_clients; /* butlerd.rateLimit.maxClients; set before fixture_open */

static void fixture_open(int max_keys, int key_bytes, int value_bytes, int max_ns,
                         int per_ns)
{
    memset(&fixture_cfg, 0, sizeof fixture_cfg);
    snprintf(fixture_name, sizeof fixture_name, "/butlerd-unit-%ld", (long)getpid());
    fixture_cfg.shm.name = fixture_name;
    fixture_cfg.rest.serverPort = 1;
    fixture_cfg.shm.kvMaxKeys = max_keys;
    fixture_cfg.shm.kvMaxKeyBytes = key_bytes;
    fixture_cfg.shm.kvMaxValueBytes = value_bytes;
    fixture_cfg.shm.kvMaxNamespaces = max_ns;
    fixture_cfg.shm.maxActiveUsers = 16;
    fixture_cfg.rateLimit.maxClients = fixture_rl_clients;
    if (shm_open_region(&fixture_cfg) != 0) {
        fprintf(stderr, "cannot create the test region\n");
        exit(99);
    }
    kv_set_limits(per_ns);
}

static void fixture_close(void) { shm_unlink_region(); }

#endif
