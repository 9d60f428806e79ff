/* options: every tunable, read once at start-up. Precedence, lowest first:
 * built-in default, the profile (HUGESLAB_PROFILE=name, from configs/ built
 * into the library) or a config file (HUGESLAB_CONFIG=path), then the
 * variables HUGESLAB_<NAME>. A bad name or value gets one message on stderr
 * (an unknown name: the closest valid one; a bad value: the valid ones and
 * the value kept) and is ignored; it never stops the program. */
#ifndef HS_OPTIONS_H
#define HS_OPTIONS_H

#include <stdint.h>

typedef enum hs_option_e {
    HS_OPT_VERBOSE,           /* print the effective options at start-up */
    HS_OPT_STATS,             /* print statistics at exit */
    HS_OPT_STATS_FILE,        /* where the statistics go (text, *.json, *.prom); implies STATS */
    HS_OPT_STATS_INTERVAL_MS, /* rewrite the statistics file this often; 0 = at exit only */
    HS_OPT_BACKING,           /* auto | hugetlb | thp | base */
    HS_OPT_PREFAULT,          /* pre-fault base-page SuperSlabs (MADV_POPULATE_WRITE) */
    HS_OPT_PURGE,             /* free | dontneed: how idle memory goes back */
    HS_OPT_PURGE_DELAY_MS,    /* idle time before memory goes back to the kernel */
    HS_OPT_RELEASE_DELAY_MS,  /* then, time before MADV_FREE'd memory leaves RSS */
    HS_OPT_PURGE_BACKEND,     /* madvise | uring */
    HS_OPT_SPLIT_SPARSE,      /* give up the huge page of a sparse, quiet THP SuperSlab */
    HS_OPT_RESERVE_MB,        /* empty SuperSlabs per node never purged */
    HS_OPT_CACHE_MB,          /* empty SuperSlabs and runs kept before purging at once */
    HS_OPT_HUGE_MB,           /* blocks of this size or more get a mapping of their own */
    HS_OPT_NUMA,              /* auto | off: a pool per NUMA node and mbind, or one pool */
    HS_OPT_NUMA_NODES,        /* use at most this many NUMA nodes; 0 = all */
    HS_OPT_CROWD_THREADS,     /* threads from which on new threads' first blocks share slabs */
    HS_OPT_COUNT
} hs_option_t;

/* Values of HUGESLAB_BACKING. */
enum { HS_BACKING_AUTO = 0, HS_BACKING_HUGETLB = 1, HS_BACKING_THP = 2, HS_BACKING_BASE = 3 };
/* Values of HUGESLAB_PURGE. */
enum { HS_PURGE_FREE = 0, HS_PURGE_DONTNEED = 1 };
/* Values of HUGESLAB_PURGE_BACKEND. */
enum { HS_PURGE_BACKEND_MADVISE = 0, HS_PURGE_BACKEND_URING = 1 };

void hs_options_load(void);
void hs_options_print(void);

extern int64_t hs_option_values[HS_OPT_COUNT];
extern const char *hs_option_strings[HS_OPT_COUNT];
static inline int64_t hs_option(hs_option_t o) { return hs_option_values[o]; }
/* For string options; NULL when unset. */
static inline const char *hs_option_string(hs_option_t o) { return hs_option_strings[o]; }

/* Built-in profiles, generated from the files in configs/. */
typedef struct hs_profile_s {
    const char *name;
    const char *text;
} hs_profile_t;
extern const hs_profile_t hs_profiles[];

#endif
