/* A program that uses libnuma next to hugeslab: hugeslab's internal numa_*
 * functions must neither clash with libnuma's at link time nor be called in
 * their place.
 *
 * Builds:
 *   libnuma_static   -static, libhugeslab.a and libnuma.a (HS_STATIC_LINK)
 *   libnuma_preload  libnuma.so, run with LD_PRELOAD=libhugeslab.so
 *
 * Checks: malloc is hugeslab's; numa_bind() really is libnuma's (the
 * thread's policy becomes MPOL_BIND to the chosen node, read back with the
 * raw get_mempolicy system call); numa_get_membind, numa_run_on_node and
 * numa_alloc_onnode work; blocks from malloc keep their contents and land on
 * the bound node when hugeslab binds SuperSlabs.
 */
#include "test_util.h"

#include <numa.h>
#include <sys/syscall.h>

#include "hugeslab.h"

#ifndef MPOL_BIND
#define MPOL_BIND 2
#endif
#define MPOL_F_NODE_ (1 << 0)
#define MPOL_F_ADDR_ (1 << 1)

/* The policy of the calling thread (or, with an address, the node of its page). */
static long raw_get_mempolicy(int *mode, unsigned long *mask, unsigned long maxnode, void *addr,
                              unsigned long flags)
{
    return syscall(SYS_get_mempolicy, mode, mask, maxnode, addr, flags);
}

/* Fails the test when malloc should be hugeslab's and is not. */
static void check_allocator(void)
{
#ifdef HS_STATIC_LINK
    /* Both names are one function in the archive. */
    void *volatile m = (void *)malloc;
    void *volatile h = (void *)hugeslab_malloc;
    if (m != h) {
        fprintf(stderr, "FAIL: malloc is not hugeslab's\n");
        exit(1);
    }
#else
    hs_setup("libnuma");
#endif
}

static int numa_bind_is_libnuma(void)
{
#ifdef HS_STATIC_LINK
    return 1; /* told by behaviour below: hugeslab's own has another contract */
#else
    Dl_info info;
    if (!dladdr((void *)numa_bind, &info) || !info.dli_fname) return 0;
    return strstr(info.dli_fname, "libnuma") != NULL;
#endif
}

int main(void)
{
    check_allocator();
    if (numa_available() < 0) hs_skip("libnuma: NUMA system calls unavailable here");
    CHECK(numa_bind_is_libnuma(), "numa_bind does not resolve into libnuma");

    struct bitmask *allowed = numa_get_mems_allowed();
    int node = -1;
    for (int n = 0; n <= numa_max_node(); n++)
        if (numa_bitmask_isbitset(allowed, (unsigned)n) && numa_node_size64(n, NULL) > 0) {
            node = n;
            break;
        }
    numa_bitmask_free(allowed);
    if (node < 0) hs_skip("libnuma: no node with memory is allowed");

    struct bitmask *mask = numa_allocate_nodemask();
    numa_bitmask_setbit(mask, (unsigned)node);
    numa_bind(mask);

    int mode = -1;
    unsigned long bits[16] = {0};
    CHECK(raw_get_mempolicy(&mode, bits, sizeof bits * 8, NULL, 0) == 0, "get_mempolicy: %s",
          strerror(errno));
    CHECK(mode == MPOL_BIND, "after numa_bind the policy is %d, not MPOL_BIND", mode);
    unsigned long want = 1UL << (node & 63);
    CHECK(bits[node / 64] == want, "after numa_bind the nodes are %#lx", bits[node / 64]);

    struct bitmask *bound = numa_get_membind();
    CHECK(numa_bitmask_equal(bound, mask), "numa_get_membind differs from the bound mask");
    numa_bitmask_free(bound);
    CHECK(numa_run_on_node(node) == 0, "numa_run_on_node(%d): %s", node, strerror(errno));

    size_t len = 1 << 20;
    char *onnode = numa_alloc_onnode(len, node);
    CHECK(onnode != NULL, "numa_alloc_onnode");
    if (onnode) {
        memset(onnode, 0x5a, len);
        int where = -1;
        CHECK(raw_get_mempolicy(&where, NULL, 0, onnode, MPOL_F_NODE_ | MPOL_F_ADDR_) == 0 &&
                  where == node,
              "numa_alloc_onnode page on node %d, wanted %d", where, node);
        numa_free(onnode, len);
    }

    /* hugeslab under the bound policy: blocks of every kind keep their
     * contents, and their pages are on the bound node. */
    enum { COUNT = 2000 };
    static void *blocks[COUNT];
    static size_t sizes[COUNT];
    for (int i = 0; i < COUNT; i++) {
        sizes[i] = (i % 100 == 0) ? (3u << 20) : 16 + (size_t)(i * 37 % 5000);
        blocks[i] = malloc(sizes[i]);
        CHECK(blocks[i] != NULL, "malloc(%zu)", sizes[i]);
        if (blocks[i]) hs_fill(blocks[i], sizes[i], (uint64_t)i);
    }
    for (int i = 0; i < COUNT; i += 97) {
        int where = -1;
        if (!blocks[i]) continue;
        CHECK(raw_get_mempolicy(&where, NULL, 0, blocks[i], MPOL_F_NODE_ | MPOL_F_ADDR_) == 0 &&
                  where == node,
              "block %p on node %d, wanted %d", blocks[i], where, node);
    }
    for (int i = 0; i < COUNT; i++) {
        if (!blocks[i]) continue;
        CHECK(hs_check_fill(blocks[i], sizes[i], (uint64_t)i) == SIZE_MAX, "block %d corrupted", i);
        free(blocks[i]);
    }
    numa_bitmask_free(mask);
    return hs_finish("libnuma");
}
