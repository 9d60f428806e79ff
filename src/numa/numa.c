/* NUMA topology, the thread's node, the process memory policy and mbind.
 *
 * Why no libnuma: its constructor allocates with malloc, and numa_init() runs
 * inside the process's first malloc. Everything here reads sysfs and calls
 * the kernel through os/ (open/read and syscall(2), one wrapper per call).
 *
 * Node numbering. The kernel's node ids need not be dense ("0,2" after a
 * node is taken offline, or on some multi-socket firmware), and not every
 * node has memory: a node of CPUs alone (has_cpu without has_memory) has
 * nothing to bind a SuperSlab to, while a node of memory alone (a CXL
 * expander, a memory tier: has_memory without has_cpu) has no thread of its
 * own but is where `numactl --membind` may send everything. So pools go to
 * the online nodes with memory, indexed densely: index i is the i-th of them
 * in /sys/devices/system/node/has_memory; kernel_id[] and index_of_kernel[]
 * translate both ways, and every mask handed to the kernel is built from
 * kernel ids. A node without a pool -- no memory, or beyond HS_MAX_NODES or
 * the HUGESLAB_NUMA_NODES cap -- maps to the pool nearest to it by the
 * firmware's distances, so its threads take memory from there.
 *
 * How SuperSlabs are bound. The policy an mbind() puts on a range replaces
 * the process policy for it, so the mode we pick must never be looser than
 * what the user asked for:
 * - Process policy bind (numactl --membind=SET): MPOL_BIND to SET (within the
 *   cpuset), with the chosen node as its home node (set_mempolicy_home_node,
 *   Linux 5.17): pages go to the chosen node first and spill only inside SET,
 *   as the user's own policy would, and the OOM killer is no closer than it
 *   was. A kernel without home nodes spills in distance order from the
 *   faulting CPU, which for a thread on a node of SET is still that node.
 * - Any other policy: MPOL_PREFERRED to the chosen node. MPOL_BIND to one
 *   node would turn a full node into an OOM kill (or SIGBUS for hugetlb)
 *   while other nodes have room; PREFERRED falls back like the default
 *   policy does. Under --interleave this also stops the kernel from
 *   interleaving 4 KiB pages inside one SuperSlab: the SuperSlabs, not the
 *   pages, are what we spread (numa_node_for_superslab deals them round robin).
 * - When the policy names only nodes hugeslab does not use (a cap below
 *   them), or a mode this file does not know, nothing is bound: the kernel
 *   applies the process policy at first touch, which is correct if not local.
 * Every bind adds a VMA boundary: SuperSlabs next to each other with the same
 * policy merge again, others count against vm.max_map_count (65530 VMAs by
 * default, about 128 GiB of SuperSlabs alternating between nodes). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "numa/numa.h"
#include "os/os.h"

/* Values of HUGESLAB_NUMA: the positions of "auto" and "off" in its words. */
#define NUMA_OPTION_AUTO 0
#define NUMA_OPTION_OFF 1

/* Memory policy modes and flags of the kernel ABI (uapi linux/mempolicy.h),
 * spelled out so that the build needs neither libnuma-dev nor new headers. */
enum {
    KMPOL_DEFAULT = 0,
    KMPOL_PREFERRED = 1,
    KMPOL_BIND = 2,
    KMPOL_INTERLEAVE = 3,
    KMPOL_LOCAL = 4,
    KMPOL_PREFERRED_MANY = 5,      /* Linux 5.15 */
    KMPOL_WEIGHTED_INTERLEAVE = 6, /* Linux 6.9 */
};
#define KMPOL_MODE_FLAGS ((1 << 15) | (1 << 14) | (1 << 13)) /* STATIC, RELATIVE, BALANCING */
#define KMPOL_F_RELATIVE_NODES (1 << 14)
#define KMPOL_F_MEMS_ALLOWED (1UL << 2)

/* Kernel node masks. x86-64 kernels have at most 1 << 10 nodes
 * (CONFIG_NODES_SHIFT <= 10), so 1024 bits hold any mask the kernel reports. */
