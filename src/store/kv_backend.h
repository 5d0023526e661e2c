/* Choosing the key-value store's backend (kvstore.h; butlerd(8), "Several
 * instances"): apart from kvstore.c, so that the interface does not depend on the
 * backends that implement it. */
#ifndef KV_BACKEND_H
#define KV_BACKEND_H

struct cfg;

/* Chooses the backend of C (butlerd.store.backend) and hands it its settings; the
 * master, once, before it forks. */
void kvstore_select(const struct cfg *c);

#endif
