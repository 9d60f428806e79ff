/* small_heap.c: the small heap, a process's first SuperSlabs of slabs kept
 * on base pages under THP until the heap has grown (see below).
 * - small_heap[] holds at most SEG_SMALL_HEAP_MAX deferred SuperSlabs; one
 *   leaves it when the heap grows (hinted huge again where dense, else
 *   kept on base pages) or when it is unmapped (seg_small_heap_forget),
 *   never to be hinted once not ours. Idle, it may be purged and revived
 *   meanwhile, and stays.
 * - One thread takes a SuperSlab out as the heap grows: it marks the slot
 *   SLOT_LEAVING, hints it, and only then empties the slot. While marked,
 *   the SuperSlab is still held (seg_small_heap_holds: no run is made of
 *   it), no other thread hints it, the purge does not take it, and
 *   seg_small_heap_forget waits for the slot to empty before the range is
 *   unmapped.
 * - seg_small_heap_deferred is set while one may be deferred: tiny/ reads
 *   it on its refill path, so it is cleared once none is. */
#include "os/os.h"
#include "segment/segment_internal.h"

/* A small heap stays small under THP: the process's first SuperSlabs of
 * slabs get base pages, faulted as slabs are carved, so a program with a
 * few hundred KiB of blocks is not made resident by 2 MiB each. Python's
 * start-up has slabs in some 70 classes and fills the 64 units of its
 * first SuperSlab with 239 of its 512 pages touched; a second one made
 * both huge pages (17.3 MiB peak, against 14.7 on base pages).
 * The first is always deferred; a second too while the first holds fewer
 * than SEG_SMALL_HEAP_DENSE pages in memory (mincore): half of them. A
 * heap that runs out of units with half its pages untouched spreads thin
 * over many classes (Python: 239); one that has touched more will go on
 * to fill its SuperSlabs (bench_memory kv and larson: 321, 323), and a
 * second on base pages would cost it up to 512 faults more: it is deferred
 * only while the first leaves room under the budget, and becomes a huge
 * page when the heap grows (SEG_SMALL_HEAP_DENSE_ROOM). A third is
 * deferred while the two hold fewer than twice SEG_SMALL_HEAP_DENSE (or
 * they are dense and leave room), which the budget
 * below keeps them under: `git log -p` of this repository had its third
 * made a huge page with 476 pages in the first two (and 2 MiB resident
 * for 100 KiB of blocks in it at the end). A fourth likewise, while the
 * three hold fewer than three times that, which the budget keeps them
 * under too: `git blame README.md` of this repository (UTF-8 locale) ran
 * out of units in three with 437 pages in memory, most of its 4.4 MiB of
 * blocks in one-block slabs its arrays pass through, and its fourth, a
 * huge page then, held one unit (9.9 MiB peak against 7.8 with it
 * deferred; glibc 7.2). The heap has grown when a
 * SuperSlab comes to dense deferred ones, or when
 * the deferred ones come to hold SEG_SMALL_HEAP_FAULTS pages: tiny/ tells
 * of the pages its slabs carve (seg_small_heap_carved), and the kernel is
 * asked again each time the pages seen at the last look and those carved
 * since reach that budget, and at least SEG_SMALL_HEAP_LOOK_GAP were carved
 * since. Then the deferred ones that are dense are hinted back to huge
 * pages (khugepaged collapses them; until then their untouched pages
 * still fault one by one, as the first one's always did), the sparse ones
 * stay on base pages (SEG_SMALL_HEAP_HUGE_AGAIN), and every later
 * SuperSlab is a huge page from its first touch, but an overflow (see
 * SEG_RETURNING_UNITS_MIN), which is deferred the same way; tiny/ cuts small slabs
 * until the next one is mapped. So the heap takes at most 512 faults on
 * base pages (576 with SEG_SMALL_HEAP_LOOK_GAP) before it counts as grown,
 * and a heap that grows densely takes them in its first SuperSlab, or in
 * its first two where the first ran out of units with room to spare. */
