/* segment's pool and purge state machine, driven directly with a clock the
 * test sets (seg_set_clock): linked with the library's objects and built
 * against src/ headers, like internal_test.
 *   - a SuperSlab whose units all come back goes to its pool's idle list,
 *     stamped with the clock; one with some units free is on the partial
 *     list of its longest run of free units, and moves as they change; a
 *     search skips the lists below the run it needs;
 *     seg_superslab_validate and seg_pool_validate agree;
 *   - seg_take_idle leaves an idle SuperSlab alone until it has been idle
 *     for min_idle_ms, says when it falls due, then takes it out of the
 *     pool and the registry;
 *   - a purged SuperSlab is revived at the same address by the next
 *     request, known to the registry again;
 *   - HUGESLAB_RESERVE_MB keeps the newest idle SuperSlabs until they have
 *     been idle for the reserve's delay; beyond HUGESLAB_CACHE_MB idle
 *     memory is taken at once, due or not, and beyond the cache limit once
 *     it has been idle for 100 ms;
 *   - a SuperSlab marked outgrown is taken at once, to go back for good;
 *   - fresh memory mapped beside idle or lazily freed SuperSlabs asks as
 *     many to skip the lazy stage's wait, for the release delay at most;
 *   - a freed run waits in the run cache and is taken when due;
 *   - malloc_trim's seg_trim takes everything idle, whatever the clock;
 *   - a thread that finds every SuperSlab full while another takes one
 *     waits for it, and takes its unit there; a taker that never ends
 *     holds it only until the clock has moved on;
 *   - slabs of pages (seg_pages_alloc): the shortest free run of pages,
 *     one slab starting where another ended inside a unit, the page map of
 *     the units they share, a slab grown into the pages after it, and units
 *     whose pages all come back in free_units again;
 *   - seg_superslab_validate reports a broken SuperSlab and aborts.
 * The purge thread is kept out of the way by a purge delay of an hour. */
#include "test_util.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hugeslab.h"
#include "segment/segment.h"
#include "segment/segment_internal.h"

static _Atomic uint64_t fake_now = 10 * 1000 * 1000;

static uint64_t fake_clock(void) { return atomic_load(&fake_now); }

static seg_owner_t no_owner = {0, NULL, false};
static const size_t whole = HS_UNITS_PER_SUPERSLAB * HS_UNIT_SIZE - SEG_FIRST_SLAB_BYTE;

/* A SuperSlab of node 0 with every unit in use: fresh, idle or revived. */
static seg_superslab_t *take_whole(void)
{
    unsigned first = 99, units = HS_UNITS_PER_SUPERSLAB;
    bool fresh;
    seg_superslab_t *ss =
        seg_units_alloc(0, &no_owner, &units, HS_UNITS_PER_SUPERSLAB, whole, false, &first, &fresh);
    CHECK(ss != NULL && first == 0, "seg_units_alloc of a whole SuperSlab: %p, unit %u", (void *)ss,
          first);
    if (ss) seg_superslab_validate(ss);
    return ss;
}

/* seg_take_idle with the options' policy but these two delays: purge after
 * purge_ms idle, the reserve after release_ms. */
static unsigned take_idle(uint64_t purge_ms, uint64_t release_ms, seg_taken_t *batch, uint64_t *due)
{
    seg_purge_policy_t policy = seg_purge_policy();
    policy.purge_after_ms = purge_ms;
    policy.release_after_ms = release_ms;
    return seg_take_idle(&policy, fake_clock(), batch, 64, due);
}

/* The same, by a pass that read its clock a millisecond before now: one
 * that waited for a lock while other threads stamped memory idle. */
static unsigned take_idle_late(uint64_t purge_ms, seg_taken_t *batch, uint64_t *due)
{
    seg_purge_policy_t policy = seg_purge_policy();
    policy.purge_after_ms = purge_ms;
    policy.release_after_ms = 2000;
    return seg_take_idle(&policy, fake_clock() - 1, batch, 64, due);
}

/* What seg_take_idle took and is not ours goes back as the purge thread
 * would put it; returns whether `mine` was among the taken. */
static bool took(seg_taken_t *batch, unsigned n, const seg_superslab_t *mine)
{
    bool found = false;
    for (unsigned i = 0; i < n; i++) {
        seg_superslab_t *ss = batch[i].ss;
        if (ss == mine) found = true;
        /* A taken SuperSlab of slabs leaves the registry; a run stays known
         * (as a freed one) until it is unmapped. */
        CHECK(ss->kind == SEG_CHUNK_RUN || seg_chunk_kind(ss) == SEG_CHUNK_NONE,
              "taken %p still in the registry", (void *)ss);
        if (ss->kind == SEG_CHUNK_RUN || ss->backing == THP_BACKING_HUGETLB)
            seg_unmap_idle(ss, ss->run_size, (thp_backing_t)ss->backing);
        else
            seg_store_purged(ss, ss->node, (thp_backing_t)ss->backing, ss->memory_node, true);
    }
    return found;
}

static uint64_t cached(void)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    return s.superslabs_cached;
}

static uint64_t purged(void)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    return s.superslabs_purged;
}