#define KNODE_BITS 1024
#define KNODE_LONG_BITS (8 * sizeof(unsigned long))
#define KNODE_LONGS (KNODE_BITS / KNODE_LONG_BITS)
/* The maxnode argument counts one more than the bits the kernel reads: the
 * kernel subtracts one first (a historic off-by-one that libnuma also keeps). */
#define KNODE_MAXNODE (KNODE_BITS + 1)

typedef struct knode_mask_s {
    unsigned long bits[KNODE_LONGS];
} knode_mask_t;

static bool knode_has(const knode_mask_t *m, unsigned id)
{
    return id < KNODE_BITS && (m->bits[id / KNODE_LONG_BITS] >> (id % KNODE_LONG_BITS)) & 1;
}

static void knode_add(knode_mask_t *m, unsigned id)
{
    if (id < KNODE_BITS) m->bits[id / KNODE_LONG_BITS] |= 1UL << (id % KNODE_LONG_BITS);
}

/* ---- the state, written once by numa_init (but the atomics at its end) ----
 * Invariants once ready: 1 <= count <= HS_MAX_NODES; kernel_id[0..count) are
 * online nodes with memory, increasing; index_of_kernel[] of every online
 * node is < count; every target[] and interleave[] entry is < count and in
 * allowed; policy_set is a subset of allowed. */
static struct numa_state_s {
    bool enabled;                     /* HUGESLAB_NUMA != off */
    unsigned count;                   /* nodes with a pool: indices 0..count-1 */
    unsigned online;                  /* online nodes, with memory or not */
    unsigned with_memory;             /* online nodes with memory (pools or not) */
    bool pools_dense;                 /* pool i is kernel node i for every pool */
    knode_mask_t online_kmask;        /* online nodes, kernel ids */
    knode_mask_t memory_kmask;        /* online nodes with memory (has_memory) */
    uint16_t kernel_id[HS_MAX_NODES]; /* pool index -> kernel id */
    int policy_mode;                  /* KMPOL_*, flags removed */
    int policy_flags;                 /* KMPOL_MODE_FLAGS bits */
    knode_mask_t policy_kmask;        /* nodes of the policy, kernel ids */
    uint64_t allowed;                 /* cpuset's nodes, as pool indices */
    uint64_t policy_set;              /* nodes the policy lets pages go to */
    bool bind_off;                    /* policy not expressible: never mbind */
    const char *bind_off_reason;      /* why, for numa_describe */
    knode_mask_t bind_kmask;          /* policy_set as kernel ids (bind mode) */
    uint8_t target[HS_MAX_NODES];     /* thread node -> SuperSlab node */
    uint8_t interleave[HS_MAX_NODES]; /* interleave modes: nodes dealt in turn */
    unsigned interleave_count;        /* 0 = not interleaving */
    /* Written after start-up, hence atomic: */
    _Atomic bool ready;               /* numa_init has finished */
    _Atomic unsigned interleave_next; /* the next turn of numa_node_for_superslab */
    /* Set once mbind or the home-node call is refused for good (seccomp, no
     * NUMA in the kernel): every later SuperSlab would only repeat the failure. */
    _Atomic int bind_refused_errno;     /* the errno of that refusal, 0 while none */
    _Atomic bool home_node_unsupported; /* set_mempolicy_home_node refused */
} numa = {.count = 1};

/* numa's tables, apart from its initialised fields: in .bss, where a page
 * counts only once written, and on one node numa_init writes none of them
 * (a pool's distance to itself decides nothing, and the table of pools by
 * kernel node starts as zeros, the one pool's index). In the struct they
 * made the library's initialised data a page longer, a page every process
 * writes (the loader relocates and clears the data's pages). */
static struct numa_tables_s {
    uint8_t index_of_kernel[KNODE_BITS];          /* kernel id -> its pool, or the nearest one */
    uint8_t distance[HS_MAX_NODES][HS_MAX_NODES]; /* between pools (several only); 0 = unknown */
} numa_tables;

