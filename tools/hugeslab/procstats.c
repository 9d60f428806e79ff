/* hugeslab stats / top: the kernel's figures for running processes
 * (smaps_rollup, numa_maps), next to hugeslab's own where the process
 * publishes them in its HUGESLAB_STATS_FILE. Reads /proc only. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define MAX_NODES 64

typedef struct proc_figures_s {
    int pid;
    char program[64];             /* basename of argv[0], as %e expands */
    bool has_hugeslab;            /* libhugeslab is mapped */
    long long rss;                /* bytes, smaps_rollup Rss */
    long long anon_huge;          /* AnonHugePages */
    long long lazy_free;          /* LazyFree */
    long long hugetlb;            /* Private_Hugetlb + Shared_Hugetlb */
    long long by_node[MAX_NODES]; /* bytes mapped per node, numa_maps */
    int max_node;                 /* highest node seen in numa_maps, -1 if none */
    char stats_file[4096];        /* the process's statistics file, "" when none */
} proc_figures_t;

/* The process's HUGESLAB_STATS_FILE with %p and %e expanded, "" if unset. */
static void stats_file_of(proc_figures_t *f)
{
    char path[64];
    f->stats_file[0] = '\0';
    snprintf(path, sizeof path, "/proc/%d/environ", f->pid);
    FILE *in = fopen(path, "re");
    if (!in) return;
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i += strlen(buf + i) + 1) {
        const char *key = "HUGESLAB_STATS_FILE=";
        if (strncmp(buf + i, key, strlen(key)) != 0) continue;
        /* As the library expands it (src/api/report.c, stats_path): %p,
         * %e and %%; a path too long for its buffer names no file. The
         * environment is any user's: every write is bounded (a pattern of
         * %e after 470 bytes wrote past the end). */
        const char *t = buf + i + strlen(key);
        const size_t cap = sizeof f->stats_file;
        size_t o = 0;
        for (; *t; t++) {
            bool pair = t[0] == '%' && (t[1] == 'p' || t[1] == 'e' || t[1] == '%');
            int n;
            if (!pair)
                n = snprintf(f->stats_file + o, cap - o, "%c", *t);
            else if (t[1] == 'p')
                n = snprintf(f->stats_file + o, cap - o, "%d", f->pid);
            else if (t[1] == 'e')
                n = snprintf(f->stats_file + o, cap - o, "%s", f->program);
            else
                n = snprintf(f->stats_file + o, cap - o, "%%");
            if (pair) t++;
            if (n < 0 || (size_t)n >= cap - o) {
                f->stats_file[0] = '\0';
                return;
            }
            o += (size_t)n;
        }
        return;
    }
}

/* Fills f for pid; false when the process is gone or unreadable. */
static bool read_process(int pid, proc_figures_t *f)
{
    char path[64];
    memset(f, 0, sizeof *f);
    f->pid = pid;
    f->max_node = -1;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    char *rollup = cli_read_text(path);
    if (!rollup || !*rollup) {
        free(rollup);
        return false;
    }
    f->rss = cli_kb_field(rollup, "Rss");
    f->anon_huge = cli_kb_field(rollup, "AnonHugePages");
    f->lazy_free = cli_kb_field(rollup, "LazyFree");
    long long ph = cli_kb_field(rollup, "Private_Hugetlb"),
              sh = cli_kb_field(rollup, "Shared_Hugetlb");
    f->hugetlb = (ph > 0 ? ph : 0) + (sh > 0 ? sh : 0);
    free(rollup);

    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    char *cmdline = cli_read_text(path);
    if (cmdline && *cmdline) {
        const char *slash = strrchr(cmdline, '/');
        snprintf(f->program, sizeof f->program, "%s", slash ? slash + 1 : cmdline);
    } else {
        snprintf(path, sizeof path, "/proc/%d/comm", pid);
        cli_read_line(path, f->program, sizeof f->program);
    }
    free(cmdline);

    snprintf(path, sizeof path, "/proc/%d/numa_maps", pid);
    FILE *in = fopen(path, "re");
    char line[4096];
    while (in && fgets(line, sizeof line, in)) {
        long long counts[MAX_NODES] = {0};
        long page_kb = 4;
        for (char *w = strtok(line, " \n"); w; w = strtok(NULL, " \n")) {
            if (w[0] == 'N' && isdigit((unsigned char)w[1])) {
                int n = atoi(w + 1);
                char *eq = strchr(w, '=');
                if (eq && n < MAX_NODES) counts[n] += atoll(eq + 1);
            } else if (strncmp(w, "kernelpagesize_kB=", 18) == 0) {
                page_kb = atol(w + 18);
            }
        }
        for (int n = 0; n < MAX_NODES; n++) {
            if (!counts[n]) continue;
            f->by_node[n] += counts[n] * page_kb * 1024;
            if (n > f->max_node) f->max_node = n;
        }
    }
    if (in) fclose(in);

    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    in = fopen(path, "re");
    while (in && fgets(line, sizeof line, in))
        if (strstr(line, "/libhugeslab")) {
            f->has_hugeslab = true;
            break;
        }
    if (in) fclose(in);
    stats_file_of(f);
    return true;
}

