/* Differential fuzzer of the whole allocation API against a shadow model.
 *
 * An input is a string of bytes read as operations: malloc, calloc, realloc,
 * reallocarray, aligned_alloc, posix_memalign, memalign, valloc, pvalloc,
 * free, free_sized, free_aligned_sized, malloc_usable_size, malloc_trim,
 * fork (about one operation in a thousand: it costs as much as hundreds of
 * others), calls with sizes or alignments that must fail, and hand-overs of
 * blocks between threads.  The shadow model keeps, for each live block, the
 * size and alignment asked for, its usable size and the seed of the pattern
 * written into it, and checks after every call:
 *   - the contents of every block it touches (patterns; a realloc keeps the
 *     old prefix; calloc is zero), and of every block after trim and fork;
 *   - alignment (16 bytes at least, or what was asked for);
 *   - usable size >= the size asked for, stable over the block's life;
 *   - no new block overlaps a live one of the same thread (blocks of other
 *     threads show an overlap as a broken pattern);
 *   - NULL with ENOMEM or EINVAL exactly where the contract says so, and
 *     errno kept by free and the queries.
 * Blocks larger than 64 KiB carry their pattern at the head, the tail and a
 * stripe every 16 KiB, so that multi-MiB blocks cost little.
 *
 * Builds:
 *   fuzz_test        the seeded standalone driver, standard names, run under
 *                    LD_PRELOAD (also against the DEBUG=1 library)
 *   fuzz_libfuzzer   clang's libFuzzer (-DHS_LIBFUZZER -DHS_PREFIX): calls the
 *                    hugeslab_* names, libFuzzer keeps the system allocator;
 *                    the first byte of an input picks 1 to 3 threads
 *
 * Standalone usage: fuzz_test [-s seed] [-t seconds] [-j threads] [-i input]
 *   Each input k is a random string drawn from (seed, k); -i k runs that one
 *   input alone (single-threaded failures replay exactly).  Threads exit
 *   after 64 inputs each and are replaced, leaving blocks behind for others.
 *   Prints "RESULT: N executions (inputs), M operations, ..." and PASS.
 * A failed check prints "FAIL: fuzz: ..." and aborts (libFuzzer then saves
 * the input).
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "api_names.h"

#define SLOTS 64           /* live blocks per thread */
#define MAILBOX 64         /* blocks in transit between threads */
#define MAX_INPUT 4096     /* bytes per generated input */
#define FULL_BYTES 65536   /* blocks up to this carry a full pattern */
#define EDGE_BYTES 4096    /* else: head and tail of this many bytes, */
#define STRIPE_EVERY 16384 /* and a stripe this often */
#define STRIPE_BYTES 256   /* of this many bytes */
#define MAX_THREADS 16

enum op {
    OP_MALLOC,
    OP_CALLOC,
    OP_REALLOC,
    OP_REALLOCARRAY,
    OP_ALIGNED_ALLOC,
    OP_POSIX_MEMALIGN,
    OP_MEMALIGN,
    OP_VALLOC,
    OP_PVALLOC,
    OP_FREE,
    OP_FREE_SIZED,
    OP_USABLE,
    OP_CHECK,
    OP_GIVE,
    OP_TAKE,
    OP_MUST_FAIL,
    OP_TRIM,
    OP_FORK,
};

/* Each operation's share of the 64 values of an operation byte. */
static const unsigned char op_weight[] = {
    [OP_MALLOC] = 10,       [OP_CALLOC] = 4,         [OP_REALLOC] = 6,    [OP_REALLOCARRAY] = 2,
    [OP_ALIGNED_ALLOC] = 3, [OP_POSIX_MEMALIGN] = 2, [OP_MEMALIGN] = 2,   [OP_VALLOC] = 1,
    [OP_PVALLOC] = 1,       [OP_FREE] = 12,          [OP_FREE_SIZED] = 4, [OP_USABLE] = 3,
    [OP_CHECK] = 2,         [OP_GIVE] = 4,           [OP_TAKE] = 4,       [OP_MUST_FAIL] = 2,
    [OP_TRIM] = 1,          [OP_FORK] = 1,
};
static unsigned char op_table[64]; /* operation byte % 64 -> operation, from op_weight */