__thread numa_thread_cache_t numa_thread_cache;

/* ---- calls to the kernel, with our masks ----------------------------------- */

static int kernel_get_mempolicy(int *mode, knode_mask_t *mask, unsigned long flags)
{
    return os_get_mempolicy(mode, mask->bits, KNODE_MAXNODE, flags);
}

static int kernel_mbind(void *addr, size_t len, int mode, const knode_mask_t *mask)
{
    return os_mbind(addr, len, mode, mask->bits, KNODE_MAXNODE);
}

/* ---- parsing kernel text ------------------------------------------------------ */

static const char *skip_spaces(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    return s;
}

/* Reads a decimal number, saturated at UINT32_MAX; NULL when there is none. */
static const char *parse_uint(const char *s, unsigned *out)
{
    uint64_t v;
    s = hs_parse_u64(s, NULL, &v);
    if (s) *out = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
    return s;
}

/* Parses a kernel list such as "0-3,5\n" into mask. False when malformed. */
static bool parse_node_list(const char *s, knode_mask_t *mask)
{
    memset(mask, 0, sizeof *mask);
    s = skip_spaces(s);
    while (*s) {
        unsigned lo, hi;
        if (!(s = parse_uint(s, &lo))) return false;
        hi = lo;
        if (*s == '-' && !(s = parse_uint(s + 1, &hi))) return false;
        for (unsigned id = lo; id <= hi && id < KNODE_BITS; id++) knode_add(mask, id);
        if (*s == ',') s++;
        s = skip_spaces(s);
    }
    return true;
}

/* Appends a set of pool indices as "0,2,3" ("none" when empty). */
HS_SELDOM static void text_index_set(hs_text_t *t, uint64_t set)
{
    if (!set) {
        hs_text_str(t, "none");
        return;
    }
    bool first = true;
    for (unsigned i = 0; i < HS_MAX_NODES; i++) {
        if (!((set >> i) & 1)) continue;
        if (!first) hs_text_str(t, ",");
        hs_text_uint(t, i);
        first = false;
    }
}

/* ---- start-up -------------------------------------------------------------- */

static uint64_t index_bit(unsigned i) { return (uint64_t)1 << i; }

/* Every pool index: 0..count-1. */
static uint64_t all_indices(void)
{
    return numa.count >= 64 ? ~(uint64_t)0 : index_bit(numa.count) - 1;
}

static bool knode_empty(const knode_mask_t *m)
{
    for (size_t i = 0; i < KNODE_LONGS; i++)
        if (m->bits[i]) return false;
    return true;
}

/* Pool indices whose kernel node is in the mask. */
static uint64_t indices_in(const knode_mask_t *m)
{
    uint64_t set = 0;
    for (unsigned i = 0; i < numa.count; i++)
        if (knode_has(m, numa.kernel_id[i])) set |= index_bit(i);
    return set;
}

/* The pool of set nearest to distances[] (a node's distance to each pool;
 * 0 = unknown, after every known one); ties go to the lower index. set != 0. */
static unsigned nearest_by(const uint8_t *distances, uint64_t set)
{
    unsigned best = HS_MAX_NODES, best_distance = ~0u;
    for (unsigned i = 0; i < numa.count; i++) {
        if (!((set >> i) & 1)) continue;
        unsigned d = distances[i] ? distances[i] : 255;
        if (best == HS_MAX_NODES || d < best_distance) {
            best = i;
            best_distance = d;
        }
    }
    return best;
}

/* The member of set nearest to pool `from`. set != 0. */
static unsigned nearest_in(unsigned from, uint64_t set)
{
    if ((set >> from) & 1) return from;
    return nearest_by(numa_tables.distance[from], set);
}

/* A node list of sysfs ("0-3,5", from os_read_nodes_online or
 * os_read_nodes_with_memory) into mask; false when unreadable. */
