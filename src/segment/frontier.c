/* frontier.c: the huge page where a program stopped writing a large block.
 *
 * A THP run's chunk becomes a huge page at its first touch, so the chunk
 * where a program stops writing a block (the end of the data it put there,
 * or the block's own end) is resident whole: zstd -12's 64 MiB window
 * buffer, filled to 16 MiB, kept 1.7 MiB of zeros in its ninth chunk and
 * its 48 MiB table 1.6 MiB past its end; bzip2 -9's two 3.6 MB arrays 2
 * MiB between them. Which chunk that will be is not known when the run is
 * mapped (bench/README.md, "Runs of 2 MiB chunks"), so the purge thread
 * looks, every FRONTIER_LOOK_MS while anything moves:
 * - at each live THP run (the frontier list, newest first), for a chunk
 *   mapped whole as a huge page beside one that is not mapped (or the
 *   run's end, or its chunks on base pages), with FRONTIER_MIN_ZEROS to
 *   511 pages of zeros on that side: at least one page of it written, so
 *   not a chunk the program has only just reached;
 * - if that chunk and its pages of zeros are the same as at the run's last
 *   look (the program has stopped writing there), it splits the huge page:
 *   the chunk is hinted to base pages (or khugepaged would collapse it
 *   again) and MADV_COLD over one page splits it. Since Linux 6.12 the
 *   kernel maps each subpage that holds only zeros to its shared zero page
 *   as it splits, so those leave RSS; every subpage that holds data stays
 *   as it is, whatever the program writes meanwhile. Older kernels free
 *   nothing at a split: the list stays empty there.
 * RSS falls at the split; the peak only where the program grows on after
 * it (zstd 2.1 MiB lower, sort and jq 1-1.4 MiB), not where the chunk's
 * first touch was the peak (bzip2's arrays).
 * A write to such a page later costs a fault. Each look counts the pages
 * of split chunks that left the zero page since the last (PAGEMAP_SCAN);
 * after FRONTIER_REFAULTS_MAX of them no more chunks are split in the
 * process, so a program that comes back to what it left pays at most that
 * many faults beyond the bound of one fault per chunk. One split chunk a
 * run at a time (frontier_split in its header); one the program fills
 * again is hinted huge again, and the run may have another split.
 *
 * The run's owner and the look: the purge thread looks at a listed run only
 * while it is `pinned`, and its owner takes it off the list before anything
 * else happens to it (free, realloc: seg_frontier_unlist), waiting for the
 * look at it to end. So a look never reads a run that is being unmapped or
 * moved, and hints nothing that the owner's thread hints. The list and the
 * next run to look at (`resume`) are guarded by the run cache's lock, held
 * across no system call; a pin is set under it but let go without it, so
 * that an owner in the fork window (every lock of the fork its own) waits
 * only for the look itself, which takes no lock.
 *
 * HS_APART_LATE throughout: only a process with a large block runs it. */
#include "os/os.h"
#include "segment/segment_internal.h"

/* Between looks while a frontier moved or a run came. */
#define FRONTIER_LOOK_MS 100
/* The longest wait: doubled from FRONTIER_LOOK_MS at each look that found
 * nothing new. */
#define FRONTIER_LOOK_MAX_MS 3200
/* Pages of zeros worth a split (256 KiB). */
#define FRONTIER_MIN_ZEROS 64
/* Pages of split chunks written again before splitting stops for the
 * process. */
#define FRONTIER_REFAULTS_MAX 512
/* Runs a look reads; the next look goes on from there. */
#define FRONTIER_RUNS_PER_LOOK 64
#define PAGES_PER_CHUNK (HS_SUPERSLAB_SIZE / 4096)
/* Runs of pages a PAGEMAP_SCAN call returns. */
#define SCAN_BATCH 32