static void check_idle_and_due(void)
{
    seg_taken_t batch[64];
    uint64_t due;
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    CHECK(!ss->on_partial && ss->free_units == 0, "a whole SuperSlab in use is in no list");
    bool ss_was_hugetlb = ss->backing == THP_BACKING_HUGETLB;
    /* Half back: on the partial list. */
    seg_units_free(ss, 0, HS_UNITS_PER_SUPERSLAB / 2);
    CHECK(ss->on_partial, "half free, not on the partial list");
    seg_pool_validate(0);
    uint64_t before = cached();
    seg_units_free(ss, HS_UNITS_PER_SUPERSLAB / 2, HS_UNITS_PER_SUPERSLAB / 2);
    uint64_t idle_at = fake_clock();
    CHECK(!ss->on_partial && ss->idle_since_ms == idle_at,
          "idle: on_partial %u, idle since %llu, want %llu", ss->on_partial,
          (unsigned long long)ss->idle_since_ms, (unsigned long long)idle_at);
    CHECK(cached() == before + 1, "cached %llu, want %llu", (unsigned long long)cached(),
          (unsigned long long)(before + 1));
    seg_pool_validate(0);

    /* Stamped after the pass read its clock: not idle for 2^64 ms. */
    unsigned n = take_idle_late(100, batch, &due);
    CHECK(!took(batch, n, ss), "taken by a pass whose clock predates its idle stamp");

    /* Idle 99 ms of 100: stays, and is said to fall due at +100. */
    atomic_fetch_add(&fake_now, 99);
    n = take_idle(100, 2000, batch, &due);
    CHECK(!took(batch, n, ss), "taken after 99 ms of a 100 ms delay");
    CHECK(due <= idle_at + 100, "next due %llu, want at most %llu", (unsigned long long)due,
          (unsigned long long)(idle_at + 100));
    CHECK(seg_chunk_kind(ss) == SEG_CHUNK_SLABS, "an idle SuperSlab left the registry");
    /* At +100: taken, out of the pool and the registry. */
    atomic_fetch_add(&fake_now, 1);
    uint64_t purged_before = purged();
    n = take_idle(100, 2000, batch, &due);
    CHECK(took(batch, n, ss), "not taken after 100 ms of a 100 ms delay");
    CHECK(purged() >= purged_before + 1, "purged %llu, want at least %llu",
          (unsigned long long)purged(), (unsigned long long)(purged_before + 1));
    seg_pool_validate(0);

    /* The next whole SuperSlab is the purged one, revived in place. */
    seg_superslab_t *again = take_whole();
    CHECK(again == ss || ss_was_hugetlb, "revived %p, want the purged %p", (void *)again,
          (void *)ss);
    CHECK(again == NULL || seg_chunk_kind(again) == SEG_CHUNK_SLABS,
          "a revived SuperSlab is not in the registry");
    if (again) seg_units_free(again, 0, HS_UNITS_PER_SUPERSLAB);
    seg_pool_validate(0);
}

/* Two SuperSlabs of node 0 fall idle, *b a millisecond after *a: the
 * newest. False when either could not be had. */
static bool two_idle(seg_superslab_t **a, seg_superslab_t **b)
{
    *a = take_whole();
    *b = take_whole();
    if (!*a || !*b) return false;
    seg_units_free(*a, 0, HS_UNITS_PER_SUPERSLAB);
    atomic_fetch_add(&fake_now, 1);
    seg_units_free(*b, 0, HS_UNITS_PER_SUPERSLAB);
    return true;
}

/* ss's entry among n taken; NULL when it was not taken. */
static const seg_taken_t *taken_entry(const seg_taken_t *batch, unsigned n,
                                      const seg_superslab_t *ss)
{
    for (unsigned i = 0; i < n; i++)
        if (batch[i].ss == ss) return &batch[i];
    return NULL;
}

static void check_reserve_and_cache(void)
{
    seg_taken_t batch[64];
    uint64_t due;
    seg_superslab_t *a, *b;
    if (!two_idle(&a, &b)) return;
    /* A reserve of one SuperSlab: b stays until it has been idle for the
     * reserve's delay (2000 ms here), a goes after the purge delay. */
    hs_option_values[HS_OPT_RESERVE_MB] = 2;
    atomic_fetch_add(&fake_now, 1000);
    unsigned n = take_idle(100, 2000, batch, &due);
    bool took_a = taken_entry(batch, n, a), took_b = taken_entry(batch, n, b);
    took(batch, n, NULL);
    CHECK(took_a && !took_b, "reserve of one: took a %d (want 1), b %d (want 0)", took_a, took_b);
    atomic_fetch_add(&fake_now, 1000);
    n = take_idle(100, 2000, batch, &due);
    CHECK(took(batch, n, b), "the reserve not taken after its delay");
    b = take_whole();
    if (!b) return;
    seg_units_free(b, 0, HS_UNITS_PER_SUPERSLAB);
    /* No reserve, a cache of 0 MiB: b goes at once, due or not. */
    hs_option_values[HS_OPT_RESERVE_MB] = 0;
    hs_option_values[HS_OPT_CACHE_MB] = 0;
    n = take_idle(3600 * 1000, 3600 * 1000, batch, &due);
    CHECK(took(batch, n, b), "beyond the cache limit, not taken at once");
    hs_option_values[HS_OPT_CACHE_MB] = 1 << 20;
    seg_pool_validate(0);
}

/* Beyond the cache limit (16 MiB at the least here) but within
 * HUGESLAB_CACHE_MB, an idle SuperSlab goes once it has been idle for
 * SEG_OVER_LIMIT_MIN_MS (100 ms), not at once: ten SuperSlabs just freed
 * stay, and 100 ms later those beyond the limit go. */
static void check_over_limit_wait(void)
{
    enum { count = 10 };
    seg_superslab_t *ss[count];
    seg_taken_t batch[64];
    uint64_t due;
    for (int i = 0; i < count; i++) {
        ss[i] = take_whole();
        if (!ss[i]) return;
    }
    for (int i = 0; i < count; i++) seg_units_free(ss[i], 0, HS_UNITS_PER_SUPERSLAB);
    unsigned n = take_idle(3600 * 1000, 3600 * 1000, batch, &due);
    took(batch, n, NULL);
    CHECK(n == 0, "%u of %d SuperSlabs just idle, beyond the cache limit, taken at once", n, count);
    atomic_fetch_add(&fake_now, 100);
    n = take_idle(3600 * 1000, 3600 * 1000, batch, &due);
    took(batch, n, NULL);
    CHECK(n >= 2 && n <= count,
          "%u of %d SuperSlabs idle for 100 ms taken (20 MiB idle, a limit of 16 MiB)", n, count);
    n = take_idle(0, 0, batch, &due);
    took(batch, n, NULL);
    seg_pool_validate(0);
}

