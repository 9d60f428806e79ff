/* What fork_handlers_lib.c's handlers did, for fork_handlers_test. */
#ifndef HS_FORK_HANDLERS_LIB_H
#define HS_FORK_HANDLERS_LIB_H

#include <stdatomic.h>

extern atomic_uint fork_handlers_calls[3]; /* prepare, parent, child calls */
extern atomic_uint fork_handlers_errors;   /* checks that failed */

#endif