#define SEG_SMALL_HEAP_MAX 4
#define SEG_SMALL_HEAP_FAULTS ((long)(HS_SUPERSLAB_SIZE / 4096))
#define SEG_SMALL_HEAP_DENSE (SEG_SMALL_HEAP_FAULTS / 2)
/* Pages carved between two looks, at least. Slabs cut again in units that
 * are in memory fault no page, so an overflow whose slabs come and go can
 * stay a few pages below the budget while its threads carve on: then every
 * carve of a few pages asked the kernel (bench_memory larson, 2 threads:
 * 5 to 904 mincore calls a run, on its refill path). With an eighth of the
 * budget, a deferred SuperSlab takes at most that many faults more before
 * the heap counts as grown. */
#define SEG_SMALL_HEAP_LOOK_GAP (SEG_SMALL_HEAP_FAULTS / 8)
/* Pages the deferred ones hold, at most, for a dense heap's next SuperSlab
 * to be deferred as well: a heap that ends within it then ends on base
 * pages (`man ls` ran out of units in its first SuperSlab with 398 pages
 * in memory and a heap of 1.9 MiB: 6.4 MiB peak with its second a huge
 * page, 4.4 deferred, glibc 4.3); one that goes on grows at the budget,
 * and its pages there become a huge page at once (small_heap_outgrown).
 * The look that finds the budget reached comes up to
 * SEG_SMALL_HEAP_LOOK_GAP pages late: below the budget by that much, a
 * heap that fills its first SuperSlab whole (tests/kernel faults: 512
 * pages less its headers) takes no base page more, and the deferred ones
 * take at most the budget, where they took it in the first before. */
#define SEG_SMALL_HEAP_DENSE_ROOM (SEG_SMALL_HEAP_FAULTS - SEG_SMALL_HEAP_LOOK_GAP)
/* The small heap's state, written as the first SuperSlab comes
 * (HS_START_STATE): */
/* deferred, its address (| SLOT_LEAVING while one thread takes it out);
 * 0: none */
HS_START_STATE static _Atomic uintptr_t small_heap[SEG_SMALL_HEAP_MAX];
/* units of small_heap[i] that tiny/ said a block passes through
 * (seg_small_heap_passing) */
HS_START_STATE static _Atomic uint64_t small_heap_passing[SEG_SMALL_HEAP_MAX];
/* small_heap[i] was deferred while the heap was dense (SEG_SMALL_HEAP_DENSE_ROOM):
 * a huge page once the heap has grown, however few of its pages are in
 * memory then */
HS_START_STATE static _Atomic bool small_heap_filling[SEG_SMALL_HEAP_MAX];
/* the heap has grown: none deferred but overflows */
HS_START_STATE static _Atomic bool small_heap_grown;
/* seg_small_heap: from the first deferred one to the first SuperSlab mapped
 * after it grew */
HS_START_STATE static _Atomic bool small_heap_slabs;
/* of the deferred ones in memory, at the last look */
HS_START_STATE static _Atomic long small_heap_pages_seen;
/* pages tiny/ carved since */
HS_START_STATE static _Atomic long small_heap_carved;
/* the process's page faults before the last look seg_small_heap_carved
 * made that found the heap under its budget; 0: none yet */
static _Atomic long long small_heap_faults_seen;
HS_START_STATE _Atomic bool seg_small_heap_deferred;
/* A slot's bit: its SuperSlab is being taken out (small_heap_outgrown). */
#define SLOT_LEAVING ((uintptr_t)1)
/* Slots marked SLOT_LEAVING, or about to be: the purge looks at the slots
 * only while there is one (seg_take_idle). */
_Atomic unsigned seg_small_heap_claims;

/* The SuperSlab a slot holds, leaving or not; NULL for none. */
static inline seg_superslab_t *slot_superslab(uintptr_t slot)
{
    return (seg_superslab_t *)(slot & ~SLOT_LEAVING);
}
/* pages seg_small_heap_give_back gave back */
static _Atomic long small_heap_given_back;
_Atomic long seg_units_returning;

/* Pages of ss in memory outside the units of `skip`, -1 when the kernel
 * cannot tell. */
