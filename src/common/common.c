/* What common declares for the whole process: the free key, and the
 * start-up of common itself. */
#include "common/common.h"
#include "os/os.h"

HS_START_STATE uintptr_t hs_free_key;

HS_START_STATE static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_common(void)
{
    hs_once_enter(HS_RANK_INIT_COMMON);
    hs_options_load();
    hs_free_key = (uintptr_t)os_random_bits();
    hs_once_leave(HS_RANK_INIT_COMMON);
}

void hs_common_init(void) { pthread_once(&init_once, init_common); }
