/* The purge thread: the one place where idle memory goes back to the kernel.
 * - It starts the first time memory turns idle or a thread leaves slabs
 *   behind as orphans (never at load time, so a program that frees nothing
 *   stays single-threaded), with every signal blocked, and again in a fork
 *   child that needs it.
 * - It sleeps on a condition variable: untimed while nothing is idle, else
 *   until the next SuperSlab falls due, so an idle program costs no wakeups;
 *   with periodic work (HUGESLAB_STATS_INTERVAL_MS) it also wakes for that,
 *   and then starts at load time (seg_start_background).
 * - It never keeps the process alive. A process whose main thread left by
 *   pthread_exit ends when its last thread does (glibc: the last one to
 *   leave calls exit(0)), and this one counts: with its other threads gone
 *   such a program hung, every signal blocked in the one thread left, so
 *   that SIGTERM and SIGINT could not end it either (Python's
 *   test_threading: a fork from a thread, the child's thread leaving). So
 *   once the main thread has left (seg_thread_left), the thread looks
 *   whether it is alone (os_threads_running): for a moment after each of
 *   the last threads that allocated leaves, and at least every
 *   PURGE_ALONE_LOOK_MS, its sleeps cut to that; alone, it ends the
 *   process with exit(0), as glibc would have, on a thread with a stack of
 *   the default size for the exit handlers. A main thread that has other
 *   threads has allocated: pthread_create allocates the new thread's TLS
 *   vector (calloc) on the creating thread, so its leaving is seen.
 * - Idle SuperSlabs of THP or base pages get MADV_FREE (or MADV_DONTNEED)
 *   over whole 2 MiB units and stay mapped for reuse; those lazily freed and
 *   still unused HUGESLAB_RELEASE_DELAY_MS later get MADV_DONTNEED, so they
 *   leave RSS (LazyFree counts in it), or sooner, as many as the process
 *   maps fresh memory for meanwhile (seg_note_fresh); hugetlb SuperSlabs and
 *   runs are unmapped, which returns hugetlb pages to their pool with no
 *   reservation left behind to fault on later.
 * - Free units of SuperSlabs in use on base pages (the small heap's while
 *   it is kept off huge pages, and those it left sparse when it grew) get
 *   MADV_DONTNEED once their SuperSlab has not changed for the purge delay.
 *   A huge page is split for them only where at most a quarter of it is in
 *   slabs and it has not changed for both delays: the SuperSlab is base
 *   pages from then on, until all of it goes back and it is hinted huge
 *   again.
 * - malloc_trim, and a mapping the kernel refused (seg_unmap_resting,
 *   which then unmaps the purged SuperSlabs too), run the same steps on
 *   their own thread, taking turns with the thread's passes.
 * Never: hold a lock across a system call or pthread_create. */
#include "os/os.h"
#include "segment/segment_internal.h"

/* The purge thread's state. `lock` guards the flags marked so; `state` is
 * read without it on every notification. */
static struct purge_state_s {
    hs_lock_t lock;                  /* held across no system call but the condition wait */
    pthread_cond_t wakeup;           /* signalled by purge_notify, purge_shutdown and the last
                                        malloc_trim under way */
    _Atomic int state;               /* 0 not started, 1 running */
    _Atomic uint64_t start_again_ms; /* a refused start is tried again from then */
    bool work_pending;               /* lock: notified since the last pass */
    /* lock: when the thread's sleep ends; UINT64_MAX while it waits for a
     * notification only, 0 while it is awake. */
    uint64_t sleeping_until_ms;
    bool stopping;        /* lock: process exit */
    bool passing;         /* lock: in a pass, holding what it took off the pools */
    unsigned trims;       /* lock: malloc_trim calls under way; no pass starts */
    pthread_cond_t turns; /* lock: signalled when passing turns false */
    pthread_t thread;     /* lock: the thread, once it runs (thread_known) */
    bool thread_known;
    bool (*idle_work)(void);     /* tiny's sweep of abandoned blocks, after each pass;
                                    true while orphans remain */
    void (*periodic_work)(void); /* set before the thread starts */
    uint64_t periodic_ms;        /* its interval; 0: none */
    bool (*emptied_work)(void);  /* tiny's release of slabs others emptied; true
                                    to be run again soon */
    _Atomic bool emptied_seen;   /* a free emptied such a slab since emptied_work ran */
    uint64_t emptied_due_ms;     /* purge thread: when emptied_work runs; 0: not yet asked */
    uint64_t emptied_again_ms;   /* purge thread: wait before the next run while the work
                                    asks again; doubles up to the purge delay; 0: not asked */
    _Atomic bool sweep_soon;     /* a thread left orphans since the last pass */
    uint64_t sweep_after_ms;     /* purge thread: wait before the next sweep while
                                    orphans remain; doubles up to the purge delay */
    _Atomic bool main_left;      /* the main thread left by pthread_exit */
    _Atomic bool thread_left;    /* one of the last threads left since the last look */
    unsigned alone_look_ms;      /* purge thread: wait before the next look after
                                    thread_left; doubles up to PURGE_ALONE_LOOK_MS,
                                    then 0: the periodic looks only */
    uint64_t alone_looked_ms;    /* purge thread: when it last looked */
    _Atomic bool frontier_looks; /* a run was listed for frontier.c's looks */
} purge = {
    .lock = HS_LOCK_INIT(HS_RANK_PURGE),
    .wakeup = PTHREAD_COND_INITIALIZER,
    .turns = PTHREAD_COND_INITIALIZER,
};

