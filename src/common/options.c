/* The options table. Reads the environment (environ, scanned once) and files
 * with os_read_file (open/read only): none of it allocates, so loading
 * options is safe inside the process's first malloc. */
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

/* The help lines, read only by hs_options_print (HUGESLAB_VERBOSE=1). */
static const char help_verbose[] HS_SELDOM_DATA = "print the effective options";
static const char help_stats[] HS_SELDOM_DATA = "print statistics at exit";
static const char help_stats_file[] HS_SELDOM_DATA =
    "file for the statistics (%p: pid, %e: program; JSON for .json, "
    "Prometheus for .prom, else text); implies STATS=1";
static const char help_stats_interval_ms[] HS_SELDOM_DATA =
    "rewrite the statistics file every this many milliseconds "
    "(0: at exit only)";
static const char help_backing[] HS_SELDOM_DATA = "SuperSlab pages: auto, hugetlb, thp or base";
static const char help_prefault[] HS_SELDOM_DATA = "pre-fault base-page SuperSlabs in one call";
static const char help_purge[] HS_SELDOM_DATA =
    "idle memory back to the kernel with MADV_FREE or MADV_DONTNEED";
static const char help_purge_delay_ms[] HS_SELDOM_DATA =
    "milliseconds a SuperSlab stays idle before it is purged";
static const char help_release_delay_ms[] HS_SELDOM_DATA =
    "milliseconds MADV_FREE'd memory stays idle before "
    "MADV_DONTNEED takes it out of RSS; sooner, as much of it as fresh memory "
    "the heap maps meanwhile";
static const char help_purge_backend[] HS_SELDOM_DATA =
    "purge with madvise calls or io_uring batches";
static const char help_split_sparse[] HS_SELDOM_DATA =
    "1: a THP SuperSlab with at most a quarter of its units in use, "
    "quiet for both delays, gives up its huge page so that its free "
    "units leave RSS, one mapped for a thread with sparse slabs gets "
    "base pages, and the huge page where a program stopped writing a large "
    "block is split (Linux 6.12 on); 0: a huge page is never split nor withheld";
static const char help_reserve_mb[] HS_SELDOM_DATA =
    "MiB of empty SuperSlabs per node kept unpurged";
static const char help_cache_mb[] HS_SELDOM_DATA =
    "MiB of idle memory held for the purge thread; beyond, purged at once";
static const char help_huge_mb[] HS_SELDOM_DATA =
    "blocks of this many MiB or more get a mapping of their own";
static const char help_numa[] HS_SELDOM_DATA =
    "auto: a pool per NUMA node and SuperSlabs bound to it; off: one pool";
static const char help_numa_nodes[] HS_SELDOM_DATA =
    "use at most this many NUMA nodes (0: all online nodes)";

static const char help_crowd_threads[] HS_SELDOM_DATA =
    "from this many threads with a heap on, a thread's first blocks of each "
    "class up to 4 KiB come from slabs shared by the threads of its node "
    "(0: never)";

