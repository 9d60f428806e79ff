/* Statistics reports: the one at exit (HUGESLAB_STATS=1), the live file the
 * background thread rewrites every HUGESLAB_STATS_INTERVAL_MS, and
 * hugeslab_stats_print() / hugeslab_stats_json().
 * - A report is text, JSON (a file name ending in .json) or the Prometheus
 *   text format (.prom, for node_exporter's textfile collector); each names
 *   the pid, the program, the version and the time it was written.
 * - %p (pid) and %e (program) in HUGESLAB_STATS_FILE give each process of a
 *   multi-process program a file of its own.
 * - A file is written whole under a temporary name, then renamed over the
 *   old one, so a reader never sees half a report.
 * - A file that cannot be written gets one message; the exit report then
 *   goes to stderr, through a copy of it taken at start-up, since programs
 *   such as coreutils close stderr before the library's destructor runs.
 * Never: run with a hugeslab lock held or allocate: the figures are gathered
 * first (hugeslab_stats takes and drops the modules' locks), then formatted
 * on the stack and written. */
#include <errno.h>
#include <string.h>

#include "api/api.h"
#include "hugeslab.h"
#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment.h"
#include "thp/thp.h"

#define REPORT_MAX 12288 /* bytes of the longest report (Prometheus, 8 nodes) */

typedef enum report_format_e { REPORT_TEXT, REPORT_JSON, REPORT_PROM } report_format_t;

static int stderr_copy = -1;        /* fd 2 as it was at start-up, or -1 */
static os_file_id_t stderr_id;      /* what stderr_copy referred to then */
static _Atomic int told_unwritable; /* the one message about the file was given */
static _Atomic int final_report;    /* the exit report has begun: no more live ones */
static _Atomic int live_writers;    /* live reports being written now */

/* ---- what every report carries ------------------------------------------- */

/* Unix seconds as "2026-12-01T10:50:00Z" (days to civil date, proleptic
 * Gregorian calendar), without gmtime. */
HS_SELDOM static void put_utc_time(hs_text_t *t, long long seconds)
{
    long long days = seconds / 86400, rest = seconds % 86400;
    if (rest < 0) rest += 86400, days--;
    days += 719468;
    long long era = (days >= 0 ? days : days - 146096) / 146097;
    long long day_of_era = days - era * 146097;
    long long year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    long long day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    long long mp = (5 * day_of_year + 2) / 153;
    long long day = day_of_year - (153 * mp + 2) / 5 + 1;
    long long month = mp < 10 ? mp + 3 : mp - 9;
    long long year = year_of_era + era * 400 + (month <= 2);
    hs_text_format(t, "%lld-%s%lld-%s%lldT%s%lld:%s%lld:%s%lldZ", year, month < 10 ? "0" : "",
                   month, day < 10 ? "0" : "", day, rest / 3600 < 10 ? "0" : "", rest / 3600,
                   rest / 60 % 60 < 10 ? "0" : "", rest / 60 % 60, rest % 60 < 10 ? "0" : "",
                   rest % 60);
}

/* The program's name in a report: at most this many of its bytes. It is
 * in every sample of the Prometheus format, and a name of 2,000 characters
 * (a program may set its own) made the report longer than REPORT_MAX: no
 * file was written at all. */
#define REPORT_NAME_MAX 64

/* s, its first REPORT_NAME_MAX bytes, inside double quotes, escaped for
 * JSON (escape_json) or for a Prometheus label value. */
HS_SELDOM static void put_quoted(hs_text_t *t, const char *s, bool escape_json)
{
    hs_text_char(t, '"');
    const char *end = s + strnlen(s, REPORT_NAME_MAX);
    /* Cut at a character's start: a UTF-8 sequence cut short is no text a
     * JSON or Prometheus parser takes. */
    if (*end)
        while (end > s && ((unsigned char)*end & 0xc0) == 0x80) end--;
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            hs_text_char(t, '\\');
            hs_text_char(t, (char)c);
        } else if (c == '\n') {
            hs_text_str(t, "\\n");
        } else if (c < 0x20) {
            if (escape_json) hs_text_format(t, "\\u00%s%x", c < 16 ? "0" : "", c);
        } else {
            hs_text_char(t, (char)c);
        }
    }
    hs_text_char(t, '"');
}

/* ---- JSON ------------------------------------------------------------------ */

HS_SELDOM static void json_member(hs_text_t *t, const char *key, long long value)
{
    hs_text_format(t, ", \"%s\": %lld", key, value);
}