static const char *const op_names[] = {
    [OP_MALLOC] = "malloc",
    [OP_CALLOC] = "calloc",
    [OP_REALLOC] = "realloc",
    [OP_REALLOCARRAY] = "reallocarray",
    [OP_ALIGNED_ALLOC] = "aligned_alloc",
    [OP_POSIX_MEMALIGN] = "posix_memalign",
    [OP_MEMALIGN] = "memalign",
    [OP_VALLOC] = "valloc",
    [OP_PVALLOC] = "pvalloc",
    [OP_FREE] = "free",
    [OP_FREE_SIZED] = "free_sized",
    [OP_USABLE] = "malloc_usable_size",
    [OP_CHECK] = "check",
    [OP_GIVE] = "give",
    [OP_TAKE] = "take",
    [OP_MUST_FAIL] = "must_fail",
    [OP_TRIM] = "malloc_trim",
    [OP_FORK] = "fork",
};

/* A live block as the model knows it. */
typedef struct {
    unsigned char *p; /* the block; NULL when the slot is empty */
    size_t size;      /* bytes asked for */
    size_t valid;     /* bytes whose pattern is known: size, or usable once written */
    size_t usable;    /* malloc_usable_size when it was made */
    size_t align;     /* alignment asked for; 0 when none was */
    uint64_t seed;    /* seed of its pattern */
    unsigned char op; /* the call that made it */
} block_t;

/* One thread's run over one input. */
typedef struct {
    const uint8_t *data;  /* the input */
    size_t len;           /* its length */
    size_t pos;           /* next byte to read */
    block_t slots[SLOTS]; /* its live blocks */
    uint64_t next_seed;   /* pattern seeds handed out */
    unsigned long ops;    /* operations run */
    unsigned long input;  /* which input, for messages */
    enum op current;      /* the operation running, for messages */
} fuzz_t;

static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;
static block_t mailbox[MAILBOX]; /* blocks handed from one thread to another */
static free_sized_fn free_sized_call;
static free_aligned_sized_fn free_aligned_sized_call;
static size_t page_bytes;
static atomic_ulong total_ops, total_inputs, total_forks, total_handovers;
static int in_child; /* in a forked child: report with _exit, not abort */
/* On hugeslab (else on the system allocator, for the test's own sake): two
 * checks are hugeslab's contract only (see their uses). */
static int on_hugeslab = 1;

/* ---- failures --------------------------------------------------------------- */

/* Reports a failed check and ends the process.  No stdio, no malloc: it may
 * run in a forked child of a multithreaded parent. */
static void HS_PRINTF(2, 3) fail(const fuzz_t *f, const char *fmt, ...)
{
    char buf[768];
    int n = snprintf(
        buf, sizeof buf, "FAIL: fuzz: input %lu, operation %lu (%s)%s: ", f ? f->input : 0,
        f ? f->ops : 0, f ? op_names[f->current] : "-", in_child ? " in a forked child" : "");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof buf) n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf - 1) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0) _exit(3);
    if (in_child) _exit(3);
    abort();
}

/* ---- patterns --------------------------------------------------------------- */

static unsigned char pattern_byte(uint64_t seed, size_t offset)
{
    return (unsigned char)(hs_pattern_word(seed, offset / 8) >> (8 * (offset % 8)));
}

static void fill_span(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
    size_t o = from;
    for (; o < to && (o & 7); o++) p[o] = pattern_byte(seed, o);
    for (; o + 8 <= to; o += 8) {
        uint64_t w = hs_pattern_word(seed, o / 8);
        memcpy(p + o, &w, 8);
    }
    for (; o < to; o++) p[o] = pattern_byte(seed, o);
}

/* The first offset in [from, to) whose byte is not the pattern's (or not zero
 * when zero is set), or SIZE_MAX. */
static size_t check_span(const unsigned char *p, size_t from, size_t to, uint64_t seed, int zero)
{
    size_t o = from;
    for (; o < to && (o & 7); o++)
        if (p[o] != (zero ? 0 : pattern_byte(seed, o))) return o;
    for (; o + 8 <= to; o += 8) {
        uint64_t w = zero ? 0 : hs_pattern_word(seed, o / 8), got;
        memcpy(&got, p + o, 8);
        if (got != w) break;
    }
    for (; o < to; o++)
        if (p[o] != (zero ? 0 : pattern_byte(seed, o))) return o;
    return SIZE_MAX;
}

