/* Helpers for the NUMA placement tests and the locality benchmark: the
 * topology from sysfs, pinning a thread to a node, and where pages really
 * are, asked of the kernel with move_pages(2) in query mode (nodes NULL:
 * nothing moves) and read from /proc/self/numa_maps.
 *
 * No libnuma: the programs run under LD_PRELOAD of the allocator being
 * measured, and every call here goes straight to the kernel. */
#ifndef NUMA_TEST_UTIL_H
#define NUMA_TEST_UTIL_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NT_MAX_NODES 64
#define NT_PAGE 4096UL

/* Exit statuses shared by the test programs and tests/numa/run.sh. */
#define NT_EXIT_PASS 0
#define NT_EXIT_FAIL 1
#define NT_EXIT_USAGE 2
#define NT_EXIT_SKIP 77

/* Reads a small text file into buf (NUL-terminated); -1 when unreadable. */
static inline int nt_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

/* Parses "0-3,6" into a bitmap of up to `bits` entries; returns how many set. */
static inline int nt_parse_list(const char *s, unsigned char *set, int bits)
{
    int count = 0;
    memset(set, 0, (size_t)bits);
    while (*s) {
        while (*s == ',' || *s == ' ' || *s == '\n') s++;
        if (*s < '0' || *s > '9') break;
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            s = end;
        }
        for (long i = lo; i <= hi && i < bits; i++)
            if (!set[i]) {
                set[i] = 1;
                count++;
            }
    }
    return count;
}

/* Online node ids (assumed dense 0..n-1 in the test VM); returns n. */
static inline int nt_node_count(void)
{
    char buf[256];
    unsigned char set[NT_MAX_NODES];
    if (nt_read_file("/sys/devices/system/node/online", buf, sizeof buf) < 0) return 1;
    int n = 0;
    nt_parse_list(buf, set, NT_MAX_NODES);
    for (int i = 0; i < NT_MAX_NODES; i++)
        if (set[i]) n = i + 1;
    return n ? n : 1;
}

/* The CPUs of a node; returns how many (0 for a memory-only node). */
static inline int nt_node_cpus(int node, cpu_set_t *cpus)
{
    char path[96], buf[1024];
    unsigned char set[CPU_SETSIZE];
    CPU_ZERO(cpus);
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
    if (nt_read_file(path, buf, sizeof buf) < 0) return 0;
    int n = nt_parse_list(buf, set, CPU_SETSIZE);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (set[i]) CPU_SET(i, cpus);
    return n;
}

/* Whether a node has memory (has_memory; a node of CPUs alone has none). */
static inline int nt_node_has_memory(int node)
{
    char buf[256];
    unsigned char set[NT_MAX_NODES];
    if (nt_read_file("/sys/devices/system/node/has_memory", buf, sizeof buf) < 0) return 1;
    nt_parse_list(buf, set, NT_MAX_NODES);
    return node >= 0 && node < NT_MAX_NODES && set[node];
}

/* Where memory for a thread on node should come from: the node itself when
 * it has memory, else the node with memory nearest to it by its distance
 * row (ties: the lowest id). -1 when unknown. */
static inline int nt_nearest_memory_node(int node)
{
    if (nt_node_has_memory(node)) return node;
    char path[96], buf[1024];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", node);
    if (nt_read_file(path, buf, sizeof buf) < 0) return -1;
    int best = -1;
    long best_distance = 0;
    char *s = buf;
    for (int to = 0; to < nt_node_count(); to++) {
        char *end;
        long d = strtol(s, &end, 10);
        if (end == s) break;
        s = end;
        if (nt_node_has_memory(to) && (best < 0 || d < best_distance)) {
            best = to;
            best_distance = d;
        }
    }
    return best;
}

/* Moves the calling thread onto the CPUs of node; 0 or -1. The kernel moves
 * the thread before sched_setaffinity returns. */
static inline int nt_pin_to_node(int node)
{
    cpu_set_t cpus;
    if (nt_node_cpus(node, &cpus) == 0) return -1;
    return sched_setaffinity(0, sizeof cpus, &cpus);
}

/* The node the calling thread runs on now. */
static inline int nt_current_node(void)
{
    unsigned cpu = 0, node = 0;
    if (getcpu(&cpu, &node) != 0) return -1;
    return (int)node;
}

/* ---- where pages are -------------------------------------------------------- */

typedef struct nt_pages_s {
    uintptr_t *page; /* page addresses, sorted, unique after nt_pages_finish */
    size_t count, cap;
} nt_pages_t;