/* A SuperSlab realloc's move emptied (seg_mark_outgrown) is taken at the
 * next pass whatever its age and the reserve, to go back for good at once
 * (release_now); only the pool's newest idle SuperSlab is marked, and one
 * taken for its age is not released at once. */
static void check_outgrown(void)
{
    seg_taken_t batch[64];
    uint64_t due;
    seg_superslab_t *a, *b;
    if (!two_idle(&a, &b)) return;
    /* A reserve of one would keep b for the reserve's delay. */
    hs_option_values[HS_OPT_RESERVE_MB] = 2;
    CHECK(!seg_mark_outgrown(a, 0), "an idle SuperSlab behind the newest marked outgrown");
    CHECK(seg_mark_outgrown(b, 0), "the newest idle SuperSlab not marked outgrown");
    unsigned n = take_idle(3600 * 1000, 3600 * 1000, batch, &due);
    const seg_taken_t *entry_b = taken_entry(batch, n, b);
    bool took_a = taken_entry(batch, n, a), others_now = false;
    for (unsigned i = 0; i < n; i++) others_now |= batch[i].ss != b && batch[i].release_now;
    bool b_now = entry_b && entry_b->release_now;
    took(batch, n, NULL);
    CHECK(b_now && !took_a && !others_now,
          "outgrown: b taken to go now %d (want 1), a taken %d (want 0), another to go now %d "
          "(want 0)",
          b_now, took_a, others_now);
    /* a, taken for its age, takes the lazy stage like any other. */
    hs_option_values[HS_OPT_RESERVE_MB] = 0;
    atomic_fetch_add(&fake_now, 100);
    n = take_idle(100, 2000, batch, &due);
    const seg_taken_t *entry_a = taken_entry(batch, n, a);
    bool a_now = entry_a && entry_a->release_now;
    CHECK(took(batch, n, a) && !a_now, "a SuperSlab idle 100 ms: taken to go now %d (want 0)",
          a_now);
    seg_pool_validate(0);
}

/* Fresh memory mapped beside idle or lazily freed SuperSlabs asks as many
 * of them to skip the lazy stage's wait (seg_note_fresh): never more than
 * rest, and nothing once the release delay has passed since it asked. */
static void check_fresh_asks(void)
{
    seg_purge_policy_t policy = seg_purge_policy();
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    seg_note_fresh(4 * HS_MiB);
    CHECK(seg_fresh_take(&policy, fake_clock(), 8) == 0, "fresh memory beside none resting asked");
    seg_units_free(ss, 0, HS_UNITS_PER_SUPERSLAB);
    uint64_t resting = cached(); /* and none lazily freed yet */
    seg_note_fresh((resting + 2) * HS_SUPERSLAB_SIZE);
    unsigned granted = seg_fresh_take(&policy, fake_clock(), 64);
    CHECK(granted == resting, "fresh memory asked %u SuperSlabs, want the %llu resting", granted,
          (unsigned long long)resting);
    CHECK(seg_fresh_take(&policy, fake_clock(), 64) == 0, "granted twice");
    /* Asks of many mappings add up to what rests, no more. */
    seg_note_fresh(HS_SUPERSLAB_SIZE);
    seg_note_fresh((resting + 2) * HS_SUPERSLAB_SIZE);
    granted = seg_fresh_take(&policy, fake_clock(), 64);
    CHECK(granted == resting, "two mappings asked %u SuperSlabs, want the %llu resting", granted,
          (unsigned long long)resting);
    /* An ask newer than the purge pass's clock is not expired. */
    seg_note_fresh(HS_SUPERSLAB_SIZE);
    CHECK(seg_fresh_take(&policy, fake_clock() - 1, 64) == 1,
          "an ask newer than the pass's clock was dropped");
    seg_note_fresh(HS_SUPERSLAB_SIZE);
    atomic_fetch_add(&fake_now, policy.lazy_release_after_ms + 1);
    CHECK(seg_fresh_take(&policy, fake_clock(), 64) == 0, "asked past the release delay, granted");
}

static void check_run_cache(void)
{
    seg_taken_t batch[64];
    uint64_t due;
    bool fresh;
    void *p = seg_run_alloc(3 * HS_MiB, 16, 0, &fresh);
    CHECK(p != NULL, "seg_run_alloc of 3 MiB");
    if (!p) return;
    seg_superslab_t *run = seg_run_of(p);
    CHECK(run != NULL && run->run_block == p, "seg_run_of(%p)", p);
    if (!run) return;
    seg_superslab_validate(run);
    seg_run_free(run);
    seg_superslab_validate(run);
    CHECK(run->run_block == NULL && run->idle_since_ms == fake_clock(), "a cached run");
    unsigned n = take_idle_late(100, batch, &due);
    CHECK(!took(batch, n, run), "a run taken by a pass whose clock predates its free");
    atomic_fetch_add(&fake_now, 50);
    n = take_idle(100, 2000, batch, &due);
    CHECK(!took(batch, n, run), "a run taken after 50 ms of a 100 ms delay");
    atomic_fetch_add(&fake_now, 50);
    n = take_idle(100, 2000, batch, &due);
    CHECK(took(batch, n, run), "a run not taken after 100 ms of a 100 ms delay");
}