HS_COLD static long resident_outside(seg_superslab_t *ss, uint64_t skip)
{
    if (!skip) return os_resident_pages(ss, HS_SUPERSLAB_SIZE);
    long pages = 0;
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB;) {
        if (skip >> u & 1) {
            u++;
            continue;
        }
        unsigned end = u;
        while (end < HS_UNITS_PER_SUPERSLAB && !(skip >> end & 1)) end++;
        long in_memory = os_resident_pages((char *)ss + (size_t)u * HS_UNIT_SIZE,
                                           (size_t)(end - u) * HS_UNIT_SIZE);
        if (in_memory < 0) return -1;
        pages += in_memory;
        u = end;
    }
    return pages;
}

/* Pages of the deferred SuperSlabs in memory: the faults they cost so far.
 * One the kernel cannot count for reads as the whole budget. Starts a new
 * count of carved pages. *dense (if not NULL): those pages but the ones of
 * units a block passes through (seg_small_heap_passing), which say nothing
 * of how densely the heap fills its slabs, less SEG_SMALL_HEAP_DENSE for
 * each deferred one (for one when there is none): below 0 while sparse. */
HS_COLD static long small_heap_look(long *dense)
{
    atomic_store(&small_heap_carved, 0);
    long pages = 0, dense_pages = 0, deferred = 0;
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++) {
        seg_superslab_t *ss = slot_superslab(atomic_load(&small_heap[i]));
        if (!ss) continue;
        deferred++;
        long in_memory = os_resident_pages(ss, HS_SUPERSLAB_SIZE);
        pages += in_memory >= 0 ? in_memory : SEG_SMALL_HEAP_FAULTS;
        if (!dense) continue;
        long outside = resident_outside(ss, atomic_load(&small_heap_passing[i]));
        dense_pages += outside >= 0 ? outside : SEG_SMALL_HEAP_FAULTS;
    }
    atomic_store(&small_heap_pages_seen, pages);
    if (dense) *dense = dense_pages - SEG_SMALL_HEAP_DENSE * (deferred ? deferred : 1);
    return pages;
}

/* Pages a deferred SuperSlab holds in memory, at least, to be hinted huge
 * when the heap has grown: khugepaged then makes the rest of it resident,
 * up to 256 KiB here. A sparser one stays on base pages (seg_keep_base_pages)
 * and faults the rest page by page as slabs reach it, as a hinted one does
 * until khugepaged comes. Python's list of 1 M strings left its two
 * deferred ones with 234 and 303 pages; hinted, they became huge pages
 * whenever khugepaged woke at once (no pass in the 10 s before: the first
 * run after a pause), 2 MiB above the usual peak (101,056 KiB against
 * 98,920-99,028, exit_hwm, THP). */
#define SEG_SMALL_HEAP_HUGE_AGAIN (SEG_SMALL_HEAP_FAULTS - SEG_SMALL_HEAP_FAULTS / 8)

/* Whether the registry names ss, a SuperSlab whose slot this thread marked
 * leaving: not yet where its mapping thread has not written its header,
 * and no more where the purge took it idle. Read under its pool's lock,
 * under which the purge takes an idle one (and clears its name) and, from
 * the mark on, takes it no more (seg_small_heap_leaving): one that is
 * named now is not taken while its hints are under way.
 * The pool is the header's node, read only once the registry names ss
 * (acquire; seg_registry_set names a chunk after its header is written,
 * release): the slot is published before the header, and a thread that
 * read the node while the mapping thread wrote it raced with that write
 * (tests/ stress_tsan_purge under the thread sanitizer). */
static inline bool still_named(seg_superslab_t *ss)
{
    uintptr_t chunk = (uintptr_t)ss >> HS_SUPERSLAB_SHIFT;
    if (seg_kind_named_at(chunk) == SEG_CHUNK_NONE) return false;
    seg_pool_t *pool = seg_pool(ss->node);
    hs_lock(&pool->lock);
    bool named = seg_chunk_kind(ss) != SEG_CHUNK_NONE;
    hs_unlock(&pool->lock);
    return named;
}