/* The pattern's spans of a block of `len` bytes, clipped to `limit`: calls
 * visit(from, to) on each, stops at the first that returns other than
 * SIZE_MAX and returns that. */
typedef struct {
    unsigned char *p; /* the block */
    uint64_t seed;    /* its pattern */
    int zero;         /* check for zero bytes instead */
    int write;        /* fill instead of checking */
} span_job_t;

static size_t span_visit(const span_job_t *job, size_t from, size_t to)
{
    if (from >= to) return SIZE_MAX;
    if (job->write) {
        fill_span(job->p, from, to, job->seed);
        return SIZE_MAX;
    }
    return check_span(job->p, from, to, job->seed, job->zero);
}

static size_t spans(const span_job_t *job, size_t len, size_t limit)
{
    size_t end = len < limit ? len : limit, bad;
    if (len <= FULL_BYTES) return span_visit(job, 0, end);
    if ((bad = span_visit(job, 0, EDGE_BYTES < end ? EDGE_BYTES : end)) != SIZE_MAX) return bad;
    for (size_t at = STRIPE_EVERY; at + STRIPE_BYTES <= len - EDGE_BYTES; at += STRIPE_EVERY) {
        if (at >= end) return SIZE_MAX;
        size_t to = at + STRIPE_BYTES < end ? at + STRIPE_BYTES : end;
        if ((bad = span_visit(job, at, to)) != SIZE_MAX) return bad;
    }
    return span_visit(job, len - EDGE_BYTES, end);
}

static void write_pattern(block_t *b)
{
    span_job_t job = {b->p, b->seed, 0, 1};
    spans(&job, b->valid, b->valid);
}

/* Checks the block's pattern over its first `limit` bytes (all: SIZE_MAX). */
static void verify_block(const fuzz_t *f, const block_t *b, size_t limit, const char *when)
{
    span_job_t job = {b->p, b->seed, 0, 0};
    size_t bad = spans(&job, b->valid, limit);
    if (bad != SIZE_MAX)
        fail(f, "%s: block %p (%zu bytes from %s, %zu valid) differs at offset %zu", when,
             (void *)b->p, b->size, op_names[b->op], b->valid, bad);
}

/* ---- the model's checks ------------------------------------------------------- */

static uint64_t take(fuzz_t *f, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)(f->pos < f->len ? f->data[f->pos++] : 0) << (8 * i);
    return v;
}

/* Sizes from 0 to over 32 MiB (a mapping of its own), small ones most
 * often: large blocks cost page faults and copies, not more coverage. */
static size_t take_size(fuzz_t *f)
{
    unsigned kind = (unsigned)take(f, 1);
    if (kind < 96) return (size_t)take(f, 1) % 65;            /* 3/8 */
    if (kind < 176) return (size_t)take(f, 1) * 4 + kind % 4; /* 5/16 */
    if (kind < 216) return (size_t)take(f, 2) % 4096;         /* 5/32 */
    if (kind < 240) return (size_t)take(f, 2);                /* 3/32 */
    if (kind < 250) return (size_t)take(f, 3) % (1u << 20);   /* up to a slab's largest */
    if (kind < 255) return (size_t)take(f, 3) % (5u << 20);   /* runs */
    return (32u << 20) + (size_t)take(f, 2);                  /* a mapping of its own */
}

/* A power of two from 1 to 2 MiB. */
static size_t take_align(fuzz_t *f) { return (size_t)1 << (take(f, 1) % 22); }

/* Checks a block just returned for `size` bytes at `align` and records it in
 * slot b (empty), with a fresh pattern. */
static void record(fuzz_t *f, block_t *b, void *p, size_t size, size_t align, enum op op)
{
    if (!p)
        fail(f, "%s(%zu, alignment %zu) returned NULL: %s", op_names[op], size, align,
             strerror(errno));
    uintptr_t addr = (uintptr_t)p;
    size_t want = align > 16 ? align : 16;
    if (addr % want) fail(f, "%p for %zu bytes is not %zu-byte aligned", p, size, want);
    size_t usable = HS(malloc_usable_size)(p);
    if (usable < size) fail(f, "usable size %zu of %p < %zu asked for", usable, p, size);
    for (int i = 0; i < SLOTS; i++) {
        const block_t *o = &f->slots[i];
        if (o->p && o != b && (uintptr_t)o->p < addr + usable && addr < (uintptr_t)o->p + o->usable)
            fail(f, "new block %p (+%zu) overlaps live block %p (+%zu)", p, usable, (void *)o->p,
                 o->usable);
    }
    *b =
        (block_t){(unsigned char *)p, size, size, usable, align, ++f->next_seed, (unsigned char)op};
    b->seed ^= (uint64_t)f->input << 32;
}