static void check_trim(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    seg_units_free(ss, 0, HS_UNITS_PER_SUPERSLAB);
    CHECK(seg_trim(NULL) == 1, "seg_trim released nothing with an idle SuperSlab");
    CHECK(seg_chunk_kind(ss) == SEG_CHUNK_NONE, "after seg_trim, the idle SuperSlab is known");
    CHECK(cached() == 0, "after seg_trim, %llu SuperSlabs cached", (unsigned long long)cached());
    seg_pool_validate(0);
}

/* Units say whether they were ever in a slab: a new SuperSlab's are fresh
 * (all zero, calloc need not write them), the same units again are not,
 * nor are a revived one's (its pages may have gone with MADV_FREE). */
static void check_fresh_units(void)
{
    enum { MOST = 16 };
    seg_superslab_t *taken[MOST];
    unsigned n = 0;
    bool fresh = false, mapped = false;
    /* Idle and purged SuperSlabs first; the first one mapped anew is fresh. */
    while (n < MOST && !mapped) {
        seg_stats_t before, after;
        seg_stats(&before);
        unsigned first = 99, units = HS_UNITS_PER_SUPERSLAB;
        taken[n] = seg_units_alloc(0, &no_owner, &units, HS_UNITS_PER_SUPERSLAB, whole, false,
                                   &first, &fresh);
        seg_stats(&after);
        if (!taken[n]) break;
        mapped = after.bytes_mapped > before.bytes_mapped;
        CHECK(fresh == mapped, "SuperSlab %p: fresh %d, newly mapped %d", (void *)taken[n], fresh,
              mapped);
        n++;
    }
    CHECK(mapped, "no SuperSlab mapped in %u taken", n);
    if (mapped) {
        seg_superslab_t *ss = taken[n - 1];
        char *unit5 = (char *)ss + 5 * HS_UNIT_SIZE;
        unit5[100] = 1;
        seg_units_free(ss, 0, HS_UNITS_PER_SUPERSLAB);
        unsigned first = 99, units = HS_UNITS_PER_SUPERSLAB;
        seg_superslab_t *again = seg_units_alloc(0, &no_owner, &units, HS_UNITS_PER_SUPERSLAB,
                                                 whole, false, &first, &fresh);
        CHECK(again == ss && !fresh, "units back from a slab are fresh (%p, again %p)", (void *)ss,
              (void *)again);
        if (again) taken[n - 1] = again;
    }
    for (unsigned i = 0; i < n; i++) seg_units_free(taken[i], 0, HS_UNITS_PER_SUPERSLAB);
    seg_pool_validate(0);
}

/* Units scattered one by one: a request for more in a row than any
 * SuperSlab in use has, with a smaller minimum, gets the minimum there
 * instead of a new SuperSlab; without one, it gets a new SuperSlab. */
static void check_fewer_units_before_a_new_superslab(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    for (unsigned u = 1; u < HS_UNITS_PER_SUPERSLAB; u += 2) seg_units_free(ss, u, 1);
    seg_stats_t before, after;
    seg_stats(&before);
    unsigned n = HS_UNITS_PER_SUPERSLAB, first = 0;
    bool fresh;
    seg_superslab_t *got =
        seg_units_alloc(0, &no_owner, &n, 1, HS_UNIT_SIZE, false, &first, &fresh);
    seg_stats(&after);
    CHECK(got && n == 1 && after.bytes_mapped == before.bytes_mapped,
          "a whole SuperSlab, or 1 unit, asked with units free one by one: %u units at %p, "
          "%llu bytes mapped before, %llu after",
          n, (void *)got, (unsigned long long)before.bytes_mapped,
          (unsigned long long)after.bytes_mapped);
    if (got) seg_units_free(got, first, n);
    n = 2;
    got = seg_units_alloc(0, &no_owner, &n, 2, 2 * HS_UNIT_SIZE, false, &first, &fresh);
    CHECK(got && got != ss && n == 2, "2 units in a row: %u units at %p, the scattered one %p", n,
          (void *)got, (void *)ss);
    if (got) seg_units_free(got, first, n);
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB; u += 2) seg_units_free(ss, u, 1);
    seg_pool_validate(0);
}

/* A slab asked at_end takes the last units of the free run chosen, one
 * asked without it the first: a slab that goes back soon leaves its units
 * next to the run's rest. */
static void check_units_at_end(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    seg_units_free(ss, 20, 10);
    unsigned n = 3, first = 0;
    bool fresh;
    seg_superslab_t *got =
        seg_units_alloc(0, &no_owner, &n, 3, 3 * HS_UNIT_SIZE, true, &first, &fresh);
    CHECK(got == ss && n == 3 && first == 27,
          "3 units at the end of a free run of units 20-29: %u units from %u at %p (%p)", n, first,
          (void *)got, (void *)ss);
    unsigned first2 = 0, n2 = 3;
    seg_superslab_t *got2 =
        seg_units_alloc(0, &no_owner, &n2, 3, 3 * HS_UNIT_SIZE, false, &first2, &fresh);
    CHECK(got2 == ss && n2 == 3 && first2 == 20,
          "3 units at the start of a free run of units 20-26: %u units from %u at %p (%p)", n2,
          first2, (void *)got2, (void *)ss);
    if (got2) seg_units_free(got2, first2, n2);
    if (got) seg_units_free(got, first, n);
    seg_units_free(ss, 0, 20);
    seg_units_free(ss, 30, HS_UNITS_PER_SUPERSLAB - 30);
    seg_pool_validate(0);
}

/* Runs brk on ss in a child, then seg_superslab_validate: true when the
 * child aborted with the validator's report. */
