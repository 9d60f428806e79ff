/* locks: every lock hugeslab takes, its rank, and the rules. Included by
 * common.h; nothing else needs it directly.
 *
 *  rank    lock                  where            protects
 *  1       init_once             api/init.c       the process's one-time set-up
 *  2       init_once             tiny/tiny.c      tiny's: the thread-exit key
 *  3       init_once             segment/         the layers below: thp/numa
 *                                segment.c        facts, the pools' locks
 *  4       init_once             common/common.c  the options, the free key
 *  10      heap_lock             tiny/heap.c      the pool of detached heaps, the
 *                                                 list of every heap, the bump
 *                                                 region heaps are cut from
 *  20      orphan_lock           tiny/heap.c,     the orphan lists (slabs of exited
 *                                tiny.c           or migrated threads)
 *  30+n    pools[n].lock         segment/         node n's partial, idle and
 *          (n < HS_MAX_NODES)    units.c, idle.c  purged lists, and the free_units
 *                                                 of its SuperSlabs
 *  100     run_cache_lock        segment/run.c,   the cache of freed runs; the
 *                                frontier.c       list of live THP runs that the
 *                                                 purge thread looks at
 *  110     hugetlb_lock          segment/         the list of live hugetlb ranges
 *                                fork.c           (for fork)
 *  120     purge_lock            segment/purge.c  the purge thread's flags; its
 *                                                 condition variables wait on it
 *                                                 (malloc_trim waits there for
 *                                                 a pass under way to end)
 *  --      numa: no lock         numa/numa.c      state written once under init;
 *                                                 atomics and thread-local after
 *  --      heap->busy, a flag    tiny/tiny_       a heap's lists and current slabs:
 *          (no rank: nobody      internal.h       held by the owner through its
 *          waits for another                      slow paths, only tried by a
 *          thread's hold)                         thread that releases one of its
 *                                                 emptied slabs (heap_enter), or
 *                                                 its slabs freed whole while
 *                                                 threads outnumber CPUs
 *                                                 (tiny_reclaim_from_others)
 *  --      a crowd heap's busy   tiny/heap.c,     the crowd heap's lists and slabs:
 *          flag (no rank: its    tiny.c           held as its owner by a thread
 *          waiters hold no                        taking a block from it (which
 *          lock, its holder                       maps memory as an owner's
 *          waits for none of                      refill does), by malloc_trim
 *          them)                                  and the purge thread releasing
 *                                                 its empty slabs, and by fork
 *                                                 (taken before heap_lock); a
 *                                                 thread holding one takes no
 *                                                 crowd block (tiny_crowd_holds)
 *  --      frontier.pinned, a    segment/         the live run the purge thread
 *          pointer (no rank:     frontier.c       reads and hints: set under
 *          its holder takes no                    run_cache_lock, let go without
 *          lock, its waiter                       it; the run's owner, off the
 *          holds none)                            list first, waits for it holding
 *                                                 no lock before a free or realloc
 *  --      pools[n].superslab_   segment/units.c  one SuperSlab taken for node n at
 *          taker, a flag (no                      a time: its taker holds no lock
 *          rank: the taker                        through the system calls; a thread
 *          waits for no one)                      that finds no room meanwhile waits
 *                                                 for it holding none, then looks again
 *  --      registry_gate, a      segment/         the registry's read-only pages:
 *          word of counts (no    segment.c        seg_registry_prepare makes some
 *          rank: both sides                       writable, mlockall's give-back
 *          hold no lock while                     drops the others; each counts
 *          they wait)                             itself and sees the other in
 *                                                 one fetch_add, a preparer waits
 *                                                 for a give-back under way, a
 *                                                 give-back for the preparers
 *
 * The rules:
 * 1. A thread takes a lock only of a higher rank than every lock it holds.
 *    Pool locks are taken in node order (fork takes them all); no code path
 *    holds two locks except fork's, which takes every lock in rank order.
 * 2. Nothing that may allocate runs with a lock held: no pthread_create,
 *    pthread_setspecific, stdio, dlsym, or any libc call that may call malloc.
 *    An allocation inside hugeslab can come back to any lock of the table.
 * 3. No slow system call runs with a lock held: no mmap, munmap, mremap,
 *    mbind, madvise (MADV_POPULATE_WRITE included) or sysfs read. Memory is
 *    mapped first and published under the lock afterwards. The init onces
 *    are the exception: they run once per process and read sysfs to set
 *    up; they are pthread_once, not hs_lock_t, and count as held locks
 *    (hs_once_enter/hs_once_leave) for rules 1 and 2. The fork child is the
 *    other: alone in its process, holding copies of every lock, it maps its
 *    anonymous copies of its hugetlb memory. The fork's parent keeps the
 *    rule: it frees its spare hugetlb reservations before it takes a lock
 *    (seg_fork_begin), and makes its copies of shared hugetlb pages after
 *    it has released them all (seg_fork_parent_unlocked). A range whose
 *    copy is pending is pinned meanwhile (seg_hugetlb_range_t.copy_pending,
 *    set under every lock of the fork, cleared under hugetlb_lock): it is
 *    not unmapped, so its address is not reused, until the copy is made
 *    (seg_hugetlb_untrack waits, holding no lock; the copy takes no lock but
 *    hugetlb_lock, briefly, so neither the purge thread nor another fork
 *    can deadlock with it). Forks take turns from seg_fork_begin to the
 *    end of seg_fork_parent_unlocked (seg_state.fork_active, a flag waited for
 *    with no lock held, taken before any lock: outside the ranks).
 * 4. Work that must wait until the thread holds no lock (starting the purge
 *    thread) goes through hs_when_unlocked(), which runs it at once when no
 *    lock is held, else at the thread's last hs_unlock.
 * 5. The fork window: fork() runs the fork handlers of other libraries
 *    between ours, those registered before ours (a library whose
 *    constructor ran first) after our prepare handler and before our parent
 *    and child handlers, and any of them may allocate. From the moment our
 *    prepare holds every lock of the fork until our parent or child handler
 *    starts to release them, the forking thread counts them as its own: it
 *    takes and releases them again without the mutex, and its allocations
 *    run as if it held none (rules 1-3 checked against the locks it takes
 *    in the window only). Every other thread waits for the fork meanwhile,
 *    as it would anyway, and the forking thread waits for none of them: it
 *    takes its own SuperSlab rather than wait for another thread's taker,
 *    and malloc_trim's turn with the purge thread is skipped there. It
 *    holds its own heap's flag across fork() as well (tiny/trim.c): held
 *    by another thread at fork(), the flag stayed held in the child. A
 *    program whose fork handler allocated hung in fork() before.
 *
 * Debug builds (make DEBUG=1) check rule 1 on every hs_lock, rule 2 at
 * every allocating entry point (hs_assert_no_lock_held) and rule 3 in each
 * slow call's wrapper in src/os/ (hs_assert_no_lock_for_slow_call: mappings,
 * advice, mbind, file and sysfs reads), and abort with a message naming
 * the locks. */
