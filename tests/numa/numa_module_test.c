/* src/numa on its own: does numa_node_for_superslab() follow the process
 * policy, and does numa_bind() put a SuperSlab's pages on the node it names?
 * Built from src/numa and the files it needs (the archive keeps numa_*
 * local) and run in a multi-node VM, alone or under numactl; the expected
 * node is worked out here from the policy, apart from the module, and the
 * pages' nodes come from move_pages(2).
 *
 *   numa_module_test [default | bind N[,N...] | preferred N | interleave | topology]
 *   numa_module_test range-bind N[,N...] [relative M[,M...]]
 *
 * Built from src/numa/numa.c with what it uses of common/ (log.c, text.c)
 * and os/ (files.c, process.c) alone (this file defines the options array),
 * so it tests the module without the allocator around it. HUGESLAB_NUMA=off and
 * HUGESLAB_NUMA_NODES=K are honoured as the library would: with K < nodes, threads on the other
 * nodes must be given the nearest node in use (node 0: the VM's distances are all equal).
 *
 * Per thread pinned to each node with CPUs:
 * - numa_current_node() must name the node it runs on;
 * - SUPERSLABS ranges of 2 MiB, each bound with numa_bind() to the node
 *   numa_node_for_superslab() gives, then touched by the thread: every page
 *   must be on that node, and that node must be the one the policy asks for;
 * - with the default policy, the opposite as well: a SuperSlab bound to
 *   another node lands there (the bind beats first touch), and one left
 *   unbound lands on the thread's own node (what first touch alone gives).
 * range-bind, under a bind policy: the policy numa_bind() puts on a
 * SuperSlab (get_mempolicy of its range) must be MPOL_BIND to exactly the
 * nodes N..., the policy's own set within the nodes allowed, and its pages
 * must land inside it. With `relative M...` the program first sets that
 * policy itself with MPOL_F_RELATIVE_NODES: bit M means the M-th allowed
 * node, and N... is what the kernel makes of it. */
#include <stdarg.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "numa/numa.h"
#include "numa_test_util.h"

#define SUPERSLABS 4
#define SS_SIZE (2UL << 20)

int64_t hs_option_values[HS_OPT_COUNT];

static int nodes, cpu_nodes;
static int used_nodes; /* what numa_node_count() should say */
static int policy = 0; /* 0 default, 1 preferred, 2 bind, 3 interleave, 4 topology */
static unsigned char policy_set[NT_MAX_NODES];
static int failures;
static long interleave_count[NT_MAX_NODES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&lock);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    failures++;
    pthread_mutex_unlock(&lock);
    va_end(ap);
}

/* A 2 MiB-aligned, untouched 2 MiB range. */
static void *map_superslab(void)
{
    char *p = mmap(NULL, 2 * SS_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(NT_EXIT_USAGE);
    }
    return (void *)(((uintptr_t)p + SS_SIZE - 1) & ~(SS_SIZE - 1));
}

/* Touches the range and returns the node holding all its pages, -2 when
 * they are split (and prints the split), -1 on error. */
static int touch_and_locate(void *ss, long *per_node)
{
    memset(ss, 0x5a, SS_SIZE);
    nt_pages_t pages = {0};
    nt_pages_add_range(&pages, ss, SS_SIZE);
    long known = nt_pages_where(&pages, per_node);
    nt_pages_free(&pages);
    if (known <= 0) return -1;
    for (int n = 0; n < nodes; n++)
        if (per_node[n] == known) return n;
    return -2;
}

/* What the policy asks for a SuperSlab of a thread on node t (not for
 * interleave, which is checked over all SuperSlabs). Distances in the VM
 * are all 10/20, so "nearest" ties go to the lowest node. */
static int expected_node(int t)
{
    if (policy == 1) {
        for (int n = 0; n < nodes; n++)
            if (policy_set[n]) return n;
    }
    if (policy == 2 && !policy_set[t]) {
        for (int n = 0; n < nodes; n++)
            if (policy_set[n]) return n;
    }
    return t;
}