void seg_set_idle_work(bool (*work)(void)) { purge.idle_work = work; }

void seg_idle_work_pending(void)
{
    atomic_store_explicit(&purge.sweep_soon, true, memory_order_relaxed);
    purge_notify(PURGE_LATER);
}

bool purge_run_idle_work(void) { return purge.idle_work && purge.idle_work(); }

void seg_set_emptied_work(bool (*work)(void)) { purge.emptied_work = work; }

HS_APART_LATE void seg_emptied_slab_seen(void)
{
    if (atomic_load_explicit(&purge.emptied_seen, memory_order_relaxed) ||
        atomic_exchange_explicit(&purge.emptied_seen, true, memory_order_relaxed))
        return;
    purge_notify(PURGE_LATER);
}

/* The purge thread's side of seg_emptied_slab_seen: the work runs a purge
 * delay after the first such free, so that an owner at work, whose refill
 * would take the slabs back, has that long to do so (released at once,
 * they made a producer cut new slabs all the time). Returns when it is
 * due, or UINT64_MAX. Apart from the text every pass runs: only a program
 * with several threads has such frees (run_emptied_work). */
static HS_APART_LATE HS_NOINLINE uint64_t emptied_work_due(uint64_t delay)
{
    uint64_t now = seg_now_ms();
    if (purge.emptied_due_ms == 0) purge.emptied_due_ms = now + (delay < 10 ? 10 : delay);
    if (now < purge.emptied_due_ms) return purge.emptied_due_ms;
    purge.emptied_due_ms = 0;
    /* Before the work: a slab emptied while it runs asks again. */
    atomic_store_explicit(&purge.emptied_seen, false, memory_order_relaxed);
    if (!purge.emptied_work()) {
        purge.emptied_again_ms = 0;
        return UINT64_MAX;
    }
    /* Something was passed over (a heap busy in a slow path): looked at
     * again an eighth of the delay later, then twice as long each time, up
     * to the delay, as the orphans' sweeps. */
    uint64_t wait = purge.emptied_again_ms ? 2 * purge.emptied_again_ms : delay / 8;
    if (wait > delay) wait = delay;
    if (wait < 10) wait = 10;
    purge.emptied_again_ms = wait;
    atomic_store_explicit(&purge.emptied_seen, true, memory_order_relaxed);
    purge.emptied_due_ms = seg_now_ms() + wait;
    return purge.emptied_due_ms;
}

static uint64_t run_emptied_work(uint64_t delay)
{
    if (!purge.emptied_work || !atomic_load_explicit(&purge.emptied_seen, memory_order_relaxed))
        return UINT64_MAX;
    return emptied_work_due(delay);
}

void seg_set_periodic_work(void (*work)(void), uint64_t interval_ms)
{
    purge.periodic_work = work;
    purge.periodic_ms = interval_ms;
}

/* SuperSlabs (or SuperSlabs' free units) taken and advised at a time. Each
 * batch is on the purge thread's stack, three deep in return_idle and
 * advise_and_store: with 64, a pass wrote three pages of the stack, where
 * the thread's TLS and the rest of a pass fit in two. */
#define PURGE_BATCH 16

static uint64_t delay_ms(void) { return (uint64_t)hs_option(HS_OPT_PURGE_DELAY_MS); }

/* The thread sleeps this much past what falls due: coarse clocks run up to
 * a tick behind. */
#define PURGE_CLOCK_SLACK_MS 5

/* The kernel refused advice on some of the batch: the locked pages of a
 * process under mlockall, which madvise leaves resident. Which ranges it
 * refused is not said: the whole batch is unmapped, which munmap does to
 * locked pages too, so that the memory leaves RSS as glibc's freed
 * mappings do, and the figures count what left (not SuperSlabs purged that
 * are still resident). */
