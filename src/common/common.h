/* common: what every module shares -- compiler helpers, the SuperSlab
 * geometry, assertions, locks, messages on stderr and the options table.
 * Nothing here allocates memory through malloc, so any module may call it
 * while hugeslab is still initialising.
 * Never: include another module's header (its .c files may use os/ for
 *   writing messages and reading a config file). */
#ifndef HS_COMMON_H
#define HS_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_LIKELY(x) __builtin_expect(!!(x), 1)
#define HS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HS_INLINE static inline __attribute__((always_inline))
/* HS_TSAN: built for ThreadSanitizer (gcc and clang say it differently). */
#if defined(__SANITIZE_THREAD__)
#define HS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HS_TSAN 1
#endif
#endif
#define HS_NOINLINE __attribute__((noinline))
#define HS_COLD __attribute__((cold, noinline))
/* Asks for p's cache line for writing. On x86-64, __builtin_prefetch(p, 1)
 * is a read prefetch unless the build targets -mprfchw; every x86-64
 * processor executes prefetchw (Intel's before Broadwell as a no-op). */
#if defined(__x86_64__)
#define HS_PREFETCH_WRITE(p) __asm__ volatile("prefetchw %0" : : "m"(*(const char *)(p)))
#else
#define HS_PREFETCH_WRITE(p) __builtin_prefetch((p), 1)
#endif
/* Code a process does not run when it starts, allocates, frees and exits
 * as usual (statistics, reports, error messages, fork, io_uring batches):
 * src/hugeslab.ld puts it in the library's text before, and 64 KiB apart
 * from, the code every process runs, so that the kernel's fault-around
 * (64 KiB windows) never maps its pages in a process that does not call it.
 * Not for a purge pass's usual steps: most programs run one, and one such
 * call costs them 52 KiB of RSS (kernel_test seldom-text checks it).
 * Placement only: it changes no code. */
#define HS_SELDOM __attribute__((section(".text.hs_seldom")))
/* Code that many processes run but short ones seldom do (the fork handlers,
 * the tracking of hugetlb mappings, realloc's look for huge pages before it
 * gives an array's old pages back): src/hugeslab.ld gives it a loadable
 * segment of its own after .eh_frame, so that the kernel maps it as a
 * mapping of its own, whose one page a process that runs it keeps (fault-
 * around stops at a mapping's ends), and none elsewhere. In the text every
 * process runs it took that text to an eleventh page; with the seldom code
 * it would cost a process that forks the seldom window. Placement only, as
 * HS_SELDOM. */
#define HS_APART __attribute__((section(".hs_apart_text")))
/* HS_APART code that a process runs apart from fork: placed after the rest,
 * so that the fork handlers stay on the segment's first page. Only a
 * program with several threads runs it: a leaving thread's heap
 * (tiny_thread_exit, tiny_heap_abandon, also at a move to another node),
 * the owner slots (tiny_take_owner_slot, seg_cpus_allowed), the look at
 * other heaps' slabs (tiny_reclaim_from_others) and the release of a slab
 * another thread emptied (reclaim_empty). */
#define HS_APART_LATE __attribute__((section(".hs_apart_text.late")))
/* Read-only data that only such code reads (HUGESLAB_VERBOSE's help lines):
 * src/hugeslab.ld puts it after .eh_frame, in the mapping a process that
 * runs no seldom code never reads, not in .rodata beside the symbol tables
 * in the library's first mapping, which every process reads whole.
 * Placement only, as HS_SELDOM. */
#define HS_SELDOM_DATA __attribute__((section(".hs_seldom_rodata")))
/* Zeroed state that a process writes as it starts and first allocates
 * (flags of one-time initialisations, options, the layers' leading
 * fields): src/hugeslab.ld puts it together right after the library's
 * initialised data, on the page the loader writes anyway when it clears
 * the end of that data's last page, and on as few after it as it fills.
 * Spread through .bss between state that most processes never write, it
 * took four pages of their own. HS_START_STATE_LAST for seg_state: it
 * comes after the others. Placement only, as HS_SELDOM. */
#define HS_START_STATE __attribute__((section(".bss.hs_start")))
#define HS_START_STATE_LAST __attribute__((section(".bss.hs_start_last")))
#define HS_EXPORT __attribute__((visibility("default")))
#define HS_NORETURN __attribute__((noreturn))
#define HS_CACHE_LINE 64

#define HS_KiB ((size_t)1 << 10)
#define HS_MiB ((size_t)1 << 20)
#define HS_GiB ((size_t)1 << 30)

/* A SuperSlab is 2 MiB and 2 MiB-aligned: the SuperSlab of any pointer is
 * found by masking, and its header sits at that address. */
#define HS_SUPERSLAB_SHIFT 21
#define HS_SUPERSLAB_SIZE ((size_t)1 << HS_SUPERSLAB_SHIFT)
#define HS_SUPERSLAB_MASK (HS_SUPERSLAB_SIZE - 1)

/* A SuperSlab that holds small blocks is cut into 32 KiB units; a slab is a
 * run of units serving one size class. Small units keep a thread's slabs of
 * the classes it barely uses small: with 2 MiB huge pages a SuperSlab is
 * resident whole, so what counts is how many slabs share it. */