static void *thread_main(void *p)
{
    int t = (int)(intptr_t)p;
    nt_pin_to_node(t);
    unsigned me = numa_current_node();
    int expected_me = t < used_nodes ? t : 0;
    if ((int)me != expected_me)
        fail("thread on node %d: numa_current_node() = %u, expected %d", t, me, expected_me);
    if (used_nodes == 1) return NULL; /* nothing is bound: nothing to place */
    long per_node[NT_MAX_NODES];
    for (int i = 0; i < SUPERSLABS; i++) {
        unsigned target = numa_node_for_superslab(me);
        void *ss = map_superslab();
        int r = numa_bind(ss, SS_SIZE, target);
        if (r != 0) fail("numa_bind(node %u) = %d", target, r);
        int at = touch_and_locate(ss, per_node);
        printf("thread on node %d: SuperSlab %d: chose node %u, pages on node %d\n", t, i, target,
               at);
        if (at != (int)target) fail("thread on node %d: bound to %u, pages on %d", t, target, at);
        if (policy == 3) {
            pthread_mutex_lock(&lock);
            interleave_count[target]++;
            pthread_mutex_unlock(&lock);
            if (!policy_set[target]) fail("interleave chose node %u outside the set", target);
        } else if ((int)target != expected_node((int)me)) {
            fail("thread on node %d: chose node %u, the policy asks for %d", t, target,
                 expected_node((int)me));
        }
    }
    if (policy == 0 && t < used_nodes) {
        int other = (t + 1) % used_nodes;
        void *ss = map_superslab();
        numa_bind(ss, SS_SIZE, (unsigned)other);
        int at = touch_and_locate(ss, per_node);
        printf("thread on node %d: bound to the other node %d: pages on node %d\n", t, other, at);
        if (at != other) fail("binding to another node: pages on %d, not %d", at, other);
        ss = map_superslab();
        at = touch_and_locate(ss, per_node);
        printf("thread on node %d: not bound: pages on node %d (first touch)\n", t, at);
        if (at != t) fail("unbound range: pages on %d, first touch says %d", at, t);
    }
    return NULL;
}

/* ---- topology: nodes of CPUs alone, nodes of memory alone ----------------------
 * Pools only on nodes with memory, in order; a thread on a node without
 * memory is given the pool of the nearest node with memory (the expectation
 * worked out here from sysfs); its SuperSlabs land there. */
static void *topology_thread(void *p)
{
    int node = (int)(intptr_t)p;
    nt_pin_to_node(node);
    int expected = nt_nearest_memory_node(node);
    unsigned me = numa_current_node();
    int me_kernel = (int)numa_kernel_node(me);
    long per_node[NT_MAX_NODES];
    void *ss = map_superslab();
    unsigned target = numa_node_for_superslab(me);
    int r = numa_bind(ss, SS_SIZE, target);
    int at = touch_and_locate(ss, per_node);
    printf("thread on node %d (%s memory): pool %u (kernel node %d), SuperSlab bound to kernel "
           "node %u, pages on node %d; nearest node with memory %d\n",
           node, nt_node_has_memory(node) ? "with" : "without", me, me_kernel,
           numa_kernel_node(target), at, expected);
    if (me_kernel != expected)
        fail("thread on node %d: pool of kernel node %d, expected %d", node, me_kernel, expected);
    if (r != 0) fail("numa_bind(pool %u) = %d", target, r);
    if (at != expected)
        fail("thread on node %d: pages on node %d, expected %d", node, at, expected);
    return NULL;
}