static const option_desc_t option_table[HS_OPT_COUNT] = {
    [HS_OPT_VERBOSE] = {"VERBOSE", KIND_CHOICE, 0, 0, 1, bool_words, help_verbose},
    [HS_OPT_STATS] = {"STATS", KIND_CHOICE, 0, 0, 1, bool_words, help_stats},
    [HS_OPT_STATS_FILE] = {"STATS_FILE", KIND_STRING, 0, 0, 0, NULL, help_stats_file},
    [HS_OPT_STATS_INTERVAL_MS] = {"STATS_INTERVAL_MS", KIND_NUMBER, 0, 0, 3600 * 1000, NULL,
                                  help_stats_interval_ms},
    [HS_OPT_BACKING] = {"BACKING", KIND_CHOICE, HS_BACKING_AUTO, 0, 3, backing_words, help_backing},
    [HS_OPT_PREFAULT] = {"PREFAULT", KIND_CHOICE, 0, 0, 1, bool_words, help_prefault},
    [HS_OPT_PURGE] = {"PURGE", KIND_CHOICE, HS_PURGE_FREE, 0, 1, purge_words, help_purge},
    [HS_OPT_PURGE_DELAY_MS] = {"PURGE_DELAY_MS", KIND_NUMBER, 500, 0, 3600 * 1000, NULL,
                               help_purge_delay_ms},
    [HS_OPT_RELEASE_DELAY_MS] = {"RELEASE_DELAY_MS", KIND_NUMBER, 1500, 0, 3600 * 1000, NULL,
                                 help_release_delay_ms},
    [HS_OPT_PURGE_BACKEND] = {"PURGE_BACKEND", KIND_CHOICE, HS_PURGE_BACKEND_MADVISE, 0, 1,
                              purge_backend_words, help_purge_backend},
    [HS_OPT_SPLIT_SPARSE] = {"SPLIT_SPARSE", KIND_CHOICE, 1, 0, 1, bool_words, help_split_sparse},
    [HS_OPT_RESERVE_MB] = {"RESERVE_MB", KIND_NUMBER, 4, 0, 1 << 20, NULL, help_reserve_mb},
    [HS_OPT_CACHE_MB] = {"CACHE_MB", KIND_NUMBER, 1024, 0, 1 << 20, NULL, help_cache_mb},
    [HS_OPT_HUGE_MB] = {"HUGE_MB", KIND_NUMBER, 32, 2, 1 << 20, NULL, help_huge_mb},
    [HS_OPT_NUMA] = {"NUMA", KIND_CHOICE, 0, 0, 1, numa_words, help_numa},
    [HS_OPT_NUMA_NODES] = {"NUMA_NODES", KIND_NUMBER, 0, 0, HS_MAX_NODES, NULL, help_numa_nodes},
    [HS_OPT_CROWD_THREADS] = {"CROWD_THREADS", KIND_NUMBER, 16, 0, 1 << 20, NULL,
                              help_crowd_threads},
};

HS_START_STATE int64_t hs_option_values[HS_OPT_COUNT];
HS_START_STATE const char *hs_option_strings[HS_OPT_COUNT];

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

/* Whether text[0..len) is the whole of word (case counts). The library's
 * own loop, as is the environment's scan in hs_options_load: every process
 * runs them at start-up, and libc's string functions (getenv's strlen, the
 * strncat and strlen that built its names) can lie in a 64 KiB window of
 * libc's text that a program which never allocates does not touch itself:
 * `true` kept 64 KiB of libc text more than under glibc, where libc's
 * AVX-512 (evex) strlen and strncat share a window (libc at page 7). */
static bool same_text(const char *text, size_t len, const char *word)
{
    for (size_t i = 0; i < len; i++)
        if (word[i] != text[i]) return false; /* word's NUL differs from text's bytes */
    return word[len] == '\0';
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

/* Variables read besides the table's options. */
static const char *const other_names[] = {"PROFILE", "CONFIG", NULL};
#define OTHER_NAMES 2 /* other_names' entries before the NULL */
_Static_assert(sizeof other_names / sizeof *other_names == OTHER_NAMES + 1, "other_names");

static char upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }

/* Edit distance (insertions, deletions, substitutions; case ignored)
 * between name[0..len) and known, for "did you mean". */
