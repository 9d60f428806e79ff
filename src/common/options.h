/* options: every tunable, read once at start-up from the environment as
 * HUGESLAB_<NAME>. A bad value gets one message on stderr and the default. */
#ifndef HS_OPTIONS_H
#define HS_OPTIONS_H

#include <stdint.h>

typedef enum hs_option_e {
    HS_OPT_VERBOSE,          /* print the effective options at start-up */
    HS_OPT_STATS,            /* print statistics at exit */
    HS_OPT_BACKING,          /* auto | thp | base: how SuperSlabs get their pages */
    HS_OPT_CACHE_MB,         /* empty SuperSlabs and large runs kept for reuse, MiB */
    HS_OPT_HUGE_MB,          /* blocks of this size or more get a mapping of their own */
    HS_OPT_COUNT
} hs_option_t;

/* Values of HUGESLAB_BACKING. */
enum { HS_BACKING_AUTO = 0, HS_BACKING_THP = 1, HS_BACKING_BASE = 2 };

void hs_options_load(void);
void hs_options_print(void);

extern int64_t hs_option_values[HS_OPT_COUNT];
static inline int64_t hs_option(hs_option_t o) { return hs_option_values[o]; }

#endif
