/* Files: the /proc and /sys files hugeslab reads, and the few descriptors it
 * writes (messages, the statistics file). open/read/write
 * only: stdio may allocate, and these run inside malloc. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/common.h"
#include "os/fault.h"
#include "os/os.h"

ssize_t os_read_file(const char *path, char *buf, size_t cap)
{
    hs_assert_no_lock_for_slow_call(path);
    if (OS_FAULT(OS_FAULT_FILE)) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1) {
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

HS_APART_LATE int os_threads_running(void)
{
    char buf[1024];
    if (os_read_file("/proc/self/stat", buf, sizeof buf) <= 0) return -1;
    /* The command name, in parentheses, may hold spaces and parentheses:
     * the fields that count come after its last ')'. State is field 3,
     * num_threads field 20. */
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2]) return -1;
    char state = p[2];
    p += 2;
    for (int field = 3; field < 20; field++) {
        p = strchr(p, ' ');
        if (!p) return -1;
        p++;
    }
    int threads = 0;
    for (; *p >= '0' && *p <= '9'; p++) threads = threads * 10 + (*p - '0');
    if (threads <= 0) return -1;
    return state == 'Z' && threads > 1 ? threads - 1 : threads;
}

ssize_t os_read_thp_enabled(char *buf, size_t cap)
{
    return os_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, cap);
}

ssize_t os_read_nodes_online(char *buf, size_t cap)
{
    return os_read_file("/sys/devices/system/node/online", buf, cap);
}

ssize_t os_read_nodes_with_memory(char *buf, size_t cap)
{
    return os_read_file("/sys/devices/system/node/has_memory", buf, cap);
}

ssize_t os_read_node_file(unsigned kernel_node, const char *leaf, char *buf, size_t cap)
{
    char path[160];
    hs_text_t t = hs_text(path, sizeof path);
    hs_text_str(&t, "/sys/devices/system/node/node");
    hs_text_uint(&t, kernel_node);
    hs_text_str(&t, "/");
    hs_text_str(&t, leaf);
    if (hs_text_overflowed(&t)) return -1;
    return os_read_file(path, buf, cap);
}

/* The 2 MiB pool's counts. */
#define HUGETLB_2M_DIR "/sys/kernel/mm/hugepages/hugepages-2048kB/"

HS_SELDOM unsigned long os_hugetlb_count(os_hugetlb_count_t which)
{
    static const char *const names[] = {
        [OS_HUGETLB_TOTAL] = "nr_hugepages",
        [OS_HUGETLB_FREE] = "free_hugepages",
        [OS_HUGETLB_RESERVED] = "resv_hugepages",
    };
    char path[128], buf[32];
    hs_text_t t = hs_text(path, sizeof path);
    hs_text_str(&t, HUGETLB_2M_DIR);
    hs_text_str(&t, names[which]);
    if (os_read_file(path, buf, sizeof buf) < 0) return 0;
    uint64_t v = 0;
    hs_parse_u64(buf, NULL, &v);
    return (unsigned long)v;
}

bool os_hugetlb_pool_configured(void)
{
    static const char *const counts[] = {
        HUGETLB_2M_DIR "nr_hugepages",
        HUGETLB_2M_DIR "nr_overcommit_hugepages",
    };
    for (unsigned i = 0; i < 2; i++) {
        char buf[24];
        /* A count above 0 starts with 1-9. */
        if (os_read_file(counts[i], buf, sizeof buf) > 0 && buf[0] >= '1' && buf[0] <= '9')
            return true;
    }
    return false;
}

HS_SELDOM unsigned long os_default_hugepage_kib(void)
{
    char text[4096];
    if (os_read_file("/proc/meminfo", text, sizeof text) < 0) return 0;
    const char *p = strstr(text, "Hugepagesize:");
    if (!p) return 0;
    p += strlen("Hugepagesize:");
    while (*p == ' ') p++;
    uint64_t kib = 0;
    hs_parse_u64(p, NULL, &kib);
    return (unsigned long)kib;
}

/* One "Key:   N kB" field of smaps_rollup text, in bytes; -1 when absent. */
HS_SELDOM static long long rollup_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p) return -1;
    p += strlen(key);
    while (*p == ' ' || *p == '\t') p++;
    uint64_t kb = 0;
    hs_parse_u64(p, NULL, &kb);
    return (long long)kb * 1024;
}

HS_SELDOM void os_read_rollup(os_rollup_t *out)
{
    char text[4096];
    out->rss = out->anon_huge = out->lazy_free = out->private_hugetlb = -1;
    if (os_read_file("/proc/self/smaps_rollup", text, sizeof text) < 0) return;
    out->rss = rollup_field(text, "\nRss:");
    out->anon_huge = rollup_field(text, "AnonHugePages:");
    out->lazy_free = rollup_field(text, "LazyFree:");
    out->private_hugetlb = rollup_field(text, "Private_Hugetlb:");
}

/* One smaps line: a mapping's header ("start-end perms ...", lower-case
 * hex) or one of its "Field:  N kB" lines (a capital first). */
