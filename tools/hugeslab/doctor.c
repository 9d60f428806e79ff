/* hugeslab doctor: reads what the kernel allows (sysfs, /proc, libnuma for
 * the topology, libhugetlbfs for the page sizes) and says, for each finding,
 * the exact command that changes it. It changes nothing itself. */
#include <dirent.h>
#include <errno.h>
#include <hugetlbfs.h>
#include <linux/io_uring.h>
#include <numa.h>
#include <numaif.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"

#define THP_DIR "/sys/kernel/mm/transparent_hugepage"

static int warnings;

/* One finding: level is "ok", "note" or "warn"; fix, when given, is the
 * command to run. */
static void finding(const char *level, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finding(const char *level, const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  [%s]%*s", level, (int)(5 - strlen(level)), "");
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (fix) printf("         fix: %s\n", fix);
    if (strcmp(level, "warn") == 0) warnings++;
}

/* Multi-size THP (Linux 6.8): folio sizes below the PMD size, each set in
 * THP_DIR/hugepages-<size>kB/enabled. Memory without a hint faults in the
 * largest size set to "always" (or "inherit" while THP is "always"): in
 * "madvise" mode that is the small heap's SuperSlabs, which hugeslab leaves
 * unhinted until the heap grows. Lists the sizes not "never", smallest
 * first, in out. */
static void multi_size_thp(const char *enabled, char *out, size_t cap, long *unhinted_kb)
{
    long pmd_kb = (long)(cli_read_number(THP_DIR "/hpage_pmd_size") / 1024);
    size_t used = 0;
    out[0] = '\0';
    *unhinted_kb = 0;
    for (long kb = 8; kb < pmd_kb; kb *= 2) {
        char path[128], choice[32];
        snprintf(path, sizeof path, THP_DIR "/hugepages-%ldkB/enabled", kb);
        if (!cli_sysfs_choice(path, choice, sizeof choice) || strcmp(choice, "never") == 0)
            continue;
        if (strcmp(choice, "always") == 0 ||
            (strcmp(choice, "inherit") == 0 && strcmp(enabled, "always") == 0))
            *unhinted_kb = kb;
        int n = snprintf(out + used, cap - used, "%s%ldkB %s", used ? ", " : "", kb, choice);
        if (n < 0 || (size_t)n >= cap - used) break;
        used += (size_t)n;
    }
}

static void check_thp(void)
{
    char enabled[32], defrag[32], khp_defrag[32];
    printf("Transparent huge pages\n");
    if (!cli_sysfs_choice(THP_DIR "/enabled", enabled, sizeof enabled)) {
        finding("warn", NULL,
                "THP enabled: unknown (no " THP_DIR "; kernel without THP): "
                "SuperSlabs use hugetlb or base pages");
        return;
    }
    if (strcmp(enabled, "never") == 0)
        finding("warn", "echo madvise > " THP_DIR "/enabled",
                "THP enabled: never: SuperSlabs get base pages, 512 faults per 2 MiB");
    else if (strcmp(enabled, "always") == 0)
        finding("ok", NULL,
                "THP enabled: always (every program's large mappings get THP; "
                "'madvise' limits them to those that ask, like hugeslab)");
    else
        finding("ok", NULL, "THP enabled: %s (hugeslab asks with MADV_HUGEPAGE)", enabled);

    char sizes[256];
    long unhinted_kb;
    multi_size_thp(enabled, sizes, sizeof sizes, &unhinted_kb);
    if (access(THP_DIR "/hugepages-2048kB", F_OK) != 0)
        finding("ok", NULL, "multi-size THP: not in this kernel (Linux 6.8 or later)");
    else if (unhinted_kb && strcmp(enabled, "madvise") == 0)
        finding("note", NULL,
                "multi-size THP: %s: memory without a hint, the small heap's SuperSlabs "
                "among it, faults in folios of up to %ld kB (fewer faults, Rss in steps of "
                "that size)",
                sizes, unhinted_kb);
    else if (sizes[0])
        finding("ok", NULL, "multi-size THP: %s", sizes);
    else
        finding("ok", NULL, "multi-size THP: none below the PMD size");

    if (cli_sysfs_choice(THP_DIR "/defrag", defrag, sizeof defrag)) {
        if (strcmp(defrag, "never") == 0 || strcmp(defrag, "defer") == 0)
            finding("note", "echo defer+madvise > " THP_DIR "/defrag",
                    "THP defrag: %s: a fault takes a huge page only when one is free; "
                    "fragmented memory means base pages until khugepaged collapses them",
                    defrag);
        else
            finding("ok", NULL, "THP defrag: %s (MADV_HUGEPAGE regions compact memory at fault)",
                    defrag);
    }
    /* khugepaged: the kernel thread that collapses base pages into huge ones. */
    bool running = false;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && !running) {
        char path[300], comm[64];
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        running = cli_read_line(path, comm, sizeof comm) && strcmp(comm, "khugepaged") == 0;
    }
    if (d) closedir(d);
    long long kd = cli_read_number(THP_DIR "/khugepaged/defrag");
    long long scan = cli_read_number(THP_DIR "/khugepaged/pages_to_scan");
    long long sleep_ms = cli_read_number(THP_DIR "/khugepaged/scan_sleep_millisecs");
    snprintf(khp_defrag, sizeof khp_defrag, "%lld", kd);
    if (!running && strcmp(enabled, "never") != 0)
        finding("note", NULL, "khugepaged: not running (no collapse of base pages later)");
    else if (kd == 0)
        finding("note", "echo 1 > " THP_DIR "/khugepaged/defrag",
                "khugepaged: %s, defrag 0 (it collapses only where huge pages are free), "
                "pages_to_scan %lld, scan_sleep_millisecs %lld",
                running ? "running" : "not running", scan, sleep_ms);
    else
        finding("ok", NULL,
                "khugepaged: %s, defrag %lld, pages_to_scan %lld, scan_sleep_millisecs %lld",
                running ? "running" : "not running", kd, scan, sleep_ms);
}

