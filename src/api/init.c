/* Process start-up, fork handling and the statistics at exit. */
#include <pthread.h>

#include "api/api.h"
#include "numa/numa.h"
#include "segment/segment.h"
#include "thp/thp.h"
#include "tiny/tiny.h"

uintptr_t hs_free_key;
hs_counters_t hs_counters;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Nothing in here may call malloc: it runs inside the process's first one,
 * possibly while the dynamic loader or libc is still starting. */
static void init_process(void)
{
    hs_options_load();
    hs_free_key = (uintptr_t)thp_random_bits();
    thp_init();
    numa_init();
    seg_init();
    tiny_init();
    if (hs_option(HS_OPT_VERBOSE)) {
        hs_message("version %d.%d, THP mode %s, %u NUMA node(s)", HUGESLAB_VERSION_MAJOR,
                   HUGESLAB_VERSION_MINOR, thp_mode_name(thp_system_mode()), numa_node_count());
        hs_options_print();
    }
}

void hs_init(void) { pthread_once(&init_once, init_process); }

/* Every global lock is held across fork(), so the child never inherits one
 * held by a thread that does not exist there. Order: tiny's, then segment's. */
static void fork_prepare(void)
{
    tiny_fork_prepare();
    seg_fork_prepare();
}

static void fork_parent(void)
{
    seg_fork_parent();
    tiny_fork_parent();
}

static void fork_child(void)
{
    seg_fork_child();
    tiny_fork_child();
}

__attribute__((constructor)) static void hs_constructor(void)
{
    hs_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((destructor)) static void hs_destructor(void)
{
    if (hs_option(HS_OPT_STATS)) hugeslab_stats_print();
}

HS_EXPORT void hugeslab_stats(hugeslab_stats_t *out)
{
    hugeslab_stats_t s = {0};
    seg_stats(&s);
    tiny_stats(&s);
    s.huge_blocks = atomic_load_explicit(&hs_counters.huge_blocks, memory_order_relaxed);
    s.remote_frees = atomic_load_explicit(&hs_counters.remote_frees, memory_order_relaxed);
    s.threads_live = atomic_load_explicit(&hs_counters.threads_live, memory_order_relaxed);
    s.orphan_slabs = atomic_load_explicit(&hs_counters.orphan_slabs, memory_order_relaxed);
    *out = s;
}

HS_EXPORT void hugeslab_stats_print(void)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    int fd = 2;
    hs_fd_printf(fd, "hugeslab: statistics (THP mode %s)\n", thp_mode_name(thp_system_mode()));
    hs_fd_printf(fd, "  superslabs mapped  %llu (thp %llu, base %llu), cached %llu\n",
                 (unsigned long long)s.superslabs_mapped, (unsigned long long)s.superslabs_thp,
                 (unsigned long long)s.superslabs_base, (unsigned long long)s.superslabs_cached);
    hs_fd_printf(fd, "  bytes mapped %llu, in slabs %llu, in runs %llu\n",
                 (unsigned long long)s.bytes_mapped, (unsigned long long)s.bytes_in_slabs,
                 (unsigned long long)s.bytes_in_runs);
    hs_fd_printf(fd, "  huge blocks %llu, remote frees %llu, threads %llu, orphan slabs %llu\n",
                 (unsigned long long)s.huge_blocks, (unsigned long long)s.remote_frees,
                 (unsigned long long)s.threads_live, (unsigned long long)s.orphan_slabs);
}