/* Frees slot b by one of the three calls, after checking its contents; free
 * must leave errno alone. */
static void release(fuzz_t *f, block_t *b, unsigned how)
{
    if (!b->p) return;
    verify_block(f, b, SIZE_MAX, "before free");
    if (HS(malloc_usable_size)(b->p) != b->usable)
        fail(f, "usable size of %p changed from %zu to %zu", (void *)b->p, b->usable,
             HS(malloc_usable_size)(b->p));
    errno = 4242;
    if (how % 3 == 1 && free_sized_call && b->align == 0)
        free_sized_call(b->p, b->size);
    else if (how % 3 == 2 && free_aligned_sized_call && b->op == OP_ALIGNED_ALLOC)
        free_aligned_sized_call(b->p, b->align, b->size);
    else
        HS(free)(b->p);
    if (errno != 4242) fail(f, "free changed errno to %d", errno);
    b->p = NULL;
}

static void verify_all(fuzz_t *f, const char *when)
{
    for (int i = 0; i < SLOTS; i++)
        if (f->slots[i].p) verify_block(f, &f->slots[i], SIZE_MAX, when);
}

static block_t *take_slot(fuzz_t *f) { return &f->slots[take(f, 1) % SLOTS]; }

/* ---- operations ------------------------------------------------------------------ */

static void op_alloc(fuzz_t *f, enum op op)
{
    block_t *b = take_slot(f);
    release(f, b, 0);
    size_t size = take_size(f), align = 0;
    void *p = NULL;
    switch (op) {
    case OP_MALLOC:
        p = HS(malloc)(size);
        break;
    case OP_ALIGNED_ALLOC:
        align = take_align(f);
        p = HS(aligned_alloc)(align, size);
        break;
    case OP_POSIX_MEMALIGN: {
        align = take_align(f);
        if (align < sizeof(void *)) align = sizeof(void *);
        int rc = HS(posix_memalign)(&p, align, size);
        if (rc != 0) fail(f, "posix_memalign(%zu, %zu) = %d", align, size, rc);
        break;
    }
    case OP_MEMALIGN:
        align = take_align(f);
        p = HS(memalign)(align, size);
        break;
    case OP_VALLOC:
        align = page_bytes;
        p = HS(valloc)(size);
        break;
    default: /* OP_PVALLOC */
        align = page_bytes;
        p = HS(pvalloc)(size);
        /* pvalloc(0) is a page on hugeslab; glibc 2.36 gives less */
        size = size ? (size + page_bytes - 1) / page_bytes * page_bytes
                    : (on_hugeslab ? page_bytes : 0);
        break;
    }
    record(f, b, p, size, align, op);
    write_pattern(b);
}

static void op_calloc(fuzz_t *f)
{
    block_t *b = take_slot(f);
    release(f, b, 0);
    size_t size = take_size(f), count = 1 + take(f, 1) % 16, each = size / count;
    void *p = HS(calloc)(count, each);
    record(f, b, p, count * each, 0, OP_CALLOC);
    span_job_t job = {b->p, 0, 1, 0};
    size_t bad = spans(&job, b->size, b->size);
    if (bad != SIZE_MAX) fail(f, "calloc(%zu, %zu) = %p: byte %zu not zero", count, each, p, bad);
    write_pattern(b);
}

/* realloc and reallocarray: the old prefix survives, wherever the block goes;
 * to zero bytes, the block is freed (NULL back); from NULL, a malloc. */
static void op_realloc(fuzz_t *f, enum op op)
{
    block_t *b = take_slot(f);
    size_t size = take_size(f), count = 1;
    if (op == OP_REALLOCARRAY) {
        count = 1 + take(f, 1) % 8;
        size /= count;
    }
    block_t old = *b;
    void *p = op == OP_REALLOCARRAY ? HS(reallocarray)(b->p, count, size) : HS(realloc)(b->p, size);
    size *= count;
    if (old.p && size == 0) {
        if (p) fail(f, "realloc(%p, 0) returned %p, not NULL", (void *)old.p, p);
        b->p = NULL;
        return;
    }
    b->p = NULL;
    record(f, b, p, size, 0, op);
    if (old.p) {
        block_t moved = old;
        moved.p = b->p;
        verify_block(f, &moved, size, "after realloc");
    }
    write_pattern(b);
}