static void check_hugetlb(const int nodes[], int node_count)
{
    long sizes[8];
    int n = cli_huge_page_sizes(sizes, 8);
    printf("hugetlb pools (page sizes from libhugetlbfs)\n");
    if (n == 0) {
        finding("note", NULL, "hugetlb: the kernel offers no huge page size (no hugetlbfs)");
        return;
    }
    for (int s = 0; s < n; s++) {
        long kb = sizes[s] / 1024;
        cli_pool_t all;
        if (!cli_pool_read(-1, sizes[s], &all)) continue;
        const char *mount = hugetlbfs_find_path_for_size(sizes[s]);
        finding("ok", NULL, "hugetlb %ld kB pages: %lld total, %lld free, %lld surplus; %s%s", kb,
                all.total, all.free, all.surplus, mount ? "mounted at " : "no hugetlbfs mount",
                mount ? mount : " (hugeslab needs none: it maps with MAP_HUGETLB)");
        for (int i = 0; i < node_count; i++) {
            cli_pool_t p;
            if (!cli_pool_read(nodes[i], sizes[s], &p)) continue;
            printf("         hugetlb %ld kB pages, node %d: %lld total, %lld free, %lld surplus\n",
                   kb, nodes[i], p.total, p.free, p.surplus);
        }
        if (sizes[s] == 2L << 20 && all.free == 0) {
            char fix[160];
            snprintf(fix, sizeof fix,
                     "hugeslab pool --reserve 1G --spread   "
                     "(or: echo 512 > /proc/sys/vm/nr_hugepages)");
            finding("note", fix,
                    "hugetlb 2048 kB pool: %s: HUGESLAB_BACKING=auto uses THP; a pool gives "
                    "SuperSlabs huge pages that are never split nor compacted",
                    all.total == 0 ? "none" : "no free page");
        }
    }
}

/* Node n's line of its sysfs meminfo, in kB; -1 when absent. */
static long long node_meminfo_kb(int node, const char *key)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", node);
    char *text = cli_read_text(path);
    if (!text) return -1;
    char pattern[64];
    snprintf(pattern, sizeof pattern, "Node %d %s:", node, key);
    char *p = strstr(text, pattern);
    long long v = p ? strtoll(p + strlen(pattern), NULL, 10) : -1;
    free(text);
    return v;
}

static void cpulist(struct bitmask *cpus, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    unsigned n = (unsigned)numa_num_possible_cpus();
    for (unsigned c = 0; c < n && len + 16 < cap; c++) {
        if (!numa_bitmask_isbitset(cpus, c)) continue;
        unsigned last = c;
        while (last + 1 < n && numa_bitmask_isbitset(cpus, last + 1)) last++;
        len += (size_t)snprintf(buf + len, cap - len, len ? ",%u" : "%u", c);
        if (last > c) len += (size_t)snprintf(buf + len, cap - len, "-%u", last);
        c = last;
    }
    if (!len) snprintf(buf, cap, "none");
}