/* The heap has grown: the deferred SuperSlabs leave the small heap, hinted
 * huge again where they are dense, made a huge page at once where they were
 * deferred for a dense heap (small_heap_filling: the heap goes on to fill
 * it, a fault a page on base pages; MADV_COLLAPSE copies the pages it
 * holds, and where the kernel cannot, the hint lets khugepaged do it
 * later). A thread that defers one meanwhile (its hint set before it
 * publishes the slot) either sees small_heap_grown after publishing (both
 * sequentially consistent) and takes it itself (`mine`), or leaves it
 * deferred: another thread takes none whose header is not written yet
 * (seg_small_heap_note comes before seg_chunk_header), nor one the purge
 * took idle (still_named), and the next SuperSlab mapped takes it. Each
 * slot is taken by one thread (see the top of the file). No lock held: the
 * look is a mincore, the hint a madvise.
 * Returns true when it took `mine`, whose hinted_late the caller sets once
 * the header is written: seg_chunk_header clears the header, and a flag set
 * here before it was lost (seg_small_heap_give_back then never gave back
 * what a block passing through it left). */
HS_COLD static bool small_heap_outgrown(const seg_superslab_t *mine)
{
    bool took_mine = false;
    atomic_store(&small_heap_grown, true);
    atomic_store_explicit(&seg_small_heap_deferred, false, memory_order_relaxed);
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++) {
        uintptr_t slot = atomic_load(&small_heap[i]);
        seg_superslab_t *ss = slot_superslab(slot);
        if (!ss || (slot & SLOT_LEAVING)) continue;
        atomic_fetch_add(&seg_small_heap_claims, 1);
        if (!atomic_compare_exchange_strong(&small_heap[i], &slot, slot | SLOT_LEAVING)) {
            atomic_fetch_sub(&seg_small_heap_claims, 1);
            continue;
        }
        if (ss != mine && !still_named(ss)) {
            atomic_store(&small_heap[i], slot);
            atomic_fetch_sub(&seg_small_heap_claims, 1);
            continue;
        }
        bool filling = atomic_load(&small_heap_filling[i]);
        long in_memory = os_resident_pages(ss, HS_SUPERSLAB_SIZE);
        if (!filling && in_memory >= 0 && in_memory < SEG_SMALL_HEAP_HUGE_AGAIN) {
            seg_keep_base_pages(ss);
        } else {
            thp_allow_huge(ss, HS_SUPERSLAB_SIZE);
            if (filling) thp_collapse(ss, HS_SUPERSLAB_SIZE);
        }
        if (ss == mine)
            took_mine = true;
        else
            atomic_store_explicit(&ss->hinted_late, 1, memory_order_relaxed);
        /* Out of the slot only now: while it is held, a realloc that
         * outgrows the slabs cannot turn ss into a run (run_backing_ok),
         * whose header hinted_late shares with base_tail (a tail on base
         * pages from chunk 0: the whole run given back when the cache hands
         * it out, its header too). The flag first: the slot's next
         * SuperSlab sets its own. */
        atomic_store(&small_heap_filling[i], false);
        atomic_store(&small_heap[i], 0);
        atomic_fetch_sub(&seg_small_heap_claims, 1);
    }
    return took_mine;
}

/* Defers ss to base pages in a free slot of small_heap: false (ss hinted
 * huge) when none is free. `fresh`: ss has had no hint since
 * thp_map_unsettled. `filling`: deferred for a dense heap (see
 * small_heap_outgrown). The hint goes before the slot is published (see
 * small_heap_outgrown); the flags after it, as tiny/'s notes come: an
 * outgrowing that takes the slot in between keeps ss as a sparse one. */
HS_COLD static bool small_heap_defer(seg_superslab_t *ss, bool fresh, bool filling)
{
    (fresh ? thp_defer_fresh : thp_defer_huge)(ss, HS_SUPERSLAB_SIZE);
    unsigned i = 0;
    for (uintptr_t none = 0; i < SEG_SMALL_HEAP_MAX &&
                             !atomic_compare_exchange_strong(&small_heap[i], &none, (uintptr_t)ss);
         i++)
        none = 0;
    if (i == SEG_SMALL_HEAP_MAX) {
        thp_allow_huge(ss, HS_SUPERSLAB_SIZE);
        return false;
    }
    atomic_store(&small_heap_passing[i], 0);
    atomic_store(&small_heap_filling[i], filling);
    atomic_store_explicit(&seg_small_heap_deferred, true, memory_order_relaxed);
    return true;
}

