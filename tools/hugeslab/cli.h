/* hugeslab(1): the operator's command. It runs in a process of its own, so it
 * may allocate, use stdio and link libnuma and libhugetlbfs, which the library
 * itself never does.
 * - run:    starts a program with the library preloaded and options set;
 * - doctor: what the machine allows, each finding with the command that fixes it;
 * - pool:   reserves and releases hugetlb pages per node;
 * - stats, top: the kernel's figures for running processes, next to
 *   hugeslab's own where a process publishes them (HUGESLAB_STATS_FILE).
 * Never: change a system setting except where the operator asked (pool). */
#ifndef HS_CLI_H
#define HS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_MAX_NODES 1024

int cli_run(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_pool(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_top(int argc, char **argv);

/* ---- helpers (util.c) ---------------------------------------------------- */

/* Whole (small) file into a malloc()ed, NUL-terminated string; NULL when it
 * cannot be read. */
char *cli_read_text(const char *path);
/* First line of a file, without the newline, into buf; false when unreadable. */
bool cli_read_line(const char *path, char *buf, size_t cap);
/* A file holding one integer; -1 when unreadable. */
long long cli_read_number(const char *path);
/* Writes text to a file (sysfs); false with errno when it fails. */
bool cli_write_text(const char *path, const char *text);
/* The word in brackets of a sysfs choice ("always [madvise] never"). */
bool cli_sysfs_choice(const char *path, char *buf, size_t cap);
/* "2M", "1G", "512k", "1048576": bytes; false when not a size. */
bool cli_parse_size(const char *text, unsigned long long *bytes);
/* 1536 KiB -> "1.5 MiB", into buf. */
const char *cli_format_bytes(unsigned long long bytes, char *buf, size_t cap);
/* "key:   123 kB" lines of a /proc file: the value of key in bytes, -1 when absent. */
long long cli_kb_field(const char *text, const char *key);
/* The huge page sizes the kernel offers, in bytes, smallest first (from
 * libhugetlbfs); returns how many. */
int cli_huge_page_sizes(long sizes[], int max);
/* Nodes with sysfs entries, in order; returns how many. */
int cli_nodes(int nodes[], int max);

/* hugetlb pool of one page size on one node (node -1: the whole system). */
typedef struct cli_pool_s {
    long long total;   /* nr_hugepages */
    long long free;    /* free_hugepages */
    long long surplus; /* surplus_hugepages */
} cli_pool_t;
bool cli_pool_read(int node, long page_size, cli_pool_t *out);
/* The sysfs file that sets the pool of one page size on one node (or all). */
void cli_pool_path(int node, long page_size, const char *file, char *buf, size_t cap);

#endif