HS_SELDOM HS_NOINLINE static void
unmap_refused(const seg_purged_t *list, const thp_backing_t *backing, unsigned n, bool count_bytes)
{
    hs_count_add(&seg_stat_purge_calls, n);
    if (count_bytes) hs_count_add(&seg_stat_bytes_purged, (int64_t)(n * HS_SUPERSLAB_SIZE));
    for (unsigned i = 0; i < n; i++) {
        seg_purged_t unmapped = list[i];
        unmapped.backing = backing[i];
        seg_unmap_purged(&unmapped);
    }
}

/* madvise over whole SuperSlabs taken from the pools, then back to their
 * pools' purged stacks: lazily freed ones (MADV_FREE) to come back for
 * MADV_DONTNEED later. */
static void advise_and_store(const seg_purged_t *list, unsigned n, bool dontneed, bool uring,
                             bool count_bytes)
{
    if (n == 0) return;
    os_range_t ranges[PURGE_BATCH];
    thp_backing_t backing[PURGE_BATCH];
    for (unsigned i = 0; i < n; i++) {
        ranges[i] = (os_range_t){list[i].ss, HS_SUPERSLAB_SIZE};
        /* Emptied whole, a SuperSlab that gave its huge page up is one again. */
        backing[i] = dontneed
                         ? seg_release_backing(list[i].ss, list[i].backing, list[i].memory_node)
                         : list[i].backing;
    }
    int refused = os_purge_batch(ranges, n, dontneed, uring);
    hs_count_add(&seg_stat_purge_calls, uring ? 1 : n);
    if (HS_UNLIKELY(refused)) {
        unmap_refused(list, backing, n, count_bytes);
        return;
    }
    if (count_bytes) hs_count_add(&seg_stat_bytes_purged, (int64_t)(n * HS_SUPERSLAB_SIZE));
    for (unsigned i = 0; i < n; i++)
        seg_store_purged(list[i].ss, list[i].node, backing[i], list[i].memory_node, !dontneed);
}

/* Whether the io_uring backend can be used; says once why not. */
static bool uring_ready(void)
{
    int rc = os_uring_setup();
    static bool told;
    if (rc != 0 && !told && hs_option(HS_OPT_VERBOSE)) {
        told = true;
        hs_message("io_uring refused (%d); purging with madvise", rc);
    }
    return rc == 0;
}

/* A block that realloc grows past the slabs' largest class moves to a run
 * and leaves the slab it grew through: an array grown from a few hundred
 * KiB, whose SuperSlab often holds nothing else (it was mapped for it when
 * the small heap's had no room, and became a huge page at its first
 * touch). Left to the purge thread, such a SuperSlab counts in RSS while
 * the array goes on growing in its run: the purge delay, MADV_FREE (still
 * RSS, as LazyFree) and the reserve kept it resident through Python's
 * peak, a list of 1 M strings (2 MiB of its 102 MiB). The block will not
 * come back to the slabs, so its SuperSlab goes back now: on the purge
 * thread, woken for it, as every madvise is (none on the allocation path). */
HS_COLD void seg_release_outgrown(seg_superslab_t *ss)
{
    if (seg_mark_outgrown(ss, seg_thread_node())) purge_notify(PURGE_NOW);
}

/* The pages of free units taken out of a SuperSlab in use go back with
 * MADV_DONTNEED (they are resident: freed slabs wrote them), run by run of
 * units, leaving out the pages of the header and slab table. Counted: the
 * units a slab wrote, not those fresh since they were mapped, which hold
 * no page to give (the small heap's first SuperSlab has most of its units
 * so). Returns the bytes counted. */
static size_t purge_free_units(const seg_free_units_t *taken, bool uring)
{
    os_range_t ranges[HS_UNITS_PER_SUPERSLAB / 2 + 1];
    unsigned n = 0;
    uint64_t units = taken->units;
    const size_t first_page = hs_align_up(SEG_FIRST_SLAB_BYTE, 4096);
    while (units) {
        unsigned first = (unsigned)__builtin_ctzll(units);
        unsigned end = first;
        while (end < HS_UNITS_PER_SUPERSLAB && (units >> end & 1)) end++;
        units &= end < 64 ? ~(uint64_t)0 << end : 0;
        size_t from = first * HS_UNIT_SIZE, to = end * HS_UNIT_SIZE;
        if (from < first_page) from = first_page;
        if (from >= to) continue;
        ranges[n++] = (os_range_t){(char *)taken->ss + from, to - from};
    }
    if (n == 0) return 0;
    /* A huge page given up stays base pages: hinted so first, or khugepaged
     * (which collapses a range with a single page present) makes the
     * SuperSlab resident whole again. */
    if (taken->huge_given_up) {
        thp_defer_huge(taken->ss, HS_SUPERSLAB_SIZE);
        for (unsigned i = 0; i < n; i++) thp_split_huge(ranges[i].addr, ranges[i].size);
    }
    int refused = os_purge_batch(ranges, n, true, uring);
    hs_count_add(&seg_stat_purge_calls, uring ? 1 : n);
    /* A range refused (a process under mlockall) leaves the count out:
     * which of the units were its is not worth the bookkeeping. */
    if (refused) return 0;
    size_t bytes = (size_t)__builtin_popcountll(taken->written) * HS_UNIT_SIZE;
    if (taken->written & 1) bytes -= first_page < HS_UNIT_SIZE ? first_page : HS_UNIT_SIZE;
    hs_count_add(&seg_stat_bytes_purged, (int64_t)bytes);
    return bytes;
}