static int topology_main(void)
{
    int with_memory = 0;
    for (int n = 0; n < nodes; n++) {
        if (!nt_node_has_memory(n)) continue;
        if ((int)numa_kernel_node((unsigned)with_memory) != n)
            fail("pool %d is kernel node %u, expected %d", with_memory,
                 numa_kernel_node((unsigned)with_memory), n);
        with_memory++;
    }
    printf("%d node(s), %d with memory; numa_node_count() = %u\n", nodes, with_memory,
           numa_node_count());
    if ((int)numa_node_count() != with_memory)
        fail("numa_node_count() = %u, expected the %d nodes with memory", numa_node_count(),
             with_memory);
    pthread_t tid[NT_MAX_NODES];
    int started[NT_MAX_NODES] = {0};
    cpu_set_t cpus;
    for (int n = 0; n < nodes; n++)
        if (nt_node_cpus(n, &cpus) > 0)
            started[n] = pthread_create(&tid[n], NULL, topology_thread, (void *)(intptr_t)n) == 0;
    for (int n = 0; n < nodes; n++)
        if (started[n]) pthread_join(tid[n], NULL);
    if (failures) {
        printf("result: FAIL %d check(s) failed\n", failures);
        return NT_EXIT_FAIL;
    }
    printf("result: PASS\n");
    return NT_EXIT_PASS;
}

/* ---- range-bind: the mask numa_bind() hands the kernel --------------------- */
#define MASK_LONGS (1024 / (8 * sizeof(unsigned long)))

static void mask_from_set(unsigned long *mask, const unsigned char *set)
{
    memset(mask, 0, MASK_LONGS * sizeof *mask);
    for (int n = 0; n < NT_MAX_NODES; n++)
        if (set[n])
            mask[n / (8 * sizeof(unsigned long))] |= 1UL << (n % (8 * sizeof(unsigned long)));
}

