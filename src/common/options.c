/* The options table. Read with getenv() only: it does not allocate, so
 * loading options is safe during the first malloc of the process. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

typedef struct option_desc_s {
    const char *name;        /* HUGESLAB_<name> */
    int64_t default_value;   /* used when unset or invalid */
    int64_t min, max;        /* accepted range for numbers */
    const char *const *words;/* for choice options: accepted words, index = value */
    const char *help;        /* one line for the README and HUGESLAB_VERBOSE */
} option_desc_t;

static const char *const bool_words[] = {"0", "1", NULL};
static const char *const backing_words[] = {"auto", "thp", "base", NULL};

static const option_desc_t option_table[HS_OPT_COUNT] = {
    [HS_OPT_VERBOSE] = {"VERBOSE", 0, 0, 1, bool_words, "print the effective options"},
    [HS_OPT_STATS] = {"STATS", 0, 0, 1, bool_words, "print statistics at exit"},
    [HS_OPT_BACKING] = {"BACKING", HS_BACKING_AUTO, 0, 2, backing_words,
                        "how SuperSlabs get pages: auto, thp or base"},
    [HS_OPT_CACHE_MB] = {"CACHE_MB", 64, 0, 1 << 20, NULL,
                         "MiB of empty SuperSlabs and large runs kept for reuse"},
    [HS_OPT_HUGE_MB] = {"HUGE_MB", 32, 2, 1 << 20, NULL,
                        "blocks of this many MiB or more get a mapping of their own"},
};

int64_t hs_option_values[HS_OPT_COUNT];

static bool parse_number(const char *s, int64_t *out)
{
    if (!*s) return false;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

static void load_one(hs_option_t o)
{
    const option_desc_t *d = &option_table[o];
    char var[64] = "HUGESLAB_";
    strncat(var, d->name, sizeof var - strlen(var) - 1);
    hs_option_values[o] = d->default_value;
    const char *s = getenv(var);
    if (!s) return;
    if (d->words) {
        for (int i = 0; d->words[i]; i++) {
            if (strcmp(s, d->words[i]) == 0) {
                hs_option_values[o] = i;
                return;
            }
        }
    } else {
        int64_t v;
        if (parse_number(s, &v) && v >= d->min && v <= d->max) {
            hs_option_values[o] = v;
            return;
        }
    }
    hs_message("ignoring %s=%s (not a valid value); using the default", var, s);
}

void hs_options_load(void)
{
    for (int o = 0; o < HS_OPT_COUNT; o++) load_one((hs_option_t)o);
}

void hs_options_print(void)
{
    for (int o = 0; o < HS_OPT_COUNT; o++) {
        const option_desc_t *d = &option_table[o];
        int64_t v = hs_option_values[o];
        if (d->words) hs_message("option %s=%s (%s)", d->name, d->words[v], d->help);
        else hs_message("option %s=%lld (%s)", d->name, (long long)v, d->help);
    }
}