static struct frontier_state_s {
    seg_superslab_t *live;             /* run cache lock: the listed runs, newest first */
    seg_superslab_t *resume;           /* run cache lock: the run the look takes next (NULL:
                                          the newest, at the next look) */
    _Atomic(seg_superslab_t *) pinned; /* the run being looked at, or NULL: set under the
                                          run cache lock, cleared by the look without it */
    _Atomic int pinned_by;             /* the process whose purge thread set pinned */
    _Atomic int enabled;               /* 0: not known yet; 1: on; -1: off (option, kernel) */
    _Atomic bool listed_since;         /* a run was listed since the last look began */
    uint64_t next_look_ms;             /* purge thread: when the next look is due; 0: none */
    uint64_t wait_ms;                  /* purge thread: the wait after the last look */
    uint64_t refaults;                 /* purge thread: pages of split chunks written again */
} frontier;

/* A frontier a look found: the chunk, which of its ends holds the zeros,
 * and how many, in 32 bits; 0: none. A run's frontier_seen holds the
 * first two in comes_before's order (a block written from both ends has
 * more than one: sort's text from the start, its line records from the
 * end), each split only once it is the same at two looks in a row. */
#define SEEN(chunk, low, zeros) (((uint32_t)(chunk) + 1) << 11 | (uint32_t)(low) << 10 | (zeros))
#define SEEN_CHUNK(seen) ((size_t)(((seen) >> 11) - 1))
#define SEEN_LOW(seen) ((bool)((seen) >> 10 & 1))
#define SEEN_ZEROS(seen) ((unsigned)((seen)&1023))
/* Chunks of a run SEEN can name: 2^21 (4 TiB). */
#define SEEN_CHUNKS_MAX ((size_t)1 << 21)

/* Whether splits can free anything here: HUGESLAB_SPLIT_SPARSE (on by
 * default: a huge page is split where most of it holds nothing) and a
 * kernel that maps the zeros of a split huge page to the zero page (6.12). */
HS_APART_LATE static bool frontier_enabled(void)
{
    int on = atomic_load_explicit(&frontier.enabled, memory_order_relaxed);
    if (on == 0) {
        on = hs_option(HS_OPT_SPLIT_SPARSE) && os_kernel_at_least(6, 12) ? 1 : -1;
        atomic_store_explicit(&frontier.enabled, on, memory_order_relaxed);
    }
    return on > 0;
}

HS_APART_LATE void seg_frontier_list(seg_superslab_t *run)
{
    if (run->backing != THP_BACKING_THP || !frontier_enabled()) return;
    run->frontier_seen = 0;
    run->frontier_split = 0;
    hs_lock(&seg_state.run_cache_lock);
    list_push(&frontier.live, run);
    run->frontier_listed = 1;
    hs_unlock(&seg_state.run_cache_lock);
    atomic_store_explicit(&frontier.listed_since, true, memory_order_relaxed);
    purge_notify_frontier(FRONTIER_LOOK_MS);
}

/* Whether the pin was set in this process: a fork's child has the parent's
 * pin and no purge thread to let go of it. Until seg_frontier_fork_child
 * clears it, handlers of the child that ran before the library's (the
 * fork window, common/locks.h) would have waited for it for good. */
HS_APART_LATE static bool pinned_here(void)
{
    return atomic_load_explicit(&frontier.pinned_by, memory_order_relaxed) == os_pid();
}