/* Units on the way back (seg_units_returning) that make a new SuperSlab an
 * overflow: an eighth of one. bench_memory larson's main thread leaves
 * 4,000 blocks in 86 units that the worker threads free while it waits in
 * pthread_join; its 45 full slabs come back only with their last block,
 * by which time the workers had cut 121 units of their own: 198 in all,
 * six more than three SuperSlabs hold, and a fourth huge page for them
 * (9.4 MiB peak RSS; 7.5 with the fourth on base pages, glibc 7.2-7.8).
 * Its third SuperSlab came with 25 or 26 units on the way, its fourth
 * with 13 to 39 (a quarter of one as the bound left 2 runs in 8 at 9.5).
 * A single thread leaves no notices, and a producer takes its own at its
 * next refill: bench_memory kv, small, churn and prodcons, bench_mt
 * prodcons and queue map every SuperSlab with none on the way. */
#define SEG_RETURNING_UNITS_MIN ((long)HS_UNITS_PER_SUPERSLAB / 8)

/* Overflows deferred in a process's life, at most. One hinted huge after
 * some of its pages were faulted keeps faulting page by page (the kernel
 * maps a huge page only where no page of the 2 MiB is present yet), so each
 * costs up to 512 faults. git gc --aggressive, whose delta threads leave
 * their blocks for the main thread to free, mapped 248 of its 249
 * SuperSlabs as overflows: 15 became huge pages, and pack-objects took
 * 123,000 faults (about 800 at one per SuperSlab). larson defers two, its
 * only candidates.
 * In a life, not per growth episode: only a SuperSlab mapped anew can be an
 * overflow, and a heap that grows again after shrinking revives its purged
 * SuperSlabs first (five rounds of a 20 MiB heap freed by other threads,
 * 2.5 s idle between: 4 candidates in all). A count reset whenever idle
 * SuperSlabs went back reset within pack-objects, which purges while it
 * grows: 4 deferred, 3,600 faults against 2,600. Nor those deferred at
 * once: the next mapping hints the last one huge, so that is no cap
 * (106,751 faults). bench/README.md, "The overflow cap". */
#define SEG_OVERFLOWS_MAX 2
static _Atomic unsigned overflows_deferred; /* overflows deferred so far */

HS_COLD bool seg_small_heap_note(seg_superslab_t *ss, bool *hinted_late)
{
    /* Deferred while the deferred ones are sparse and under the budget. At
     * the budget the heap has grown however sparse it is, as the next look
     * of seg_small_heap_carved finds: one deferred then is sparse when the
     * heap outgrows it, stays on base pages and faults its pages one by one
     * as the heap fills it (`git log -p`, whose fourth came with 720 pages
     * in the three: 550 faults more and no KiB less). A dense heap's next
     * one is deferred too while there is room for it under the budget
     * (SEG_SMALL_HEAP_DENSE_ROOM), and made a huge page when the heap grows. */
    long dense = 0, pages = SEG_SMALL_HEAP_FAULTS;
    if (!atomic_load(&small_heap_grown)) pages = small_heap_look(&dense);
    bool filling = dense >= 0 && pages < SEG_SMALL_HEAP_DENSE_ROOM;
    if (pages < SEG_SMALL_HEAP_FAULTS && (dense < 0 || filling)) {
        /* ss as thp_map_unsettled left it. No slot left: the heap has
         * grown. */
        if (small_heap_defer(ss, true, filling)) {
            atomic_store(&small_heap_slabs, true);
            if (!atomic_load(&small_heap_grown)) return true;
        }
    }
    /* Grown: the deferred ones, an overflow among them, become huge pages,
     * ss too if it was deferred just now; an overflow below is hinted to
     * base pages whatever hint ss has by then. */
    *hinted_late = small_heap_outgrown(ss);
    atomic_store(&small_heap_slabs, false);
    /* An overflow starts on base pages as the small heap's did, its free
     * units purged as theirs are; it becomes huge when its pages reach the
     * small heap's budget (seg_small_heap_carved) or the next SuperSlab is
     * mapped. tiny/ keeps its full-size slabs: the heap is not small. */
    return atomic_load_explicit(&seg_units_returning, memory_order_relaxed) >=
               SEG_RETURNING_UNITS_MIN &&
           atomic_fetch_add(&overflows_deferred, 1) < SEG_OVERFLOWS_MAX &&
           small_heap_defer(ss, false, false);
}

