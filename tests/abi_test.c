/* The library's ABI across versions: hugeslab_stats() as a program built
 * against each version's header sees it. One source, three programs
 * (tests/tests.mk), each linked to the shared library:
 *
 *   abi_0_1         0.1's hugeslab_stats_t (its copy below), linked against
 *                   a stand-in for 0.1's libhugeslab.so.0, which had no
 *                   symbol versions (tests/abi_stub.c): its reference to
 *                   hugeslab_stats is unversioned, as in every program
 *                   linked against 0.1, and it runs on the built library
 *                   through its rpath.
 *   abi_0_1_symver  the same struct, its reference bound to
 *                   hugeslab_stats@HUGESLAB_0.1 by name.
 *   abi_0_2         today's header, linked against the built library.
 *
 * Each puts a canary right after its struct: a library that writes more
 * than the program's struct holds (0.2's hugeslab_stats into 0.1's struct)
 * overwrites it. Each checks that the fields it knows are written, and that
 * its malloc is hugeslab's (a program linked to the library gets it as well
 * as a preloaded one). abi_0_2 checks the fields 0.2 added, and that dlsym()
 * finds the newest version and dlvsym() the old one.
 * Exit status as every test (tests/test_util.h). */
#include "test_util.h"

#include <malloc.h>
#include <stdint.h>

#define MiB ((size_t)1 << 20)
/* What a field holds until the library writes it. */
#define UNWRITTEN 0xa5a5a5a5a5a5a5a5ull
#define CANARY 0x5ca1ab1e0ddba11ull
#define CANARY_WORDS 4

#ifdef HS_ABI_0_1
/* hugeslab_stats_t as include/hugeslab.h defined it in 0.1. */
#define HUGESLAB_STATS_MAX_NODES 8
typedef struct {
    uint64_t superslabs_mapped;
    uint64_t superslabs_hugetlb;
    uint64_t superslabs_thp;
    uint64_t superslabs_base;
    uint64_t superslabs_cached;
    uint64_t superslabs_purged;
    uint64_t superslabs_by_node[HUGESLAB_STATS_MAX_NODES];
    uint64_t remote_frees_by_node[HUGESLAB_STATS_MAX_NODES];
    uint64_t bytes_mapped;
    uint64_t bytes_in_slabs;
    uint64_t bytes_in_runs;
    uint64_t bytes_cached;
    uint64_t bytes_purged_now;
    uint64_t bytes_purged_total;
    uint64_t purge_calls;
    uint64_t huge_blocks;
    uint64_t remote_frees;
    uint64_t threads_live;
    uint64_t orphan_slabs;
    uint64_t page_faults;
    int64_t kernel_rss;
    int64_t kernel_anon_huge;
    int64_t kernel_lazy_free;
    int64_t kernel_hugetlb;
    int64_t kernel_thp_superslabs;
    int64_t kernel_hugetlb_superslabs;
} stats_t;
_Static_assert(sizeof(stats_t) == 320, "0.1's hugeslab_stats_t is 320 bytes");
#define VERSION "0.1"
#ifdef HS_ABI_SYMVER
void hugeslab_stats_0_1(stats_t *out);
__asm__(".symver hugeslab_stats_0_1, hugeslab_stats@HUGESLAB_0.1");
#define stats_of hugeslab_stats_0_1
#else
void hugeslab_stats(stats_t *out);
#define stats_of hugeslab_stats
#endif
#else
#include "hugeslab.h"
typedef hugeslab_stats_t stats_t;
#define VERSION "0.2"
#define stats_of hugeslab_stats
#endif

/* The struct with the canary right after it, where a caller's next
 * variable would be. */
static struct {
    stats_t s;
    uint64_t canary[CANARY_WORDS];
} frame;

/* Fills the struct with UNWRITTEN and the canary, then asks the library. */
static void take(void)
{
    memset(&frame.s, 0xa5, sizeof frame.s);
    for (int i = 0; i < CANARY_WORDS; i++) frame.canary[i] = CANARY;
    stats_of(&frame.s);
    for (int i = 0; i < CANARY_WORDS; i++)
        CHECK(frame.canary[i] == CANARY,
              "the canary after %s's %zu-byte struct: word %d is 0x%llx: the library wrote "
              "past the struct",
              VERSION, sizeof frame.s, i, (unsigned long long)frame.canary[i]);
}