HS_SELDOM static unsigned name_distance(const char *name, size_t len, const char *known)
{
    unsigned row[64];
    size_t known_len = strlen(known);
    if (len >= 64 || known_len >= 64) return 64;
    for (size_t j = 0; j <= known_len; j++) row[j] = (unsigned)j;
    for (size_t i = 1; i <= len; i++) {
        unsigned diagonal = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= known_len; j++) {
            unsigned above = row[j];
            unsigned best = diagonal + (upper(name[i - 1]) != upper(known[j - 1]));
            if (above + 1 < best) best = above + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[known_len];
}

/* The known name (an option's, or PROFILE/CONFIG when `others`) closest to
 * name[0..len). */
HS_SELDOM static const char *closest_name(const char *name, size_t len, bool others)
{
    const char *best = option_table[0].name;
    unsigned best_distance = name_distance(name, len, best);
    for (int o = 1; o < HS_OPT_COUNT; o++) {
        unsigned d = name_distance(name, len, option_table[o].name);
        if (d < best_distance) best = option_table[o].name, best_distance = d;
    }
    for (int i = 0; others && other_names[i]; i++) {
        unsigned d = name_distance(name, len, other_names[i]);
        if (d < best_distance) best = other_names[i], best_distance = d;
    }
    return best;
}

/* At most 63 bytes of text[0..len), for a message. */
HS_SELDOM static const char *shown(const char *text, size_t len, char buf[64])
{
    size_t n = len < 63 ? len : 63;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return buf;
}

/* An option's name as config files spell it (lower case), into buf. */
HS_SELDOM static const char *lower(const char *name, char buf[64])
{
    size_t i = 0;
    for (; name[i] && i < 63; i++)
        buf[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
    buf[i] = '\0';
    return buf;
}

/* "auto, hugetlb, thp, base" or "whole numbers from 0 to 3600000". */
HS_SELDOM static void describe_valid(const option_desc_t *d, hs_text_t *t)
{
    if (d->kind == KIND_CHOICE) {
        for (int i = 0; d->words[i]; i++) hs_text_format(t, "%s%s", i ? ", " : "", d->words[i]);
    } else if (d->kind == KIND_NUMBER) {
        hs_text_format(t, "whole numbers from %lld to %lld", (long long)d->min, (long long)d->max);
    } else {
        hs_text_format(t, "text of up to %zu bytes", sizeof string_store - string_store_used - 1);
    }
}

/* The option's value now, as a config file would spell it. */
HS_SELDOM static void describe_value(int o, hs_text_t *t)
{
    const option_desc_t *d = &option_table[o];
    if (d->kind == KIND_CHOICE)
        hs_text_str(t, d->words[hs_option_values[o]]);
    else if (d->kind == KIND_NUMBER)
        hs_text_int(t, (long long)hs_option_values[o]);
    else
        hs_text_str(t, hs_option_strings[o] ? hs_option_strings[o] : "(unset)");
}

/* The message for a value set_option could not take. Code for the rare
 * case, apart (HS_SELDOM): the text every process runs at start-up stays a
 * few hundred bytes shorter. */
HS_SELDOM HS_NOINLINE static void reject_value(int o, const char *value, size_t len,
                                               const char *origin)
{
    const option_desc_t *d = &option_table[o];
    char valid[256], kept[96], value_text[64];
    hs_text_t valid_text = hs_text(valid, sizeof valid), kept_text = hs_text(kept, sizeof kept);
    describe_valid(d, &valid_text);
    describe_value(o, &kept_text);
    /* Named as the source spells it: HUGESLAB_BACKING, or backing in a file. */
    bool from_environment = strcmp(origin, "the environment") == 0;
    char name[64];
    hs_message("ignoring %s%s=%s from %s: valid values are %s; keeping %s",
               from_environment ? "HUGESLAB_" : "",
               from_environment ? d->name : lower(d->name, name), shown(value, len, value_text),
               origin, valid, kept);
}

/* Sets option o from the text value[0..len); `origin` names the source in
 * the message for a bad value ("the environment", a profile or a file). */
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
            if (same_text(value, len, d->words[i])) {
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
    reject_value(o, value, len, origin);
}

HS_SELDOM static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* KEY=VALUE lines; '#' starts a comment. */
HS_SELDOM static void apply_config_text(const char *text, const char *origin)
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
                char line[64], closest[64];
                const char *name = closest_name(p, (size_t)(key_end - p), false);
                hs_message("ignoring line '%s' in %s (not KEY=VALUE with a known key); "
                           "the closest key is '%s'",
                           shown(p, (size_t)(end - p), line), origin, lower(name, closest));
            } else {
                set_option(o, value, (size_t)(end - value), origin);
            }
        }
        p = *line_end ? line_end + 1 : line_end;
    }
}

/* The file is read into pages mapped for it and unmapped after (its values
 * are copied to string_store): as a static buffer, its 16 KiB of .bss stood
 * between variables every process writes at start-up, a page apart. */
HS_SELDOM HS_NOINLINE static void apply_config_file(const char *path)
{
    const size_t size = 16384;
    char *text = os_map_pages(size);
    ssize_t len = text ? os_read_file(path, text, size) : -1;
    if (len < 0) {
        hs_message("cannot read HUGESLAB_CONFIG=%s; using the defaults", path);
    } else if ((size_t)len == size - 1) {
        /* Cut there, its last line would have been applied half read
         * (cache_mb=1024 as cache_mb=10). */
        hs_message("ignoring HUGESLAB_CONFIG=%s: longer than %zu bytes; using the defaults", path,
                   size - 2);
    } else {
        apply_config_text(text, path);
    }
    if (text) os_unmap(text, size);
}