static bool read_node_list(ssize_t (*reader)(char *, size_t), knode_mask_t *mask)
{
    char buf[4096];
    return reader(buf, sizeof buf) > 0 && parse_node_list(buf, mask);
}

static unsigned knode_count(const knode_mask_t *m)
{
    unsigned n = 0;
    for (size_t i = 0; i < KNODE_LONGS; i++) n += (unsigned)__builtin_popcountl(m->bits[i]);
    return n;
}

/* Online nodes and those with memory (a node's CPUs, if any, are in its
 * cpulist). Without sysfs (or without NUMA) one node, kernel id 0. */
static void read_node_states(void)
{
    memset(&numa.online_kmask, 0, sizeof numa.online_kmask);
    memset(&numa.memory_kmask, 0, sizeof numa.memory_kmask);
    if (!read_node_list(os_read_nodes_online, &numa.online_kmask) ||
        knode_empty(&numa.online_kmask))
        knode_add(&numa.online_kmask, 0);
    /* has_memory (Linux 2.6.24): a kernel without it treats every online
     * node as one with memory. A lone online node has the memory: one file
     * fewer for every process started on a machine of one node (each sysfs
     * read costs 6-25 us there, in the process's first malloc). */
    numa.online = knode_count(&numa.online_kmask);
    if (numa.online > 1 && read_node_list(os_read_nodes_with_memory, &numa.memory_kmask))
        for (size_t i = 0; i < KNODE_LONGS; i++)
            numa.memory_kmask.bits[i] &= numa.online_kmask.bits[i];
    if (knode_empty(&numa.memory_kmask)) numa.memory_kmask = numa.online_kmask;
    numa.with_memory = knode_count(&numa.memory_kmask);
}

/* Pools: the first nodes with memory, at most `cap` of them. */
static void choose_pools(unsigned cap)
{
    numa.count = 0;
    for (unsigned id = 0; id < KNODE_BITS && numa.count < cap; id++)
        if (knode_has(&numa.memory_kmask, id)) numa.kernel_id[numa.count++] = (uint16_t)id;
    numa.pools_dense = numa.kernel_id[numa.count - 1] == numa.count - 1;
}

/* Reads each online node's row of the distance table (its distance to every
 * online node, in online order), keeps the distances between pools and
 * gives every online node its pool: its own, or the nearest one. */
static void map_nodes_to_pools(void)
{
    /* One pool: every node's (index_of_kernel's zeros), and no distance
     * between pools to keep. */
    if (numa.count <= 1) return;
    /* Not on the stack: a row can list 1024 nodes. In pages mapped for this
     * one run and unmapped after: as static buffers, their 11 KiB of .bss
     * put the variables written at start-up on two pages more. */
    typedef struct scratch_s {
        uint16_t online_ids[KNODE_BITS];    /* online position -> kernel id */
        uint8_t pool_of_online[KNODE_BITS]; /* online position -> pool, or 0xff */
        char row[8192];                     /* a node's line of distances */
    } scratch_t;
    scratch_t *scratch = os_map_pages(sizeof *scratch);
    if (!scratch) {
        /* No distances: a node of a pool gets its own, any other the
         * first (index_of_kernel starts as zeros). */
        for (unsigned i = 1; i < numa.count; i++)
            numa_tables.index_of_kernel[numa.kernel_id[i]] = (uint8_t)i;
        return;
    }
    uint16_t *online_ids = scratch->online_ids;
    uint8_t *pool_of_online = scratch->pool_of_online;
    char *row = scratch->row;
    unsigned positions = 0;
    for (unsigned id = 0; id < KNODE_BITS; id++) {
        if (!knode_has(&numa.online_kmask, id)) continue;
        online_ids[positions] = (uint16_t)id;
        pool_of_online[positions] = 0xff;
        for (unsigned i = 0; i < numa.count; i++)
            if (numa.kernel_id[i] == id) pool_of_online[positions] = (uint8_t)i;
        positions++;
    }
    for (unsigned from = 0; from < positions; from++) {
        uint8_t to_pool[HS_MAX_NODES] = {0};
        if (numa.enabled &&
            os_read_node_file(online_ids[from], "distance", row, sizeof scratch->row) > 0) {
            const char *s = skip_spaces(row);
            for (unsigned to = 0; to < positions && *s; to++) {
                unsigned d;
                if (!(s = parse_uint(s, &d))) break;
                if (pool_of_online[to] != 0xff)
                    to_pool[pool_of_online[to]] = (uint8_t)(d > 254 ? 254 : d);
                s = skip_spaces(s);
            }
        }
        unsigned own = pool_of_online[from];
        if (own != 0xff && numa.count > 1)
            memcpy(numa_tables.distance[own], to_pool, sizeof to_pool);
        unsigned pool = own != 0xff ? own : nearest_by(to_pool, all_indices());
        if (pool != 0) numa_tables.index_of_kernel[online_ids[from]] = (uint8_t)pool;
    }
    os_unmap(scratch, sizeof *scratch);
}

