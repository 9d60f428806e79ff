/* hugeslab pool: shows, reserves and releases hugetlb pages per node through
 * the kernel's per-node sysfs files (as hugeadm does), and reports what the
 * kernel really gave: a fragmented node may give fewer pages than asked. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int pool_usage(void)
{
    fprintf(stderr,
            "usage: hugeslab pool [--reserve SIZE | --release [SIZE]] [--node N | --spread] "
            "[--page-size SIZE]\n"
            "  --reserve SIZE   make the pool SIZE (on node N, split over the nodes with "
            "memory, or system-wide)\n"
            "  --release [SIZE] give SIZE (default: every free page) back to the kernel\n");
    return 2;
}

/* Does node have memory (a pool can only live there)? */
static bool node_has_memory(int node)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", node);
    char *text = cli_read_text(path);
    if (!text) return false;
    char key[48];
    snprintf(key, sizeof key, "Node %d MemTotal:", node);
    char *p = strstr(text, key);
    long long kb = p ? strtoll(p + strlen(key), NULL, 10) : 0;
    free(text);
    return kb > 0;
}

static void show(long page_size, const int nodes[], int count)
{
    char buf[32], total[32];
    for (int i = 0; i < count; i++) {
        cli_pool_t p;
        if (!cli_pool_read(nodes[i], page_size, &p)) continue;
        printf("node %d: %lld pages of %s (%s), %lld free, %lld surplus\n", nodes[i], p.total,
               cli_format_bytes((unsigned long long)page_size, buf, sizeof buf),
               cli_format_bytes((unsigned long long)(p.total * page_size), total, sizeof total),
               p.free, p.surplus);
    }
}

/* Sets one pool (node, or -1 for system-wide) to target pages; when the
 * kernel gives fewer, compacts memory once and tries again. Returns the
 * pages it now holds, -1 on a write error (message printed). */
static long long set_pool(int node, long page_size, long long target)
{
    char path[256], text[32];
    cli_pool_path(node, page_size, "nr_hugepages", path, sizeof path);
    snprintf(text, sizeof text, "%lld\n", target);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!cli_write_text(path, text)) {
            fprintf(stderr, "hugeslab pool: cannot write %s: %s%s\n", path, strerror(errno),
                    errno == EACCES || errno == EPERM ? " (run as root)" : "");
            return -1;
        }
        long long got = cli_read_number(path);
        if (got >= target || attempt == 1) return got;
        /* Free pages exist but not in 2 MiB runs: compaction makes them. */
        cli_write_text("/proc/sys/vm/compact_memory", "1\n");
    }
    return cli_read_number(path);
}