/* The steps of return_idle. Each takes one batch of what `policy` says is
 * due and gives its pages back; *due: when more of its kind falls due
 * (UINT64_MAX for never). Each returns how many it took: a full batch
 * means more may be due now. */
typedef unsigned (*return_step_t)(const seg_purge_policy_t *policy, uint64_t *due);

/* Idle SuperSlabs and runs: runs and hugetlb SuperSlabs are unmapped
 * (hugetlb pages go back to their pool, with no reservation left to fault
 * on), the others are advised away in whole 2 MiB units and stay mapped for
 * reuse. */
static unsigned return_superslabs(const seg_purge_policy_t *policy, uint64_t *due)
{
    seg_taken_t batch[PURGE_BATCH];
    uint64_t now = seg_now_ms();
    unsigned n = seg_take_idle(policy, now, batch, PURGE_BATCH, due);
    seg_purged_t lazy[PURGE_BATCH], release[PURGE_BATCH];
    unsigned n_lazy = 0, n_release = 0;
    for (unsigned i = 0; i < n; i++) {
        seg_superslab_t *ss = batch[i].ss;
        thp_backing_t backing = (thp_backing_t)ss->backing;
        if (ss->kind == SEG_CHUNK_RUN || backing == THP_BACKING_HUGETLB) {
            hs_count_add(&seg_stat_purge_calls, 1);
            hs_count_add(&seg_stat_bytes_purged, (int64_t)ss->run_size);
            seg_unmap_idle(ss, ss->run_size, backing);
            continue;
        }
        /* Straight to MADV_DONTNEED when the policy says so, when the
         * SuperSlab was outgrown (release_now), or when it has been idle
         * so long that the lazy stage would only delay it. Read the
         * header before madvise: afterwards it may be zero. */
        bool now_for_good = policy->dontneed || batch[i].release_now ||
                            seg_ms_since(now, ss->idle_since_ms) >= policy->release_after_ms ||
                            (policy->release_for_fresh && seg_fresh_take(policy, now, 1));
        seg_purged_t *to = now_for_good ? &release[n_release++] : &lazy[n_lazy++];
        *to = (seg_purged_t){ss, ss->node, backing, ss->memory_node};
    }
    advise_and_store(lazy, n_lazy, false, policy->uring, true);
    advise_and_store(release, n_release, true, policy->uring, true);
    return n;
}

/* Free units of SuperSlabs still in use, where no huge page would be split
 * (base pages): after the same delay, straight to MADV_DONTNEED. */
static unsigned return_free_units(const seg_purge_policy_t *policy, uint64_t *due)
{
    seg_free_units_t units[PURGE_BATCH];
    unsigned n = seg_take_free_units(policy, seg_now_ms(), units, PURGE_BATCH, due);
    for (unsigned i = 0; i < n; i++) {
        purge_free_units(&units[i], policy->uring);
        seg_return_free_units(&units[i]);
    }
    return n;
}

/* Second stage: what MADV_FREE gave back still counts in RSS (LazyFree)
 * until the kernel runs short, and every RSS monitor counts it. Memory still
 * unused lazy_release_after_ms later leaves RSS for good; sooner, as much
 * as fresh memory the process mapped meanwhile (seg_note_fresh). */
static unsigned release_lazy(const seg_purge_policy_t *policy, uint64_t *due)
{
    seg_purged_t lazy[PURGE_BATCH];
    unsigned n = seg_take_lazy(policy, seg_now_ms(), lazy, PURGE_BATCH, due);
    advise_and_store(lazy, n, true, policy->uring, false);
    return n;
}

/* Runs `step` until it takes less than a full batch; *next_due becomes the
 * earlier of itself and when the step's next falls due. */
HS_INLINE unsigned return_all(return_step_t step, const seg_purge_policy_t *policy,
                              uint64_t *next_due)
{
    unsigned n, returned = 0;
    do {
        uint64_t due;
        n = step(policy, &due);
        if (due < *next_due) *next_due = due;
        returned += n;
    } while (n == PURGE_BATCH);
    return returned;
}

/* The one way idle memory goes back, for the purge thread and malloc_trim
 * alike: whatever `policy` says is due, step by step (idle SuperSlabs and
 * runs, free units of SuperSlabs in use, then the lazily freed).
 * *next_due: when more falls due (UINT64_MAX for never). Returns how many
 * SuperSlabs and runs went back. */
