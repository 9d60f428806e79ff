/* Process start-up, fork handling, and the statistics gathered from each
 * module (report.c writes them out). */
#include <pthread.h>
#include <string.h>

#include "api/api.h"
#include "hugeslab.h"
#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment.h"
#include "thp/thp.h"
#include "tiny/tiny.h"

HS_START_STATE static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* HUGESLAB_VERBOSE's first lines: what the process starts with. */
HS_SELDOM HS_NOINLINE static void describe_start(void)
{
    hs_message("version %d.%d, THP mode %s%s, %u NUMA node(s)", HUGESLAB_VERSION_MAJOR,
               HUGESLAB_VERSION_MINOR, thp_mode_name(thp_system_mode()),
               thp_process_off() ? " (off for this process: prctl PR_SET_THP_DISABLE)" : "",
               numa_node_count());
    hs_options_print();
    thp_describe();
    numa_describe();
}

/* Nothing in here may call malloc: it runs inside the process's first one,
 * possibly while the dynamic loader or libc is still starting. tiny_init
 * starts the layers below it first (seg_init), and a thread's first heap
 * may have started them already. */
static void init_process(void)
{
    hs_once_enter(HS_RANK_INIT);
    tiny_init();
    if (hs_option(HS_OPT_VERBOSE)) describe_start();
    hs_once_leave(HS_RANK_INIT);
}

void hs_init(void) { pthread_once(&init_once, init_process); }

/* Every global lock is held across fork(), so the child never inherits one
 * held by a thread that does not exist there. Order: tiny's, then segment's;
 * segment's work with no lock held comes before the first and after the
 * last (seg_fork_begin, seg_fork_parent_unlocked). Between the handlers,
 * the fork window (locks.h, rule 5): other libraries' handlers that run
 * there allocate on the forking thread under the locks it holds. */
HS_APART static void fork_prepare(void)
{
    /* A fork before the first allocation: the locks get their ranks. */
    hs_init();
    seg_fork_begin();
    tiny_fork_prepare();
    seg_fork_prepare();
    hs_fork_window_open();
}

HS_APART static void fork_parent(void)
{
    hs_fork_window_close();
    seg_fork_token_t token = seg_fork_parent();
    tiny_fork_parent();
    seg_fork_parent_unlocked(token);
}

HS_APART static void fork_child(void)
{
    /* The locks fork_prepare took are re-initialised below, not released. */
    hs_fork_window_close();
    hs_lock_forget_all();
    seg_fork_child();
    tiny_fork_child();
    hs_report_fork_child();
}

/* Whether a SuperSlab may be a hugetlb page: the backing allows one and
 * the 2 MiB pool has pages or may lend some. */
static bool hugetlb_may_back(void)
{
    int64_t backing = hs_option(HS_OPT_BACKING);
    return backing != HS_BACKING_THP && backing != HS_BACKING_BASE && os_hugetlb_pool_configured();
}

/* The options only, unless they ask for output from the start: the rest of
 * the start-up (sysfs reads but the pool's counts below, the thread key,
 * the NUMA facts) waits for the first allocation. `true` under the library
 * peaked 1276 KiB with all of it here (glibc: 976). The fork handlers are
 * registered with libc once the process needs them (locks.h); at once where
 * a hugetlb pool may back its memory: a fork before the first allocation,
 * during which another library's prepare handler allocated first, would run
 * none of ours, and its child would share the hugetlb SuperSlab mapped there
 * with no copy of its own. */
__attribute__((constructor)) static void hs_constructor(void)
{
    hs_common_init();
    if (hs_option(HS_OPT_VERBOSE) || hs_option(HS_OPT_STATS)) hs_init();
    hs_fork_handlers_set(fork_prepare, fork_parent, fork_child);
    if (hugetlb_may_back()) hs_fork_handlers_arm();
    hs_report_start();
    /* Last: a purge thread must not run before the handlers and the
     * report's periodic work are in place. */
    seg_allow_background();
}

__attribute__((destructor)) static void hs_destructor(void)
{
    hs_report_exit();
    seg_shutdown();
}

/* One past the highest kernel node id with figures. */
HS_SELDOM unsigned hs_stats_node_limit(void)
{
    unsigned limit = numa_kernel_node(numa_node_count() - 1) + 1;
    return limit < HUGESLAB_STATS_MAX_NODES ? limit : HUGESLAB_STATS_MAX_NODES;
}

/* The public figures, assembled from each module's own. */
HS_SELDOM HS_EXPORT void hugeslab_stats(hugeslab_stats_t *out) { hs_stats_gather(out, true); }

HS_SELDOM void hs_stats_gather(hugeslab_stats_t *out, bool kernel_figures)
{
    hs_init();
    hugeslab_stats_t s = {0};
    seg_stats_t seg;
    tiny_stats_t tiny;
    seg_stats(&seg);
    tiny_stats(&tiny);
    s.superslabs_hugetlb = seg.superslabs_hugetlb;
    s.superslabs_thp = seg.superslabs_thp;
    s.superslabs_base = seg.superslabs_base;
    s.superslabs_mapped = seg.superslabs_hugetlb + seg.superslabs_thp + seg.superslabs_base;
    s.superslabs_cached = seg.superslabs_cached;
    s.superslabs_purged = seg.superslabs_purged;
    /* The modules count by pool index; the public figures are by kernel
     * node id, which differs where a node has no memory (so no pool) or
     * ids have gaps. */
    for (unsigned i = 0; i < numa_node_count(); i++) {
        unsigned id = numa_kernel_node(i);
        if (id >= HUGESLAB_STATS_MAX_NODES) continue;
        s.superslabs_by_node[id] = seg.superslabs_by_node[i];
        s.remote_frees_by_node[id] = tiny.remote_frees_by_node[i];
    }
    s.bytes_mapped = seg.bytes_mapped;
    s.bytes_in_slabs = tiny.bytes_in_slabs;
    s.bytes_in_runs = seg.bytes_in_runs;
    s.bytes_cached = seg.bytes_cached;
    s.bytes_purged_now = seg.superslabs_purged * HS_SUPERSLAB_SIZE;
    s.bytes_purged_total = seg.bytes_purged_total;
    s.purge_calls = seg.purge_calls;
    s.bytes_purged_at_once = seg.bytes_purged_at_once;
    s.purge_calls_at_once = seg.purge_calls_at_once;
    s.huge_blocks = seg.huge_blocks;
    s.remote_frees = tiny.remote_frees;
    s.threads_live = tiny.threads_live;
    s.orphan_slabs = tiny.orphan_slabs;
    long long faults = os_page_faults();
    s.page_faults = faults < 0 ? 0 : (uint64_t)faults;
    if (!kernel_figures) {
        *out = s;
        return;
    }
    os_rollup_t rollup;
    os_read_rollup(&rollup);
    s.kernel_rss = rollup.rss;
    s.kernel_anon_huge = rollup.anon_huge;
    s.kernel_lazy_free = rollup.lazy_free;
    s.kernel_hugetlb = rollup.private_hugetlb;
    seg_kernel_pages_t pages;
    seg_kernel_pages(&pages);
    s.kernel_thp_superslabs = pages.thp_huge_pages;
    s.kernel_hugetlb_superslabs = pages.hugetlb_huge_pages;
    *out = s;
}