static void check_numa(const int nodes[], int node_count)
{
    printf("NUMA topology (libnuma)\n");
    if (numa_available() < 0) {
        finding("note", NULL, "NUMA: not available (one node; hugeslab keeps one pool)");
        return;
    }
    finding("ok", NULL, "NUMA: %d node(s) configured, %d possible CPUs",
            numa_num_configured_nodes(), numa_num_possible_cpus());
    struct bitmask *cpus = numa_allocate_cpumask();
    for (int i = 0; i < node_count; i++) {
        int node = nodes[i];
        char list[512];
        numa_bitmask_clearall(cpus);
        numa_node_to_cpus(node, cpus);
        cpulist(cpus, list, sizeof list);
        long long total = node_meminfo_kb(node, "MemTotal");
        long long free_kb = node_meminfo_kb(node, "MemFree");
        bool no_cpus = numa_bitmask_weight(cpus) == 0, no_memory = total <= 0;
        finding(no_cpus || no_memory ? "note" : "ok", NULL,
                "node %d: cpus %s, memory %lld MiB, free %lld MiB%s%s", node, list, total / 1024,
                free_kb / 1024,
                no_cpus ? " (CPU-less: no thread calls it home; it gets SuperSlabs only "
                          "through a policy such as numactl --interleave or --membind)"
                        : "",
                no_memory ? " (memory-less: its threads take SuperSlabs from the nearest node)"
                          : "");
        char dist[512];
        size_t len = 0;
        for (int j = 0; j < node_count; j++)
            len += (size_t)snprintf(dist + len, sizeof dist - len, "%s%d", j ? " " : "",
                                    numa_distance(node, nodes[j]));
        printf("         distances node %d: %s\n", node, dist);
    }
    numa_free_cpumask(cpus);
}

/* The address-space and data limits (ulimit -v, ulimit -d) count what
 * glibc's heap does not take: the registry's 64 MiB of address space, and
 * memory mapped 2 MiB at a time (README, on bad input; bench/as_fill.c).
 * The locked-memory limit (ulimit -l) bounds a program that locks itself
 * without CAP_IPC_LOCK: its mappings at mlockall(MCL_CURRENT), the
 * registry left out as the library checks them (README, on mlockall),
 * then every SuperSlab it maps, 2 MiB each. */
#define REGISTRY_MIB 64
#define LOCK_NOTE_MIB 80
#define LIMIT_WARN_MIB 1024
#define CAP_IPC_LOCK_BIT 14

/* Whether this process holds CAP_IPC_LOCK (CapEff of /proc/self/status). */
static bool holds_ipc_lock(void)
{
    char *status = cli_read_text("/proc/self/status");
    const char *cap = status ? strstr(status, "CapEff:") : NULL;
    bool held = cap && strtoull(cap + 7, NULL, 16) >> CAP_IPC_LOCK_BIT & 1;
    free(status);
    return held;
}

static void check_memlock(void)
{
    struct rlimit memlock;
    if (getrlimit(RLIMIT_MEMLOCK, &memlock) != 0 || memlock.rlim_cur == RLIM_INFINITY) {
        finding("ok", NULL, "locked memory limit (ulimit -l): unlimited");
        return;
    }
    unsigned long long kib = (unsigned long long)memlock.rlim_cur >> 10;
    bool small = kib >> 10 < LOCK_NOTE_MIB;
    if (holds_ipc_lock())
        finding("ok", NULL, "locked memory limit (ulimit -l): %llu KiB, and CAP_IPC_LOCK", kib);
    else
        finding(small ? "note" : "ok", small ? "ulimit -l unlimited, or CAP_IPC_LOCK" : NULL,
                "locked memory limit (ulimit -l): %llu KiB, no CAP_IPC_LOCK%s", kib,
                small ? ": a program that locks itself (mlockall) holds at most that: its "
                        "mappings at the call but hugeslab's registry, then 2 MiB for each "
                        "SuperSlab it maps"
                      : "");
}