#ifndef HS_UNIT_SHIFT /* -DHS_UNIT_SHIFT=16 builds 64 KiB units, to compare */
#define HS_UNIT_SHIFT 15
#endif
#define HS_UNIT_SIZE ((size_t)1 << HS_UNIT_SHIFT)
#define HS_UNITS_PER_SUPERSLAB (HS_SUPERSLAB_SIZE / HS_UNIT_SIZE)

/* x86-64 user space without 5-level paging: 47 bits. */
#define HS_ADDRESS_BITS 47

#define HS_MAX_NODES 64

HS_INLINE uintptr_t hs_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
HS_INLINE bool hs_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* ---- checks at two depths ---------------------------------------------- */

/* Internal invariants: compiled in debug builds only (make DEBUG=1). */
#if defined(HS_DEBUG) && HS_DEBUG
#define HS_ASSERT(cond) ((cond) ? (void)0 : hs_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define HS_ASSERT(cond) ((void)0)
#endif
HS_NORETURN HS_COLD void hs_assert_fail(const char *cond, const char *file, int line,
                                        const char *func);

/* ---- text without malloc (text.c) ------------------------------------------
 * The one formatter: appends to a fixed buffer, always NUL-terminated,
 * counting what did not fit, like snprintf. */
typedef struct hs_text_s {
    char *buf;  /* the caller's buffer */
    size_t cap; /* its size, the NUL included (0: nothing is written) */
    size_t len; /* bytes appended so far, those that did not fit included */
} hs_text_t;

HS_INLINE hs_text_t hs_text(char *buf, size_t cap)
{
    if (cap) buf[0] = '\0';
    return (hs_text_t){buf, cap, 0};
}
/* Bytes in the buffer (what fit). */
HS_INLINE size_t hs_text_length(const hs_text_t *t)
{
    return t->len < t->cap ? t->len : (t->cap ? t->cap - 1 : 0);
}
HS_INLINE bool hs_text_overflowed(const hs_text_t *t) { return t->len >= t->cap; }
void hs_text_char(hs_text_t *t, char c);
void hs_text_str(hs_text_t *t, const char *s); /* NULL appends "(null)" */
void hs_text_uint(hs_text_t *t, unsigned long long v);
void hs_text_int(hs_text_t *t, long long v);
/* A small printf: %s %d %u %x %p %% with l, ll and z sizes. */
void hs_text_vformat(hs_text_t *t, const char *fmt, va_list ap);
void hs_text_format(hs_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The one decimal parser: the digits from s on (up to end, or to the first
 * non-digit when end is NULL) into *out. Returns the first byte after them,
 * or NULL (and *out untouched) when there is no digit or the value exceeds
 * 64 bits. */
const char *hs_parse_u64(const char *s, const char *end, uint64_t *out);

/* ---- messages (log.c) ------------------------------------------------------
 * Formatted with hs_text on the stack and written with one write(2), so
 * they are safe inside malloc. */
void hs_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The program's name (argv[0] without its folder), as %e and verbose
 * messages show it; "?" when unknown. */
const char *hs_program_name(void);
/* From now on, messages start "hugeslab[pid program]: " (on: verbose). */
void hs_message_tag_process(bool on);
/* "hugeslab: <message>" on stderr, then abort(). For bad input from the
 * program (invalid or double free), never for exhaustion. */
HS_NORETURN HS_COLD void hs_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes to a file descriptor; used by statistics output. */
void hs_fd_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- locks: the hierarchy, its rules and checks ------------------------- */
#include "common/locks.h"

/* ---- options ------------------------------------------------------------- */
#include "common/options.h"

/* ---- one intrusive list ----------------------------------------------------
 * A doubly linked list threaded through a struct's own `next` and `prev`
 * fields (pointers to the struct's type); the head is a plain pointer, NULL
 * when empty. HS_LIST_FUNCTIONS(name, type) defines, for that type,
 *   name_push(type **head, type *x)    x at the front;
 *   name_remove(type **head, type *x)  x out of the list it is on;
 * with no lock: the caller holds whatever protects the list. */
#define HS_LIST_FUNCTIONS(name, type)                                                              \
    static inline __attribute__((unused)) void name##_push(type **head, type *x)                   \
    {                                                                                              \
        x->prev = NULL;                                                                            \
        x->next = *head;                                                                           \
        if (*head) (*head)->prev = x;                                                              \
        *head = x;                                                                                 \
    }                                                                                              \
    static inline __attribute__((unused)) void name##_remove(type **head, type *x)                 \
    {                                                                                              \
        if (x->prev)                                                                               \
            x->prev->next = x->next;                                                               \
        else                                                                                       \
            *head = x->next;                                                                       \
        if (x->next) x->next->prev = x->prev;                                                      \
        x->next = x->prev = NULL;                                                                  \
    }

/* ---- counters (relaxed atomics; figures, not invariants) ---------------- */
HS_INLINE void hs_count_add(_Atomic uint64_t *c, int64_t d)
{
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

/* ---- the process (common.c) ----------------------------------------------- */

/* Random per-process key, never 0, used to tell freed blocks from live
 * ones; set by hs_common_init before any block exists. */
extern uintptr_t hs_free_key;

/* Loads the options and draws hs_free_key, once (the first call does the
 * work): from the library's constructor, and from seg_init for a program
 * whose first allocation comes before it. Nothing in it calls malloc. */
void hs_common_init(void);

#endif /* HS_COMMON_H */
