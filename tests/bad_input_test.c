/* Invalid frees must be reported on stderr ("hugeslab: ..." naming the
 * pointer as %p prints it) and end in abort().  Each case runs in a forked
 * child whose stderr goes to a pipe; the child must die of SIGABRT.
 *
 * Writes into freed blocks (a use after free of the first 8 bytes, where a
 * free list keeps its links) must be caught when the list is followed:
 * "corrupted free list" / "corrupted delayed free list", naming the block,
 * and abort() -- never a block handed out at the address written.
 *
 * Only meaningful under hugeslab:
 *   LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/bad_input_test [case]
 * Without hugeslab the test is skipped (exit 77).
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Called through volatile pointers so that the compiler neither warns about
 * the deliberate misuse nor optimizes it away. */
static void (*volatile free_fn)(void *) = free;
static void *(*volatile malloc_fn)(size_t) = malloc;
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

typedef struct {
    const char *name;
    void (*action)(void *arg);
    void *arg;             /* the pointer that must be named in the report */
    const char *must_have; /* extra text the report must contain, or NULL */
} bad_case_t;

static void act_free(void *p) { free_fn(p); }

static void act_double_free(void *p)
{
    free_fn(p);
    free_fn(p);
}

static void act_realloc(void *p)
{
    void *q = realloc_fn(p, 100);
    (void)q;
}

static size_t (*volatile usable_fn)(void *) = malloc_usable_size;

static void act_usable_after_free(void *p)
{
    free_fn(p);
    (void)usable_fn(p);
}

/* ---- writes after free: each frees the block, writes its first 8 bytes,
 * and makes the allocator follow the list the block is on. */
static void *live_block; /* a live block of the same slab as the victim */

static void write_first_word(void *p, uintptr_t value) { *(volatile uintptr_t *)p = value; }

static void act_uaf_pattern(void *p)
{
    free_fn(p);
    write_first_word(p, 0x4141414141414141u);
    (void)malloc_fn(64); /* pops p; its successor is read from the link */
}

static void act_uaf_zero(void *p)
{
    free_fn(p);
    write_first_word(p, 0);
    (void)malloc_fn(64);
}

/* What an attack would write: the address of a live block, to have it
 * handed out a second time. */
static void act_uaf_live_pointer(void *p)
{
    free_fn(p);
    write_first_word(p, (uintptr_t)live_block);
    (void)malloc_fn(64);
    (void)malloc_fn(64);
}

static void *free_in_thread(void *p)
{
    free_fn(p);
    return NULL;
}

static void free_by_another_thread(void *p)
{
    pthread_t t;
    if (pthread_create(&t, NULL, free_in_thread, p) != 0) _exit(4);
    pthread_join(t, NULL);
}

/* Two other threads free p in turn: each free waits in its thread's batch
 * of remote frees, which the thread's exit hands to the slab; the second
 * thread's exit finds p marked free and reports it. */
static void act_double_free_remote(void *p)
{
    free_by_another_thread(p);
    free_by_another_thread(p);
}

/* Another thread with a heap of its own frees p: the free waits in that
 * thread's batch of remote frees (tiny_free_slow) while it lives. The
 * owner's second free must be reported then: accepted, it handed p out
 * again, and the batch's flush at the thread's exit then freed the live
 * block, unreported. */
static pthread_barrier_t batched_then;
static void *free_batched_and_wait(void *p)
{
    void *own = malloc_fn(32); /* a heap of its own: its frees are batched */
    free_fn(p);
    pthread_barrier_wait(&batched_then);
    pthread_barrier_wait(&batched_then); /* the owner's free ends the child first */
    free_fn(own);
    return NULL;
}

/* Runs free_then_wait(arg) on another thread, which frees p and waits; the
 * owner frees p meanwhile. */
static void free_while_batched(void *(*free_then_wait)(void *), void *arg, void *p)
{
    pthread_t t;
    pthread_barrier_init(&batched_then, NULL, 2);
    if (pthread_create(&t, NULL, free_then_wait, arg) != 0) _exit(4);
    pthread_barrier_wait(&batched_then);
    free_fn(p);
    (void)malloc_fn(64); /* p again, unless reported */
    pthread_barrier_wait(&batched_then);
    pthread_join(t, NULL);
}

static void act_double_free_batched(void *p) { free_while_batched(free_batched_and_wait, p, p); }