static unsigned return_idle(const seg_purge_policy_t *policy, uint64_t *next_due)
{
    *next_due = UINT64_MAX;
    unsigned returned = return_all(return_superslabs, policy, next_due);
    returned += return_all(return_free_units, policy, next_due);
    returned += return_all(release_lazy, policy, next_due);
    return returned;
}

/* One pass of the purge thread: purges what is due, returns when the next
 * will be due. */
static uint64_t purge_pass(void)
{
    seg_purge_policy_t policy = seg_purge_policy();
    policy.uring = policy.uring && uring_ready();
    uint64_t next_due;
    return_idle(&policy, &next_due);
    /* Orphans still pinned by live blocks: look again, so they go back once
     * their blocks have been freed even if nothing else falls idle
     * meanwhile. Soon after a thread left some (an eighth of the purge
     * delay, then twice as long each time, up to the delay): their blocks
     * are often freed right after, as when a program frees what its worker
     * threads left, and a sweep half a second later pushed their SuperSlabs
     * past 3 s of idleness before RSS dropped. */
    if (atomic_exchange_explicit(&purge.sweep_soon, false, memory_order_relaxed))
        purge.sweep_after_ms = policy.purge_after_ms / 8;
    uint64_t emptied_due = run_emptied_work(policy.purge_after_ms);
    if (emptied_due < next_due) next_due = emptied_due;
    if (atomic_load_explicit(&purge.frontier_looks, memory_order_relaxed)) {
        uint64_t frontier_due = seg_frontier_look_due(seg_now_ms());
        if (frontier_due < next_due) next_due = frontier_due;
    }
    if (purge_run_idle_work()) {
        uint64_t wait = purge.sweep_after_ms < policy.purge_after_ms ? purge.sweep_after_ms
                                                                     : policy.purge_after_ms;
        if (wait < 10) wait = 10;
        purge.sweep_after_ms = 2 * wait;
        uint64_t again = seg_now_ms() + wait;
        if (again < next_due) next_due = again;
    }
    return next_due;
}

/* malloc_trim and the purge thread take turns. A pass holds what it took
 * from the pools (SuperSlabs it is unmapping, a heap it is sweeping) where
 * malloc_trim cannot see it: had malloc_trim returned meanwhile, the pass's
 * hugetlb pages were still mapped after it, and a program that shrinks the
 * pool next (nr_hugepages) kept them as surplus. Waited for with no lock
 * held but purge_lock, which the condition wait lets go of. Seldom code,
 * as their callers: apart from the text every process runs. */
HS_SELDOM static void trim_turn_begin(void)
{
    hs_lock(&purge.lock);
    purge.trims++;
    while (purge.passing) pthread_cond_wait(&purge.turns, &purge.lock.mutex);
    /* The pass's end woke one waiter: it wakes the next (signal, not
     * broadcast, which would be one more name in the symbol tables every
     * process reads). Only malloc_trim waits on `turns`, and no pass
     * starts while one is counted, so none comes to wait meanwhile. */
    pthread_cond_signal(&purge.turns);
    hs_unlock(&purge.lock);
}

HS_SELDOM static void trim_turn_end(void)
{
    hs_lock(&purge.lock);
    /* The purge thread waits for the last on `wakeup`. */
    if (--purge.trims == 0) pthread_cond_signal(&purge.wakeup);
    hs_unlock(&purge.lock);
}

/* A fork takes a turn too, from its first handler to the parent's last:
 * a pass under way at fork() holds SuperSlabs it took off the pools (and
 * slabs of other heaps' reclaims) on the purge thread's stack, which the
 * child does not get: 16 SuperSlabs stayed mapped in a child for good,
 * in no pool and named by no one. The pass waits for no fork: the fork
 * has taken none of its locks yet, and its copies of hugetlb ranges come
 * after. */
HS_APART void purge_fork_turn_begin(void) { trim_turn_begin(); }
HS_APART void purge_fork_turn_end(void) { trim_turn_end(); }

/* Everything idle, at once, with MADV_DONTNEED, on the caller's thread (so
 * never the purge thread's io_uring ring): with no delay and no reserve,
 * every step of return_idle finds all it holds due, whatever its age.
 * Returns how many SuperSlabs and runs went back. */
HS_SELDOM static unsigned return_all_idle_now(void)
{
    seg_purge_policy_t policy = seg_purge_policy();
    policy.purge_after_ms = policy.release_after_ms = policy.lazy_release_after_ms = 0;
    policy.reserve_bytes = 0;
    policy.dontneed = true;
    policy.release_for_fresh = false;
    policy.uring = false;
    uint64_t next_due;
    return return_idle(&policy, &next_due);
}