/* hugeslab's own figures from the statistics file, one "name value" a line. */
static void print_published(const proc_figures_t *f)
{
    if (!f->stats_file[0]) {
        printf("hugeslab: %s\n", f->has_hugeslab ? "loaded; publishes no statistics file "
                                                   "(HUGESLAB_STATS_FILE unset)"
                                                 : "not loaded");
        return;
    }
    struct stat st;
    char *text = cli_read_text(f->stats_file);
    if (!text || stat(f->stats_file, &st) != 0) {
        printf("hugeslab: %s not written yet\n", f->stats_file);
        free(text);
        return;
    }
    printf("hugeslab (%s, written %lld s ago):\n", f->stats_file,
           (long long)(time(NULL) - st.st_mtime));
    size_t len = strlen(text);
    if (len > 5 && text[0] == '{') {
        /* flat JSON: "key": value, ... */
        for (char *p = text; (p = strchr(p, '"'));) {
            char *key = p + 1, *end = strchr(key, '"');
            if (!end) break;
            *end = '\0';
            char *v = end + 1;
            v += strspn(v, " :");
            size_t vlen = *v == '"' ? strcspn(v + 1, "\"") + 2 : strcspn(v, ",}\n");
            printf("  %-24s %.*s\n", key, (int)vlen, v);
            p = v + vlen;
        }
    } else {
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            if (line[0] != '#') printf("  %s\n", line);
    }
    free(text);
}

int cli_stats(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hugeslab stats PID...\n");
        return 2;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        errno = 0;
        long pid = strtol(argv[i], &end, 10);
        proc_figures_t f;
        if (*end || end == argv[i] || pid <= 0 || pid > INT_MAX || errno) {
            fprintf(stderr, "hugeslab stats: '%s' is not a process id\n", argv[i]);
            return 2;
        }
        if (!read_process((int)pid, &f)) {
            fprintf(stderr, "hugeslab stats: cannot read /proc/%ld/smaps_rollup: %s\n", pid,
                    kill((pid_t)pid, 0) == 0 || errno == EPERM ? "permission denied (run as "
                                                                 "its user or root)"
                                                               : "no such process");
            status = 1;
            continue;
        }
        printf("pid %d (%s)\n", f.pid, f.program);
        printf("kernel (/proc/%d/smaps_rollup):\n", f.pid);
        printf("  Rss               %lld kB\n", f.rss / 1024);
        printf("  AnonHugePages     %lld kB\n", f.anon_huge / 1024);
        printf("  LazyFree          %lld kB\n", f.lazy_free / 1024);
        printf("  Hugetlb           %lld kB\n", f.hugetlb / 1024);
        printf("pages per node (/proc/%d/numa_maps):\n", f.pid);
        for (int n = 0; n <= f.max_node; n++)
            printf("  node %-12d %lld kB\n", n, f.by_node[n] / 1024);
        print_published(&f);
        if (i + 1 < argc) putchar('\n');
    }
    return status;
}