HS_SELDOM static void format_json(hs_text_t *t, const hugeslab_stats_t *s, long long now)
{
    hs_text_format(t, "{\"pid\": %d, \"program\": ", os_pid());
    put_quoted(t, hs_program_name(), true);
    hs_text_format(t, ", \"version\": \"%d.%d\", \"time\": \"", HUGESLAB_VERSION_MAJOR,
                   HUGESLAB_VERSION_MINOR);
    put_utc_time(t, now);
    hs_text_format(t, "\", \"time_unix\": %lld", now);
#define PUT(field) json_member(t, #field, (long long)s->field)
    PUT(superslabs_mapped);
    PUT(superslabs_hugetlb);
    PUT(superslabs_thp);
    PUT(superslabs_base);
    PUT(superslabs_cached);
    PUT(superslabs_purged);
    for (unsigned n = 0; n < hs_stats_node_limit(); n++) {
        hs_text_format(t, ", \"superslabs_node%u\": %llu", n,
                       (unsigned long long)s->superslabs_by_node[n]);
        hs_text_format(t, ", \"remote_frees_node%u\": %llu", n,
                       (unsigned long long)s->remote_frees_by_node[n]);
    }
    PUT(bytes_mapped);
    PUT(bytes_in_slabs);
    PUT(bytes_in_runs);
    PUT(bytes_cached);
    PUT(bytes_purged_now);
    PUT(bytes_purged_total);
    PUT(purge_calls);
    PUT(bytes_purged_at_once);
    PUT(purge_calls_at_once);
    PUT(huge_blocks);
    PUT(remote_frees);
    PUT(threads_live);
    PUT(orphan_slabs);
    PUT(page_faults);
    PUT(kernel_rss);
    PUT(kernel_anon_huge);
    PUT(kernel_lazy_free);
    PUT(kernel_hugetlb);
    PUT(kernel_thp_superslabs);
    PUT(kernel_hugetlb_superslabs);
#undef PUT
    hs_text_char(t, '}');
}

/* ---- Prometheus text format ----------------------------------------------- */

/* The labels every sample carries, then `extra` (name="value") if any. */
static void prom_labels(hs_text_t *t, const char *extra_name, const char *extra_value)
{
    hs_text_format(t, "{pid=\"%d\",program=", os_pid());
    put_quoted(t, hs_program_name(), false);
    hs_text_format(t, ",version=\"%d.%d\"", HUGESLAB_VERSION_MAJOR, HUGESLAB_VERSION_MINOR);
    if (extra_name) hs_text_format(t, ",%s=\"%s\"", extra_name, extra_value);
    hs_text_char(t, '}');
}

HS_SELDOM static void prom_head(hs_text_t *t, const char *name, const char *type, const char *help)
{
    hs_text_format(t, "# HELP hugeslab_%s %s\n# TYPE hugeslab_%s %s\n", name, help, name, type);
}

HS_SELDOM static void prom_sample(hs_text_t *t, const char *name, const char *extra_name,
                                  const char *extra_value, long long value)
{
    hs_text_format(t, "hugeslab_%s", name);
    prom_labels(t, extra_name, extra_value);
    hs_text_format(t, " %lld\n", value);
}

/* One metric with a single sample. */
HS_SELDOM static void prom_metric(hs_text_t *t, const char *name, const char *type,
                                  const char *help, long long value)
{
    prom_head(t, name, type, help);
    prom_sample(t, name, NULL, NULL, value);
}