static void op_free(fuzz_t *f, unsigned how) { release(f, take_slot(f), how); }

/* malloc_usable_size: stable, and every byte of it can be written. */
static void op_usable(fuzz_t *f)
{
    block_t *b = take_slot(f);
    errno = 4343;
    size_t usable = HS(malloc_usable_size)(b->p);
    if (errno != 4343) fail(f, "malloc_usable_size changed errno to %d", errno);
    if (!b->p) {
        if (usable != 0) fail(f, "malloc_usable_size(NULL) = %zu", usable);
        return;
    }
    if (usable != b->usable)
        fail(f, "usable size of %p changed from %zu to %zu", (void *)b->p, b->usable, usable);
    verify_block(f, b, SIZE_MAX, "before writing its usable size");
    b->valid = usable;
    b->seed = ++f->next_seed ^ ((uint64_t)f->input << 32);
    write_pattern(b);
}

/* Calls that must fail, and leave what they were given intact. */
static void op_must_fail(fuzz_t *f)
{
    block_t *b = take_slot(f);
    unsigned which = (unsigned)take(f, 1) % 7;
    size_t huge = SIZE_MAX - (size_t)take(f, 2);
    void *p = NULL;
    int want = ENOMEM, rc = 0;
    errno = 0;
    switch (which) {
    case 0:
        p = HS(malloc)(hs_opaque(huge));
        break;
    case 1:
        p = HS(calloc)(hs_opaque(huge / 2), 3);
        break;
    case 2:
        p = HS(reallocarray)(b->p, hs_opaque(huge / 2), 3);
        break;
    case 3:
        p = HS(realloc)(b->p, hs_opaque(huge));
        break;
    case 4:
        p = HS(pvalloc)(hs_opaque(huge));
        break;
    case 5:
        if (!on_hugeslab) return;
        want = EINVAL;
        p = HS(aligned_alloc)(hs_opaque(16 * 3), 64);
        break;
    default: {
        void *out = &out;
        want = EINVAL;
        rc = HS(posix_memalign)(&out, hs_opaque(4 + 24 * (take(f, 1) % 2)), 64);
        if (rc != EINVAL) fail(f, "posix_memalign with a bad alignment returned %d", rc);
        if (out != &out) fail(f, "posix_memalign with a bad alignment wrote its result");
        break;
    }
    }
    if (p) fail(f, "call %u that must fail returned %p", which, p);
    if (which < 6 && errno != want) fail(f, "call %u set errno %d, not %d", which, errno, want);
    if (b->p) verify_block(f, b, SIZE_MAX, "after a call that failed");
}

/* Hands a block to the mailbox, or takes one from it: most frees of handed
 * blocks are remote, some after their thread is gone. */
static void op_exchange(fuzz_t *f, int give)
{
    block_t *b = take_slot(f);
    block_t *box = &mailbox[take(f, 1) % MAILBOX];
    if (b->p) verify_block(f, b, SIZE_MAX, "before a hand-over");
    pthread_mutex_lock(&mailbox_lock);
    block_t got = *box;
    if (give || got.p) {
        *box = *b;
        *b = got;
    }
    pthread_mutex_unlock(&mailbox_lock);
    atomic_fetch_add_explicit(&total_handovers, 1, memory_order_relaxed);
    if (b->p) {
        verify_block(f, b, SIZE_MAX, "after a hand-over");
        for (int i = 0; i < SLOTS; i++) {
            const block_t *o = &f->slots[i];
            if (o != b && o->p && o->p < b->p + b->usable && b->p < o->p + o->usable)
                fail(f, "handed-over block %p overlaps live block %p", (void *)b->p, (void *)o->p);
        }
    }
}

/* fork: the child sees every block of this thread intact, frees some,
 * allocates and frees more, and exits 0; the parent's blocks stay intact. */