#ifndef HS_LOCKS_H
#define HS_LOCKS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/single_threaded.h>

typedef enum hs_lock_rank_e {
    HS_RANK_INIT = 1,
    HS_RANK_INIT_TINY = 2,
    HS_RANK_INIT_SEGMENT = 3,
    HS_RANK_INIT_COMMON = 4,
    HS_RANK_HEAP = 10,
    HS_RANK_ORPHAN = 20,
    HS_RANK_POOL = 30, /* + node index */
    HS_RANK_RUN_CACHE = 100,
    HS_RANK_HUGETLB = 110,
    HS_RANK_PURGE = 120,
    HS_RANK_LIMIT = 128, /* ranks are below this */
} hs_lock_rank_t;

/* A pthread mutex (it never allocates) and its rank. Every global lock is
 * taken around fork() (see api/init.c), so the child finds them free. */
typedef struct hs_lock_s {
    pthread_mutex_t mutex; /* the lock itself */
    unsigned rank;         /* hs_lock_rank_t, + node for a pool's lock */
    bool fork_held;        /* taken by the fork under way (hs_lock_for_fork), whose
                              thread takes it again freely in the fork window */
} hs_lock_t;
#define HS_LOCK_INIT(rank_)                                                                        \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, (rank_), false                                                  \
    }

/* What each thread knows of the locks it holds. */
typedef struct hs_lock_thread_s {
    unsigned held;          /* locks held (and the init once while it runs, and
                               hs_defer_begin's scope) */
    void (*deferred)(void); /* run at the last hs_unlock: see hs_when_unlocked */
    uint64_t ranks_held[2]; /* debug builds: bit r set = a lock of rank r held */
    unsigned fork_held;     /* in the fork window (rule 5): the locks the fork
                               holds, counted in `held` as well; 0 elsewhere */
    uint64_t fork_ranks[2]; /* debug builds, in the fork window: the fork's
                               ranks_held, set aside until it closes */
} hs_lock_thread_t;
extern __thread hs_lock_thread_t hs_lock_thread;

void hs_lock_init(hs_lock_t *l, unsigned rank);
/* Runs fn now when the thread holds no lock, else at its last hs_unlock.
 * One pending function per thread (asking twice runs it once). */