/* Sparse heaps. Once the small heap has grown, a new SuperSlab is a huge
 * page from its first touch: one fault for 2 MiB, all of it resident. That
 * is the right price for a heap that fills its slabs, and the wrong one for
 * threads that each hold a few dozen blocks in each of many classes: each
 * class's slab is a 32 KiB unit at least, of which a few pages are
 * carved, and a huge page makes the whole unit resident. bench_mt larson
 * --handoff-every=0 at 16 threads held 30 MiB in slabs in 16 SuperSlabs,
 * 13 of them huge pages: 31.4-32.6 MiB peak, against 21.0-21.2 on base
 * pages (mimalloc 19.8, glibc 13.8). So a SuperSlab mapped for a thread
 * whose slabs are sparse (tiny/'s test: their carved blocks fill less than
 * a share of their units) starts on base pages, as a SuperSlab whose huge
 * page was given up (huge_sparse in units.c): counted with base pages, its
 * free units purged as theirs are, and hinted huge again when all of it
 * goes back (seg_release_backing). It costs a fault per page it is given,
 * as under every allocator without huge pages. A heap of one thread is
 * never asked. A young thread's slabs look sparse, and one that has no
 * slab yet answers sparse too (it answered dense, and a thousand threads
 * whose first slabs each needed a new SuperSlab made a third of theirs
 * huge pages); one that goes on to fill the SuperSlab pays a fault per
 * page of it (bench_mt larson with hand-offs at 16 threads: 7,000-7,900
 * faults against 2,000-2,700, the same time and peak). */
HS_COLD bool seg_sparse_heap_note(seg_superslab_t *ss)
{
    /* HUGESLAB_SPLIT_SPARSE=0: huge pages over the RSS of sparse slabs. */
    if (!hs_option(HS_OPT_SPLIT_SPARSE) || !seg_state.client_sparse || !seg_state.client_sparse())
        return false;
    thp_defer_huge(ss, HS_SUPERSLAB_SIZE);
    return true;
}

HS_COLD void seg_small_heap_carved(const void *from, size_t bytes)
{
    uintptr_t first = (uintptr_t)from & ~(uintptr_t)4095;
    long pages = (long)((hs_align_up((uintptr_t)from + bytes, 4096) - first) / 4096);
    long since = atomic_fetch_add_explicit(&small_heap_carved, pages, memory_order_relaxed) + pages;
    long seen = atomic_load_explicit(&small_heap_pages_seen, memory_order_relaxed);
    if (since < SEG_SMALL_HEAP_LOOK_GAP || seen + since < SEG_SMALL_HEAP_FAULTS) return;
    /* Pages carved again where slabs came and went are in memory already:
     * a heap that keeps a few blocks of 32-64 KiB and replaces them carves
     * a slab at each turn, and looked at every fifth (bench_random_mixed
     * with 100 of them: 4,200 mincore calls in 100,000, a third of its
     * time). A page comes into memory only by a fault, so once a look found
     * the heap under its budget, the process's faults since bound what it
     * gained: one getrusage instead of a mincore of every deferred
     * SuperSlab, and no look while they fall short. */
    long long faults_then = atomic_load_explicit(&small_heap_faults_seen, memory_order_relaxed);
    if (faults_then > 0) {
        long long faults = os_page_faults();
        /* Fewer than then: a child of fork, whose count starts anew. */
        if (faults >= faults_then && seen + (faults - faults_then) < SEG_SMALL_HEAP_FAULTS) {
            atomic_store_explicit(&small_heap_carved, 0, memory_order_relaxed);
            return;
        }
    }
    long long faults_before = os_page_faults();
    if (small_heap_look(NULL) >= SEG_SMALL_HEAP_FAULTS)
        small_heap_outgrown(NULL);
    else
        atomic_store_explicit(&small_heap_faults_seen, faults_before, memory_order_relaxed);
}