static bool validator_reports(seg_superslab_t *ss, void (*brk)(seg_superslab_t *ss),
                              const char *what)
{
    int pfd[2];
    if (pipe(pfd) != 0) return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        brk(ss);
        seg_superslab_validate(ss);
        _exit(0);
    }
    close(pfd[1]);
    char out[512] = "";
    ssize_t len = read(pfd[0], out, sizeof out - 1);
    out[len > 0 ? len : 0] = 0;
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool reported =
        WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "hugeslab: invariant broken");
    CHECK(reported, "%s: status 0x%x, stderr \"%s\"", what, st, out);
    return reported;
}

/* Units 5, 12 and 20 of a SuperSlab with units 1-30 free taken behind the
 * lists' back: its longest run is 10, and it is still on the list of 17. */
static void take_behind_lists(seg_superslab_t *ss)
{
    ss->free_units &= ~(seg_unit_bits(5, 1) | seg_unit_bits(12, 1) | seg_unit_bits(20, 1));
}

/* A unit free, yet on no list. */
static void free_behind_lists(seg_superslab_t *ss) { ss->free_units = 1; }

/* The partial lists: a SuperSlab moves to the list of its longest run of
 * free units as units come back and go; a search for a run skips the
 * lists below it, and still finds one in any list above; the validator
 * reports a SuperSlab left on the wrong list (in a child). */
static void check_partial_lists(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    seg_units_free(ss, 1, 1);
    seg_units_free(ss, 3, 1);
    CHECK(ss->on_partial == 1, "units 1 and 3 free: on list %d, want 0", ss->on_partial - 1);
    seg_units_free(ss, 2, 1);
    CHECK(ss->on_partial == 3, "units 1-3 free: on list %d, want 2", ss->on_partial - 1);
    seg_units_free(ss, 4, 7);
    CHECK(ss->on_partial == 5, "units 1-10 free: on list %d, want 4", ss->on_partial - 1);
    seg_units_free(ss, 11, 20);
    CHECK(ss->on_partial == 6, "units 1-30 free: on list %d, want 5", ss->on_partial - 1);
    seg_pool_validate(0);
    unsigned n = 30, first = 0;
    bool fresh;
    seg_superslab_t *got =
        seg_units_alloc(0, &no_owner, &n, 30, 30 * HS_UNIT_SIZE, false, &first, &fresh);
    CHECK(got == ss && first == 1 && !ss->on_partial,
          "30 units from the top list: at %p unit %u (%p), on list %d", (void *)got, first,
          (void *)ss, ss->on_partial - 1);
    if (got) seg_units_free(got, first, n);
    for (unsigned k = 0; k < SEG_PARTIAL_LISTS; k++)
        CHECK(seg_partial_first(seg_partial_min_run[k]) == k &&
                  (k == 0 || seg_partial_first(seg_partial_min_run[k] - 1) == k - 1),
              "a run of %u units starts its search at list %u", seg_partial_min_run[k],
              seg_partial_first(seg_partial_min_run[k]));
    validator_reports(ss, take_behind_lists, "a SuperSlab on the wrong partial list");
    seg_units_free(ss, 0, 1);
    seg_units_free(ss, 31, HS_UNITS_PER_SUPERSLAB - 31);
    seg_pool_validate(0);
}

/* Slabs of pages (seg_pages_alloc, seg_pages_extend, seg_pages_free) in
 * units 1-30 of a SuperSlab the test holds: pages 8-247. The pool's other
 * SuperSlabs with room (the test's own heap's) offer longer runs, which
 * best fit passes over. */
static void check_pages(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    seg_units_free(ss, 1, 30);
    const seg_page_map_t *map = seg_page_map(ss);
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool fresh = false;
    seg_superslab_t *got = seg_pages_alloc(0, 74, &a, &fresh);
    CHECK(got == ss && a == 8 && map->free[10] == 0xfc,
          "74 pages in units 1-30: from page %u at %p (%p), unit 10's free pages 0x%x", a,
          (void *)got, (void *)ss, map->free[10]);
    got = seg_pages_alloc(0, 74, &b, &fresh);
    CHECK(got == ss && b == 82 && !fresh && map->free[10] == 0 && map->free[19] == 0xf0,
          "74 pages more: from page %u, fresh %d, unit 10's free pages 0x%x, unit 19's 0x%x", b,
          fresh, map->free[10], map->free[19]);
    seg_pages_free(ss, a, 74);
    CHECK(ss->free_units == (seg_unit_bits(1, 9) | seg_unit_bits(20, 11)) && map->free[10] == 0x03,
          "the first 74 pages back: free units 0x%llx, unit 10's free pages 0x%x",
          (unsigned long long)ss->free_units, map->free[10]);
    /* 76 pages do not fit the 74 before the second slab: they go after it. */
    got = seg_pages_alloc(0, 76, &c, &fresh);
    CHECK(got == ss && c == 156, "76 pages: from page %u at %p", c, (void *)got);
    got = seg_pages_alloc(0, 74, &d, &fresh);
    CHECK(got == ss && d == 8 && map->free[10] == 0 && ss->free_units == seg_unit_bits(29, 2),
          "74 pages into the 74 free before the second slab: from page %u, unit 10's free pages "
          "0x%x, free units 0x%llx",
          d, map->free[10], (unsigned long long)ss->free_units);
    CHECK(!seg_pages_extend(ss, d + 74, 1), "%s", "a slab grown into the next slab's first page");
    CHECK(seg_pages_extend(ss, c + 76, 16) && map->free[29] == 0 && map->free[30] == 0,
          "the slab from page %u grown by the 16 free pages after it: units 29, 30 0x%x 0x%x", c,
          map->free[29], map->free[30]);
    CHECK(!seg_pages_extend(ss, c + 92, 1), "%s", "a slab grown into a unit in use");
    seg_superslab_validate(ss);
    seg_pages_free(ss, b, 74);
    seg_pages_free(ss, d, 74);
    seg_pages_free(ss, c, 92);
    unsigned partial = 0;
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB; u++) partial += map->free[u] != 0;
    CHECK(ss->free_units == seg_unit_bits(1, 30) && partial == 0,
          "every slab of pages back: free units 0x%llx, %u units partly used",
          (unsigned long long)ss->free_units, partial);
    seg_units_free(ss, 0, 1);
    seg_units_free(ss, 31, HS_UNITS_PER_SUPERSLAB - 31);
    seg_pool_validate(0);
}

