/* numa: topology, the calling thread's node, the process's memory policy, mbind.
 * - Nodes inside hugeslab are pool indices 0..numa_node_count()-1. Index i
 *   is the i-th online node with memory (/sys/devices/system/node/has_memory),
 *   so on the usual machine index i is kernel node i; where ids have gaps
 *   ("0,2") or a node has CPUs and no memory, indices stay dense and numa.c
 *   translates (numa_kernel_node). A node of memory alone has a pool like
 *   any other; a node without memory has none, and its threads are given the
 *   pool nearest to it by the firmware's distances.
 * - numa_node_count() >= 1, <= HS_MAX_NODES (64), <= HUGESLAB_NUMA_NODES when
 *   set; 1 with HUGESLAB_NUMA=off, on a one-node machine, or before
 *   numa_init(). More nodes with memory than HS_MAX_NODES: one line on
 *   stderr at start-up, pools for the first 64, the rest mapped to the
 *   nearest of those.
 * - numa_current_node() is cheap: a per-thread cache refreshed by getcpu()
 *   every NUMA_REFRESH_CALLS calls, so a migrated thread is noticed late.
 * - The process memory policy (numactl --membind/--preferred/--interleave)
 *   and the cpuset's nodes are read once, in numa_init(); a later
 *   set_mempolicy() by the program is not seen.
 * - numa_init() runs inside the process's first malloc: nothing here calls
 *   malloc, stdio or libnuma; sysfs and the kernel are reached through os/.
 * Never: call into segment/, tiny/ or thp/; touch the memory it binds; make
 *   a system call but through os/. */
#ifndef HS_NUMA_H
#define HS_NUMA_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* Reads the options, the topology and the policy. Once, before any thread
 * other than the caller can allocate. */
void numa_init(void);

/* Nodes hugeslab keeps pools for (see the contract above). */
unsigned numa_node_count(void);

/* The kernel's id of pool index `node` (0 for an index out of range). */
unsigned numa_kernel_node(unsigned node);

/* The node a new SuperSlab for a thread on thread_node should come from,
 * following the policy the process was started with:
 *   default/local -> thread_node; preferred=N -> N;
 *   membind=SET -> thread_node if in SET, else the nearest node of SET;
 *   interleave=SET -> the next node of SET, round robin over all callers;
 * always inside the cpuset's nodes. Returns an index < numa_node_count(). */
unsigned numa_node_for_superslab(unsigned thread_node);
/* The node numa_node_for_superslab would return now, without taking an
 * interleave turn: for memory already placed (a cached run, an idle
 * SuperSlab) looked for before a new mapping, which takes the turn. Each
 * look taking one dealt two or three turns per mapping, and under
 * interleave on two nodes every SuperSlab went to the same node. */
unsigned numa_node_for_reuse(unsigned thread_node);

/* Gives [addr, addr+size) a memory policy that puts its pages on `node`
 * when they are first touched. Call it after mmap and BEFORE any byte of
 * the range is written: pages already present stay where they are.
 * addr must be page aligned (a SuperSlab is). Returns 0, or -errno from
 * mbind (the range then keeps the process policy: only placement suffers).
 * A no-op returning 0 when NUMA is off, with one node, or when the process
 * policy cannot be expressed with the nodes hugeslab uses (see numa.c). */
int numa_bind(void *addr, size_t size, unsigned node);

/* Like numa_bind, but the pages may come from `node` only (MPOL_BIND to
 * that one node). For hugetlb SuperSlabs, which are populated at once: a
 * node without free huge pages then fails the populate (an error, no
 * SIGBUS) instead of quietly placing the page on another node. */
int numa_bind_strict(void *addr, size_t size, unsigned node);

/* Free 2 MiB hugetlb pages on node (0 when unknown). Reads sysfs: slow. */
unsigned numa_hugepages_free(unsigned node);

/* "default", "local", "bind", "preferred", "preferred-many", "interleave",
 * "weighted-interleave", or "off" when hugeslab ignores NUMA. */
const char *numa_policy_name(void);

/* Topology, distances, cpuset and policy as hs_message() lines. */
void numa_describe(void);

/* ---- the thread's node: inline fast path ---------------------------------- */

/* getcpu() once per this many calls of numa_current_node() in a thread. */
#define NUMA_REFRESH_CALLS 64

typedef struct numa_thread_cache_s {
    uint32_t node;       /* index returned until the next refresh */
    uint32_t calls_left; /* 0 = ask the kernel on the next call */
} numa_thread_cache_t;

extern __thread numa_thread_cache_t numa_thread_cache;

/* Asks the kernel, fills the cache, returns the index. 0 before numa_init. */
unsigned numa_current_node_refresh(void);

/* The calling thread's node index; 0 when NUMA is off or not yet set up. */
HS_INLINE unsigned numa_current_node(void)
{
    numa_thread_cache_t *c = &numa_thread_cache;
    if (HS_LIKELY(c->calls_left != 0)) {
        c->calls_left--;
        return c->node;
    }
    return numa_current_node_refresh();
}

#endif