static void check_limits(void)
{
    struct rlimit as, data;
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
        unsigned long long mib = (unsigned long long)as.rlim_cur >> 20;
        if (mib < REGISTRY_MIB + 4)
            finding("warn", "ulimit -v unlimited",
                    "address space limit (ulimit -v): %llu MiB: hugeslab's registry alone takes "
                    "%d MiB: a program cannot start with it",
                    mib, REGISTRY_MIB);
        else
            finding(mib < LIMIT_WARN_MIB ? "warn" : "note", "ulimit -v unlimited",
                    "address space limit (ulimit -v): %llu MiB: hugeslab's registry takes %d MiB "
                    "of it and memory is mapped 2 MiB at a time: a program gets less than under "
                    "glibc",
                    mib, REGISTRY_MIB);
    } else {
        finding("ok", NULL, "address space limit (ulimit -v): unlimited");
    }
    if (getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != RLIM_INFINITY)
        finding("note", "ulimit -d unlimited",
                "data limit (ulimit -d): %llu MiB: each SuperSlab and run counts 2 MiB at a time "
                "(the registry does not: it is read-only until written)",
                (unsigned long long)data.rlim_cur >> 20);
    else
        finding("ok", NULL, "data limit (ulimit -d): unlimited");
    check_memlock();
}

/* The THP setting a program started from here inherits (prctl
 * PR_SET_THP_DISABLE: kept across fork and execve). Its kernel answer: 1
 * off whole, 3 off but for hinted ranges (Linux 6.18's
 * PR_THP_DISABLE_EXCEPT_ADVISED), 0 neither. */
static void check_process_thp(void)
{
    int setting = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    if (setting == 1)
        finding("note", "start the program from a process that has not set it",
                "THP for programs started from here: off (prctl PR_SET_THP_DISABLE, inherited): "
                "their SuperSlabs get base pages, 512 faults per 2 MiB");
    else if (setting == 3)
        finding("ok", NULL,
                "THP for programs started from here: off but for hinted ranges "
                "(PR_THP_DISABLE_EXCEPT_ADVISED): hugeslab's SuperSlabs are hinted, huge pages");
    else
        finding("ok", NULL, "THP for programs started from here: as the system's mode");
}

static void check_process(void)
{
    printf("This process (what a program started from here inherits)\n");
    char *status = cli_read_text("/proc/self/status");
    char cpus[256] = "?", mems[256] = "?", cpuset[256] = "?";
    for (char *p = status; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (strncmp(p, "Cpus_allowed_list:", 18) == 0) snprintf(cpus, sizeof cpus, "%s", p + 19);
        if (strncmp(p, "Mems_allowed_list:", 18) == 0) snprintf(mems, sizeof mems, "%s", p + 19);
        p = nl ? nl + 1 : NULL;
    }
    free(status);
    check_process_thp();
    cli_read_line("/proc/self/cpuset", cpuset, sizeof cpuset);
    for (char *c = cpus; *c; c++)
        if (*c == '\t') *c = ' ';
    for (char *c = mems; *c; c++)
        if (*c == '\t') *c = ' ';
    finding("ok", NULL, "cpuset %s: cpus %s, mems %s", cpuset, cpus + strspn(cpus, " "),
            mems + strspn(mems, " "));
    int mode = -1;
    unsigned long mask[CLI_MAX_NODES / 64] = {0};
    if (get_mempolicy(&mode, mask, CLI_MAX_NODES, NULL, 0) != 0) {
        finding("note", NULL, "memory policy: unknown (%s)", strerror(errno));
        return;
    }
    int base = mode & 0xff; /* without the MPOL_F_* flags in the high bits */
    const char *names[] = {"default",        "preferred",          "bind", "interleave", "local",
                           "preferred-many", "weighted-interleave"};
    char nodes[256] = "";
    size_t len = 0;
    for (int n = 0; n < CLI_MAX_NODES && len + 8 < sizeof nodes; n++)
        if (mask[n / 64] >> (n % 64) & 1)
            len += (size_t)snprintf(nodes + len, sizeof nodes - len, len ? ",%d" : "%d", n);
    finding("ok", NULL, "memory policy: %s%s%s (hugeslab honours it, see hugeslab(7))",
            base >= 0 && base < 7 ? names[base] : "unknown", len ? " nodes " : "", nodes);
    check_limits();
}