static int compare_rss(const void *a, const void *b)
{
    long long x = ((const proc_figures_t *)a)->rss, y = ((const proc_figures_t *)b)->rss;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* SuperSlabs mapped, from a published JSON, text or Prometheus file (where
 * hugeslab_superslabs has one sample per backing); -1 if none. */
static long long published_superslabs(const char *file)
{
    char *text = file[0] ? cli_read_text(file) : NULL;
    long long v = -1;
    const char *keys[] = {"\"superslabs_mapped\":", "  superslabs  ", NULL};
    for (int k = 0; text && keys[k] && v < 0; k++) {
        char *p = strstr(text, keys[k]);
        if (p) v = strtoll(p + strlen(keys[k]), NULL, 10);
    }
    if (v < 0 && text && strstr(text, "\nhugeslab_superslabs{")) {
        v = 0;
        for (char *p = text; (p = strstr(p, "\nhugeslab_superslabs{"));) {
            char *end = strchr(p, '}');
            if (!end) break;
            v += strtoll(end + 1, NULL, 10);
            p = end;
        }
    }
    free(text);
    return v;
}

int cli_top(int argc, char **argv)
{
    bool all = false, once = false;
    double interval = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (strcmp(argv[i], "--once") == 0)
            once = true;
        else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            char *end;
            interval = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(interval > 0)) {
                fprintf(stderr, "hugeslab top: --interval takes seconds, not '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: hugeslab top [--all] [--once] [--interval SECONDS]\n");
            return 2;
        }
    }
    if (interval <= 0) interval = 2;
    bool tty = isatty(1);
    size_t cap = 256;
    proc_figures_t *procs = malloc(cap * sizeof *procs);
    if (!procs) return 1;
    for (;;) {
        size_t count = 0;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            if (count == cap) {
                proc_figures_t *bigger = realloc(procs, 2 * cap * sizeof *procs);
                if (!bigger) break;
                procs = bigger;
                cap *= 2;
            }
            if (read_process(atoi(e->d_name), &procs[count]) && (all || procs[count].has_hugeslab))
                count++;
        }
        if (d) closedir(d);
        qsort(procs, count, sizeof *procs, compare_rss);
        if (tty && !once) fputs("\033[H\033[2J", stdout);
        time_t now = time(NULL);
        char when[32];
        strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
        printf("hugeslab top %s: %zu process(es)%s; sizes in MiB\n", when, count,
               all ? "" : " running hugeslab (--all: every process)");
        printf("%8s %-16s %9s %9s %9s %9s %10s  %s\n", "PID", "PROGRAM", "RSS", "ANONHUGE",
               "LAZYFREE", "HUGETLB", "SUPERSLABS", "PER NODE");
        for (size_t i = 0; i < count; i++) {
            const proc_figures_t *f = &procs[i];
            char nodes[256] = "", slabs[24] = "-";
            size_t len = 0;
            for (int n = 0; n <= f->max_node && len + 24 < sizeof nodes; n++)
                len += (size_t)snprintf(nodes + len, sizeof nodes - len, "%s%d:%lld",
                                        len ? " " : "", n, f->by_node[n] >> 20);
            long long ss = published_superslabs(f->stats_file);
            if (ss >= 0) snprintf(slabs, sizeof slabs, "%lld", ss);
            printf("%8d %-16.16s %9lld %9lld %9lld %9lld %10s  %s\n", f->pid, f->program,
                   f->rss >> 20, f->anon_huge >> 20, f->lazy_free >> 20, f->hugetlb >> 20, slabs,
                   nodes);
        }
        fflush(stdout);
        if (once) break;
        struct timespec ts = {(time_t)interval,
                              (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
    }
    free(procs);
    return 0;
}