HS_SELDOM HS_NOINLINE static void apply_profile(const char *name)
{
    for (const hs_profile_t *p = hs_profiles; p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            apply_config_text(p->text, p->name);
            return;
        }
    }
    char valid[256];
    hs_text_t t = hs_text(valid, sizeof valid);
    for (const hs_profile_t *p = hs_profiles; p->name; p++)
        hs_text_format(&t, "%s%s", p == hs_profiles ? "" : ", ", p->name);
    hs_message("ignoring HUGESLAB_PROFILE=%s: valid profiles are %s; keeping the defaults", name,
               valid);
}

/* The option named name[0..len) (its HUGESLAB_ spelling, case counts as
 * for getenv), HS_OPT_COUNT + i for other_names[i], or -1. */
static int environment_name(const char *name, size_t len)
{
    for (int o = 0; o < HS_OPT_COUNT; o++)
        if (same_text(name, len, option_table[o].name)) return o;
    for (int i = 0; other_names[i]; i++)
        if (same_text(name, len, other_names[i])) return HS_OPT_COUNT + i;
    return -1;
}

/* One line for each HUGESLAB_* variable that names no option (a typo such
 * as HUGESLAB_STAT=1 would otherwise be ignored without a word). */
HS_SELDOM HS_NOINLINE static void warn_unknown_variables(void)
{
    for (char **e = os_environment(); e && *e; e++) {
        if (strncmp(*e, "HUGESLAB_", 9) != 0) continue;
        const char *name = *e + 9, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        /* Case counts here: getenv reads HUGESLAB_STATS, not HUGESLAB_stats. */
        if (environment_name(name, len) >= 0) continue;
        char text[64];
        hs_message("ignoring HUGESLAB_%s: no such option; the closest is HUGESLAB_%s",
                   shown(name, len, text), closest_name(name, len, true));
    }
}

void hs_options_load(void)
{
    for (int o = 0; o < HS_OPT_COUNT; o++) {
        hs_option_values[o] = option_table[o].default_value;
        hs_option_strings[o] = NULL;
    }
    /* One pass over the environment for every HUGESLAB_ variable, the first
     * of a name kept (getenv's choice); a name with no '=' is unset. */
    const char *found[HS_OPT_COUNT + OTHER_NAMES] = {0};
    size_t found_len[HS_OPT_COUNT + OTHER_NAMES] = {0};
    bool unknown = false;
    for (char **e = os_environment(); e && *e; e++) {
        const char *name = *e, *prefix = "HUGESLAB_";
        while (*prefix && *name == *prefix) name++, prefix++;
        if (*prefix) continue;
        /* One loop to the end, the first '=' noted on the way: gcc makes a
         * loop that only looks for the end into a call of strlen. */
        const char *eq = NULL, *end = name;
        for (; *end; end++)
            if (!eq && *end == '=') eq = end;
        int o = environment_name(name, (size_t)((eq ? eq : end) - name));
        if (o < 0) {
            unknown = true;
        } else if (eq && !found[o]) {
            found[o] = eq + 1;
            found_len[o] = (size_t)(end - eq - 1);
        }
    }
    const char *profile = found[HS_OPT_COUNT], *config = found[HS_OPT_COUNT + 1];
    if (profile && *profile) apply_profile(profile);
    if (config && *config) apply_config_file(config);
    for (int o = 0; o < HS_OPT_COUNT; o++)
        if (found[o]) set_option(o, found[o], found_len[o], "the environment");
    /* A statistics file asks for statistics. */
    if (hs_option_strings[HS_OPT_STATS_FILE] && *hs_option_strings[HS_OPT_STATS_FILE])
        hs_option_values[HS_OPT_STATS] = 1;
    if (unknown) warn_unknown_variables();
    hs_message_tag_process(hs_option_values[HS_OPT_VERBOSE] != 0);
}

HS_SELDOM void hs_options_print(void)
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
