/* The per-thread record of held locks, deferred work, and the checks of the
 * lock hierarchy that debug builds make (the table is in locks.h). */
#include "common/common.h"

__thread hs_lock_thread_t hs_lock_thread;

void hs_lock_init(hs_lock_t *l, unsigned rank)
{
    pthread_mutex_init(&l->mutex, NULL);
    l->rank = rank;
    l->fork_held = false;
}

void hs_lock(hs_lock_t *l)
{
    hs_lock_note_taken(l->rank);
    if (!hs_in_fork_window() || !l->fork_held) pthread_mutex_lock(&l->mutex);
    hs_lock_thread.held++;
}

void hs_unlock(hs_lock_t *l)
{
    hs_lock_note_released(l->rank);
    if (!hs_in_fork_window() || !l->fork_held) pthread_mutex_unlock(&l->mutex);
    if (--hs_lock_thread.held == 0 && HS_UNLIKELY(hs_lock_thread.deferred != 0))
        hs_lock_run_deferred();
}

/* The flag is written under the mutex and read only by the thread that
 * holds it, in its fork window: forks take turns (seg_fork_begin). */
HS_APART void hs_lock_for_fork(hs_lock_t *l)
{
    HS_ASSERT(!hs_in_fork_window());
    hs_lock(l);
    l->fork_held = true;
}

HS_APART void hs_unlock_for_fork(hs_lock_t *l)
{
    HS_ASSERT(!hs_in_fork_window());
    l->fork_held = false;
    hs_unlock(l);
}

HS_APART void hs_fork_window_open(void)
{
    HS_ASSERT(hs_lock_thread.held > 0 && !hs_in_fork_window());
    hs_lock_thread.fork_held = hs_lock_thread.held;
    hs_lock_thread.fork_ranks[0] = hs_lock_thread.ranks_held[0];
    hs_lock_thread.fork_ranks[1] = hs_lock_thread.ranks_held[1];
    hs_lock_thread.ranks_held[0] = hs_lock_thread.ranks_held[1] = 0;
}

HS_APART void hs_fork_window_close(void)
{
    /* The handlers that ran in the window returned: what they took in it
     * they released. */
    HS_ASSERT(hs_in_fork_window() && hs_lock_thread.held == hs_lock_thread.fork_held);
    HS_ASSERT(!hs_lock_thread.ranks_held[0] && !hs_lock_thread.ranks_held[1]);
    hs_lock_thread.ranks_held[0] = hs_lock_thread.fork_ranks[0];
    hs_lock_thread.ranks_held[1] = hs_lock_thread.fork_ranks[1];
    hs_lock_thread.fork_ranks[0] = hs_lock_thread.fork_ranks[1] = 0;
    hs_lock_thread.fork_held = 0;
}

/* The handlers api/init.c hands over, and whether arming came first. */
static struct {
    void (*prepare)(void); /* pthread_atfork's three, as given */
    void (*parent)(void);
    void (*child)(void);
    atomic_bool set;    /* the three above are written */
    atomic_bool wanted; /* armed before they were: the setting registers them */
} fork_handlers;

atomic_bool hs_fork_handlers_armed;

/* Each side writes its flag, then reads the other's (both sequentially
 * consistent): an arming that finds no handlers is seen by the setting,
 * or the arming sees them. Registered once, whichever gets there. */
void hs_fork_handlers_set(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    fork_handlers.prepare = prepare;
    fork_handlers.parent = parent;
    fork_handlers.child = child;
    atomic_store(&fork_handlers.set, true);
    if (atomic_load(&fork_handlers.wanted) || !__libc_single_threaded) hs_fork_handlers_arm();
}

void hs_fork_handlers_arm(void)
{
    HS_ASSERT(hs_no_lock_held());
    atomic_store(&fork_handlers.wanted, true);
    if (!atomic_load(&fork_handlers.set) || atomic_exchange(&hs_fork_handlers_armed, true)) return;
    pthread_atfork(fork_handlers.prepare, fork_handlers.parent, fork_handlers.child);
}

void hs_when_unlocked(void (*fn)(void))
{
    if (hs_lock_thread.held == 0) {
        fn();
        return;
    }
    HS_ASSERT(hs_lock_thread.deferred == NULL || hs_lock_thread.deferred == fn);
    hs_lock_thread.deferred = fn;
}