/* A policy made with MPOL_F_RELATIVE_NODES: get_mempolicy reports the mask
 * the program gave, whose bit n names the n-th allowed node (n folded
 * modulo their count), as the kernel maps it. Read as node ids, {0,1} over
 * the allowed nodes {0,2} was taken for node 0 alone, where the kernel
 * places pages on 0 and 2. Seldom text: numactl passes node ids. */
HS_SELDOM HS_NOINLINE static void relative_to_allowed(knode_mask_t *mask,
                                                      const knode_mask_t *allowed)
{
    unsigned weight = knode_count(allowed);
    knode_mask_t onto;
    memset(&onto, 0, sizeof onto);
    for (unsigned n = 0; weight && n < KNODE_BITS; n++) {
        if (!knode_has(mask, n)) continue;
        unsigned rank = n % weight;
        for (unsigned id = 0; id < KNODE_BITS; id++)
            if (knode_has(allowed, id) && rank-- == 0) {
                knode_add(&onto, id);
                break;
            }
    }
    *mask = onto;
}

/* Reads the thread's (hence, at start-up, the process's) policy and the
 * cpuset, and decides targets, the interleave list and how to bind. */
static void read_policy(void)
{
    knode_mask_t mask, allowed_kmask;
    int mode = KMPOL_DEFAULT;
    memset(&mask, 0, sizeof mask);
    if (kernel_get_mempolicy(&mode, &mask, 0) != 0) {
        mode = KMPOL_DEFAULT;
        memset(&mask, 0, sizeof mask);
    }
    numa.policy_flags = mode & KMPOL_MODE_FLAGS;
    numa.policy_mode = mode & ~KMPOL_MODE_FLAGS;

    numa.allowed = all_indices();
    memset(&allowed_kmask, 0, sizeof allowed_kmask);
    if (kernel_get_mempolicy(NULL, &allowed_kmask, KMPOL_F_MEMS_ALLOWED) == 0)
        numa.allowed = indices_in(&allowed_kmask);
    else
        allowed_kmask = numa.memory_kmask;
    if (numa.policy_flags & KMPOL_F_RELATIVE_NODES) relative_to_allowed(&mask, &allowed_kmask);
    numa.policy_kmask = mask;

    for (unsigned t = 0; t < numa.count; t++) numa.target[t] = (uint8_t)t;
    numa.interleave_count = 0;
    numa.policy_set = 0;
    numa.bind_off = false;
    if (numa.allowed == 0) {
        numa.bind_off = true;
        numa.bind_off_reason = "the cpuset allows none of the nodes in use";
        return;
    }

    uint64_t set = numa.allowed;
    switch (numa.policy_mode) {
    case KMPOL_DEFAULT:
    case KMPOL_LOCAL:
        break;
    case KMPOL_PREFERRED: {
        uint64_t preferred = indices_in(&mask) & numa.allowed;
        if (knode_empty(&mask)) break; /* "local", as old kernels report it */
        if (!preferred) {
            numa.bind_off = true;
            numa.bind_off_reason = "the preferred node is not among the nodes in use";
            return;
        }
        unsigned p = (unsigned)__builtin_ctzll(preferred);
        for (unsigned t = 0; t < numa.count; t++) numa.target[t] = (uint8_t)p;
        numa.policy_set = set;
        return;
    }
    case KMPOL_BIND:
    case KMPOL_PREFERRED_MANY:
    case KMPOL_INTERLEAVE:
    case KMPOL_WEIGHTED_INTERLEAVE:
        set = indices_in(&mask) & numa.allowed;
        if (!set) {
            numa.bind_off = true;
            numa.bind_off_reason = "the policy's nodes are not among the nodes in use";
            return;
        }
        break;
    default:
        numa.bind_off = true;
        numa.bind_off_reason = "unknown memory policy mode";
        return;
    }
    numa.policy_set = set;
    if (numa.policy_mode == KMPOL_INTERLEAVE || numa.policy_mode == KMPOL_WEIGHTED_INTERLEAVE) {
        /* Weights are not read: every node of the set gets one turn. */
        for (unsigned i = 0; i < numa.count; i++)
            if ((set >> i) & 1) numa.interleave[numa.interleave_count++] = (uint8_t)i;
        return;
    }
    for (unsigned t = 0; t < numa.count; t++) numa.target[t] = (uint8_t)nearest_in(t, set);
    /* The policy's whole set within the cpuset, not only its nodes with a
     * pool: HUGESLAB_NUMA_NODES, or a machine of more nodes than pools,
     * leaves some of them out, and a full node would then fail the
     * allocation where the user's own policy spills to them. */
    for (size_t i = 0; i < KNODE_LONGS; i++)
        numa.bind_kmask.bits[i] = mask.bits[i] & allowed_kmask.bits[i];
}