HS_APART_LATE void seg_frontier_unlist(seg_superslab_t *run, seg_frontier_end_t end)
{
    if (!run->frontier_listed) return;
    hs_lock(&seg_state.run_cache_lock);
    if (frontier.resume == run) frontier.resume = run->next;
    list_remove(&frontier.live, run);
    run->frontier_listed = 0;
    hs_unlock(&seg_state.run_cache_lock);
    /* Off the list, no look takes it again; one under way ends within a
     * scan of its pages and a read of two chunks. */
    while (atomic_load_explicit(&frontier.pinned, memory_order_acquire) == run && pinned_here())
        os_yield();
    size_t split = run->frontier_split;
    run->frontier_split = 0;
    if (!split || end == SEG_FRONTIER_UNMAPPED) return;
    char *chunk = (char *)run + ((split - 1) << HS_SUPERSLAB_SHIFT);
    /* Hinted as the rest of the run again (mremap moves one mapping only),
     * and one huge page again, as if never split: emptied for a cached
     * run, whose next block gets it at its first touch (but the run's
     * first chunk, whose header page stays, below: there the next block
     * faults the pages it writes one by one until khugepaged collapses
     * them); made of its pages for a resized one, whose program may write
     * on past where it stopped (a block grown by realloc, freed and taken
     * again from the run cache took 397 faults to fill, its split chunk on
     * base pages). */
    thp_allow_huge(chunk, HS_SUPERSLAB_SIZE);
    if (end != SEG_FRONTIER_CACHED) {
        thp_collapse(chunk, HS_SUPERSLAB_SIZE);
        return;
    }
    /* Never the header's page: the cache and the purge read the run's size,
     * kind and backing there. Given back, it read as zeros, and the purge
     * took a cached run of one chunk for a SuperSlab of slabs and put it on
     * a purged stack, the registry still naming it a run (debug_fuzz:
     * "invariant broken: seg_chunk_kind(base) == SEG_CHUNK_NONE"). */
    size_t header = split == 1 ? os_page_size() : 0;
    seg_give_back_now(chunk + header, HS_SUPERSLAB_SIZE - header);
}

/* Pages that hold only zeros at one end of a chunk mapped whole, counted
 * inwards up to the first that does not, up to `most`. The program may be
 * writing them meanwhile: what is read only decides whether to split, and
 * the kernel keeps whatever a split finds written. So a race by design,
 * which ThreadSanitizer is told not to look at (it reported it in
 * stress_tsan, whose blocks of megabytes the look read while their threads
 * wrote). */
HS_APART_LATE __attribute__((no_sanitize("thread"))) static unsigned
zeros_at(const char *chunk, bool low, unsigned most)
{
    unsigned n = 0;
    while (n < most) {
        const volatile uint64_t *words =
            (const volatile uint64_t *)(chunk + 4096 * (low ? n : PAGES_PER_CHUNK - 1 - n));
        uint64_t any = 0;
        for (unsigned w = 0; w < 4096 / sizeof(uint64_t); w++) any |= words[w];
        if (any) break;
        n++;
    }
    return n;
}

/* Whether frontier a comes before b: at the high end of its chunk first,
 * then nearer the run's start. A program that fills a buffer from its
 * start stops there for good; sort writes its line records downwards from
 * its buffer's end, paused and went on (the chunk of its records split
 * 0.34 s after its start, the frontier with the most zeros, was filled
 * again by 1.06 s, 476 faults), while the chunk where its text ended
 * stayed as it was to the end. */
HS_APART_LATE static bool comes_before(uint32_t a, uint32_t b)
{
    if (SEEN_LOW(a) != SEEN_LOW(b)) return !SEEN_LOW(a);
    return SEEN_CHUNK(a) < SEEN_CHUNK(b);
}

/* A chunk mapped whole beside pages that are not: kept in best[0..1] (in
 * the order comes_before says) when it comes before one of them, within a
 * split's bounds: at least one page written by the program, or it is a
 * chunk the program has only just reached. The run's first chunk is a huge
 * page from its header's write, which is not the program's: there the
 * pages after the header's count, and the header's own page is never read
 * (the list's links change there meanwhile). */
HS_APART_LATE static void consider(uintptr_t base, uintptr_t chunk_at, bool low, uint32_t best[2])
{
    size_t chunk = (chunk_at - base) >> HS_SUPERSLAB_SHIFT;
    if (chunk >= SEEN_CHUNKS_MAX) return;
    unsigned pages = chunk == 0 ? PAGES_PER_CHUNK - 1 : PAGES_PER_CHUNK;
    unsigned zeros = zeros_at((const char *)chunk_at, low, pages);
    if (zeros < FRONTIER_MIN_ZEROS || zeros >= pages) return;
    uint32_t seen = SEEN(chunk, low, zeros);
    if (!best[0] || comes_before(seen, best[0])) {
        best[1] = best[0];
        best[0] = seen;
    } else if (!best[1] || comes_before(seen, best[1])) {
        best[1] = seen;
    }
}

