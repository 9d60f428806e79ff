/* What segment.c and purge.c share; nothing outside segment/ includes it. */
#ifndef HS_SEGMENT_INTERNAL_H
#define HS_SEGMENT_INTERNAL_H

#include "segment/segment.h"

/* The clock of idle times and purge deadlines (os_now_ms unless a test set
 * another with seg_set_clock). */
extern uint64_t (*seg_clock)(void);
HS_INLINE uint64_t seg_now_ms(void) { return seg_clock(); }
#include "thp/thp.h"

/* How idle memory goes back to the kernel. The purge thread reads it from
 * the options once per pass (seg_purge_policy) and malloc_trim makes its
 * own (everything, at once, with MADV_DONTNEED); every step of a pass gets
 * the same struct, so no step reads an option of its own. */
typedef struct seg_purge_policy_s {
    uint64_t purge_after_ms;        /* idle time before the first stage
                                       (HUGESLAB_PURGE_DELAY_MS) */
    uint64_t release_after_ms;      /* idle time after which memory skips the lazy
                                       stage; the reserve waits this long too */
    uint64_t lazy_release_after_ms; /* how long lazily freed memory waits for
                                       MADV_DONTNEED (HUGESLAB_RELEASE_DELAY_MS) */
    size_t reserve_bytes;           /* newest idle SuperSlabs per node that wait
                                       release_after_ms (HUGESLAB_RESERVE_MB) */
    size_t cache_cap_bytes;         /* idle memory never held beyond this
                                       (HUGESLAB_CACHE_MB) */
    bool dontneed;                  /* no lazy stage: MADV_DONTNEED at once */
    bool uring;                     /* batch the advice through io_uring (the purge
                                       thread's ring: never on another thread) */
    bool everything;                /* take every idle byte, whatever its age */
} seg_purge_policy_t;

/* The purge thread's policy, from the options as they are now. */
seg_purge_policy_t seg_purge_policy(void);

/* A SuperSlab or run seg_take_idle took, with what the pool knew of it. */
typedef struct seg_taken_s {
    seg_superslab_t *ss; /* out of every list, for its pages to go back */
    bool release_now;    /* for good at once (MADV_DONTNEED, no lazy stage),
                            whatever its age: realloc's move emptied it
                            (seg_mark_outgrown), and its block will not come
                            back to the slabs */
} seg_taken_t;
/* Takes idle memory out of the pools for purging, as `policy` says:
 * SuperSlabs idle for at least purge_after_ms beyond the per-node reserve
 * (the newest), those of the reserve idle for release_after_ms, and beyond
 * that whatever exceeds the cache limit, oldest first; `everything` takes
 * all of it; a SuperSlab marked by seg_mark_outgrown goes whatever its age,
 * with release_now. Taken SuperSlabs are in no list, and those of slabs
 * unknown to the registry (a run stays known as a freed one), until given
 * to seg_store_purged or seg_unmap_idle. *next_due is set to when the next
 * one will be due (UINT64_MAX for none). Returns how many were taken. */
unsigned seg_take_idle(const seg_purge_policy_t *policy, uint64_t now_ms, seg_taken_t *out,
                       unsigned max, uint64_t *next_due);
/* A taken SuperSlab whose pages went back with madvise: kept mapped, for
 * reuse at the same address. (Its header may read as zero from now on.)
 * `lazy`: the advice was MADV_FREE, so the pages may still count in RSS and
 * seg_take_lazy will hand it out again for MADV_DONTNEED. */
void seg_store_purged(seg_superslab_t *ss, unsigned node, thp_backing_t backing,
                      unsigned memory_node, bool lazy);

/* A purged SuperSlab taken out of its pool, with what its header may no
 * longer say. */
typedef struct seg_purged_s {
    seg_superslab_t *ss;
    unsigned node;         /* pool it goes back to */
    thp_backing_t backing; /* THP or base */
    unsigned memory_node;  /* node its pages are bound to */
} seg_purged_t;
/* Marks ss due at the purge thread's next pass, whatever its age and the
 * reserve, for MADV_DONTNEED (seg_take_idle hands it out with release_now),
 * if it is pool `node`'s newest idle SuperSlab
 * (and not hugetlb): false when it is not, which is known without reading
 * its header (the purge thread may have taken it, and its pages, already). */
bool seg_mark_outgrown(seg_superslab_t *ss, unsigned node);
/* Takes SuperSlabs lazily freed at least min_lazy_ms ago, oldest first, out
 * of their pools (to be released with MADV_DONTNEED and given back to
 * seg_store_purged). *next_due: when the next one falls due (UINT64_MAX for
 * none). Returns how many were taken. */
unsigned seg_take_lazy(uint64_t now_ms, uint64_t min_lazy_ms, seg_purged_t *out, unsigned max,
                       uint64_t *next_due);
/* Free units taken out of a SuperSlab in use, for their pages to go back
 * (seg_take_free_units), and given back with seg_return_free_units. */
typedef struct seg_free_units_s {
    seg_superslab_t *ss; /* the SuperSlab, in use */
    uint64_t units;      /* the units taken: in no slab, and not free meanwhile */
    bool huge_given_up;  /* a THP SuperSlab's (huge_sparse in segment.c): hint it to
                            base pages before its pages go, or khugepaged makes it
                            a whole huge page again */
} seg_free_units_t;
/* Takes the free units of SuperSlabs whose pages may be given back without
 * splitting a huge page (base pages, or the small heap's first SuperSlabs
 * while they are deferred), unchanged for policy->purge_after_ms (any age with
 * `everything`) and not given back since; and those of THP SuperSlabs with
 * at most a quarter of their units in slabs, unchanged for
 * policy->release_after_ms while no slab was cut on their node for as long
 * (a heap growing again refills them fault-free), which are base pages from
 * then on. *next_due: when the next falls
 * due (UINT64_MAX for none). Returns how many SuperSlabs it took units of. */
unsigned seg_take_free_units(const seg_purge_policy_t *policy, uint64_t now_ms,
                             seg_free_units_t *out, unsigned max, uint64_t *next_due);
/* Puts taken units back, their pages given back (MADV_DONTNEED); a
 * SuperSlab left empty meanwhile goes to the idle list. */
void seg_return_free_units(const seg_free_units_t *taken);
/* The backing a SuperSlab whose pages all go back with MADV_DONTNEED is
 * stored with: THP again (hinted so) for one of base pages whose huge page
 * was given up for its free units, while THP is wanted; else `backing`. */
thp_backing_t seg_release_backing(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node);
/* A taken SuperSlab or run that goes back whole (hugetlb pages, runs). */
void seg_unmap_idle(seg_superslab_t *ss, size_t size, thp_backing_t backing);

/* Tells the purge thread there is idle memory (starting it the first time,
 * once the calling thread holds no lock). Called with no segment lock held. */
void purge_notify(bool urgent);
/* Whether the purge thread has been started (relaxed: a hint). */
bool purge_started(void);
void purge_fork_child(void);
void purge_shutdown(void);
bool purge_run_idle_work(void);

/* Figures the purge thread keeps. */
extern _Atomic uint64_t seg_stat_purge_calls;
extern _Atomic uint64_t seg_stat_bytes_purged;

#endif
