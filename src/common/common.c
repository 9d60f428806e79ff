/* What common declares for the whole process: the free key, and the
 * start-up of common itself. */
#include "common/common.h"
#include "os/os.h"

uintptr_t hs_free_key;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_common(void)
{
    hs_once_enter(HS_RANK_INIT_COMMON);
    hs_options_load();
    hs_free_key = (uintptr_t)os_random_bits();
    hs_once_leave(HS_RANK_INIT_COMMON);
}

void hs_common_init(void) { pthread_once(&init_once, init_common); }

/* Here rather than in tiny: the constructor writes them, and this page of
 * .bss is written by hs_common_init anyway. */
static _Atomic(void (*)(void)) first_use_fn; /* hs_on_first_use's, until called */
static _Atomic bool first_use_came;          /* hs_first_use was called */

/* Whoever takes the function calls it: once. */
static void take_first_use(void)
{
    void (*fn)(void) = atomic_exchange(&first_use_fn, NULL);
    if (fn) fn();
}

void hs_on_first_use(void (*fn)(void))
{
    /* Against a first use in another thread: each side stores, then reads
     * what the other stored (sequentially consistent), so at least one of
     * them sees both and takes fn. */
    atomic_store(&first_use_fn, fn);
    if (atomic_load(&first_use_came)) take_first_use();
}

void hs_first_use(void)
{
    if (!atomic_exchange(&first_use_came, true)) take_first_use();
}