/* Reads a pinned run's pages as the kernel maps them, up to its chunks on
 * base pages: the first two frontier chunks (best, 0: none),
 * and the split chunk's pages on the zero page (*zero_pages). False when
 * the kernel cannot say. */
HS_APART_LATE static bool scan_run(int fd, const seg_superslab_t *run, uint32_t best[2],
                                   uint64_t *zero_pages)
{
    os_page_run_t runs[SCAN_BATCH];
    uintptr_t base = (uintptr_t)run;
    uintptr_t at = base,
              end = base + (run->base_tail ? (size_t)(run->base_tail - 1) << HS_SUPERSLAB_SHIFT
                                           : run->run_size);
    uintptr_t split_at =
        run->frontier_split ? base + ((size_t)(run->frontier_split - 1) << HS_SUPERSLAB_SHIFT) : 0;
    uintptr_t mapped_to = base; /* end of the last run of mapped pages */
    uintptr_t huge_end = 0;     /* end of a huge run whose neighbour is not known yet */
    best[0] = best[1] = 0;
    *zero_pages = 0;
    while (at < end) {
        uintptr_t scanned_to;
        int n = os_scan_present(fd, (void *)at, end - at, runs, SCAN_BATCH, &scanned_to);
        if (n < 0) return false;
        for (int i = 0; i < n; i++) {
            const os_page_run_t *r = &runs[i];
            if (huge_end && r->start != huge_end)
                consider(base, huge_end - HS_SUPERSLAB_SIZE, false, best);
            huge_end = 0;
            /* A huge run of the zero page (read, never written) holds no
             * RSS to give back. */
            if ((r->kinds & (OS_PAGES_HUGE | OS_PAGES_ZERO)) == OS_PAGES_HUGE) {
                /* Never the header chunk's low end. */
                if (r->start != mapped_to && r->start != base) consider(base, r->start, true, best);
                huge_end = r->end;
            }
            if ((r->kinds & OS_PAGES_ZERO) && split_at) {
                uintptr_t lo = r->start > split_at ? r->start : split_at;
                uintptr_t split_end = split_at + HS_SUPERSLAB_SIZE;
                uintptr_t hi = r->end < split_end ? r->end : split_end;
                if (lo < hi) *zero_pages += (hi - lo) / 4096;
            }
            mapped_to = r->end;
        }
        if (n < SCAN_BATCH || scanned_to <= at) break;
        at = scanned_to;
    }
    /* A huge run that ends where the scan does, or before pages not mapped. */
    if (huge_end) consider(base, huge_end - HS_SUPERSLAB_SIZE, false, best);
    return true;
}

/* Whether frontier `f` was found by the look a pair of frontiers says. */
HS_APART_LATE static bool found_in(uint32_t f, uint64_t pair)
{
    return f == (uint32_t)pair || f == (uint32_t)(pair >> 32);
}

/* The look at one pinned run. True when what it found differs from its
 * last look (a frontier that moved, a split). */
HS_APART_LATE static bool look_at(int fd, seg_superslab_t *run)
{
    uint32_t best[2];
    uint64_t zero_pages;
    if (!scan_run(fd, run, best, &zero_pages)) return false;
    uint64_t now = (uint64_t)best[1] << 32 | best[0];
    if (run->frontier_split) {
        /* Written again since the last look: a fault each. */
        if (run->frontier_zero_pages != UINT64_MAX && zero_pages < run->frontier_zero_pages)
            frontier.refaults += run->frontier_zero_pages - zero_pages;
        run->frontier_zero_pages = zero_pages;
        if (run->frontier_zero_pages >= FRONTIER_MIN_ZEROS) return false;
        /* Filled again: the program was not done there. Hinted as the rest
         * of the run (khugepaged may make it one page again, which costs no
         * RSS now), and another chunk may be split. */
        thp_allow_huge((char *)run + ((size_t)(run->frontier_split - 1) << HS_SUPERSLAB_SHIFT),
                       HS_SUPERSLAB_SIZE);
        run->frontier_split = 0;
        run->frontier_seen = 0;
        return true;
    }
    uint64_t seen = run->frontier_seen;
    run->frontier_seen = now;
    if (frontier.refaults >= FRONTIER_REFAULTS_MAX) return now != seen;
    /* Of the two, the first found as it is now at the last look. */
    uint32_t still = 0;
    for (int i = 0; i < 2 && !still; i++)
        if (best[i] && found_in(best[i], seen)) still = best[i];
    if (!still) return now != seen;
    char *chunk = (char *)run + (SEEN_CHUNK(still) << HS_SUPERSLAB_SHIFT);
    run->frontier_split = (uint32_t)SEEN_CHUNK(still) + 1;
    run->frontier_zero_pages = UINT64_MAX;
    thp_defer_huge(chunk, HS_SUPERSLAB_SIZE);
    thp_split_huge(SEEN_LOW(still) ? chunk : chunk + HS_SUPERSLAB_SIZE - 4096, 4096);
    return true;
}