/* Owner tags (seg_units_alloc): a tagged caller claims a SuperSlab no one
 * owns; another tagged caller with no home then gets a SuperSlab of its own
 * rather than units there, and one with a home (its own full) gets units
 * in another's before a new SuperSlab; an untagged caller gets units
 * anywhere; a SuperSlab whose owner is gone goes to the next tagged caller
 * with none of its own. */
static const uintptr_t tag_x = 0x1000, tag_y = 0x2000, tag_z = 0x3000, tag_w = 0x4000;
static _Atomic uintptr_t gone_tag;
static bool test_owner_gone(uintptr_t owner) { return owner == atomic_load(&gone_tag); }

static void check_owners(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    seg_set_client_owner_gone(test_owner_gone);
    seg_units_free(ss, 10, 20);
    seg_owner_t x = {tag_x, NULL, false}, y = {tag_y, NULL, false};
    unsigned n = 2, first_x = 0, first_y = 0;
    bool fresh;
    seg_superslab_t *got_x =
        seg_units_alloc(0, &x, &n, 2, 2 * HS_UNIT_SIZE, false, &first_x, &fresh);
    CHECK(got_x == ss && ss->owner == tag_x && x.owned,
          "a tagged caller's units in the SuperSlab no one owned: %p (%p), owner %#lx",
          (void *)got_x, (void *)ss, (unsigned long)ss->owner);
    n = 2;
    seg_superslab_t *got_y =
        seg_units_alloc(0, &y, &n, 2, 2 * HS_UNIT_SIZE, false, &first_y, &fresh);
    CHECK(
        got_y && got_y != ss && got_y->owner == tag_y && y.owned,
        "another tagged caller's units in a SuperSlab of its own: %p (the first's %p), owner %#lx",
        (void *)got_y, (void *)ss, got_y ? (unsigned long)got_y->owner : 0UL);
    /* y's new SuperSlab has more room: an untagged caller still fills
     * the fullest one first, x's. */
    unsigned first_any = 0;
    n = 2;
    seg_superslab_t *got_any =
        seg_units_alloc(0, &no_owner, &n, 2, 2 * HS_UNIT_SIZE, false, &first_any, &fresh);
    CHECK(
        got_any == ss && ss->owner == tag_x,
        "an untagged caller's units in the fullest SuperSlab, whoever owns it: %p (%p), owner %#lx",
        (void *)got_any, (void *)ss, (unsigned long)ss->owner);
    /* w has a home, none of which it finds with room: x's fullest one
     * before a new SuperSlab, which stays x's. */
    seg_stats_t before, after;
    seg_stats(&before);
    seg_owner_t w = {tag_w, (const seg_superslab_t *)&tag_w, false};
    unsigned first_w = 0;
    n = 2;
    seg_superslab_t *got_w =
        seg_units_alloc(0, &w, &n, 2, 2 * HS_UNIT_SIZE, false, &first_w, &fresh);
    seg_stats(&after);
    CHECK(got_w == ss && ss->owner == tag_x && !w.owned &&
              after.bytes_mapped == before.bytes_mapped,
          "a caller with a home full: units in another's SuperSlab %p (%p), owner %#lx, "
          "%llu bytes mapped before, %llu after",
          (void *)got_w, (void *)ss, (unsigned long)ss->owner,
          (unsigned long long)before.bytes_mapped, (unsigned long long)after.bytes_mapped);
    /* x is gone: z, with no SuperSlab of its own, takes x's. */
    atomic_store(&gone_tag, tag_x);
    seg_owner_t z = {tag_z, NULL, false};
    unsigned first_z = 0;
    n = 2;
    seg_superslab_t *got_z =
        seg_units_alloc(0, &z, &n, 2, 2 * HS_UNIT_SIZE, false, &first_z, &fresh);
    CHECK(got_z == ss && ss->owner == tag_z && z.owned,
          "a SuperSlab whose owner is gone claimed: %p (%p), owner %#lx", (void *)got_z, (void *)ss,
          (unsigned long)ss->owner);
    if (got_z) seg_units_free(got_z, first_z, 2);
    if (got_w) seg_units_free(got_w, first_w, 2);
    if (got_any) seg_units_free(got_any, first_any, 2);
    if (got_y) seg_units_free(got_y, first_y, 2);
    if (got_x) seg_units_free(got_x, first_x, 2);
    seg_units_free(ss, 0, 10);
    seg_units_free(ss, 30, HS_UNITS_PER_SUPERSLAB - 30);
    seg_pool_validate(0);
}

/* A 2 MiB chunk serves as a SuperSlab or a run of one chunk, whichever
 * is wanted next, without a new mapping: a SuperSlab whose one slab holds
 * a block that realloc grows past the slabs' sizes becomes the block's
 * run, the block moved to the run's start; a freed run of one chunk
 * becomes the next SuperSlab; an idle SuperSlab the next run of one
 * chunk. */