void hs_when_unlocked(void (*fn)(void));
void hs_lock_run_deferred(void);
/* Between these, what hs_when_unlocked is asked for waits as under a lock,
 * holding none, and runs at hs_defer_end: a leaving thread hands its heap
 * back to the pool before the purge thread it may start is created, since
 * pthread_create allocates there and would otherwise make it a new heap. */
static inline void hs_defer_begin(void) { hs_lock_thread.held++; }
static inline void hs_defer_end(void)
{
    if (--hs_lock_thread.held == 0 && __builtin_expect(hs_lock_thread.deferred != 0, 0))
        hs_lock_run_deferred();
}
/* In a fork child: the locks fork took are re-initialised, not released. */
void hs_lock_forget_all(void);

#if defined(HS_DEBUG) && HS_DEBUG
void hs_lock_note_taken(unsigned rank);
void hs_lock_note_released(unsigned rank);
/* Aborts when the thread holds a lock: `entry` was called from inside the
 * allocator (rule 2). */
void hs_assert_no_lock_held(const char *entry);
/* Aborts when the thread holds a lock of the table, an init once aside:
 * `call`, a slow system call of src/os/, is about to run under it (rule 3). */
void hs_assert_no_lock_for_slow_call(const char *call);
#else
static inline void hs_lock_note_taken(unsigned rank) { (void)rank; }
static inline void hs_lock_note_released(unsigned rank) { (void)rank; }
static inline void hs_assert_no_lock_held(const char *entry) { (void)entry; }
static inline void hs_assert_no_lock_for_slow_call(const char *call) { (void)call; }
#endif

/* Inside a pthread_once routine of the table: it holds that once. */
static inline void hs_once_enter(unsigned rank)
{
    hs_lock_note_taken(rank);
    hs_lock_thread.held++;
}

static inline void hs_once_leave(unsigned rank)
{
    hs_lock_note_released(rank);
    if (--hs_lock_thread.held == 0 && __builtin_expect(hs_lock_thread.deferred != 0, 0))
        hs_lock_run_deferred();
}

/* Whether this thread is in its fork window (rule 5). */
static inline bool hs_in_fork_window(void)
{
    return __builtin_expect(hs_lock_thread.fork_held != 0, 0);
}

/* Whether the thread holds no lock, the fork's aside in its fork window. */
static inline bool hs_no_lock_held(void) { return hs_lock_thread.held == hs_lock_thread.fork_held; }

/* Out of line: each call site is a call, where the inline bodies and their
 * thread-local accesses made the text every process runs a page longer. */
void hs_lock(hs_lock_t *l);
void hs_unlock(hs_lock_t *l);

/* The fork's own: each lock it holds across fork() is taken and released
 * with these, and the window opens once it holds them all and closes
 * before it releases the first (api/init.c). */
void hs_lock_for_fork(hs_lock_t *l);
void hs_unlock_for_fork(hs_lock_t *l);
void hs_fork_window_open(void);
void hs_fork_window_close(void);

/* ---- the fork handlers' registration ---------------------------------------- */

/* The fork handlers (api/init.c) are registered with libc only once the
 * process needs them, not at its start: glibc's pthread_atfork reads a
 * constant from a page of libc's read-only data that a program of one
 * thread otherwise never touches, and the kernel maps the 64 KiB around it
 * (`true` and every short command carried them). A process needs them from
 * its second thread on, and from its first hugetlb mapping (which a fork's
 * child must get a copy of); before that a fork's child is the parent's
 * copy, as under glibc's malloc. glibc (2.32 on) clears
 * __libc_single_threaded at the start of pthread_create, then calloc's the
 * new thread's TLS vector on the creating thread: that calloc registers
 * them (hs_fork_handlers_arm_if_threaded), while no other thread exists
 * to hold a lock of ours at a fork. A new thread's first heap looks again.
 * The constructor registers them at once where a hugetlb pool may back
 * the heap (api/init.c says why). Registering may allocate (libc's table
 * grows past 48 handlers): called with no lock held. Set by the
 * constructor; armed before that, they are registered as it sets them. */
void hs_fork_handlers_set(void (*prepare)(void), void (*parent)(void), void (*child)(void));
void hs_fork_handlers_arm(void);
extern atomic_bool hs_fork_handlers_armed;

static inline void hs_fork_handlers_arm_if_threaded(void)
{
    if (__builtin_expect(!__libc_single_threaded, 0) &&
        !atomic_load_explicit(&hs_fork_handlers_armed, memory_order_relaxed))
        hs_fork_handlers_arm();
}

#endif /* HS_LOCKS_H */