HS_COLD void seg_small_heap_passing(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (slot_superslab(atomic_load(&small_heap[i])) == ss)
            atomic_fetch_or(&small_heap_passing[i], seg_unit_bits(first_unit, n_units));
}

/* Pages seg_small_heap_give_back gives back in a process's life, at most.
 * Where a slab reuses them they fault again, and a program that resizes a
 * few blocks of 100-400 KiB by realloc moves them again and again (every
 * such move's pages given back: 2 blocks, 2,000 rounds, 45,018 faults
 * against 1,166; bench/README.md, "Python's peak: the SuperSlab an array
 * grew out of"). Half the small heap's budget: at most 256 faults more.
 * The list of strings' slab runs from where the start-up's slabs end to
 * the SuperSlab's end, 16-20 units (127-159 pages) as the script's path
 * moves the start-up's blocks; a quarter held 16 units only, and the
 * give-back is all or nothing. */
#define SEG_GIVE_BACK_PAGES_MAX (SEG_SMALL_HEAP_FAULTS / 2)

HS_COLD void seg_small_heap_give_back(seg_superslab_t *ss, void *from, size_t bytes)
{
    bool mine = atomic_exchange_explicit(&ss->hinted_late, 0, memory_order_relaxed);
    uintptr_t first = hs_align_up((uintptr_t)from, 4096);
    uintptr_t end = ((uintptr_t)from + bytes) & ~(uintptr_t)4095;
    long pages = end > first ? (long)((end - first) / 4096) : 0;
    /* Counted whether they go or not: at most so many looks too. */
    if (!mine || !pages ||
        atomic_fetch_add(&small_heap_given_back, pages) + pages > SEG_GIVE_BACK_PAGES_MAX)
        return;
    /* A huge page that khugepaged made of it since stays whole. */
    if (os_holds_huge((void *)first, end - first) == 0)
        seg_give_back_now((void *)first, end - first);
}

void seg_small_heap_units_taken(const seg_superslab_t *ss, uint64_t bits)
{
    if (!atomic_load_explicit(&seg_small_heap_deferred, memory_order_relaxed)) return;
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (slot_superslab(atomic_load_explicit(&small_heap[i], memory_order_relaxed)) == ss)
            atomic_fetch_and(&small_heap_passing[i], ~bits);
}

bool seg_small_heap_holds(const seg_superslab_t *ss)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (slot_superslab(atomic_load_explicit(&small_heap[i], memory_order_relaxed)) == ss)
            return true;
    return false;
}

/* Slot i's value once it no longer holds `leaving`: the thread that takes
 * that SuperSlab out may still hint it. It holds no lock but, for a
 * moment, the pool's, and waits for no one; nor does forget's caller hold
 * any. */
HS_SELDOM HS_NOINLINE static uintptr_t slot_after_leaving(unsigned i, uintptr_t leaving)
{
    uintptr_t slot;
    while ((slot = atomic_load(&small_heap[i])) == leaving) os_yield();
    return slot;
}

void seg_small_heap_forget(seg_superslab_t *ss)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++) {
        /* Until the slot no longer holds ss: a thread may mark it leaving
         * between the load and the CAS, and put it back after (a SuperSlab
         * the purge took, still_named), which left the slot naming a range
         * about to be unmapped. */
        uintptr_t slot = atomic_load(&small_heap[i]);
        for (;;) {
            if (slot == ((uintptr_t)ss | SLOT_LEAVING)) slot = slot_after_leaving(i, slot);
            if (slot != (uintptr_t)ss || atomic_compare_exchange_strong(&small_heap[i], &slot, 0))
                break;
        }
    }
}

HS_SELDOM bool seg_small_heap_leaving(const seg_superslab_t *ss)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (atomic_load(&small_heap[i]) == ((uintptr_t)ss | SLOT_LEAVING)) return true;
    return false;
}

HS_APART void seg_small_heap_fork_child(void)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (atomic_load(&small_heap[i]) & SLOT_LEAVING) {
            atomic_store(&small_heap_filling[i], false);
            atomic_store(&small_heap[i], 0);
        }
    atomic_store(&seg_small_heap_claims, 0);
}

bool seg_small_heap(void) { return atomic_load_explicit(&small_heap_slabs, memory_order_relaxed); }
