/* The options table. Reads getenv() and files with os_read_file (open/read
 * only): none of it allocates, so loading options is safe inside the process's first malloc. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"
#include "os/os.h"

typedef enum option_kind_e { KIND_NUMBER, KIND_CHOICE, KIND_STRING } option_kind_t;

typedef struct option_desc_s {
    const char *name;         /* HUGESLAB_<NAME>; <name> in lower case in config files */
    option_kind_t kind;       /* how the value is read */
    int64_t default_value;    /* used when unset or invalid */
    int64_t min, max;         /* accepted range for numbers */
    const char *const *words; /* for choices: accepted words, index = value */
    const char *help;         /* one line, for HUGESLAB_VERBOSE */
} option_desc_t;

static const char *const bool_words[] = {"0", "1", NULL};
static const char *const backing_words[] = {"auto", "hugetlb", "thp", "base", NULL};
static const char *const numa_words[] = {"auto", "off", NULL};
static const char *const purge_words[] = {"free", "dontneed", NULL};
static const char *const purge_backend_words[] = {"madvise", "uring", NULL};

static const option_desc_t option_table[HS_OPT_COUNT] = {
    [HS_OPT_VERBOSE] = {"VERBOSE", KIND_CHOICE, 0, 0, 1, bool_words, "print the effective options"},
    [HS_OPT_STATS] = {"STATS", KIND_CHOICE, 0, 0, 1, bool_words, "print statistics at exit"},
    [HS_OPT_STATS_FILE] = {"STATS_FILE", KIND_STRING, 0, 0, 0, NULL,
                           "file for the statistics (JSON when it ends in .json)"},
    [HS_OPT_BACKING] = {"BACKING", KIND_CHOICE, HS_BACKING_AUTO, 0, 3, backing_words,
                        "SuperSlab pages: auto, hugetlb, thp or base"},
    [HS_OPT_PREFAULT] = {"PREFAULT", KIND_CHOICE, 0, 0, 1, bool_words,
                         "pre-fault base-page SuperSlabs in one call"},
    [HS_OPT_PURGE] = {"PURGE", KIND_CHOICE, HS_PURGE_FREE, 0, 1, purge_words,
                      "idle memory back to the kernel with MADV_FREE or MADV_DONTNEED"},
    [HS_OPT_PURGE_DELAY_MS] = {"PURGE_DELAY_MS", KIND_NUMBER, 500, 0, 3600 * 1000, NULL,
                               "milliseconds a SuperSlab stays idle before it is purged"},
    [HS_OPT_PURGE_BACKEND] = {"PURGE_BACKEND", KIND_CHOICE, HS_PURGE_BACKEND_MADVISE, 0, 1,
                              purge_backend_words, "purge with madvise calls or io_uring batches"},
    [HS_OPT_RESERVE_MB] = {"RESERVE_MB", KIND_NUMBER, 4, 0, 1 << 20, NULL,
                           "MiB of empty SuperSlabs per node kept unpurged"},
    [HS_OPT_CACHE_MB] = {"CACHE_MB", KIND_NUMBER, 1024, 0, 1 << 20, NULL,
                         "MiB of idle memory held for the purge thread; beyond, purged at once"},
    [HS_OPT_HUGE_MB] = {"HUGE_MB", KIND_NUMBER, 32, 2, 1 << 20, NULL,
                        "blocks of this many MiB or more get a mapping of their own"},
    [HS_OPT_NUMA] = {"NUMA", KIND_CHOICE, 0, 0, 1, numa_words,
                     "auto: a pool per NUMA node and SuperSlabs bound to it; off: one pool"},
    [HS_OPT_NUMA_NODES] = {"NUMA_NODES", KIND_NUMBER, 0, 0, HS_MAX_NODES, NULL,
                           "use at most this many NUMA nodes (0: all online nodes)"},
};

int64_t hs_option_values[HS_OPT_COUNT];
const char *hs_option_strings[HS_OPT_COUNT];

/* Values read from a config file must outlive it: copied here. */
static char string_store[4096];
static size_t string_store_used;

static const char *keep_string(const char *s, size_t len)
{
    if (string_store_used + len + 1 > sizeof string_store) return NULL;
    char *copy = string_store + string_store_used;
    memcpy(copy, s, len);
    copy[len] = '\0';
    string_store_used += len + 1;
    return copy;
}

static int find_option(const char *name, size_t len)
{
    for (int o = 0; o < HS_OPT_COUNT; o++) {
        if (strlen(option_table[o].name) == len &&
            strncasecmp(option_table[o].name, name, len) == 0)
            return o;
    }
    return -1;
}