static void check_chunk_reuse(void)
{
    const unsigned first = 10, units = 6;
    enum { TRIES = 4 };
    seg_superslab_t *skipped[TRIES], *ss = NULL;
    unsigned n_skipped = 0;
    /* The small heap's first SuperSlabs (base pages until it has grown)
     * stay slabs: the first other one takes the run. */
    while (!ss && n_skipped < TRIES) {
        seg_superslab_t *c = take_whole();
        if (!c) break;
        seg_units_free(c, 0, first);
        seg_units_free(c, first + units, HS_UNITS_PER_SUPERSLAB - first - units - 1);
        /* The last unit still in a slab: not alone. */
        CHECK(!seg_lone_slab_claim(c, first, units),
              "a slab claimed with another in its SuperSlab");
        seg_superslab_validate(c);
        seg_units_free(c, HS_UNITS_PER_SUPERSLAB - 1, 1);
        if (seg_lone_slab_claim(c, first, units))
            ss = c;
        else
            skipped[n_skipped++] = c;
    }
    /* Base pages everywhere (THP off while the test runs) leave nothing
     * to check: no SuperSlab of base pages may become a run. */
    bool all_base = !ss && n_skipped > 0;
    for (unsigned i = 0; i < n_skipped; i++) all_base &= skipped[i]->backing == THP_BACKING_BASE;
    if (all_base) printf("segment_test: SuperSlabs on base pages, chunk reuse not checked\n");
    CHECK(ss != NULL || all_base, "a lone slab not claimed in %u SuperSlabs", n_skipped + 1);
    for (unsigned i = 0; i < n_skipped; i++) seg_units_free(skipped[i], first, units);
    if (!ss) return;
    char *block = (char *)ss + first * HS_UNIT_SIZE;
    size_t bytes = units * HS_UNIT_SIZE, size = 3 * HS_MiB / 2;
    for (size_t i = 0; i < bytes; i++) block[i] = (char)(i * 7 + i / 4096);
    seg_stats_t before, after;
    seg_stats(&before);
    char *p = seg_lone_slab_to_run(ss, block, bytes, size);
    seg_stats(&after);
    CHECK(p == (char *)ss + SEG_HEADER_SIZE && seg_run_of(p) == ss && ss->run_block == p &&
              seg_chunk_kind(ss) == SEG_CHUNK_RUN,
          "a lone slab's SuperSlab as a run: block %p, run %p", (void *)p, (void *)seg_run_of(p));
    size_t wrong = 0;
    for (size_t i = 0; i < bytes; i++) wrong += p[i] != (char)(i * 7 + i / 4096);
    CHECK(wrong == 0, "%zu of %zu bytes changed in the move to the run", wrong, bytes);
    CHECK(after.bytes_mapped == before.bytes_mapped, "a run mapped for a lone slab");
    seg_superslab_validate(ss);
    p[size - 1] = 1;
    /* Freed, the run is the next SuperSlab, once none is idle. */
    enum { HOLD = 16 };
    seg_superslab_t *held[HOLD];
    unsigned n_held = 0;
    while (cached() > 0 && n_held < HOLD) held[n_held++] = take_whole();
    seg_run_free(ss);
    seg_stats(&before);
    seg_superslab_t *again = take_whole();
    seg_stats(&after);
    CHECK(again == ss && after.bytes_mapped == before.bytes_mapped &&
              seg_chunk_kind(ss) == SEG_CHUNK_SLABS,
          "a cached run of one chunk not made the next SuperSlab: %p, the run %p", (void *)again,
          (void *)ss);
    if (!again) return;
    /* Idle, it is the next run of one chunk. */
    seg_units_free(again, 0, HS_UNITS_PER_SUPERSLAB);
    bool fresh;
    seg_stats(&before);
    p = seg_run_alloc(size, 16, 0, &fresh);
    seg_stats(&after);
    CHECK(p && seg_run_of(p) == again && after.bytes_mapped == before.bytes_mapped && !fresh,
          "an idle SuperSlab not made the next run: block %p, SuperSlab %p", (void *)p,
          (void *)again);
    if (p) seg_run_free(seg_run_of(p));
    for (unsigned i = 0; i < n_held; i++)
        if (held[i]) seg_units_free(held[i], 0, HS_UNITS_PER_SUPERSLAB);
    seg_pool_validate(0);
}

/* One SuperSlab comes at a time (seg_units_alloc): a thread that finds no
 * room while another thread takes one waits for it and looks again,
 * rather than map one of its own. With every SuperSlab full and a taker
 * under way (the test plays it), a thread asking for a unit maps nothing
 * and waits; once the taker is done with a unit free, the thread gets
 * that unit. A taker that never ends (the test's second one) holds a
 * waiter only until the clock has moved on past the wait's bound (the
 * test moves it a second): the waiter clears its mark and takes a unit
 * elsewhere. */
typedef struct {
    pthread_barrier_t go; /* the test lets it ask */
    _Atomic bool done;    /* it has its answer */
    seg_superslab_t *got; /* where its unit is */
    unsigned unit;        /* which */
} waiter_t;

static void *wait_for_a_unit(void *arg)
{
    waiter_t *w = arg;
    unsigned n = 1;
    bool fresh;
    pthread_barrier_wait(&w->go);
    w->got = seg_units_alloc(0, &no_owner, &n, 1, HS_UNIT_SIZE, false, &w->unit, &fresh);
    atomic_store(&w->done, true);
    return NULL;
}

static void set_taker(seg_pool_t *pool, const void *taker)
{
    hs_lock(&pool->lock);
    atomic_store(&pool->superslab_taker, taker);
    hs_unlock(&pool->lock);
}