static void check_kernel(void)
{
    printf("Kernel settings\n");
    long long disabled = cli_read_number("/proc/sys/kernel/io_uring_disabled");
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(__NR_io_uring_setup, 1, &params);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) close((int)fd);
    if (fd >= 0)
        finding("ok", NULL,
                "io_uring: available (kernel.io_uring_disabled = %lld): "
                "HUGESLAB_PURGE_BACKEND=uring batches purges",
                disabled < 0 ? 0 : disabled);
    else
        finding("note", disabled > 0 ? "sysctl kernel.io_uring_disabled=0" : NULL,
                "io_uring: unavailable (%s; kernel.io_uring_disabled = %lld): purges use madvise",
                strerror(err), disabled);
    long long oc = cli_read_number("/proc/sys/vm/overcommit_memory");
    if (oc == 2)
        finding("warn", "sysctl vm.overcommit_memory=0",
                "overcommit: 2 (strict): every mapped SuperSlab counts against the commit limit, "
                "cached ones included; allocations may fail early");
    else
        finding("ok", NULL, "overcommit: %lld (%s)", oc,
                oc == 0   ? "heuristic"
                : oc == 1 ? "always"
                          : "unknown");
    long long maps = cli_read_number("/proc/sys/vm/max_map_count");
    if (maps >= 0 && maps < 65530)
        finding("note", "sysctl vm.max_map_count=262144",
                "max_map_count: %lld: huge blocks and purged ranges each take a mapping", maps);
    else
        finding("ok", NULL, "max_map_count: %lld", maps);
}

#define REPORTING_ORDER "/sys/module/page_reporting/parameters/page_reporting_order"
#define VIRTIO_DEVICES "/sys/bus/virtio/devices"
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_BALLOON_F_REPORTING 5 /* the features file: one '0'/'1' per bit */

/* How many virtio balloons, bound to their driver, negotiated free page
 * reporting. */
static int reporting_balloons(void)
{
    int found = 0;
    DIR *d = opendir(VIRTIO_DEVICES);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[512], line[256];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, VIRTIO_DEVICES "/%s/device", e->d_name);
        if (!cli_read_line(path, line, sizeof line) || strtol(line, NULL, 0) != VIRTIO_ID_BALLOON)
            continue;
        snprintf(path, sizeof path, VIRTIO_DEVICES "/%s/driver", e->d_name);
        if (access(path, F_OK) != 0) continue;
        snprintf(path, sizeof path, VIRTIO_DEVICES "/%s/features", e->d_name);
        if (cli_read_line(path, line, sizeof line) && strlen(line) > VIRTIO_BALLOON_F_REPORTING &&
            line[VIRTIO_BALLOON_F_REPORTING] == '1')
            found++;
    }
    if (d) closedir(d);
    return found;
}

/* A guest whose balloon reports free pages hands each free block of
 * 2^order base pages or more back to its host about 2 s after it is freed;
 * the host discards it, and the next touch of it costs the host a fault and
 * a clear as well. A THP SuperSlab takes a free 2 MiB block whole, so on
 * such a guest a huge page made of memory freed some seconds earlier costs
 * several times what one of memory freed just now does, and more than 512
 * base pages, which mostly come from smaller free blocks, never reported
 * (bench/README, "Free page reporting"). Larger blocks only (order 10)
 * spare the huge pages that were not merged into one. */
static void check_host(void)
{
    printf("Host\n");
    long long order = cli_read_number(REPORTING_ORDER);
    if (order < 0) {
        finding("ok", NULL, "free page reporting: not in this kernel (no " REPORTING_ORDER ")");
        return;
    }
    int balloons = reporting_balloons();
    long long block_kb = (sysconf(_SC_PAGESIZE) << order) / 1024;
    if (balloons == 0)
        finding("ok", NULL,
                "free page reporting: order %lld, but no virtio balloon here reports "
                "free pages to a host",
                order);
    else
        finding("note", "HUGESLAB_BACKING=base for programs that run a few seconds",
                "free page reporting: order %lld (%lld KiB blocks) to the host through %d "
                "virtio balloon(s): a THP SuperSlab made of memory freed 2 s or more before "
                "costs the host a fault and a clear at its first touch",
                order, block_kb, balloons);
}

int cli_doctor(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: hugeslab doctor\n");
        return 2;
    }
    (void)argv;
    int nodes[CLI_MAX_NODES];
    int node_count = cli_nodes(nodes, CLI_MAX_NODES);
    printf("hugeslab doctor: what this machine allows\n");
    check_thp();
    check_hugetlb(nodes, node_count);
    check_numa(nodes, node_count);
    check_process();
    check_kernel();
    check_host();
    printf("%d warning(s)\n", warnings);
    return 0;
}