/* Seldom code, as malloc_trim, its one caller, is. A fork handler's call
 * in the fork window does nothing: a pass under way waits for the fork,
 * and the fork would wait for it. */
HS_SELDOM int seg_trim(void (*first)(void))
{
    if (hs_in_fork_window()) return 0;
    trim_turn_begin();
    if (first) first();
    /* Whoever calls malloc_trim wants RSS to drop. */
    int released = return_all_idle_now() > 0;
    trim_turn_end();
    return released;
}

/* Whether the caller is the purge thread, which must never take a turn: it
 * would wait for the end of the pass it is in. Nothing it runs maps memory
 * now; a refused mapping there (an allocation by a report, say) fails
 * instead of hanging. Not a thread-local flag: one more TLS variable is one
 * more relocation in the tables every process reads, which went past a
 * page (`true` peaked 4 KiB higher). */
static bool on_purge_thread(void)
{
    hs_lock(&purge.lock);
    /* pthread_t is an integer here; pthread_equal would be one more import. */
    bool self = purge.thread_known && purge.thread == pthread_self();
    hs_unlock(&purge.lock);
    return self;
}

/* A failed mapping's last resort. Idle SuperSlabs of THP or base pages
 * stay mapped when their pages go back, for reuse at the same address, and
 * purged ones as well: they count in the address space, and each writable
 * private mapping in the commit charge, however little of them is
 * resident. A program under RLIMIT_AS, or on a system with
 * vm.overcommit_memory=2, got NULL for a block that glibc, which unmaps a
 * freed mapping at once, served (tests/kernel: as-limit). */
HS_COLD HS_SELDOM bool seg_unmap_resting(void)
{
    if (hs_in_fork_window() || on_purge_thread()) return false;
    trim_turn_begin();
    /* Runs and hugetlb SuperSlabs are unmapped here; the rest are
     * released to the purged stacks, and unmapped from there below. */
    unsigned unmapped = return_all_idle_now();
    seg_purged_t batch[PURGE_BATCH];
    unsigned n;
    while ((n = seg_take_purged(batch, PURGE_BATCH)) != 0) {
        for (unsigned i = 0; i < n; i++) seg_unmap_purged(&batch[i]);
        unmapped += n;
    }
    trim_turn_end();
    return unmapped > 0;
}

/* Once the main thread has left, the thread looks whether it is alone at
 * least this often: a process whose last thread leaves without having
 * allocated (no seg_thread_left), or whose orphans keep the purge thread
 * waking, ends at most this long after it. */
#define PURGE_ALONE_LOOK_MS 1000
/* Looks after one of the last threads left: 1, 2, 4 ... ms after, while
 * no more threads run than the leaving one, a main thread not yet gone and
 * this one (more: no end is near). */
#define PURGE_ALONE_LOOK_FIRST_MS 1
#define PURGE_LOOK_THREADS_MAX 3

/* Purge thread, holding the lock, woken with no work notified after the
 * main thread left: whether it is the process's last thread, when a look
 * is due; if so, the process is ending (os_exit_on_new_thread, started
 * here). Looking is a system call, made with the lock let go. */
HS_APART_LATE HS_NOINLINE static bool purge_alone(void)
{
    uint64_t now = seg_now_ms();
    if (atomic_exchange_explicit(&purge.thread_left, false, memory_order_relaxed))
        purge.alone_look_ms = PURGE_ALONE_LOOK_FIRST_MS;
    if (!purge.alone_look_ms && now - purge.alone_looked_ms < PURGE_ALONE_LOOK_MS) return false;
    hs_unlock(&purge.lock);
    int running = os_threads_running();
    /* Not by returning, which has glibc call exit(0) on this thread's 64
     * KiB stack: the program's exit handlers may need more (an atexit
     * handler with 200 KiB of locals took SIGSEGV there). If no thread
     * can be had, that is what happens. */
    if (running == 1) os_exit_on_new_thread(0);
    hs_lock(&purge.lock);
    purge.alone_looked_ms = now;
    if (running == 1) return true;
    bool near_end = running >= 0 && running <= PURGE_LOOK_THREADS_MAX;
    purge.alone_look_ms =
        near_end && 2 * purge.alone_look_ms <= PURGE_ALONE_LOOK_MS ? 2 * purge.alone_look_ms : 0;
    return false;
}

HS_APART_LATE void seg_thread_left(bool last_ones)
{
    if (os_is_main_thread())
        atomic_store_explicit(&purge.main_left, true, memory_order_relaxed);
    else if (!last_ones || !atomic_load_explicit(&purge.main_left, memory_order_relaxed))
        return;
    if (atomic_load_explicit(&purge.state, memory_order_relaxed) != 1) return;
    atomic_store_explicit(&purge.thread_left, true, memory_order_relaxed);
    hs_lock(&purge.lock);
    pthread_cond_signal(&purge.wakeup);
    hs_unlock(&purge.lock);
}