static void check_one_superslab_at_a_time(void)
{
    /* The threads first: pthread_create allocates, and may cut a slab. */
    static waiter_t waiters[2];
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++) {
        pthread_barrier_init(&waiters[i].go, NULL, 2);
        if (pthread_create(&t[i], NULL, wait_for_a_unit, &waiters[i]) != 0) {
            CHECK(false, "pthread_create");
            return;
        }
    }
    /* Every free unit taken, idle and purged SuperSlabs' too. */
    enum { FILLER_MAX = 1024 };
    static seg_superslab_t *filler[FILLER_MAX];
    static unsigned filler_unit[FILLER_MAX], filler_units[FILLER_MAX];
    unsigned fillers = 0;
    seg_pool_t *pool = seg_pool(0);
    while (fillers < FILLER_MAX) {
        hs_lock(&pool->lock);
        bool partial = false, whole_ones = pool->idle || pool->lazy.count || pool->released.count;
        for (unsigned k = 0; k < SEG_PARTIAL_LISTS; k++) partial |= pool->partial[k] != NULL;
        hs_unlock(&pool->lock);
        if (!partial && !whole_ones) break;
        unsigned n = partial ? 1 : HS_UNITS_PER_SUPERSLAB;
        bool fresh;
        filler[fillers] = seg_units_alloc(0, &no_owner, &n, n, partial ? HS_UNIT_SIZE : whole,
                                          false, &filler_unit[fillers], &fresh);
        filler_units[fillers] = n;
        if (!filler[fillers]) break;
        fillers++;
    }
    CHECK(fillers > 0 && fillers < FILLER_MAX, "every free unit taken in %u requests", fillers);
    static const char taker = 0, stuck_taker = 0;
    waiter_t *w = &waiters[0];
    set_taker(pool, &taker);
    seg_stats_t before, after;
    seg_stats(&before);
    pthread_barrier_wait(&w->go);
    usleep(50 * 1000);
    seg_stats(&after);
    CHECK(!atomic_load(&w->done) && after.bytes_mapped == before.bytes_mapped,
          "a thread that found no room while a SuperSlab was on its way: %s, %llu bytes mapped "
          "before, %llu after",
          atomic_load(&w->done) ? "returned" : "waits", (unsigned long long)before.bytes_mapped,
          (unsigned long long)after.bytes_mapped);
    /* The taker's SuperSlab: a unit free again, then the taker done. */
    seg_superslab_t *room = NULL;
    unsigned room_unit = 0;
    if (fillers) {
        room = filler[fillers - 1];
        room_unit = filler_unit[fillers - 1] + --filler_units[fillers - 1];
        seg_units_free(room, room_unit, 1);
    }
    set_taker(pool, NULL);
    pthread_join(t[0], NULL);
    seg_stats(&after);
    CHECK(w->got == room && w->unit == room_unit && after.bytes_mapped == before.bytes_mapped,
          "the waiting thread got unit %u of %p (the one free: %u of %p), %llu bytes mapped "
          "before, %llu after",
          w->unit, (void *)w->got, room_unit, (void *)room, (unsigned long long)before.bytes_mapped,
          (unsigned long long)after.bytes_mapped);
    /* A taker that never ends: the waiter waits while the clock stands,
     * and goes its own way once it has moved on. */
    w = &waiters[1];
    set_taker(pool, &stuck_taker);
    pthread_barrier_wait(&w->go);
    usleep(50 * 1000);
    CHECK(!atomic_load(&w->done), "a thread that found no room while a SuperSlab was on its way "
                                  "returned before the clock moved");
    atomic_fetch_add(&fake_now, 1000);
    for (unsigned ms = 0; ms < 10 * 1000 && !atomic_load(&w->done); ms++) usleep(1000);
    CHECK(atomic_load(&w->done), "a thread whose taker never ended still waits 10 s after the "
                                 "clock moved on a second");
    set_taker(pool, NULL); /* lets it go if it still waits */
    pthread_join(t[1], NULL);
    CHECK(w->got != NULL && atomic_load(&pool->superslab_taker) == NULL,
          "a thread whose taker never ended: unit %u of %p, the taker's mark %p", w->unit,
          (void *)w->got, atomic_load(&pool->superslab_taker));
    for (unsigned i = 0; i < 2; i++)
        if (waiters[i].got) seg_units_free(waiters[i].got, waiters[i].unit, 1);
    for (unsigned i = 0; i < fillers; i++)
        if (filler_units[i]) seg_units_free(filler[i], filler_unit[i], filler_units[i]);
    for (unsigned i = 0; i < 2; i++) pthread_barrier_destroy(&waiters[i].go);
    seg_pool_validate(0);
}

/* The validator itself: a SuperSlab with free units that is on no partial
 * list is reported, and the process aborts (in a child). */
static void check_validator_fires(void)
{
    seg_superslab_t *ss = take_whole();
    if (!ss) return;
    validator_reports(ss, free_behind_lists, "a broken SuperSlab");
    seg_units_free(ss, 0, HS_UNITS_PER_SUPERSLAB);
}

int main(void)
{
    free(malloc(1)); /* initialised */
    seg_set_clock(fake_clock);
    /* The purge thread must not take what the test is watching. */
    hs_option_values[HS_OPT_PURGE_DELAY_MS] = 3600 * 1000;
    hs_option_values[HS_OPT_CACHE_MB] = 1 << 20;
    hs_option_values[HS_OPT_RESERVE_MB] = 0;
    /* hugetlb SuperSlabs are unmapped when taken, not revived in place. */
    hs_option_values[HS_OPT_BACKING] = HS_BACKING_THP;
    /* Started now, so that its own first allocations (pthread_create's)
     * are not cut from a SuperSlab the test is watching: a free of many
     * units of a base-page SuperSlab starts it otherwise. */
    seg_start_background();
    check_fresh_asks(); /* first: nothing lazily freed, so the purge thread takes none */
    check_idle_and_due();
    check_reserve_and_cache();
    check_over_limit_wait();
    check_outgrown();
    check_run_cache();
    check_trim();
    check_fresh_units();
    check_fewer_units_before_a_new_superslab();
    check_units_at_end();
    check_partial_lists();
    check_pages();
    check_owners();
    check_chunk_reuse();
    check_one_superslab_at_a_time();
    check_validator_fires();
    seg_set_clock(NULL);
    return hs_finish("segment_test");
}
