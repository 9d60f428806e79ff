/* hugeslab run: starts a program with the library preloaded and the
 * HUGESLAB_* variables set; the library itself reads them as always. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *const backings[] = {"auto", "hugetlb", "thp", "base", NULL};

/* Is word one of the space-separated words of list? */
static bool in_word_list(const char *list, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, " ");
        if (n == len && strncmp(p, word, len) == 0) return true;
        p += n;
        p += strspn(p, " ");
    }
    return false;
}

/* The library next to this command: the build tree keeps both in one
 * folder, an install puts the command in bin/ and the library in lib/. */
static bool find_library(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    const char *candidates[3] = {"%s/libhugeslab.so.0", "%s/../lib/libhugeslab.so.0", NULL};
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        for (int i = 0; candidates[i]; i++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, candidates[i], self);
            char real[PATH_MAX];
            if (access(path, R_OK) == 0 && realpath(path, real)) {
                snprintf(out, cap, "%s", real);
                return true;
            }
        }
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/libhugeslab.so.0", HS_CLI_LIBDIR);
    if (access(path, R_OK) == 0) {
        snprintf(out, cap, "%s", path);
        return true;
    }
    return false;
}

static int run_usage(void)
{
    fprintf(stderr,
            "usage: hugeslab run [--profile P] [--backing B] [--stats FILE] "
            "[--interval MS] [--verbose] [--set NAME=VALUE]... [--lib PATH] -- CMD [ARGS...]\n");
    return 2;
}

static bool set_env(const char *name, const char *value)
{
    if (setenv(name, value, 1) == 0) return true;
    fprintf(stderr, "hugeslab run: cannot set %s: %s\n", name, strerror(errno));
    return false;
}

int cli_run(int argc, char **argv)
{
    const char *lib = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-') break; /* the command itself, without "--" */
        if (strcmp(a, "--verbose") == 0) {
            if (!set_env("HUGESLAB_VERBOSE", "1")) return 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "hugeslab run: %s needs a value\n", a);
            return run_usage();
        }
        i++;
        if (strcmp(a, "--profile") == 0) {
            if (!in_word_list(HS_CLI_PROFILES, v)) {
                fprintf(stderr, "hugeslab run: unknown profile '%s'; profiles: %s\n", v,
                        HS_CLI_PROFILES);
                return 2;
            }
            if (!set_env("HUGESLAB_PROFILE", v)) return 1;
        } else if (strcmp(a, "--backing") == 0) {
            bool known = false;
            for (int b = 0; backings[b]; b++) known |= strcmp(backings[b], v) == 0;
            if (!known) {
                fprintf(stderr,
                        "hugeslab run: unknown backing '%s'; backings: auto hugetlb thp base\n", v);
                return 2;
            }
            if (!set_env("HUGESLAB_BACKING", v)) return 1;
        } else if (strcmp(a, "--stats") == 0) {
            if (!set_env("HUGESLAB_STATS_FILE", v) || !set_env("HUGESLAB_STATS", "1")) return 1;
        } else if (strcmp(a, "--interval") == 0) {
            char *end;
            long ms = strtol(v, &end, 10);
            if (*end || end == v || ms <= 0) {
                fprintf(stderr, "hugeslab run: --interval takes milliseconds, not '%s'\n", v);
                return 2;
            }
            if (!set_env("HUGESLAB_STATS_INTERVAL_MS", v)) return 1;
        } else if (strcmp(a, "--set") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                fprintf(stderr, "hugeslab run: --set takes NAME=VALUE, not '%s'\n", v);
                return 2;
            }
            char name[128];
            int len = snprintf(name, sizeof name, "HUGESLAB_%.*s", (int)(eq - v), v);
            if (len >= (int)sizeof name) return run_usage();
            for (char *c = name; *c; c++)
                if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
            if (!set_env(name, eq + 1)) return 1;
        } else if (strcmp(a, "--lib") == 0) {
            lib = v;
        } else {
            fprintf(stderr, "hugeslab run: unknown option '%s'\n", a);
            return run_usage();
        }
    }
    if (i >= argc) {
        fprintf(stderr, "hugeslab run: no command to run\n");
        return run_usage();
    }
    char found[PATH_MAX];
    if (!lib) {
        if (!find_library(found, sizeof found)) {
            fprintf(stderr,
                    "hugeslab run: cannot find libhugeslab.so.0 next to this command "
                    "nor in %s; give it with --lib PATH\n",
                    HS_CLI_LIBDIR);
            return 1;
        }
        lib = found;
    } else if (access(lib, R_OK) != 0) {
        fprintf(stderr, "hugeslab run: cannot read --lib %s: %s\n", lib, strerror(errno));
        return 1;
    }
    /* hugeslab goes first, before whatever the caller preloads already. */
    const char *old = getenv("LD_PRELOAD");
    size_t cap = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *preload = malloc(cap);
    if (!preload) return 1;
    snprintf(preload, cap, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
    if (!set_env("LD_PRELOAD", preload)) return 1;
    free(preload);
    execvp(argv[i], argv + i);
    fprintf(stderr, "hugeslab run: cannot run %s: %s\n", argv[i], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