/* The purge thread's wait, cut so that it looks in time whether it is
 * alone (purge_alone). */
HS_APART_LATE HS_NOINLINE static uint64_t wait_to_look(uint64_t wait)
{
    if (wait > PURGE_ALONE_LOOK_MS) wait = PURGE_ALONE_LOOK_MS;
    /* One that left during a pass is looked after at once. */
    uint64_t look = atomic_load_explicit(&purge.thread_left, memory_order_relaxed)
                        ? PURGE_ALONE_LOOK_FIRST_MS
                        : purge.alone_look_ms;
    return look && wait > look ? look : wait;
}

/* The purge thread, holding purge_lock, waits until no malloc_trim is under
 * way (or the process exits). Seldom code: out of purge_main's loop. */
HS_SELDOM HS_NOINLINE static void wait_for_trims(void)
{
    while (purge.trims && !purge.stopping) pthread_cond_wait(&purge.wakeup, &purge.lock.mutex);
}

/* A pass ended while malloc_trim calls waited: the first goes, and wakes
 * the next (trim_turn_begin). Seldom code, as wait_for_trims. */
HS_SELDOM HS_NOINLINE static void wake_trims(void) { pthread_cond_signal(&purge.turns); }

static void *purge_main(void *arg)
{
    (void)arg;
    /* Named, so that top -H and /proc/PID/task/TID/comm show what it is. */
    pthread_setname_np(pthread_self(), "hugeslab-purge");
    hs_lock(&purge.lock);
    purge.thread = pthread_self();
    purge.thread_known = true;
    uint64_t next_due = 0;
    uint64_t next_periodic = purge.periodic_work ? seg_now_ms() + purge.periodic_ms : UINT64_MAX;
    while (!purge.stopping) {
        if (!purge.work_pending) {
            uint64_t wake = next_due < next_periodic ? next_due : next_periodic;
            bool looking = atomic_load_explicit(&purge.main_left, memory_order_relaxed);
            if (wake == UINT64_MAX && !looking) {
                purge.sleeping_until_ms = UINT64_MAX;
                pthread_cond_wait(&purge.wakeup, &purge.lock.mutex);
            } else {
                uint64_t now = seg_now_ms();
                uint64_t wait = (wake > now ? wake - now : 0) + PURGE_CLOCK_SLACK_MS;
                /* Cut to PURGE_ALONE_LOOK_MS at most, UINT64_MAX's too. */
                if (looking) wait = wait_to_look(wait);
                struct timespec until;
                os_deadline_after(wait, &until);
                purge.sleeping_until_ms = now + wait;
                pthread_cond_clockwait(&purge.wakeup, &purge.lock.mutex, CLOCK_MONOTONIC, &until);
            }
            purge.sleeping_until_ms = 0;
            if (purge.stopping) break;
            if (!purge.work_pending &&
                atomic_load_explicit(&purge.main_left, memory_order_relaxed)) {
                if (purge_alone()) break;
                if (!purge.work_pending && seg_now_ms() < wake) continue;
            }
        }
        if (purge.trims) wait_for_trims();
        if (purge.stopping) break;
        purge.work_pending = false;
        purge.passing = true;
        hs_unlock(&purge.lock);
        next_due = purge_pass();
        if (seg_now_ms() >= next_periodic) {
            purge.periodic_work();
            next_periodic = seg_now_ms() + purge.periodic_ms;
        }
        hs_lock(&purge.lock);
        purge.passing = false;
        if (purge.trims) wake_trims();
    }
    bool process_ending = purge.stopping;
    hs_unlock(&purge.lock);
    /* Stopped by the library's destructor, in exit: the exit_group that
     * follows ends this thread. Returning would run glibc's thread exit
     * meanwhile, and its __libc_thread_freeres alone faulted 64 KiB of libc's
     * text in about half the runs of `python3 -c pass` (Rss at exit 7,572
     * KiB against 7,508). The last-thread exit above (purge_alone) still
     * returns. */
    if (process_ending) os_thread_park();
    return NULL;
}

/* Whether the library's constructor has run (seg_allow_background). A
 * process allocates before it where another library's constructor runs
 * first; a purge thread started then ran before the fork handlers were
 * registered (the constructor sets them), and a fork's child inherited a
 * pool lock it held: 7 of 300 children of forks in such a constructor
 * hung, in each of two runs. Nor did it ever see the live report's
 * periodic work, set by the constructor after it had read that. Until
 * then the thread waits to be started, and idle memory waits with it. */
static _Atomic bool background_allowed;