/* The same by a thread without a heap: past its first frees of other
 * threads' blocks, which go at once (TINY_HEAPLESS_BATCH_AFTER, 64), p waits
 * in the batch lent to it (heapless_free_remote). */
#define HEAPLESS_AT_ONCE 64
static void *free_heapless_batched_and_wait(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i <= HEAPLESS_AT_ONCE; i++) free_fn(blocks[i]); /* p last */
    pthread_barrier_wait(&batched_then);
    pthread_barrier_wait(&batched_then);
    return NULL;
}

static void act_double_free_heapless_batched(void *p)
{
    static void *blocks[HEAPLESS_AT_ONCE + 1];
    for (int i = 0; i < HEAPLESS_AT_ONCE; i++) blocks[i] = malloc_fn(64);
    blocks[HEAPLESS_AT_ONCE] = p;
    free_while_batched(free_heapless_batched_and_wait, blocks, p);
}

/* p goes on its slab's remote-free stack; the owner collects the stack into
 * the free list when the list runs out, and pops p. */
static void act_uaf_remote(void *p)
{
    free_by_another_thread(p);
    write_first_word(p, 0x4242424242424242u);
    for (int i = 0; i < (1 << 20); i++) (void)malloc_fn(64);
}

/* p lies in a slab on its owner's full list: another thread's free puts it
 * on the owner heap's delayed list, which the next refill drains. */
static void act_uaf_delayed(void *p)
{
    free_by_another_thread(p);
    write_first_word(p, 0x4343434343434343u);
    (void)malloc_fn(900000); /* a class never used: a refill */
}

static int run_case(const bad_case_t *c)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        HS_FAIL("%s: pipe: %s", c->name, strerror(errno));
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        HS_FAIL("%s: fork: %s", c->name, strerror(errno));
        return 1;
    }
    if (pid == 0) {
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
        close(pfd[0]);
        dup2(pfd[1], 2);
        close(pfd[1]);
        alarm(20);
        c->action(c->arg);
        static const char msg[] = "child survived the invalid call\n";
        if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
        _exit(0);
    }
    close(pfd[1]);
    char out[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(pfd[0], out + len, sizeof out - 1 - len)) > 0) {
        len += (size_t)r;
        if (len == sizeof out - 1) break;
    }
    out[len] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);

    char ptr[64];
    snprintf(ptr, sizeof ptr, "%p", c->arg);
    int bad = 0;
    char why[512] = "";
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
        if (WIFSIGNALED(st))
            snprintf(why, sizeof why, "child died of signal %d (%s), want SIGABRT", WTERMSIG(st),
                     strsignal(WTERMSIG(st)));
        else
            snprintf(why, sizeof why, "child exited with status %d, want SIGABRT", WEXITSTATUS(st));
        bad = 1;
    } else if (!strstr(out, "hugeslab:")) {
        snprintf(why, sizeof why, "stderr lacks \"hugeslab:\"");
        bad = 1;
    } else if (c->must_have && !strstr(out, c->must_have)) {
        snprintf(why, sizeof why, "stderr lacks \"%s\"", c->must_have);
        bad = 1;
    } else if (!strstr(out, ptr)) {
        snprintf(why, sizeof why, "stderr does not name the pointer %s", ptr);
        bad = 1;
    }
    /* one line of the child's stderr for the log */
    char first[300];
    size_t fl = strcspn(out, "\n");
    if (fl >= sizeof first) fl = sizeof first - 1;
    memcpy(first, out, fl);
    first[fl] = 0;
    if (bad)
        HS_FAIL("%s: %s; child stderr: \"%s\"", c->name, why, first);
    else
        fprintf(stderr, "  %-22s ok: %s\n", c->name, first);
    hs_checks++;
    return bad;
}