void numa_init(void)
{
    numa.enabled = hs_option(HS_OPT_NUMA) != NUMA_OPTION_OFF;
    read_node_states();
    unsigned cap = 1;
    if (numa.enabled) {
        cap = HS_MAX_NODES;
        unsigned option_cap = (unsigned)hs_option(HS_OPT_NUMA_NODES);
        if (option_cap != 0 && option_cap < cap) cap = option_cap;
        if (numa.with_memory > HS_MAX_NODES && cap == HS_MAX_NODES)
            hs_message("%u NUMA nodes have memory, more than the %u hugeslab keeps pools for: "
                       "SuperSlabs come from the first %u, and threads on the others take "
                       "memory from the nearest of those",
                       numa.with_memory, HS_MAX_NODES, HS_MAX_NODES);
    }
    choose_pools(cap);
    map_nodes_to_pools();
    if (numa.enabled) read_policy();
    atomic_store_explicit(&numa.ready, true, memory_order_release);
}

/* ---- queries ---------------------------------------------------------------- */

unsigned numa_node_count(void) { return numa.count; }

unsigned numa_kernel_node(unsigned node) { return node < numa.count ? numa.kernel_id[node] : 0; }

unsigned numa_current_node_refresh(void)
{
    numa_thread_cache_t *c = &numa_thread_cache;
    /* Before numa_init: answer 0 and cache nothing, so the first call after
     * start-up asks the kernel. */
    if (!atomic_load_explicit(&numa.ready, memory_order_acquire)) return 0;
    if (numa.count <= 1) {
        c->node = 0;
        c->calls_left = UINT32_MAX; /* one node stays one node */
        return 0;
    }
    unsigned kernel_node = os_current_kernel_node();
    unsigned idx = kernel_node < KNODE_BITS ? numa_tables.index_of_kernel[kernel_node] : 0;
    c->node = idx;
    c->calls_left = NUMA_REFRESH_CALLS - 1;
    return idx;
}

