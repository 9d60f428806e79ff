/* A library whose constructor registers fork handlers that allocate, as
 * some libraries' do. Linked into fork_handlers_test, whose library loads
 * before the preloaded allocator's constructor runs: its handlers are
 * registered first, so fork() runs its prepare handler after the
 * allocator's and its parent and child handlers before the allocator's,
 * inside the fork window (src/common/locks.h, rule 5).
 *
 * Each handler allocates through the whole API (small, medium, a run of
 * several MiB, calloc, realloc, aligned), checks what the prepare handler
 * kept, and frees; the prepare handler calls malloc_trim too. What went
 * wrong is counted, not printed: the child handler runs where stdio's locks
 * may be held by threads that do not exist there. */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <malloc.h>
#include <stdatomic.h>

#include "fork_handlers_lib.h"

#define KEPT 12

static unsigned char *kept[KEPT];      /* the prepare handler's blocks */
static size_t kept_size[KEPT];         /* their sizes */
atomic_uint fork_handlers_calls[3];    /* prepare, parent, child calls */
atomic_uint fork_handlers_errors;      /* checks that failed */
static atomic_uint fork_handlers_seed; /* a different fill at each fork */

static const size_t sizes[KEPT] = {16,     100,     1000,    5000,    40000,          200000,
                                   700000, 1100000, 3 << 20, 5 << 20, (1 << 20) + 12, 24};

/* Allocations made and freed within one handler, through the whole API. */
static void churn(unsigned seed)
{
    void *a = calloc(3000, 7);
    if (!a || ((unsigned char *)a)[20999] != 0) atomic_fetch_add(&fork_handlers_errors, 1);
    unsigned char *r = NULL;
    for (size_t n = 8; n <= ((size_t)4 << 20); n *= 4) {
        unsigned char *g = realloc(r, n);
        if (!g) {
            atomic_fetch_add(&fork_handlers_errors, 1);
            break;
        }
        r = g;
        r[n - 1] = (unsigned char)seed;
        if (r[0] != (unsigned char)(seed + 1) && n > 8) atomic_fetch_add(&fork_handlers_errors, 1);
        r[0] = (unsigned char)(seed + 1);
    }
    void *al = NULL;
    if (posix_memalign(&al, 1 << 16, 70000) != 0 || ((uintptr_t)al & 0xffff))
        atomic_fetch_add(&fork_handlers_errors, 1);
    free(al);
    free(r);
    free(a);
}

static void prepare(void)
{
    atomic_fetch_add(&fork_handlers_calls[0], 1);
    unsigned seed = atomic_fetch_add(&fork_handlers_seed, 1);
    for (int i = 0; i < KEPT; i++) {
        kept[i] = malloc(sizes[i]);
        kept_size[i] = sizes[i];
        if (kept[i])
            hs_fill(kept[i], sizes[i], seed + (unsigned)i);
        else
            atomic_fetch_add(&fork_handlers_errors, 1);
    }
    churn(seed);
    malloc_trim(0);
}

/* Both sides of the fork check and free the prepare handler's blocks. */
static void after(int who)
{
    atomic_fetch_add(&fork_handlers_calls[who], 1);
    unsigned seed = atomic_load(&fork_handlers_seed) - 1;
    for (int i = 0; i < KEPT; i++) {
        if (!kept[i]) continue;
        if (hs_check_fill(kept[i], kept_size[i], seed + (unsigned)i) != SIZE_MAX)
            atomic_fetch_add(&fork_handlers_errors, 1);
        free(kept[i]);
        kept[i] = NULL;
    }
    churn(seed + 7);
}

static void parent(void) { after(1); }
static void child(void) { after(2); }

__attribute__((constructor)) static void fork_handlers_register(void)
{
    pthread_atfork(prepare, parent, child);
}