typedef struct smaps_state_s {
    os_smaps_fn on_range;
    void *ctx;
    bool open;            /* a mapping is being read */
    uintptr_t start, end; /* its bounds */
    long long anon_huge;  /* its AnonHugePages, bytes */
    long long hugetlb;    /* its Private_Hugetlb, bytes */
} smaps_state_t;

HS_SELDOM static void smaps_flush(smaps_state_t *st)
{
    if (st->open) st->on_range(st->ctx, st->start, st->end, st->anon_huge, st->hugetlb);
    st->open = false;
}

HS_SELDOM static unsigned long long parse_hex(const char **p)
{
    unsigned long long v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (unsigned)(c - 'a' + 10);
        else
            return v;
    }
}

HS_SELDOM static void smaps_line(void *state, const char *line)
{
    smaps_state_t *st = state;
    if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
        smaps_flush(st);
        const char *p = line;
        st->start = (uintptr_t)parse_hex(&p);
        if (*p != '-') return;
        p++;
        st->end = (uintptr_t)parse_hex(&p);
        st->anon_huge = st->hugetlb = 0;
        st->open = true;
    } else if (st->open && strncmp(line, "AnonHugePages:", 14) == 0) {
        st->anon_huge = rollup_field(line, "AnonHugePages:");
    } else if (st->open && strncmp(line, "Private_Hugetlb:", 16) == 0) {
        st->hugetlb = rollup_field(line, "Private_Hugetlb:");
    }
}

/* Reads the /proc file at `path` through a stack buffer and hands each
 * line, NUL-terminated, to on_line(state, line). -1 when it cannot be
 * opened. */
HS_SELDOM static int walk_lines(const char *path, void (*on_line)(void *, const char *),
                                void *state)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', len - (size_t)(line - buf))) != NULL) {
            *nl = '\0';
            on_line(state, line);
            line = nl + 1;
        }
        size_t rest = len - (size_t)(line - buf);
        /* A line longer than the buffer (a long file name) is dropped. */
        if (rest == sizeof buf - 1) rest = 0;
        memmove(buf, line, rest);
        len = rest;
    }
    close(fd);
    return 0;
}

HS_SELDOM int os_walk_smaps(os_smaps_fn on_range, void *ctx)
{
    hs_assert_no_lock_for_slow_call("/proc/self/smaps");
    smaps_state_t st = {.on_range = on_range, .ctx = ctx};
    if (walk_lines("/proc/self/smaps", smaps_line, &st) != 0) return -1;
    smaps_flush(&st);
    return 0;
}

typedef struct maps_state_s {
    os_maps_fn on_range;
    void *ctx;
} maps_state_t;

/* "start-end perms offset dev inode [name]": the bounds and the perms' rwx. */
HS_SELDOM static void maps_line(void *state, const char *line)
{
    maps_state_t *st = state;
    const char *p = line;
    uintptr_t start = (uintptr_t)parse_hex(&p);
    if (*p++ != '-') return;
    uintptr_t end = (uintptr_t)parse_hex(&p);
    if (*p++ != ' ' || !p[0] || !p[1] || !p[2]) return;
    unsigned perms = (p[0] == 'r' ? OS_MAP_READABLE : 0) | (p[1] == 'w' ? OS_MAP_WRITABLE : 0) |
                     (p[2] == 'x' ? OS_MAP_EXECUTABLE : 0);
    st->on_range(st->ctx, start, end, perms);
}

HS_SELDOM int os_walk_maps(os_maps_fn on_range, void *ctx)
{
    hs_assert_no_lock_for_slow_call("/proc/self/maps");
    maps_state_t st = {.on_range = on_range, .ctx = ctx};
    return walk_lines("/proc/self/maps", maps_line, &st);
}

