/* size recorder: an LD_PRELOAD library that logs every allocation request
 * of a program to a file, for the size-class study (bench/sizes/study.py)
 * and for bench/sizes/rss_replay.c.
 *
 *   SIZES_TRACE_DIR=/tmp/t LD_PRELOAD=build/bench/libsizerecord.so prog ...
 *
 * writes /tmp/t/<comm>.<pid>.trace for each process that allocates (a
 * forked child gets a file of its own), as records of struct sizes_record
 * (bench/sizes/trace.h): every malloc, calloc, realloc, aligned allocation
 * and free with its size, the addresses involved and the number of the
 * thread that made it, and each thread's exit. The memory itself comes
 * from the C library's allocator, looked up in libc.so.6 by name, so the
 * program runs on glibc whatever else it links (Debian's redis-server links
 * jemalloc) and its own malloc_usable_size calls see glibc's answer.
 *
 * Looking the functions up (dlopen, dlsym) may allocate: those calls are
 * served from a static buffer and never freed nor logged. Records go to a
 * buffer under a spin lock and out with write(2) when it is full, at exit,
 * and before a fork. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace.h"

#define EXPORT __attribute__((visibility("default")))

/* The C library's functions, resolved once. */
static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    void *(*memalign)(size_t, size_t);
    size_t (*usable)(void *);
} libc;

/* 0: not resolved; 1: resolving (allocations come from boot_area); 2: done. */
static _Atomic int resolve_state;

/* What dlopen and dlsym allocate while the functions are being looked up. */
static _Alignas(64) char boot_area[64 * 1024];
static size_t boot_used;

static bool in_boot_area(const void *p)
{
    return (const char *)p >= boot_area && (const char *)p < boot_area + sizeof boot_area;
}

static void *boot_alloc(size_t size, size_t align)
{
    if (align < 16) align = 16;
    size_t start = (boot_used + align - 1) & ~(align - 1);
    if (start + size > sizeof boot_area) return NULL;
    boot_used = start + size;
    return boot_area + start;
}

static void resolve(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&resolve_state, &expected, 1)) {
        /* Another thread resolves: wait for it (the resolving thread's own
         * nested calls never come here, they see state 1 and use boot). */
        while (atomic_load(&resolve_state) != 2) {
        }
        return;
    }
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (h == NULL) abort();
    libc.malloc = (void *(*)(size_t))dlsym(h, "malloc");
    libc.calloc = (void *(*)(size_t, size_t))dlsym(h, "calloc");
    libc.realloc = (void *(*)(void *, size_t))dlsym(h, "realloc");
    libc.free = (void (*)(void *))dlsym(h, "free");
    libc.memalign = (void *(*)(size_t, size_t))dlsym(h, "memalign");
    libc.usable = (size_t(*)(void *))dlsym(h, "malloc_usable_size");
    if (!libc.malloc || !libc.calloc || !libc.realloc || !libc.free || !libc.memalign ||
        !libc.usable)
        abort();
    atomic_store(&resolve_state, 2);
}

/* True when the functions are usable; false while they are being looked up
 * (the caller then serves itself from boot_area). */
static bool ready(void)
{
    int s = atomic_load_explicit(&resolve_state, memory_order_acquire);
    if (s == 2) return true;
    if (s == 1) return false; /* a nested call from dlopen/dlsym */
    resolve();
    return atomic_load(&resolve_state) == 2;
}

/* ---- the trace file -------------------------------------------------------- */

#define BUFFER_RECORDS 8192

static atomic_flag lock = ATOMIC_FLAG_INIT;
static sizes_record_t buffer[BUFFER_RECORDS];
static unsigned buffered;
static int trace_fd = -1;
static bool trace_off; /* no SIZES_TRACE_DIR, or the file could not be made */
static bool atfork_done;

static void lock_take(void)
{
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire)) {
    }
}

static void lock_drop(void) { atomic_flag_clear_explicit(&lock, memory_order_release); }

/* Appends text to dst (of cap bytes, NUL-terminated); no stdio, which may
 * allocate. */
static void append(char *dst, size_t cap, const char *text)
{
    size_t n = strlen(dst);
    while (*text && n + 1 < cap) dst[n++] = *text++;
    dst[n] = '\0';
}

static void append_number(char *dst, size_t cap, unsigned long v)
{
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    char text[24];
    for (int i = 0; i < n; i++) text[i] = digits[n - 1 - i];
    text[n] = '\0';
    append(dst, cap, text);
}

/* Opens <dir>/<comm>.<pid>.trace; lock held. */
static void trace_open(void)
{
    const char *dir = getenv("SIZES_TRACE_DIR");
    if (dir == NULL || *dir == '\0') {
        trace_off = true;
        return;
    }
    char comm[32] = "";
    int cfd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (cfd >= 0) {
        ssize_t n = read(cfd, comm, sizeof comm - 1);
        close(cfd);
        comm[n > 0 ? n : 0] = '\0';
        for (char *c = comm; *c; c++)
            if (*c == '\n' || *c == '/' || *c == ' ') *c = *c == '\n' ? '\0' : '_';
    }
    char path[512] = "";
    append(path, sizeof path, dir);
    append(path, sizeof path, "/");
    append(path, sizeof path, comm[0] ? comm : "prog");
    append(path, sizeof path, ".");
    append_number(path, sizeof path, (unsigned long)getpid());
    append(path, sizeof path, ".trace");
    trace_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (trace_fd < 0) trace_off = true;
}

