/* numa: which NUMA node a thread should take memory from.
 * - numa_node_count() >= 1; nodes are numbered 0..count-1 inside hugeslab.
 * - numa_current_node() is cheap (no system call on the fast path).
 * This first version knows one node; the per-node pools in segment/ are
 * already indexed by it. Never: call into segment/ or tiny/. */
#ifndef HS_NUMA_H
#define HS_NUMA_H

#include <stdint.h>

void numa_init(void);
unsigned numa_node_count(void);
unsigned numa_current_node(void);

#endif
