/* Small readers and formatters the subcommands share. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <hugetlbfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

char *cli_read_text(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len < cap - 1) break;
        cap *= 2;
        char *bigger = realloc(buf, cap);
        if (!bigger) free(buf);
        buf = bigger;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

bool cli_read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) return false;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) return false;
    buf[strcspn(buf, "\n")] = '\0';
    return true;
}

long long cli_read_number(const char *path)
{
    char line[64];
    if (!cli_read_line(path, line, sizeof line)) return -1;
    char *end;
    long long v = strtoll(line, &end, 10);
    return end == line ? -1 : v;
}

bool cli_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    int saved = errno;
    if (fclose(f) != 0)
        ok = false;
    else
        errno = saved;
    return ok;
}

bool cli_sysfs_choice(const char *path, char *buf, size_t cap)
{
    char line[256];
    if (!cli_read_line(path, line, sizeof line)) return false;
    char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
    if (!close) {
        snprintf(buf, cap, "%s", line); /* a file with one value only */
        return true;
    }
    *close = '\0';
    snprintf(buf, cap, "%s", open + 1);
    return true;
}

bool cli_parse_size(const char *text, unsigned long long *bytes)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)text[0])) return false;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno) return false;
    unsigned shift = 0;
    switch (tolower((unsigned char)*end)) {
    case '\0':
        break;
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    case 't':
        shift = 40;
        break;
    default:
        return false;
    }
    if (*end) {
        end++;
        if (tolower((unsigned char)*end) == 'i') end++;
        if (tolower((unsigned char)*end) == 'b') end++;
        if (*end) return false;
    }
    if (shift && v > (~0ULL >> shift)) return false;
    *bytes = v << shift;
    return true;
}

const char *cli_format_bytes(unsigned long long bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v >= 100 || v == (double)(long long)v)
        snprintf(buf, cap, "%.0f %s", v, units[u]);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

long long cli_kb_field(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
            long long v = strtoll(p + klen + 1, NULL, 10);
            return strstr(p, " kB") && strstr(p, " kB") < strchr(p, '\n') ? v * 1024 : v;
        }
    }
    return -1;
}

int cli_huge_page_sizes(long sizes[], int max)
{
    int n = gethugepagesizes(sizes, max);
    if (n < 0) return 0;
    for (int i = 1; i < n; i++) /* insertion sort: a handful of sizes */
        for (int j = i; j > 0 && sizes[j - 1] > sizes[j]; j--) {
            long t = sizes[j];
            sizes[j] = sizes[j - 1];
            sizes[j - 1] = t;
        }
    return n;
}

static int compare_ints(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int cli_nodes(int nodes[], int max)
{
    DIR *d = opendir("/sys/devices/system/node");
    int n = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (strncmp(e->d_name, "node", 4) == 0 && isdigit((unsigned char)e->d_name[4]))
            nodes[n++] = atoi(e->d_name + 4);
    }
    closedir(d);
    qsort(nodes, (size_t)n, sizeof nodes[0], compare_ints);
    return n;
}

void cli_pool_path(int node, long page_size, const char *file, char *buf, size_t cap)
{
    if (node < 0)
        snprintf(buf, cap, "/sys/kernel/mm/hugepages/hugepages-%ldkB/%s", page_size / 1024, file);
    else
        snprintf(buf, cap, "/sys/devices/system/node/node%d/hugepages/hugepages-%ldkB/%s", node,
                 page_size / 1024, file);
}

bool cli_pool_read(int node, long page_size, cli_pool_t *out)
{
    char path[256];
    cli_pool_path(node, page_size, "nr_hugepages", path, sizeof path);
    out->total = cli_read_number(path);
    cli_pool_path(node, page_size, "free_hugepages", path, sizeof path);
    out->free = cli_read_number(path);
    cli_pool_path(node, page_size, "surplus_hugepages", path, sizeof path);
    out->surplus = cli_read_number(path);
    return out->total >= 0 && out->free >= 0;
}