/* Sets option o from the text value[0..len); `origin` names the source in
 * the message for a bad value. */
static void set_option(int o, const char *value, size_t len, const char *origin)
{
    const option_desc_t *d = &option_table[o];
    uint64_t v;
    switch (d->kind) {
    case KIND_STRING: {
        const char *kept = keep_string(value, len);
        if (kept) {
            hs_option_strings[o] = kept;
            return;
        }
        break;
    }
    case KIND_CHOICE:
        for (int i = 0; d->words[i]; i++) {
            if (strlen(d->words[i]) == len && strncmp(value, d->words[i], len) == 0) {
                hs_option_values[o] = i;
                return;
            }
        }
        break;
    case KIND_NUMBER:
        if (hs_parse_u64(value, value + len, &v) == value + len && v >= (uint64_t)d->min &&
            v <= (uint64_t)d->max) {
            hs_option_values[o] = (int64_t)v;
            return;
        }
        break;
    }
    char shown[64];
    size_t n = len < sizeof shown - 1 ? len : sizeof shown - 1;
    memcpy(shown, value, n);
    shown[n] = '\0';
    hs_message("ignoring %s=%s from %s (not a valid value); keeping %s's previous value", d->name,
               shown, origin, d->name);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* KEY=VALUE lines; '#' starts a comment. */
static void apply_config_text(const char *text, const char *origin)
{
    const char *p = text;
    while (*p) {
        const char *line_end = strchr(p, '\n');
        if (!line_end) line_end = p + strlen(p);
        const char *hash = memchr(p, '#', (size_t)(line_end - p));
        const char *end = hash ? hash : line_end;
        while (p < end && is_space(*p)) p++;
        while (end > p && is_space(end[-1])) end--;
        if (p < end) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *key_end = eq ? eq : end;
            while (key_end > p && is_space(key_end[-1])) key_end--;
            const char *value = eq ? eq + 1 : end;
            while (value < end && is_space(*value)) value++;
            int o = eq ? find_option(p, (size_t)(key_end - p)) : -1;
            if (o < 0) {
                char shown[64];
                size_t n =
                    (size_t)(end - p) < sizeof shown - 1 ? (size_t)(end - p) : sizeof shown - 1;
                memcpy(shown, p, n);
                shown[n] = '\0';
                hs_message("ignoring line '%s' in %s (not KEY=VALUE with a known key)", shown,
                           origin);
            } else {
                set_option(o, value, (size_t)(end - value), origin);
            }
        }
        p = *line_end ? line_end + 1 : line_end;
    }
}

static void apply_config_file(const char *path)
{
    static char text[16384];
    if (os_read_file(path, text, sizeof text) < 0) {
        hs_message("cannot read HUGESLAB_CONFIG=%s; using the defaults", path);
        return;
    }
    apply_config_text(text, path);
}

static void apply_profile(const char *name)
{
    for (const hs_profile_t *p = hs_profiles; p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            apply_config_text(p->text, p->name);
            return;
        }
    }
    hs_message("unknown HUGESLAB_PROFILE=%s; using the defaults", name);
}

void hs_options_load(void)
{
    for (int o = 0; o < HS_OPT_COUNT; o++) {
        hs_option_values[o] = option_table[o].default_value;
        hs_option_strings[o] = NULL;
    }
    string_store_used = 0;
    const char *profile = getenv("HUGESLAB_PROFILE");
    const char *config = getenv("HUGESLAB_CONFIG");
    if (profile && *profile) apply_profile(profile);
    if (config && *config) apply_config_file(config);
    for (int o = 0; o < HS_OPT_COUNT; o++) {
        char var[64] = "HUGESLAB_";
        strncat(var, option_table[o].name, sizeof var - strlen(var) - 1);
        const char *s = getenv(var);
        if (s) set_option(o, s, strlen(s), "the environment");
    }
}

void hs_options_print(void)
{
    const char *profile = getenv("HUGESLAB_PROFILE");
    const char *config = getenv("HUGESLAB_CONFIG");
    if (profile) hs_message("profile %s", profile);
    if (config) hs_message("config file %s", config);
    for (int o = 0; o < HS_OPT_COUNT; o++) {
        const option_desc_t *d = &option_table[o];
        if (d->kind == KIND_STRING) {
            const char *v = hs_option_strings[o];
            hs_message("option %s=%s (%s)", d->name, v ? v : "", d->help);
        } else if (d->kind == KIND_CHOICE) {
            hs_message("option %s=%s (%s)", d->name, d->words[hs_option_values[o]], d->help);
        } else {
            hs_message("option %s=%lld (%s)", d->name, (long long)hs_option_values[o], d->help);
        }
    }
}