static void format_prom(hs_text_t *t, const hugeslab_stats_t *s, long long now)
{
    prom_metric(t, "info", "gauge", "A process running hugeslab; its labels say which.", 1);
    prom_metric(t, "report_time_seconds", "gauge", "When this report was written (Unix time).",
                now);
    prom_head(t, "superslabs", "gauge", "2 MiB SuperSlabs mapped, by backing.");
    prom_sample(t, "superslabs", "backing", "hugetlb", (long long)s->superslabs_hugetlb);
    prom_sample(t, "superslabs", "backing", "thp", (long long)s->superslabs_thp);
    prom_sample(t, "superslabs", "backing", "base", (long long)s->superslabs_base);
    prom_head(t, "superslabs_by_node", "gauge", "2 MiB SuperSlabs mapped, by NUMA node.");
    unsigned nodes = hs_stats_node_limit();
    for (unsigned n = 0; n < nodes; n++) {
        char node[12];
        hs_text_t nt = hs_text(node, sizeof node);
        hs_text_uint(&nt, n);
        prom_sample(t, "superslabs_by_node", "node", node, (long long)s->superslabs_by_node[n]);
    }
    prom_metric(t, "superslabs_cached", "gauge",
                "Empty SuperSlabs with their pages, kept for reuse.",
                (long long)s->superslabs_cached);
    prom_metric(t, "superslabs_purged", "gauge", "Empty SuperSlabs whose pages went back.",
                (long long)s->superslabs_purged);
    prom_head(t, "bytes", "gauge", "Bytes of address space by use.");
    prom_sample(t, "bytes", "kind", "mapped", (long long)s->bytes_mapped);
    prom_sample(t, "bytes", "kind", "in_slabs", (long long)s->bytes_in_slabs);
    prom_sample(t, "bytes", "kind", "in_runs", (long long)s->bytes_in_runs);
    prom_sample(t, "bytes", "kind", "cached", (long long)s->bytes_cached);
    prom_sample(t, "bytes", "kind", "purged", (long long)s->bytes_purged_now);
    prom_metric(t, "purged_bytes_total", "counter",
                "Bytes given back to the kernel since start, by every path.",
                (long long)s->bytes_purged_total);
    prom_metric(t, "purge_calls_total", "counter",
                "madvise and munmap calls or io_uring submissions made, by every path.",
                (long long)s->purge_calls);
    prom_metric(t, "purged_at_once_bytes_total", "counter",
                "Of those bytes, what threads gave back at once as they freed or resized blocks.",
                (long long)s->bytes_purged_at_once);
    prom_metric(t, "purge_calls_at_once_total", "counter", "Of those calls, the ones made at once.",
                (long long)s->purge_calls_at_once);
    prom_metric(t, "remote_frees_total", "counter", "Frees of blocks owned by another thread.",
                (long long)s->remote_frees);
    prom_head(t, "remote_frees_by_node_total", "counter", "Remote frees, by the block's node.");
    for (unsigned n = 0; n < nodes; n++) {
        char node[12];
        hs_text_t nt = hs_text(node, sizeof node);
        hs_text_uint(&nt, n);
        prom_sample(t, "remote_frees_by_node_total", "node", node,
                    (long long)s->remote_frees_by_node[n]);
    }
    prom_metric(t, "huge_blocks", "gauge", "Live blocks with a mapping of their own.",
                (long long)s->huge_blocks);
    prom_metric(t, "threads", "gauge", "Threads with a heap.", (long long)s->threads_live);
    prom_metric(t, "orphan_slabs", "gauge", "Slabs of exited threads not yet taken over.",
                (long long)s->orphan_slabs);
    prom_metric(t, "page_faults_total", "counter", "Minor and major page faults of the process.",
                (long long)s->page_faults);
    prom_head(t, "kernel_bytes", "gauge", "The process's memory as smaps_rollup reports it.");
    prom_sample(t, "kernel_bytes", "kind", "rss", s->kernel_rss);
    prom_sample(t, "kernel_bytes", "kind", "anon_huge", s->kernel_anon_huge);
    prom_sample(t, "kernel_bytes", "kind", "lazy_free", s->kernel_lazy_free);
    prom_sample(t, "kernel_bytes", "kind", "hugetlb", s->kernel_hugetlb);
    prom_head(t, "kernel_superslabs", "gauge",
              "SuperSlabs the kernel really backs with a 2 MiB page (/proc/self/smaps).");
    prom_sample(t, "kernel_superslabs", "backing", "thp", s->kernel_thp_superslabs);
    prom_sample(t, "kernel_superslabs", "backing", "hugetlb", s->kernel_hugetlb_superslabs);
}

/* ---- text -------------------------------------------------------------------- */