#define WRITTEN(field)                                                                             \
    CHECK((uint64_t)frame.s.field != UNWRITTEN, "hugeslab_stats left " #field " unwritten")

int main(void)
{
    /* A run: hugeslab counts it in bytes_in_runs; glibc's malloc would
     * have mapped it on its own, and hugeslab would count nothing. */
    size_t run_size = 3 * MiB;
    char *run = malloc(run_size);
    CHECK(run != NULL, "malloc(3 MiB) failed");
    if (run) memset(run, 1, run_size);
    take();
    printf("%s's struct (%zu bytes): superslabs_mapped %llu, bytes_in_runs %llu, threads_live "
           "%llu, page_faults %llu, kernel_rss %lld, kernel_hugetlb_superslabs %lld, canary "
           "0x%llx\n",
           VERSION, sizeof frame.s, (unsigned long long)frame.s.superslabs_mapped,
           (unsigned long long)frame.s.bytes_in_runs, (unsigned long long)frame.s.threads_live,
           (unsigned long long)frame.s.page_faults, (long long)frame.s.kernel_rss,
           (long long)frame.s.kernel_hugetlb_superslabs, (unsigned long long)frame.canary[0]);
    CHECK(frame.s.bytes_in_runs >= run_size && frame.s.bytes_in_runs != UNWRITTEN,
          "bytes_in_runs %llu with a 3 MiB block live: the program's malloc is not hugeslab's",
          (unsigned long long)frame.s.bytes_in_runs);
    CHECK(frame.s.superslabs_mapped >= 1 && frame.s.superslabs_mapped != UNWRITTEN,
          "superslabs_mapped %llu", (unsigned long long)frame.s.superslabs_mapped);
    WRITTEN(threads_live);
    CHECK(frame.s.page_faults > 0 && frame.s.page_faults != UNWRITTEN, "page_faults %llu",
          (unsigned long long)frame.s.page_faults);
    WRITTEN(kernel_rss);
    /* The last field of 0.1's struct. */
    WRITTEN(kernel_hugetlb_superslabs);
    free(run);

#ifndef HS_ABI_0_1
    /* A huge block's munmap at free is given back at once. */
    uint64_t at_once = frame.s.bytes_purged_at_once, calls = frame.s.purge_calls_at_once;
    WRITTEN(bytes_purged_at_once);
    WRITTEN(purge_calls_at_once);
    char *huge = malloc(64 * MiB);
    CHECK(huge != NULL, "malloc(64 MiB) failed");
    if (huge) memset(huge, 2, 64 * MiB);
    free(huge);
    take();
    printf("after a 64 MiB block's free: bytes_purged_at_once %llu -> %llu, purge_calls_at_once "
           "%llu -> %llu\n",
           (unsigned long long)at_once, (unsigned long long)frame.s.bytes_purged_at_once,
           (unsigned long long)calls, (unsigned long long)frame.s.purge_calls_at_once);
    CHECK(frame.s.bytes_purged_at_once >= at_once + 64 * MiB &&
              frame.s.bytes_purged_at_once <= frame.s.bytes_purged_total,
          "bytes_purged_at_once %llu (before %llu, total %llu)",
          (unsigned long long)frame.s.bytes_purged_at_once, (unsigned long long)at_once,
          (unsigned long long)frame.s.bytes_purged_total);
    CHECK(frame.s.purge_calls_at_once > calls && frame.s.purge_calls_at_once <= frame.s.purge_calls,
          "purge_calls_at_once %llu (before %llu, total %llu)",
          (unsigned long long)frame.s.purge_calls_at_once, (unsigned long long)calls,
          (unsigned long long)frame.s.purge_calls);

    /* dlsym finds the newest version, the one this header describes;
     * the old one is there under its version. */
    void *newest = dlsym(RTLD_DEFAULT, "hugeslab_stats");
    void *v0_2 = dlvsym(RTLD_DEFAULT, "hugeslab_stats", "HUGESLAB_0.2");
    void *v0_1 = dlvsym(RTLD_DEFAULT, "hugeslab_stats", "HUGESLAB_0.1");
    printf("dlsym: %p, dlvsym 0.2: %p, dlvsym 0.1: %p, linked: %p\n", newest, v0_2, v0_1,
           (void *)&hugeslab_stats);
    CHECK(newest && newest == v0_2 && newest == (void *)&hugeslab_stats,
          "dlsym(hugeslab_stats) %p is not HUGESLAB_0.2's %p", newest, v0_2);
    CHECK(v0_1 && v0_1 != v0_2, "dlvsym(hugeslab_stats, HUGESLAB_0.1) %p", v0_1);
#endif
    return hs_finish("abi_" VERSION);
}