/* The node of the turn `take` says (taken: the next one) or looks at. */
static unsigned node_for_superslab(unsigned thread_node, bool take)
{
    if (numa.count <= 1) return 0;
    if (thread_node >= numa.count) thread_node = 0;
    if (numa.interleave_count) {
        unsigned turn =
            take ? atomic_fetch_add_explicit(&numa.interleave_next, 1, memory_order_relaxed)
                 : atomic_load_explicit(&numa.interleave_next, memory_order_relaxed);
        return numa.interleave[turn % numa.interleave_count];
    }
    return numa.target[thread_node];
}

unsigned numa_node_for_superslab(unsigned thread_node)
{
    return node_for_superslab(thread_node, true);
}

unsigned numa_node_for_reuse(unsigned thread_node)
{
    return node_for_superslab(thread_node, false);
}

static int bind_range(void *addr, size_t size, unsigned node, bool strict)
{
    if (numa.count <= 1 || numa.bind_off) return 0;
    if (node >= numa.count) return -EINVAL;
    int refused = atomic_load_explicit(&numa.bind_refused_errno, memory_order_relaxed);
    if (refused) return -refused;

    int r;
    if (strict) {
        knode_mask_t one;
        memset(&one, 0, sizeof one);
        knode_add(&one, numa.kernel_id[node]);
        r = kernel_mbind(addr, size, KMPOL_BIND, &one);
    } else if (numa.policy_mode == KMPOL_BIND) {
        r = kernel_mbind(addr, size, KMPOL_BIND, &numa.bind_kmask);
        if (r == 0 && __builtin_popcountll(numa.policy_set) > 1 &&
            !atomic_load_explicit(&numa.home_node_unsupported, memory_order_relaxed)) {
            int h = os_set_home_node(addr, size, numa.kernel_id[node]);
            /* Without home nodes the range still obeys the user's set. */
            if (h == -ENOSYS || h == -EPERM)
                atomic_store_explicit(&numa.home_node_unsupported, true, memory_order_relaxed);
        }
    } else {
        knode_mask_t one;
        memset(&one, 0, sizeof one);
        knode_add(&one, numa.kernel_id[node]);
        r = kernel_mbind(addr, size, KMPOL_PREFERRED, &one);
    }
    if (r == -ENOSYS || r == -EPERM)
        atomic_store_explicit(&numa.bind_refused_errno, -r, memory_order_relaxed);
    return r;
}

int numa_bind(void *addr, size_t size, unsigned node)
{
    return bind_range(addr, size, node, false);
}

int numa_bind_strict(void *addr, size_t size, unsigned node)
{
    return bind_range(addr, size, node, true);
}

HS_SELDOM unsigned numa_hugepages_free(unsigned node)
{
    if (node >= numa.count) return 0;
    char buf[32];
    unsigned v = 0;
    if (os_read_node_file(numa.kernel_id[node], "hugepages/hugepages-2048kB/free_hugepages", buf,
                          sizeof buf) <= 0 ||
        !parse_uint(skip_spaces(buf), &v))
        return 0;
    return v;
}

/* The pool whose node is kernel node id, or numa.count when it has none. */
static unsigned pool_of_kernel_node(unsigned id)
{
    for (unsigned i = 0; i < numa.count; i++)
        if (numa.kernel_id[i] == id) return i;
    return numa.count;
}

/* A node's cpulist, without its newline; "" when it has no CPUs. */
static void node_cpus(unsigned kernel_node, char *cpus, size_t cap)
{
    if (os_read_node_file(kernel_node, "cpulist", cpus, cap) <= 0) cpus[0] = '\0';
    for (char *c = cpus; *c; c++)
        if (*c == '\n') *c = '\0';
}

HS_SELDOM const char *numa_policy_name(void)
{
    if (!numa.enabled) return "off";
    switch (numa.policy_mode) {
    case KMPOL_DEFAULT:
        return "default";
    case KMPOL_PREFERRED:
        return "preferred";
    case KMPOL_BIND:
        return "bind";
    case KMPOL_INTERLEAVE:
        return "interleave";
    case KMPOL_LOCAL:
        return "local";
    case KMPOL_PREFERRED_MANY:
        return "preferred-many";
    case KMPOL_WEIGHTED_INTERLEAVE:
        return "weighted-interleave";
    default:
        return "unknown";
    }
}