/* Writes the buffer out; lock held. */
static void flush_locked(void)
{
    if (buffered == 0) return;
    const char *p = (const char *)buffer;
    size_t left = buffered * sizeof(sizes_record_t);
    while (left > 0 && trace_fd >= 0) {
        ssize_t n = write(trace_fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        p += n;
        left -= (size_t)n;
    }
    buffered = 0;
}

static void fork_prepare(void)
{
    lock_take();
    flush_locked();
}

static void fork_parent(void) { lock_drop(); }

/* The child logs into a file of its own, opened at its first record. */
static void fork_child(void)
{
    if (trace_fd >= 0) close(trace_fd);
    trace_fd = -1;
    trace_off = false;
    lock_drop();
}

/* The calling thread's number in the trace plus one, 0 before its first
 * record. Initial-exec: a dynamic TLS block would be allocated by malloc. */
static __thread uint32_t thread_number __attribute__((tls_model("initial-exec")));
static _Atomic uint32_t threads_numbered;

/* A key whose destructor logs the thread's exit (pthread_key_create and a
 * low key's pthread_setspecific allocate nothing). */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static bool exit_key_made;

static void record(uint32_t op, uint64_t size, const void *ptr, const void *old);

static void note_thread_exit(void *unused)
{
    (void)unused;
    record(SIZES_THREAD_EXIT, 0, NULL, NULL);
}

static void make_exit_key(void)
{
    exit_key_made = pthread_key_create(&exit_key, note_thread_exit) == 0;
}

/* Numbers the calling thread and arms its exit record. */
static void number_thread(void)
{
    thread_number = atomic_fetch_add(&threads_numbered, 1) + 1;
    pthread_once(&exit_key_once, make_exit_key);
    if (exit_key_made) pthread_setspecific(exit_key, &thread_number);
}

static void record(uint32_t op, uint64_t size, const void *ptr, const void *old)
{
    if (thread_number == 0) number_thread();
    lock_take();
    if (trace_fd < 0 && !trace_off) trace_open();
    if (!trace_off) {
        buffer[buffered++] = (sizes_record_t){.op = op,
                                              .thread = thread_number - 1,
                                              .size = size,
                                              .ptr = (uint64_t)(uintptr_t)ptr,
                                              .old = (uint64_t)(uintptr_t)old};
        if (buffered == BUFFER_RECORDS) flush_locked();
    }
    bool need_atfork = !atfork_done;
    atfork_done = true;
    lock_drop();
    /* Outside the lock: pthread_atfork may allocate. */
    if (need_atfork) pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((destructor)) static void flush_at_exit(void)
{
    lock_take();
    flush_locked();
    lock_drop();
}

/* ---- the allocation functions ---------------------------------------------- */

EXPORT void *malloc(size_t size)
{
    if (!ready()) return boot_alloc(size, 16);
    void *p = libc.malloc(size);
    if (p) record(SIZES_MALLOC, size, p, NULL);
    return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
    if (!ready()) {
        if (size && n > SIZE_MAX / size) return NULL;
        return boot_alloc(n * size, 16); /* static memory is zero */
    }
    void *p = libc.calloc(n, size);
    if (p) record(SIZES_CALLOC, (uint64_t)n * size, p, NULL);
    return p;
}

EXPORT void free(void *p)
{
    if (p == NULL || in_boot_area(p)) return;
    if (!ready()) return;
    record(SIZES_FREE, 0, p, p);
    libc.free(p);
}

EXPORT void *realloc(void *old, size_t size)
{
    if (!ready()) return NULL;
    if (in_boot_area(old)) {
        void *p = libc.malloc(size);
        if (p == NULL) return NULL;
        size_t have = (size_t)(boot_area + sizeof boot_area - (char *)old);
        memcpy(p, old, have < size ? have : size);
        record(SIZES_MALLOC, size, p, NULL);
        return p;
    }
    void *p = libc.realloc(old, size);
    if (old == NULL) {
        if (p) record(SIZES_MALLOC, size, p, NULL);
    } else if (size == 0 && p == NULL) {
        record(SIZES_FREE, 0, old, old);
    } else if (p) {
        record(SIZES_REALLOC, size, p, old);
    }
    return p;
}

EXPORT void *reallocarray(void *old, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n * size);
}

static void *aligned(size_t align, size_t size)
{
    if (!ready()) return boot_alloc(size, align);
    void *p = libc.memalign(align, size);
    if (p) record(SIZES_ALIGNED, size, p, (void *)(uintptr_t)align);
    return p;
}

EXPORT void *memalign(size_t align, size_t size) { return aligned(align, size); }
EXPORT void *aligned_alloc(size_t align, size_t size) { return aligned(align, size); }
EXPORT void *valloc(size_t size) { return aligned(4096, size); }
EXPORT void *pvalloc(size_t size) { return aligned(4096, (size + 4095) & ~(size_t)4095); }

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = aligned(align, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL) return 0;
    if (in_boot_area(p)) return 0;
    if (!ready()) return 0;
    return libc.usable(p);
}