HS_COLD void hs_lock_run_deferred(void)
{
    void (*fn)(void) = hs_lock_thread.deferred;
    hs_lock_thread.deferred = NULL;
    fn();
}

void hs_lock_forget_all(void)
{
    hs_lock_thread.held = 0;
    hs_lock_thread.ranks_held[0] = hs_lock_thread.ranks_held[1] = 0;
}

#if defined(HS_DEBUG) && HS_DEBUG
/* What a rank is, for the messages. */
static void rank_name(unsigned rank, char *buf, size_t cap)
{
    static const struct {
        unsigned rank;
        const char *name;
    } names[] = {
        {HS_RANK_INIT, "process init once"},
        {HS_RANK_INIT_TINY, "tiny init once"},
        {HS_RANK_INIT_SEGMENT, "segment init once"},
        {HS_RANK_INIT_COMMON, "common init once"},
        {HS_RANK_HEAP, "heap"},
        {HS_RANK_ORPHAN, "orphan"},
        {HS_RANK_RUN_CACHE, "run cache"},
        {HS_RANK_HUGETLB, "hugetlb list"},
        {HS_RANK_PURGE, "purge"},
    };
    hs_text_t t = hs_text(buf, cap);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].rank == rank) {
            hs_text_str(&t, names[i].name);
            return;
        }
    }
    hs_text_str(&t, "node ");
    hs_text_uint(&t, rank - HS_RANK_POOL);
    hs_text_str(&t, " pool");
}

/* The highest rank the thread holds, or 0 for none. */
static unsigned highest_held(void)
{
    if (hs_lock_thread.ranks_held[1])
        return 127u - (unsigned)__builtin_clzll(hs_lock_thread.ranks_held[1]);
    if (hs_lock_thread.ranks_held[0])
        return 63u - (unsigned)__builtin_clzll(hs_lock_thread.ranks_held[0]);
    return 0;
}

void hs_lock_note_taken(unsigned rank)
{
    HS_ASSERT(rank > 0 && rank < HS_RANK_LIMIT);
    unsigned top = highest_held();
    if (HS_UNLIKELY(top >= rank)) {
        char want[24], held[24];
        rank_name(rank, want, sizeof want);
        rank_name(top, held, sizeof held);
        hs_fatal("lock order violated: taking the %s lock (rank %u) while holding the %s lock "
                 "(rank %u); see src/common/locks.h",
                 want, rank, held, top);
    }
    hs_lock_thread.ranks_held[rank / 64] |= (uint64_t)1 << (rank % 64);
}

void hs_lock_note_released(unsigned rank)
{
    uint64_t bit = (uint64_t)1 << (rank % 64);
    if (HS_UNLIKELY(!(hs_lock_thread.ranks_held[rank / 64] & bit))) {
        char name[24];
        rank_name(rank, name, sizeof name);
        hs_fatal("releasing the %s lock (rank %u), which this thread does not hold", name, rank);
    }
    hs_lock_thread.ranks_held[rank / 64] &= ~bit;
}

/* Aborts: `what` `verb` while this thread holds a lock, which `rule`
 * forbids; names the highest lock held. */
HS_SELDOM HS_NORETURN HS_COLD static void fatal_lock_held(const char *what, const char *verb,
                                                          const char *rule)
{
    char name[24];
    unsigned top = highest_held();
    rank_name(top, name, sizeof name);
    hs_fatal("%s %s while this thread holds the %s lock (rank %u): %s; see src/common/locks.h",
             what, verb, name, top, rule);
}

void hs_assert_no_lock_held(const char *entry)
{
    if (HS_LIKELY(hs_no_lock_held())) return;
    fatal_lock_held(entry, "called", "an allocator lock is held across a call that allocates");
}

void hs_assert_no_lock_for_slow_call(const char *call)
{
    /* The init onces (ranks below the heap lock's) may: they run once. */
    uint64_t onces = ((uint64_t)1 << HS_RANK_HEAP) - 1;
    if (HS_LIKELY(!(hs_lock_thread.ranks_held[0] & ~onces) && !hs_lock_thread.ranks_held[1]))
        return;
    fatal_lock_held(call, "runs", "a slow system call under an allocator lock");
}
#endif