HS_SELDOM void numa_describe(void)
{
    char line[512];
    hs_text_t t = hs_text(line, sizeof line);
    if (!numa.enabled) {
        hs_message("numa: off (HUGESLAB_NUMA=off): one pool, no mbind, the kernel places pages");
        return;
    }
    hs_text_str(&t, "kernel ids ");
    for (unsigned i = 0; i < numa.count; i++) {
        if (i) hs_text_str(&t, ",");
        hs_text_uint(&t, numa.kernel_id[i]);
    }
    hs_message("numa: %u node(s) in use of %u online, %u with memory (%s%s)", numa.count,
               numa.online, numa.with_memory, line,
               numa.pools_dense ? "" : "; not dense, remapped to 0..n-1");

    for (unsigned i = 0; i < numa.count; i++) {
        char cpus[256];
        node_cpus(numa.kernel_id[i], cpus, sizeof cpus);
        /* Distances between pools: one pool has none kept (numa_tables). */
        t = hs_text(line, sizeof line);
        for (unsigned j = 0; j < numa.count && numa.count > 1; j++) {
            hs_text_str(&t, j ? " " : ", distances ");
            hs_text_uint(&t, numa_tables.distance[i][j]);
        }
        hs_message("numa: node %u: cpus %s%s, free 2 MiB hugepages %u", i,
                   cpus[0] ? cpus : "none (memory only)", line, numa_hugepages_free(i));
    }
    /* Online nodes without a pool, and where their threads' memory comes from. */
    unsigned without_pool = 0;
    for (unsigned id = 0; id < KNODE_BITS; id++) {
        if (!knode_has(&numa.online_kmask, id) || pool_of_kernel_node(id) < numa.count) continue;
        if (++without_pool > 16) continue; /* a line each for the first few */
        char cpus[256];
        node_cpus(id, cpus, sizeof cpus);
        unsigned pool = numa_tables.index_of_kernel[id];
        hs_message("numa: kernel node %u: cpus %s, %s: its threads take memory from node %u "
                   "(kernel node %u)",
                   id, cpus[0] ? cpus : "none",
                   knode_has(&numa.memory_kmask, id) ? "no pool (over the node limit)"
                                                     : "no memory",
                   pool, numa.kernel_id[pool]);
    }
    if (without_pool > 16)
        hs_message("numa: ... and %u more nodes without a pool", without_pool - 16);

    t = hs_text(line, sizeof line);
    hs_text_str(&t, "cpuset nodes ");
    text_index_set(&t, numa.allowed);
    if (numa.policy_mode != KMPOL_DEFAULT && numa.policy_mode != KMPOL_LOCAL) {
        hs_text_str(&t, ", policy nodes ");
        text_index_set(&t, indices_in(&numa.policy_kmask));
    }
    hs_message("numa: policy %s, %s", numa_policy_name(), line);

    if (numa.count <= 1) {
        hs_message("numa: one node in use: SuperSlabs are not bound");
        return;
    }
    if (numa.bind_off) {
        hs_message("numa: SuperSlabs are not bound (%s): the kernel applies the policy",
                   numa.bind_off_reason);
        return;
    }
    t = hs_text(line, sizeof line);
    if (numa.interleave_count) {
        hs_text_str(&t, "round robin over ");
        text_index_set(&t, numa.policy_set);
    } else {
        for (unsigned i = 0; i < numa.count; i++) {
            if (i) hs_text_str(&t, ", ");
            hs_text_uint(&t, i);
            hs_text_str(&t, "->");
            hs_text_uint(&t, numa.target[i]);
        }
    }
    hs_message("numa: SuperSlab node by thread node: %s; mbind %s", line,
               numa.policy_mode == KMPOL_BIND ? "MPOL_BIND to the policy's nodes, home node chosen"
                                              : "MPOL_PREFERRED to the chosen node");
}