/* A start pthread_create refused (EAGAIN: no memory or threads left at
 * that moment) is tried again at the first notice this long after: soon,
 * as a program that was short of memory for a moment may free the rest
 * of its memory then and sleep; not at every notice, each of which would
 * cost a failed pthread_create (a stack mapped and unmapped) while the
 * shortage lasts, or for good where a pids limit is reached. Refused for
 * good before, one moment of a full address space at the first notice
 * kept every idle SuperSlab and run of the process cached from then on
 * (RSS 208,596 KiB 4 s after 150 MiB were freed, HUGESLAB_CACHE_MB=16;
 * 1,920 KiB now). */
#define PURGE_START_AGAIN_MS 10

HS_SELDOM HS_NOINLINE static void purge_start_refused(int rc, bool first)
{
    atomic_store(&purge.start_again_ms, seg_now_ms() + PURGE_START_AGAIN_MS);
    atomic_store(&purge.state, 0);
    if (hs_option(HS_OPT_VERBOSE) && first)
        hs_message("cannot start the purge thread (error %d): idle memory stays cached until a "
                   "start succeeds (tried again at the next free) or malloc_trim()",
                   rc);
}

static void purge_start(void)
{
    if (!atomic_load(&background_allowed)) return;
    uint64_t again = atomic_load_explicit(&purge.start_again_ms, memory_order_relaxed);
    if (again && seg_now_ms() < again) return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&purge.state, &expected, 1)) return;
    /* Every signal blocked: the thread must never take one meant for the
     * program. */
    int rc = os_thread_start(purge_main, NULL, 64 * HS_KiB);
    if (rc != 0) purge_start_refused(rc, !again);
}

void seg_start_background(void) { purge_start(); }

void seg_allow_background(void)
{
    atomic_store(&background_allowed, true);
    hs_lock(&purge.lock);
    bool wanted = purge.work_pending || purge.periodic_work;
    hs_unlock(&purge.lock);
    if (wanted) purge_start();
}

bool purge_started(void) { return atomic_load_explicit(&purge.state, memory_order_relaxed) > 0; }

void purge_notify(uint64_t due_in_ms)
{
    int state = atomic_load_explicit(&purge.state, memory_order_acquire);
    hs_lock(&purge.lock);
    purge.work_pending = true;
    /* A sleep that ends before this newest memory falls due needs no
     * wakeup (a system call); one that ends later (nothing to wait for, or
     * only the reserve's longer delay) does. The thread's own slack counts
     * as on time: compared without it, every free in the few milliseconds
     * after the one the thread timed its sleep for woke it, and its pass
     * found nothing due (bench_random_mixed with 100 blocks of 32-64 KiB
     * replaced at random: 600 wakeups and as many waits for this lock in
     * 100,000 calls). */
    if (due_in_ms == PURGE_LATER) due_in_ms = delay_ms();
    if (purge.sleeping_until_ms > seg_now_ms() + due_in_ms + PURGE_CLOCK_SLACK_MS)
        pthread_cond_signal(&purge.wakeup);
    hs_unlock(&purge.lock);
    /* After the work is noted: a start refused before the library's
     * constructor has run is made by seg_allow_background, which finds the
     * work under the lock. pthread_create allocates (the new thread's TLS,
     * with calloc), and an allocation may need any lock of the table: a
     * caller that still holds one has it started when it lets go of its
     * last. */
    if (state == 0) hs_when_unlocked(purge_start);
}

HS_APART_LATE void purge_notify_frontier(uint64_t due_in_ms)
{
    atomic_store_explicit(&purge.frontier_looks, true, memory_order_relaxed);
    purge_notify(due_in_ms);
}

HS_APART void purge_fork_child(void)
{
    /* The child's main thread is the one that forked, and it runs. */
    atomic_store(&purge.main_left, false);
    atomic_store(&purge.thread_left, false);
    purge.alone_look_ms = 0;
    atomic_store(&purge.emptied_seen, false);
    purge.emptied_due_ms = 0;
    purge.emptied_again_ms = 0;
    /* The thread did not come along: the next idle SuperSlab starts one. */
    hs_lock_init(&purge.lock, HS_RANK_PURGE);
    pthread_cond_init(&purge.wakeup, NULL);
    pthread_cond_init(&purge.turns, NULL);
    /* Another thread's malloc_trim did not come along either. */
    purge.trims = 0;
    purge.work_pending = purge.stopping = purge.passing = purge.thread_known = false;
    purge.sleeping_until_ms = 0;
    if (atomic_load(&purge.state) > 0) atomic_store(&purge.state, 0);
    os_uring_fork_child();
}

void purge_shutdown(void)
{
    if (atomic_load(&purge.state) <= 0) return;
    hs_lock(&purge.lock);
    purge.stopping = true;
    pthread_cond_signal(&purge.wakeup);
    hs_unlock(&purge.lock);
}
