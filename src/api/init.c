/* Process start-up, fork handling and the statistics at exit. */
#include <pthread.h>
#include <string.h>

#include "api/api.h"
#include "hugeslab.h"
#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment.h"
#include "thp/thp.h"
#include "tiny/tiny.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Nothing in here may call malloc: it runs inside the process's first one,
 * possibly while the dynamic loader or libc is still starting. tiny_init
 * starts the layers below it first (seg_init), and a thread's first heap
 * may have started them already. */
static void init_process(void)
{
    hs_once_enter(HS_RANK_INIT);
    tiny_init();
    if (hs_option(HS_OPT_VERBOSE)) {
        hs_message("version %d.%d, THP mode %s, %u NUMA node(s)", HUGESLAB_VERSION_MAJOR,
                   HUGESLAB_VERSION_MINOR, thp_mode_name(thp_system_mode()), numa_node_count());
        hs_options_print();
        thp_describe();
        numa_describe();
    }
    hs_once_leave(HS_RANK_INIT);
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
    /* The locks fork_prepare took are re-initialised below, not released. */
    hs_lock_forget_all();
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
    seg_shutdown();
}

/* One past the highest kernel node id with figures. */
static unsigned stats_node_limit(void)
{
    unsigned limit = numa_kernel_node(numa_node_count() - 1) + 1;
    return limit < HUGESLAB_STATS_MAX_NODES ? limit : HUGESLAB_STATS_MAX_NODES;
}

/* The public figures, assembled from each module's own. */
HS_EXPORT void hugeslab_stats(hugeslab_stats_t *out)
{
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
    s.huge_blocks = seg.huge_blocks;
    s.remote_frees = tiny.remote_frees;
    s.threads_live = tiny.threads_live;
    s.orphan_slabs = tiny.orphan_slabs;
    long long faults = os_page_faults();
    s.page_faults = faults < 0 ? 0 : (uint64_t)faults;
    os_rollup_t rollup;
    os_read_rollup(&rollup);
    s.kernel_rss = rollup.rss;
    s.kernel_anon_huge = rollup.anon_huge;
    s.kernel_lazy_free = rollup.lazy_free;
    s.kernel_hugetlb = rollup.private_hugetlb;
    *out = s;
}

/* One "key": value member of the JSON object. */
static void json_member(hs_text_t *t, const char *key, long long value, bool last)
{
    hs_text_format(t, "\"%s\": %lld%s", key, value, last ? "" : ", ");
}

HS_EXPORT size_t hugeslab_stats_json(char *buf, size_t size)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    hs_text_t t = hs_text(buf, size);
    hs_text_char(&t, '{');
#define PUT(field) json_member(&t, #field, (long long)s.field, false)
    PUT(superslabs_mapped);
    PUT(superslabs_hugetlb);
    PUT(superslabs_thp);
    PUT(superslabs_base);
    PUT(superslabs_cached);
    PUT(superslabs_purged);
    for (unsigned n = 0; n < stats_node_limit(); n++) {
        char key[32] = "superslabs_node";
        key[15] = (char)('0' + n);
        key[16] = '\0';
        json_member(&t, key, (long long)s.superslabs_by_node[n], false);
        char remote_key[32] = "remote_frees_node";
        remote_key[17] = (char)('0' + n);
        remote_key[18] = '\0';
        json_member(&t, remote_key, (long long)s.remote_frees_by_node[n], false);
    }
    PUT(bytes_mapped);
    PUT(bytes_in_slabs);
    PUT(bytes_in_runs);
    PUT(bytes_cached);
    PUT(bytes_purged_now);
    PUT(bytes_purged_total);
    PUT(purge_calls);
    PUT(huge_blocks);
    PUT(remote_frees);
    PUT(threads_live);
    PUT(orphan_slabs);
    PUT(page_faults);
    PUT(kernel_rss);
    PUT(kernel_anon_huge);
    PUT(kernel_lazy_free);
    json_member(&t, "kernel_hugetlb", s.kernel_hugetlb, true);
#undef PUT
    hs_text_char(&t, '}');
    return t.len;
}

static int stats_fd(bool *is_json, bool *close_after)
{
    const char *path = hs_option_string(HS_OPT_STATS_FILE);
    *is_json = false;
    *close_after = false;
    if (!path || !*path) return 2;
    size_t len = strlen(path);
    *is_json = len > 5 && strcmp(path + len - 5, ".json") == 0;
    int fd = os_open_for_writing(path);
    if (fd < 0) {
        hs_message("cannot write HUGESLAB_STATS_FILE=%s; statistics go to stderr", path);
        *is_json = false;
        return 2;
    }
    *close_after = true;
    return fd;
}

HS_EXPORT void hugeslab_stats_print(void)
{
    bool is_json, close_after;
    int fd = stats_fd(&is_json, &close_after);
    if (is_json) {
        char buf[2048];
        size_t len = hugeslab_stats_json(buf, sizeof buf);
        if (len < sizeof buf) hs_fd_printf(fd, "%s\n", buf);
        if (close_after) os_close(fd);
        return;
    }
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    const unsigned long long MiB = 1 << 20;
    hs_fd_printf(fd, "hugeslab: statistics (THP mode %s, %u node(s))\n",
                 thp_mode_name(thp_system_mode()), numa_node_count());
    hs_fd_printf(fd,
                 "  superslabs  %llu mapped: hugetlb %llu, thp %llu, base %llu; "
                 "cached %llu, purged %llu\n",
                 (unsigned long long)s.superslabs_mapped, (unsigned long long)s.superslabs_hugetlb,
                 (unsigned long long)s.superslabs_thp, (unsigned long long)s.superslabs_base,
                 (unsigned long long)s.superslabs_cached, (unsigned long long)s.superslabs_purged);
    for (unsigned n = 0; n < stats_node_limit(); n++)
        hs_fd_printf(fd, "  node %u      %llu superslabs (%llu MiB), %llu remote frees\n", n,
                     (unsigned long long)s.superslabs_by_node[n],
                     (unsigned long long)s.superslabs_by_node[n] * 2,
                     (unsigned long long)s.remote_frees_by_node[n]);
    hs_fd_printf(
        fd,
        "  bytes       mapped %llu MiB, in slabs %llu MiB, in runs %llu MiB, "
        "cached %llu MiB, purged %llu MiB (%llu MiB since start)\n",
        (unsigned long long)s.bytes_mapped / MiB, (unsigned long long)s.bytes_in_slabs / MiB,
        (unsigned long long)s.bytes_in_runs / MiB, (unsigned long long)s.bytes_cached / MiB,
        (unsigned long long)s.bytes_purged_now / MiB,
        (unsigned long long)s.bytes_purged_total / MiB);
    hs_fd_printf(fd,
                 "  activity    purge calls %llu, remote frees %llu, page faults %llu, "
                 "threads %llu, orphan slabs %llu, huge blocks %llu\n",
                 (unsigned long long)s.purge_calls, (unsigned long long)s.remote_frees,
                 (unsigned long long)s.page_faults, (unsigned long long)s.threads_live,
                 (unsigned long long)s.orphan_slabs, (unsigned long long)s.huge_blocks);
    hs_fd_printf(fd,
                 "  kernel      Rss %lld KiB, AnonHugePages %lld KiB, LazyFree %lld KiB, "
                 "Private_Hugetlb %lld KiB\n",
                 (long long)(s.kernel_rss / 1024), (long long)(s.kernel_anon_huge / 1024),
                 (long long)(s.kernel_lazy_free / 1024), (long long)(s.kernel_hugetlb / 1024));
    if (close_after) os_close(fd);
}