int main(int argc, char **argv)
{
    int hs = hs_setup("bad_input");
    if (!hs) hs_skip("bad_input: needs hugeslab (run with LD_PRELOAD=build/libhugeslab.so)");

    /* warm up: a few blocks of various sizes so the heap is not empty */
    void *keep[64];
    for (int i = 0; i < 64; i++) keep[i] = malloc_fn((size_t)16 << (i % 12));

    void *small = malloc_fn(64);
    memset(small, 1, 64);
    void *interior = malloc_fn(64);
    memset(interior, 2, 64);
    void *large = malloc_fn(3u << 20);
    memset(large, 3, 3u << 20);
    void *medium = malloc_fn(100 << 10);
    memset(medium, 4, 100 << 10);
    char stackbuf[256];
    memset(stackbuf, 0, sizeof stackbuf);
    long pg = sysconf(_SC_PAGESIZE);
    char *foreign =
        mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* a 2 MiB-aligned foreign region, zero filled, as a SuperSlab would be */
    size_t two = 2u << 20;
    char *region = mmap(NULL, 3 * two, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (foreign == MAP_FAILED || region == MAP_FAILED) hs_skip("mmap failed");
    char *aligned_foreign = (char *)(((uintptr_t)region + two - 1) & ~(uintptr_t)(two - 1));
    memset(aligned_foreign, 0, two);
    /* Victims of writes after free: 64-byte blocks of the current slab, and
     * the first block of a 3 KiB slab that 64 allocations of its class left
     * on the full list. */
    void *victim = malloc_fn(64);
    live_block = malloc_fn(64);
    void *filled[64];
    for (int i = 0; i < 64; i++) filled[i] = malloc_fn(3000);
    /* Past 8 MiB of slabs a block of 200,000 B has a slab of pages, which
     * its free keeps as the heap's sized spare, its block marked free. */
    enum { BULK = 10 * 1024 };
    static void *bulk[BULK];
    for (int i = 0; i < BULK; i++) bulk[i] = malloc_fn(1000);
    void *sized = malloc_fn(200000);
    memset(sized, 5, 200000);
    /* A slab that handed out an aligned block's inner pointer, and a block
     * of the same class after it: an inner pointer of that block is not
     * one an aligned allocation handed out. */
    char *aligned = NULL;
    for (int i = 0; i < 8 && !aligned; i++) {
        char *a = aligned_alloc(1024, 100);
        if (a && malloc_usable_size(a) < 1152) aligned = a; /* not its block's start */
    }
    char *after_aligned = malloc_fn(1100);
    memset(after_aligned, 6, 1100);

    const bad_case_t cases[] = {
        {"double_free_small", act_double_free, small, "double free"},
        {"double_free_remote", act_double_free_remote, small, "double free"},
        {"double_free_batched", act_double_free_batched, small, "double free"},
        {"double_free_heapless_batched", act_double_free_heapless_batched, small, "double free"},
        {"free_stack", act_free, stackbuf + 16, NULL},
        {"free_interior_p+8", act_free, (char *)interior + 8, NULL},
        {"free_interior_p+16", act_free, (char *)interior + 16, NULL},
        {"free_foreign_mmap", act_free, foreign + 64, NULL},
        {"free_foreign_2mib", act_free, aligned_foreign + 4096, NULL},
        {"realloc_foreign", act_realloc, foreign + 128, NULL},
        {"double_free_large", act_double_free, large, NULL},
        {"double_free_medium", act_double_free, medium, NULL},
        {"double_free_sized", act_double_free, sized, "double free"},
        {"free_large_interior", act_free, (char *)large + 4096, NULL},
        {"free_interior_aligned_slab", act_free, after_aligned + 96, "points 96 bytes into"},
        {"realloc_interior", act_realloc, (char *)interior + 16, "realloc of"},
        {"usable_after_free_small", act_usable_after_free, small, "malloc_usable_size of"},
        {"usable_after_free_large", act_usable_after_free, large, "malloc_usable_size of"},
        {"uaf_write_free_list", act_uaf_pattern, victim, "corrupted free list in a 64-byte slab"},
        {"uaf_zero_free_list", act_uaf_zero, victim, "corrupted free list in a 64-byte slab"},
        {"uaf_live_pointer", act_uaf_live_pointer, victim, "corrupted free list in a 64-byte slab"},
        {"uaf_remote_list", act_uaf_remote, victim, "corrupted free list in a 64-byte slab"},
        {"uaf_delayed_list", act_uaf_delayed, filled[0], "corrupted delayed free list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        run_case(&cases[i]);
    }

    /* the parent's heap is untouched by what the children did */
    free_fn(small);
    free_fn(interior);
    free_fn(large);
    free_fn(medium);
    free_fn(victim);
    free_fn(live_block);
    for (int i = 0; i < 64; i++) free_fn(filled[i]);
    for (int i = 0; i < 64; i++) free_fn(keep[i]);
    free_fn(sized);
    for (int i = 0; i < BULK; i++) free_fn(bulk[i]);
    return hs_finish("bad_input");
}