int cli_pool(int argc, char **argv)
{
    enum { SHOW, RESERVE, RELEASE } action = SHOW;
    unsigned long long size = 0, page_size = 2ULL << 20;
    bool have_size = false, spread = false;
    const char *size_text = NULL; /* the size as given */
    int node = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--reserve") == 0 && v) {
            action = RESERVE;
            if (!cli_parse_size(v, &size)) {
                fprintf(stderr, "hugeslab pool: '%s' is not a size (e.g. 512M, 4G)\n", v);
                return 2;
            }
            have_size = true;
            size_text = v;
            i++;
        } else if (strcmp(a, "--release") == 0) {
            action = RELEASE;
            have_size = false; /* a bare --release releases all, whatever came before */
            size = 0;
            if (v && v[0] != '-') {
                if (!cli_parse_size(v, &size)) {
                    fprintf(stderr, "hugeslab pool: '%s' is not a size (e.g. 512M, 4G)\n", v);
                    return 2;
                }
                have_size = true;
                size_text = v;
                i++;
            }
        } else if (strcmp(a, "--node") == 0 && v) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            node = n >= 0 && n <= INT_MAX && errno == 0 ? (int)n : -1;
            if (*end || end == v || node < 0) {
                fprintf(stderr, "hugeslab pool: '%s' is not a node number\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--spread") == 0) {
            spread = true;
        } else if (strcmp(a, "--page-size") == 0 && v) {
            if (!cli_parse_size(v, &page_size)) {
                fprintf(stderr, "hugeslab pool: '%s' is not a page size (2M or 1G)\n", v);
                return 2;
            }
            i++;
        } else {
            return pool_usage();
        }
    }
    if (spread && node >= 0) {
        fprintf(stderr, "hugeslab pool: --node and --spread exclude each other\n");
        return 2;
    }
    long sizes[8];
    int size_count = cli_huge_page_sizes(sizes, 8);
    bool offered = false;
    for (int s = 0; s < size_count; s++) offered |= (unsigned long long)sizes[s] == page_size;
    if (!offered) {
        fprintf(stderr, "hugeslab pool: the kernel offers no %llu kB huge pages\n",
                page_size / 1024);
        return 1;
    }
    int all_nodes[CLI_MAX_NODES], nodes[CLI_MAX_NODES], count = 0;
    int all_count = cli_nodes(all_nodes, CLI_MAX_NODES);
    if (node >= 0) {
        bool exists = false;
        for (int i = 0; i < all_count; i++) exists |= all_nodes[i] == node;
        if (!exists) {
            fprintf(stderr, "hugeslab pool: there is no node %d\n", node);
            return 1;
        }
        if (!node_has_memory(node)) {
            fprintf(stderr, "hugeslab pool: node %d has no memory\n", node);
            return 1;
        }
        nodes[count++] = node;
    } else {
        for (int i = 0; i < all_count; i++)
            if (node_has_memory(all_nodes[i])) nodes[count++] = all_nodes[i];
    }
    if (action == SHOW) {
        show((long)page_size, node >= 0 ? nodes : all_nodes, node >= 0 ? 1 : all_count);
        return 0;
    }
    /* Rounded up in pages, not bytes (18446744073709551615 bytes wrapped to
     * 0 pages, and emptied the pool), and no more than the machine has. */
    unsigned long long want = size / page_size + (size % page_size != 0);
    long phys_pages = sysconf(_SC_PHYS_PAGES), base_page = sysconf(_SC_PAGESIZE);
    if (have_size && phys_pages > 0 && base_page > 0 &&
        want > (unsigned long long)phys_pages / (page_size / (unsigned long long)base_page)) {
        fprintf(stderr, "hugeslab pool: %s is more than this machine's memory\n",
                size_text ? size_text : "the size");
        return 2;
    }
    if (have_size && size % page_size)
        printf("rounded up to %llu pages of %llu kB\n", want, page_size / 1024);
    long long pages = (long long)want;
    int status = 0;
    char b1[32];
    /* System-wide: one write, the kernel spreads over the allowed nodes. */
    int scopes = node < 0 && !spread ? 1 : count;
    for (int i = 0; i < scopes; i++) {
        int target_node = node < 0 && !spread ? -1 : nodes[i];
        cli_pool_t before;
        if (!cli_pool_read(target_node, (long)page_size, &before)) {
            fprintf(stderr, "hugeslab pool: cannot read the pool of node %d\n", target_node);
            return 1;
        }
        long long target;
        if (action == RESERVE) {
            target = pages;
            if (spread) target = pages / count + (i < pages % count ? 1 : 0);
        } else if (have_size) {
            long long give = spread ? pages / count + (i < pages % count ? 1 : 0) : pages;
            target = before.total > give ? before.total - give : 0;
        } else {
            target = before.total - before.free; /* pages in use stay */
        }
        long long got = set_pool(target_node, (long)page_size, target);
        if (got < 0) return 1;
        cli_pool_t after;
        cli_pool_read(target_node, (long)page_size, &after);
        char where[32];
        snprintf(where, sizeof where, target_node < 0 ? "system" : "node %d", target_node);
        printf("%s: asked %lld pages (%s), got %lld (was %lld), %lld free\n", where, target,
               cli_format_bytes((unsigned long long)target * page_size, b1, sizeof b1), got,
               before.total, after.free);
        if (action == RESERVE && got < target) {
            /* The boot parameters for this pool: its page size (hugepages=
             * alone sizes the default one), and the node's own count. */
            char boot[96];
            if (target_node < 0)
                snprintf(boot, sizeof boot, "hugepagesz=%lluK hugepages=%lld", page_size / 1024,
                         target);
            else
                snprintf(boot, sizeof boot, "hugepagesz=%lluK hugepages=%d:%lld", page_size / 1024,
                         target_node, target);
            printf("%s: %lld page(s) short: not enough free memory in %llu kB runs even after "
                   "compaction; reserve at boot (%s on the kernel command line) or free memory "
                   "first\n",
                   where, target - got, page_size / 1024, boot);
            status = 1;
        }
        if (action == RELEASE && got > target)
            printf("%s: %lld page(s) stay: they are in use\n", where, got - target);
    }
    return status;
}