HS_SELDOM int os_open_for_writing(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

HS_SELDOM void os_write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

void os_close(int fd) { close(fd); }

/* An unnamed file in path's folder, or -errno (EOPNOTSUPP and the like on
 * file systems without O_TMPFILE). */
HS_SELDOM static int open_unnamed_beside(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof dir) return -ENAMETOOLONG;
    memcpy(dir, slash ? path : ".", slash ? n : 1);
    dir[slash ? (n ? n : 1) : 1] = '\0'; /* "/file": the root folder */
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

HS_SELDOM int os_replace_file(const char *path, const char *tmp, const char *text, size_t len)
{
    int fd = open_unnamed_beside(path);
    if (fd >= 0) {
        os_write_all(fd, text, len);
        char self[48];
        hs_text_t t = hs_text(self, sizeof self);
        hs_text_format(&t, "/proc/self/fd/%d", fd);
        unlink(tmp); /* left by a process killed between the two calls below */
        int rc = linkat(AT_FDCWD, self, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
        close(fd);
        if (rc != 0) return rc;
    } else {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return -errno;
        os_write_all(fd, text, len);
        close(fd);
    }
    if (rename(tmp, path) == 0) return 0;
    int err = errno;
    unlink(tmp);
    return -err;
}

bool os_file_id(int fd, os_file_id_t *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    out->device = (unsigned long long)st.st_dev;
    out->inode = (unsigned long long)st.st_ino;
    return true;
}

int os_dup_high(int fd)
{
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    return copy < 0 ? -errno : copy;
}

/* PAGEMAP_SCAN (Linux 6.7), which older headers lack. */
#define OS_PAGEMAP_SCAN _IOWR('f', 16, os_pm_scan_arg_t)
#define OS_PAGE_IS_PRESENT (1u << 3)
#define OS_PAGE_IS_PFNZERO (1u << 5)
#define OS_PAGE_IS_HUGE (1u << 6)
typedef struct os_page_region_s {
    uint64_t start;      /* first byte of a run of pages alike */
    uint64_t end;        /* past its last byte */
    uint64_t categories; /* PAGE_IS_* bits they have */
} os_page_region_t;
typedef struct os_pm_scan_arg_s {
    uint64_t size;                /* sizeof this struct */
    uint64_t flags;               /* PM_SCAN_*: none */
    uint64_t start;               /* range scanned */
    uint64_t end;                 /* its end */
    uint64_t walk_end;            /* where the kernel stopped (out) */
    uint64_t vec;                 /* os_page_region_t array (out) */
    uint64_t vec_len;             /* its length */
    uint64_t max_pages;           /* 0: no limit */
    uint64_t category_inverted;   /* categories matched when absent */
    uint64_t category_mask;       /* categories every page must match */
    uint64_t category_anyof_mask; /* categories of which one must match */
    uint64_t return_mask;         /* categories reported */
} os_pm_scan_arg_t;

/* One PAGEMAP_SCAN of [addr, addr + size) into `vec` (len regions): the
 * pages matching every category of `mask`, with those of `report`. The
 * regions written, or -1; *walk_end (when asked) where the kernel stopped. */
HS_APART static int pagemap_scan(int fd, void *addr, size_t size, uint64_t mask, uint64_t report,
                                 os_page_region_t *vec, unsigned len, uint64_t *walk_end)
{
    hs_assert_no_lock_for_slow_call("PAGEMAP_SCAN");
    os_pm_scan_arg_t arg = {
        .size = sizeof arg,
        .start = (uint64_t)(uintptr_t)addr,
        .end = (uint64_t)(uintptr_t)addr + size,
        .vec = (uint64_t)(uintptr_t)vec,
        .vec_len = len,
        .category_mask = mask,
        .return_mask = report,
    };
    int found = ioctl(fd, OS_PAGEMAP_SCAN, &arg);
    if (walk_end) *walk_end = arg.walk_end;
    return found < 0 ? -1 : found;
}

HS_APART int os_open_pagemap(void)
{
    hs_assert_no_lock_for_slow_call("/proc/self/pagemap");
    if (OS_FAULT(OS_FAULT_FILE)) return -1;
    return open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

HS_APART int os_holds_huge(void *addr, size_t size)
{
    int fd = os_open_pagemap();
    if (fd < 0) return -1;
    os_page_region_t region;
    int found = pagemap_scan(fd, addr, size, OS_PAGE_IS_HUGE, OS_PAGE_IS_HUGE, &region, 1, NULL);
    close(fd);
    return found < 0 ? -1 : found > 0;
}

HS_APART_LATE int os_scan_present(int fd, void *addr, size_t size, os_page_run_t *out, unsigned max,
                                  uintptr_t *scanned_to)
{
    enum { BATCH = 32 };
    os_page_region_t regions[BATCH];
    uint64_t walk_end;
    int found = pagemap_scan(fd, addr, size, OS_PAGE_IS_PRESENT,
                             OS_PAGE_IS_PRESENT | OS_PAGE_IS_PFNZERO | OS_PAGE_IS_HUGE, regions,
                             max < BATCH ? max : BATCH, &walk_end);
    if (found < 0) return -1;
    for (int i = 0; i < found; i++)
        out[i] = (os_page_run_t){
            .start = (uintptr_t)regions[i].start,
            .end = (uintptr_t)regions[i].end,
            .kinds = (regions[i].categories & OS_PAGE_IS_PFNZERO ? OS_PAGES_ZERO : 0) |
                     (regions[i].categories & OS_PAGE_IS_HUGE ? OS_PAGES_HUGE : 0),
        };
    *scanned_to = (uintptr_t)walk_end;
    return found;
}

HS_APART_LATE bool os_kernel_at_least(unsigned major, unsigned minor)
{
    struct utsname name;
    if (uname(&name) != 0) return false;
    const char *s = name.release;
    unsigned have[2] = {0, 0};
    for (int part = 0; part < 2; part++) {
        while (*s >= '0' && *s <= '9') have[part] = have[part] * 10 + (unsigned)(*s++ - '0');
        if (*s == '.') s++;
    }
    return have[0] > major || (have[0] == major && have[1] >= minor);
}