static int range_bind_main(int argc, char **argv)
{
    unsigned char expected_set[NT_MAX_NODES] = {0}, relative_set[NT_MAX_NODES] = {0};
    if (argc < 3 || nt_parse_list(argv[2], expected_set, NT_MAX_NODES) == 0) return NT_EXIT_USAGE;
    if (argc >= 5 && strcmp(argv[3], "relative") == 0) {
        if (nt_parse_list(argv[4], relative_set, NT_MAX_NODES) == 0) return NT_EXIT_USAGE;
        unsigned long relative[MASK_LONGS];
        mask_from_set(relative, relative_set);
        /* MPOL_BIND | MPOL_F_RELATIVE_NODES */
        if (syscall(SYS_set_mempolicy, 2 | (1 << 14), relative, 1025UL) != 0) {
            printf("result: SKIP set_mempolicy with MPOL_F_RELATIVE_NODES: %s\n", strerror(errno));
            return NT_EXIT_SKIP;
        }
    }
    numa_init();
    printf("%d node(s); numa_node_count() = %u, policy %s\n", nodes, numa_node_count(),
           numa_policy_name());
    numa_describe();
    unsigned target = numa_node_for_superslab(numa_current_node());
    void *ss = map_superslab();
    int r = numa_bind(ss, SS_SIZE, target);
    if (r != 0) fail("numa_bind(pool %u) = %d", target, r);
    int mode = -1;
    unsigned long got[MASK_LONGS], want[MASK_LONGS];
    memset(got, 0, sizeof got);
    mask_from_set(want, expected_set);
    if (syscall(SYS_get_mempolicy, &mode, got, 1025UL, ss, 2UL /* MPOL_F_ADDR */) != 0)
        fail("get_mempolicy of the range: %s", strerror(errno));
    printf(
        "SuperSlab of pool %u (kernel node %u): range policy mode %d, nodes %#lx (want MPOL_BIND "
        "to %#lx)\n",
        target, numa_kernel_node(target), mode, got[0], want[0]);
    if ((mode & 0xff) != 2) fail("range policy mode %d, not MPOL_BIND", mode);
    if (memcmp(got, want, sizeof got) != 0)
        fail("range bound to nodes %#lx, the policy's are %#lx", got[0], want[0]);
    long per_node[NT_MAX_NODES];
    int at = touch_and_locate(ss, per_node);
    printf("pages on node %d\n", at);
    if (at < 0 || !expected_set[at]) fail("pages on node %d, outside the policy's nodes", at);
    if (failures) {
        printf("result: FAIL %d check(s) failed\n", failures);
        return NT_EXIT_FAIL;
    }
    printf("result: PASS\n");
    return NT_EXIT_PASS;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    nodes = nt_node_count();
    cpu_set_t cpus;
    while (cpu_nodes < nodes && nt_node_cpus(cpu_nodes, &cpus) > 0) cpu_nodes++;
    const char *mode = argc > 1 ? argv[1] : "default";
    if (strcmp(mode, "range-bind") == 0) {
        if (nodes < 2) {
            printf("result: SKIP one NUMA node\n");
            return NT_EXIT_SKIP;
        }
        const char *cap = getenv("HUGESLAB_NUMA_NODES");
        hs_option_values[HS_OPT_NUMA_NODES] = cap ? atoi(cap) : 0;
        return range_bind_main(argc, argv);
    }
    if (strcmp(mode, "preferred") == 0)
        policy = 1;
    else if (strcmp(mode, "bind") == 0)
        policy = 2;
    else if (strcmp(mode, "interleave") == 0)
        policy = 3;
    else if (strcmp(mode, "topology") == 0)
        policy = 4;
    else if (strcmp(mode, "default") != 0)
        return NT_EXIT_USAGE;
    if (policy == 3)
        memset(policy_set, 1, sizeof policy_set);
    else if (policy != 0 && policy != 4 &&
             (argc < 3 || nt_parse_list(argv[2], policy_set, NT_MAX_NODES) == 0))
        return NT_EXIT_USAGE;
    if (nodes < 2) {
        printf("result: SKIP one NUMA node\n");
        return NT_EXIT_SKIP;
    }

    const char *off = getenv("HUGESLAB_NUMA"), *cap = getenv("HUGESLAB_NUMA_NODES");
    hs_option_values[HS_OPT_NUMA] = off && strcmp(off, "off") == 0;
    hs_option_values[HS_OPT_NUMA_NODES] = cap ? atoi(cap) : 0;
    used_nodes = hs_option_values[HS_OPT_NUMA] ? 1 : nodes;
    if (hs_option_values[HS_OPT_NUMA_NODES] > 0 && hs_option_values[HS_OPT_NUMA_NODES] < used_nodes)
        used_nodes = (int)hs_option_values[HS_OPT_NUMA_NODES];
    if (numa_current_node() != 0) fail("numa_current_node() before numa_init is not 0");
    numa_init();
    printf("%d node(s), %d with CPUs; numa_node_count() = %u, policy %s (expected %s)\n", nodes,
           cpu_nodes, numa_node_count(), numa_policy_name(), mode);
    numa_describe();
    if (policy == 4) return topology_main();
    if ((int)numa_node_count() != used_nodes)
        fail("numa_node_count() = %u, expected %d", numa_node_count(), used_nodes);
    if (used_nodes > 1 && strncmp(numa_policy_name(), mode, strlen(mode)) != 0)
        fail("numa_policy_name() = %s, expected %s", numa_policy_name(), mode);

    pthread_t tid[NT_MAX_NODES];
    for (int t = 0; t < cpu_nodes; t++)
        pthread_create(&tid[t], NULL, thread_main, (void *)(intptr_t)t);
    for (int t = 0; t < cpu_nodes; t++) pthread_join(tid[t], NULL);

    if (policy == 3 && used_nodes > 1) {
        /* Round robin over all callers: every node gets its turn, evenly. */
        long total = (long)cpu_nodes * SUPERSLABS, lo = total, hi = 0;
        for (int n = 0; n < nodes; n++) {
            if (interleave_count[n] < lo) lo = interleave_count[n];
            if (interleave_count[n] > hi) hi = interleave_count[n];
        }
        printf("interleave: SuperSlabs per node between %ld and %ld\n", lo, hi);
        if (hi - lo > 1) fail("interleave is uneven: %ld..%ld SuperSlabs per node", lo, hi);
    }
    if (failures) {
        printf("result: FAIL %d check(s) failed\n", failures);
        return NT_EXIT_FAIL;
    }
    printf("result: PASS\n");
    return NT_EXIT_PASS;
}