static void format_text(hs_text_t *t, const hugeslab_stats_t *s, long long now)
{
    const unsigned long long MiB = 1 << 20;
    hs_text_format(t, "hugeslab: statistics of pid %d (%s), hugeslab %d.%d, ", os_pid(),
                   hs_program_name(), HUGESLAB_VERSION_MAJOR, HUGESLAB_VERSION_MINOR);
    put_utc_time(t, now);
    hs_text_format(t, " (THP mode %s%s, %u node(s))\n", thp_mode_name(thp_system_mode()),
                   thp_process_off() ? ", off for this process" : "", numa_node_count());
    hs_text_format(
        t,
        "  superslabs  %llu mapped: hugetlb %llu (%lld with their page), thp %llu "
        "(%lld huge pages by smaps), base %llu; cached %llu, purged %llu\n",
        (unsigned long long)s->superslabs_mapped, (unsigned long long)s->superslabs_hugetlb,
        (long long)s->kernel_hugetlb_superslabs, (unsigned long long)s->superslabs_thp,
        (long long)s->kernel_thp_superslabs, (unsigned long long)s->superslabs_base,
        (unsigned long long)s->superslabs_cached, (unsigned long long)s->superslabs_purged);
    for (unsigned n = 0; n < hs_stats_node_limit(); n++)
        hs_text_format(t, "  node %u      %llu superslabs (%llu MiB), %llu remote frees\n", n,
                       (unsigned long long)s->superslabs_by_node[n],
                       (unsigned long long)s->superslabs_by_node[n] * 2,
                       (unsigned long long)s->remote_frees_by_node[n]);
    hs_text_format(
        t,
        "  bytes       mapped %llu MiB, in slabs %llu MiB, in runs %llu MiB, "
        "cached %llu MiB, purged %llu MiB (%llu KiB since start, %llu KiB of them at once)\n",
        (unsigned long long)s->bytes_mapped / MiB, (unsigned long long)s->bytes_in_slabs / MiB,
        (unsigned long long)s->bytes_in_runs / MiB, (unsigned long long)s->bytes_cached / MiB,
        (unsigned long long)s->bytes_purged_now / MiB,
        (unsigned long long)s->bytes_purged_total / 1024,
        (unsigned long long)s->bytes_purged_at_once / 1024);
    hs_text_format(t,
                   "  activity    purge calls %llu (%llu at once), remote frees %llu, page "
                   "faults %llu, threads %llu, orphan slabs %llu, huge blocks %llu\n",
                   (unsigned long long)s->purge_calls, (unsigned long long)s->purge_calls_at_once,
                   (unsigned long long)s->remote_frees, (unsigned long long)s->page_faults,
                   (unsigned long long)s->threads_live, (unsigned long long)s->orphan_slabs,
                   (unsigned long long)s->huge_blocks);
    hs_text_format(t,
                   "  kernel      Rss %lld KiB, AnonHugePages %lld KiB, LazyFree %lld KiB, "
                   "Private_Hugetlb %lld KiB\n",
                   (long long)(s->kernel_rss / 1024), (long long)(s->kernel_anon_huge / 1024),
                   (long long)(s->kernel_lazy_free / 1024), (long long)(s->kernel_hugetlb / 1024));
}

/* ---- writing ------------------------------------------------------------------ */

HS_SELDOM static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* HUGESLAB_STATS_FILE with %p and %e expanded (%% is a %); NULL when unset
 * or too long. */
static const char *stats_path(char *buf, size_t cap)
{
    const char *pattern = hs_option_string(HS_OPT_STATS_FILE);
    if (!pattern || !*pattern) return NULL;
    hs_text_t t = hs_text(buf, cap);
    for (const char *p = pattern; *p; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            hs_text_int(&t, os_pid());
            p++;
        } else if (p[0] == '%' && p[1] == 'e') {
            hs_text_str(&t, hs_program_name());
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            hs_text_char(&t, '%');
            p++;
        } else {
            hs_text_char(&t, *p);
        }
    }
    return hs_text_overflowed(&t) ? NULL : buf;
}

/* The whole report for `path` (its name decides the format; NULL: text). */
HS_SELDOM static size_t format_report(const char *path, char *buf, size_t cap)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    long long now = os_wall_seconds();
    hs_text_t t = hs_text(buf, cap);
    if (path && ends_with(path, ".json")) {
        format_json(&t, &s, now);
        hs_text_char(&t, '\n');
    } else if (path && ends_with(path, ".prom")) {
        format_prom(&t, &s, now);
    } else {
        format_text(&t, &s, now);
    }
    return hs_text_overflowed(&t) ? 0 : hs_text_length(&t);
}

static const char *error_name(int err)
{
    switch (err) {
    case EACCES:
        return "permission denied";
    case ENOENT:
        return "no such folder";
    case ENOTDIR:
        return "not a folder";
    case EROFS:
        return "read-only file system";
    case ENOSPC:
        return "no space left";
    case EISDIR:
        return "a folder";
    case ENAMETOOLONG:
        return "name too long";
    default:
        return "error";
    }
}

/* Replaces the file at path by text, through <path>.tmp.<pid>: one name per
 * process, so a write cut short by exec() is cleaned up by the next. Two
 * threads writing at once may lose one report, never mix two. 0 or -errno. */
