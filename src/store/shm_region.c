/* The mapping of the shared-memory region this process uses: set by shm.c when the
 * master creates or attaches the segment, inherited by every child. */
#include "shm_region.h"

struct shm_region shm;