static inline void nt_pages_add_range(nt_pages_t *p, const void *addr, size_t size)
{
    uintptr_t first = (uintptr_t)addr & ~(NT_PAGE - 1);
    uintptr_t last = ((uintptr_t)addr + (size ? size - 1 : 0)) & ~(NT_PAGE - 1);
    for (uintptr_t a = first; a <= last; a += NT_PAGE) {
        if (p->count == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 4096;
            p->page = realloc(p->page, p->cap * sizeof *p->page);
            if (!p->page) {
                perror("realloc");
                exit(NT_EXIT_USAGE);
            }
        }
        p->page[p->count++] = a;
    }
}

static inline int nt_cmp_uintptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static inline void nt_pages_finish(nt_pages_t *p)
{
    qsort(p->page, p->count, sizeof *p->page, nt_cmp_uintptr);
    size_t out = 0;
    for (size_t i = 0; i < p->count; i++)
        if (out == 0 || p->page[out - 1] != p->page[i]) p->page[out++] = p->page[i];
    p->count = out;
}

static inline void nt_pages_free(nt_pages_t *p)
{
    free(p->page);
    memset(p, 0, sizeof *p);
}

/* Counts the pages of p per node with move_pages(2) in query mode (nodes
 * NULL: status gets each page's node, or -errno when not present).
 * per_node[NT_MAX_NODES]; returns pages whose node is known, -1 on error. */
static inline long nt_pages_where(const nt_pages_t *p, long *per_node)
{
    enum { BATCH = 4096 };
    void *pages[BATCH];
    int status[BATCH];
    long known = 0;
    memset(per_node, 0, NT_MAX_NODES * sizeof *per_node);
    for (size_t i = 0; i < p->count; i += BATCH) {
        size_t n = p->count - i < BATCH ? p->count - i : BATCH;
        for (size_t j = 0; j < n; j++) pages[j] = (void *)p->page[i + j];
        if (syscall(SYS_move_pages, 0, (unsigned long)n, pages, NULL, status, 0) != 0) {
            perror("move_pages");
            return -1;
        }
        for (size_t j = 0; j < n; j++)
            if (status[j] >= 0 && status[j] < NT_MAX_NODES) {
                per_node[status[j]]++;
                known++;
            }
    }
    return known;
}

/* Writes "N0=12,N1=3" for the first `nodes` entries. */
static inline void nt_format_nodes(char *buf, size_t cap, const long *per_node, int nodes)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < nodes && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%sN%d=%ld", i ? "," : "", i, per_node[i]);
}

/* Sums /proc/self/numa_maps per node, in KiB (Nk= counts pages of the VMA's
 * kernelpagesize_kB). Only anonymous and hugetlb memory: file pages of the
 * libraries say nothing about the allocator. */
static inline void nt_numa_maps_kib(long *kib_per_node)
{
    memset(kib_per_node, 0, NT_MAX_NODES * sizeof *kib_per_node);
    FILE *f = fopen("/proc/self/numa_maps", "r");
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, " anon=") && !strstr(line, " huge")) continue;
        long page_kib = 4;
        const char *k = strstr(line, "kernelpagesize_kB=");
        if (k) page_kib = strtol(k + 18, NULL, 10);
        for (char *t = strtok(line, " \n"); t; t = strtok(NULL, " \n")) {
            int node;
            long pages;
            if (sscanf(t, "N%d=%ld", &node, &pages) == 2 && node >= 0 && node < NT_MAX_NODES)
                kib_per_node[node] += pages * page_kib;
        }
    }
    fclose(f);
}

/* The process memory policy, as numactl left it: 0 default, 1 preferred,
 * 2 bind, 3 interleave (uapi linux/mempolicy.h); -1 when unknown. */
static inline int nt_policy_mode(void)
{
    int mode = -1;
    unsigned long mask[1024 / (8 * sizeof(unsigned long))];
    if (syscall(SYS_get_mempolicy, &mode, mask, 1025UL, NULL, 0UL) != 0) return -1;
    return mode & 0xff;
}

/* hugeslab's remote-free counter when it is the allocator in use (read
 * through hugeslab_stats, found with dlsym so that the programs also run
 * under other allocators); -1 otherwise. */
static inline long long nt_remote_frees(void)
{
#ifdef NT_REMOTE_FREES_OFFSET
    void (*stats)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "hugeslab_stats");
    if (!stats) return -1;
    static _Alignas(16) unsigned char buf[16384];
    memset(buf, 0, sizeof buf);
    stats(buf);
    uint64_t v;
    memcpy(&v, buf + NT_REMOTE_FREES_OFFSET, sizeof v);
    return (long long)v;
#else
    return -1;
#endif
}

/* xorshift64*: block sizes that do not depend on the allocator. */
static inline uint64_t nt_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

#endif