static int write_atomically(const char *path, const char *text, size_t len)
{
    char tmp[4200];
    hs_text_t t = hs_text(tmp, sizeof tmp);
    hs_text_format(&t, "%s.tmp.%d", path, os_pid());
    if (hs_text_overflowed(&t)) return -ENAMETOOLONG;
    return os_replace_file(path, tmp, text, len);
}

/* Writes the report to the statistics file; false (with one message per
 * process) when it cannot. */
HS_SELDOM static bool report_to_file(void)
{
    char path[4096];
    const char *p = stats_path(path, sizeof path);
    if (!p) return false;
    char buf[REPORT_MAX];
    size_t len = format_report(p, buf, sizeof buf);
    int rc = len ? write_atomically(p, buf, len) : -ENOSPC;
    if (rc == 0) return true;
    if (!atomic_exchange(&told_unwritable, 1))
        hs_message("cannot write HUGESLAB_STATS_FILE=%s (%s, error %d); the statistics go to "
                   "stderr instead",
                   p, error_name(-rc), -rc);
    return false;
}

/* The report as text on stderr, through the copy taken at start-up when it
 * still names the same file: a program that closed every descriptor may
 * have the copy's number on a file of its own by now. */
HS_SELDOM static void report_to_stderr(void)
{
    char buf[REPORT_MAX];
    size_t len = format_report(NULL, buf, sizeof buf);
    os_file_id_t now;
    bool copy_intact = stderr_copy >= 0 && os_file_id(stderr_copy, &now) &&
                       now.device == stderr_id.device && now.inode == stderr_id.inode;
    os_write_all(copy_intact ? stderr_copy : 2, buf, len);
}

/* The background thread's periodic work: the live file. */
HS_SELDOM static void live_report(void)
{
    atomic_fetch_add(&live_writers, 1);
    if (!atomic_load(&final_report)) report_to_file();
    atomic_fetch_sub(&live_writers, 1);
}

HS_SELDOM HS_EXPORT void hugeslab_stats_print(void)
{
    if (!report_to_file()) report_to_stderr();
}

HS_SELDOM HS_EXPORT size_t hugeslab_stats_json(char *buf, size_t size)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    hs_text_t t = hs_text(buf, size);
    format_json(&t, &s, os_wall_seconds());
    return t.len;
}

/* hs_report_start's work with HUGESLAB_STATS set: seldom code, as the
 * reports are. */
HS_SELDOM HS_NOINLINE static void report_start(void)
{
    const char *file = hs_option_string(HS_OPT_STATS_FILE);
    /* Kept for the exit report; programs may close fd 2 before it. */
    if (stderr_copy < 0) {
        int fd = os_dup_high(2);
        stderr_copy = fd >= 0 && os_file_id(fd, &stderr_id) ? fd : -1;
    }
    uint64_t interval = (uint64_t)hs_option(HS_OPT_STATS_INTERVAL_MS);
    if (!interval) return;
    if (!file || !*file) {
        hs_message("ignoring HUGESLAB_STATS_INTERVAL_MS: it rewrites HUGESLAB_STATS_FILE, "
                   "which is not set");
        return;
    }
    seg_set_periodic_work(live_report, interval);
    seg_start_background();
    report_to_file(); /* the file exists from the start */
}

/* HUGESLAB_STATS_INTERVAL_MS without HUGESLAB_STATS: the bad value its
 * own line, as every other (README: a bad name or value gets one line);
 * it was ignored in silence. */
HS_SELDOM HS_NOINLINE static void report_interval_alone(void)
{
    hs_message("ignoring HUGESLAB_STATS_INTERVAL_MS: it rewrites the statistics of "
               "HUGESLAB_STATS=1, which is not set");
}

void hs_report_start(void)
{
    if (hs_option(HS_OPT_STATS))
        report_start();
    else if (hs_option(HS_OPT_STATS_INTERVAL_MS))
        report_interval_alone();
}

HS_APART void hs_report_fork_child(void)
{
    /* The child has no background thread yet, and a file of its own with %p. */
    atomic_store(&final_report, 0);
    atomic_store(&live_writers, 0);
    if (hs_option(HS_OPT_STATS) && hs_option(HS_OPT_STATS_INTERVAL_MS) &&
        hs_option_string(HS_OPT_STATS_FILE))
        seg_start_background();
}

void hs_report_exit(void)
{
    if (!hs_option(HS_OPT_STATS)) return;
    /* The last word is the exit report: wait (up to a second) for a live
     * report being written, and start no other. */
    atomic_store(&final_report, 1);
    for (int i = 0; i < 1000 && atomic_load(&live_writers); i++) os_sleep_ms(1);
    hugeslab_stats_print();
}