static void op_fork(fuzz_t *f)
{
    atomic_fetch_add_explicit(&total_forks, 1, memory_order_relaxed);
    pid_t pid = fork();
    if (pid < 0) return; /* the system's limit, not the allocator's */
    if (pid == 0) {
        in_child = 1;
        alarm(20);
        verify_all(f, "in the child after fork");
        for (int i = 0; i < SLOTS; i += 2) release(f, &f->slots[i], (unsigned)i);
        for (int round = 0; round < 200; round++) {
            block_t *b = &f->slots[round % SLOTS];
            release(f, b, (unsigned)round);
            size_t size = (size_t)hs_mix64((uint64_t)round) % 20000;
            record(f, b, HS(malloc)(size), size, 0, OP_MALLOC);
            write_pattern(b);
        }
        verify_all(f, "in the child before exit");
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail(f, "child exited with status %#x", status);
    verify_all(f, "in the parent after fork");
}

static void run_ops(fuzz_t *f)
{
    while (f->pos < f->len) {
        enum op op = (enum op)op_table[take(f, 1) % 64];
        f->current = op;
        f->ops++;
        switch (op) {
        case OP_MALLOC:
        case OP_ALIGNED_ALLOC:
        case OP_POSIX_MEMALIGN:
        case OP_MEMALIGN:
        case OP_VALLOC:
        case OP_PVALLOC:
            op_alloc(f, op);
            break;
        case OP_CALLOC:
            op_calloc(f);
            break;
        case OP_REALLOC:
        case OP_REALLOCARRAY:
            op_realloc(f, op);
            break;
        case OP_FREE:
            op_free(f, 0);
            break;
        case OP_FREE_SIZED:
            op_free(f, 1 + (unsigned)take(f, 1) % 2);
            break;
        case OP_USABLE:
            op_usable(f);
            break;
        case OP_CHECK:
            verify_all(f, "check");
            break;
        case OP_GIVE:
            op_exchange(f, 1);
            break;
        case OP_TAKE:
            op_exchange(f, 0);
            break;
        case OP_MUST_FAIL:
            op_must_fail(f);
            break;
        case OP_TRIM:
            HS(malloc_trim)(0);
            verify_all(f, "after malloc_trim");
            break;
        case OP_FORK:
            /* a fork costs as much as hundreds of other calls: 1 in 16 */
            if (f->pos < f->len && take(f, 1) % 16 == 0) op_fork(f);
            break;
        }
    }
    for (int i = 0; i < SLOTS; i++) release(f, &f->slots[i], (unsigned)i);
    atomic_fetch_add_explicit(&total_ops, f->ops, memory_order_relaxed);
}

static void setup(void)
{
    unsigned at = 0;
    for (unsigned op = 0; op <= OP_FORK; op++)
        for (unsigned i = 0; i < op_weight[op] && at < 64; i++) op_table[at++] = (unsigned char)op;
    if (at != 64) fail(NULL, "the operation weights add up to %u, not 64", at);
    free_sized_call = get_free_sized();
    free_aligned_sized_call = get_free_aligned_sized();
    page_bytes = (size_t)sysconf(_SC_PAGESIZE);
}

/* Frees what is left in the mailbox (blocks of threads that may be gone). */
static void drain_mailbox(fuzz_t *f)
{
    for (int i = 0; i < MAILBOX; i++) release(f, &mailbox[i], (unsigned)i);
}

static void print_result(double seconds, const char *threads)
{
    fprintf(stderr,
            "RESULT: %lu executions, %lu operations, %lu forks, %lu hand-overs, %s, %.0f s\n",
            atomic_load(&total_inputs), atomic_load(&total_ops), atomic_load(&total_forks),
            atomic_load(&total_handovers), threads, seconds);
}

#ifdef HS_LIBFUZZER
/* ---- libFuzzer target ------------------------------------------------------------ */

typedef struct {
    fuzz_t f;      /* this thread's run */
    pthread_t tid; /* its thread */
} part_t;

static void *run_part(void *arg)
{
    run_ops(&((part_t *)arg)->f);
    return NULL;
}

static struct timespec started;
static char how[64] = "1 to 3 threads";

static void report_at_exit(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    print_result((double)(now.tv_sec - started.tv_sec), how);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 1; i < *argc; i++)
        if (strncmp((*argv)[i], "-seed=", 6) == 0)
            snprintf(how, sizeof how, "seed %s, 1 to 3 threads", (*argv)[i] + 6);
    setup();
    clock_gettime(CLOCK_MONOTONIC, &started);
    atexit(report_at_exit);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static unsigned long inputs;
    static part_t parts[3];
    if (len == 0) return 0;
    unsigned threads = 1 + data[0] % 3;
    data++;
    len--;
    inputs++;
    atomic_fetch_add_explicit(&total_inputs, 1, memory_order_relaxed);
    for (unsigned t = 0; t < threads; t++) {
        memset(&parts[t].f, 0, sizeof parts[t].f);
        parts[t].f.data = data + len * t / threads;
        parts[t].f.len = len * (t + 1) / threads - len * t / threads;
        parts[t].f.input = inputs;
    }
    if (threads == 1) {
        run_ops(&parts[0].f);
    } else {
        for (unsigned t = 0; t < threads; t++)
            if (pthread_create(&parts[t].tid, NULL, run_part, &parts[t]) != 0) run_ops(&parts[t].f);
        for (unsigned t = 0; t < threads; t++)
            if (parts[t].tid) pthread_join(parts[t].tid, NULL);
        memset(parts, 0, sizeof parts);
    }
    fuzz_t last = {.input = inputs};
    drain_mailbox(&last);
    return 0;
}