/* One look, at up to FRONTIER_RUNS_PER_LOOK listed runs from `resume` on
 * (the next look goes on from where this one stopped). True when it should
 * come again soon: something moved. */
HS_APART_LATE static bool look(void)
{
    int fd = os_open_pagemap();
    if (fd < 0) return false;
    bool moved = atomic_exchange_explicit(&frontier.listed_since, false, memory_order_relaxed);
    atomic_store_explicit(&frontier.pinned_by, os_pid(), memory_order_relaxed);
    hs_lock(&seg_state.run_cache_lock);
    seg_superslab_t *run = frontier.resume ? frontier.resume : frontier.live;
    for (unsigned n = 0; run && n < FRONTIER_RUNS_PER_LOOK; n++) {
        atomic_store_explicit(&frontier.pinned, run, memory_order_relaxed);
        /* Its owner, unlisting it meanwhile, moves this on. */
        frontier.resume = run->next;
        hs_unlock(&seg_state.run_cache_lock);
        moved |= look_at(fd, run);
        atomic_store_explicit(&frontier.pinned, NULL, memory_order_release);
        hs_lock(&seg_state.run_cache_lock);
        run = frontier.resume;
    }
    frontier.resume = run;
    hs_unlock(&seg_state.run_cache_lock);
    os_close(fd);
    return moved;
}

HS_APART_LATE uint64_t seg_frontier_look_due(uint64_t now_ms)
{
    if (atomic_load_explicit(&frontier.listed_since, memory_order_relaxed) &&
        (!frontier.next_look_ms || frontier.wait_ms > FRONTIER_LOOK_MS)) {
        frontier.wait_ms = FRONTIER_LOOK_MS;
        frontier.next_look_ms = now_ms + FRONTIER_LOOK_MS;
    }
    if (!frontier.next_look_ms) return UINT64_MAX;
    if (now_ms < frontier.next_look_ms) return frontier.next_look_ms;
    /* Anything new: soon again. Nothing: twice as long each time, up to
     * FRONTIER_LOOK_MAX_MS; no run listed: no look until one is. */
    frontier.wait_ms = look() ? FRONTIER_LOOK_MS : 2 * frontier.wait_ms;
    if (frontier.wait_ms > FRONTIER_LOOK_MAX_MS) frontier.wait_ms = FRONTIER_LOOK_MAX_MS;
    hs_lock(&seg_state.run_cache_lock);
    bool any = frontier.live != NULL;
    hs_unlock(&seg_state.run_cache_lock);
    frontier.next_look_ms = any ? seg_now_ms() + frontier.wait_ms : 0;
    return any ? frontier.next_look_ms : UINT64_MAX;
}

HS_APART void seg_frontier_fork_child(void)
{
    /* A look under way stayed with the parent's purge thread; the child's
     * own starts with its first notification. */
    atomic_store_explicit(&frontier.pinned, NULL, memory_order_relaxed);
    frontier.next_look_ms = 0;
    frontier.wait_ms = 0;
    atomic_store_explicit(&frontier.listed_since, frontier.live != NULL, memory_order_relaxed);
}