#else
/* ---- standalone driver ------------------------------------------------------------ */

static uint64_t seed = 1;
static double seconds = 10;
static struct timespec started;
static atomic_ulong next_input;

static double elapsed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
}

/* Input k of this seed: a random length and random bytes. */
static size_t make_input(uint8_t *buf, unsigned long k)
{
    hs_rng_t r;
    hs_rng_seed(&r, seed * 0x100000001b3ULL + k);
    size_t len = 1 + (size_t)hs_rng_below(&r, MAX_INPUT);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = hs_rng_next(&r);
        memcpy(buf + i, &w, len - i < 8 ? len - i : 8);
    }
    return len;
}

static void run_input(unsigned long k)
{
    static _Thread_local uint8_t buf[MAX_INPUT + 8];
    static _Thread_local fuzz_t f;
    memset(&f, 0, sizeof f);
    f.data = buf;
    f.len = make_input(buf, k);
    f.input = k;
    run_ops(&f);
    atomic_fetch_add_explicit(&total_inputs, 1, memory_order_relaxed);
}

/* A worker runs inputs until the time is up or it has run 64; then it exits
 * (the blocks it handed over outlive it) and main starts another. */
static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 64 && elapsed() < seconds; i++) run_input(atomic_fetch_add(&next_input, 1));
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned threads = 1;
    long only = -1;
    int opt;
    while ((opt = getopt(argc, argv, "s:t:j:i:")) != -1) {
        switch (opt) {
        case 's':
            seed = strtoull(optarg, NULL, 0);
            break;
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'j':
            threads = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'i':
            only = strtol(optarg, NULL, 0);
            break;
        default:
            fprintf(stderr, "usage: fuzz_test [-s seed] [-t seconds] [-j threads] [-i input]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS) threads = 1;
    on_hugeslab = hs_setup("fuzz");
    setup();
    clock_gettime(CLOCK_MONOTONIC, &started);
    fprintf(stderr, "fuzz: seed %llu, %u thread%s, %.0f s%s\n", (unsigned long long)seed, threads,
            threads == 1 ? "" : "s", seconds, free_sized_call ? "" : " (no free_sized here)");
    if (only >= 0) {
        run_input((unsigned long)only);
    } else if (threads == 1) {
        while (elapsed() < seconds) run_input(atomic_fetch_add(&next_input, 1));
    } else {
        pthread_t tids[MAX_THREADS];
        while (elapsed() < seconds) {
            for (unsigned t = 0; t < threads; t++)
                if (pthread_create(&tids[t], NULL, worker, NULL) != 0)
                    fail(NULL, "pthread_create failed");
            for (unsigned t = 0; t < threads; t++) pthread_join(tids[t], NULL);
        }
    }
    fuzz_t last = {.input = atomic_load(&next_input)};
    drain_mailbox(&last);
    char how[64];
    snprintf(how, sizeof how, "seed %llu, %u thread%s", (unsigned long long)seed, threads,
             threads == 1 ? "" : "s");
    print_result(elapsed(), how);
    fprintf(stderr, "PASS fuzz\n");
    return 0;
}
#endif
