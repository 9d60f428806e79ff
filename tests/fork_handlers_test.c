/* fork() in a program whose library registered fork handlers that allocate
 * (tests/fork_handlers_lib.c), while other threads allocate and free blocks
 * of every kind. Those handlers run inside the allocator's fork window: the
 * allocator's locks are held by the forking thread there, and a library
 * before the window (src/common/locks.h, rule 5) hung in the first fork.
 * Each child checks that its handler ran without error and allocates;
 * the parent checks every handler's count and errors. A hang is caught by
 * alarm() and reported.
 *
 * Run alone: LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/fork_handlers_test
 * [forks]
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "fork_handlers_lib.h"

#define THREADS 3
#define SLOTS 64
#define HANDOFF 256 /* blocks the main thread hands to the churners at each fork */

static atomic_int stop;
static _Atomic(void *) handoff[HANDOFF];

static void hung(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: fork_handlers: no progress in 120 s: a fork hung\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

/* Blocks of 16 B to 4 MiB, freed in another order: slabs, runs and
 * SuperSlabs taken and given back while the main thread forks. And the
 * main thread's blocks, freed here: a free that empties one of its slabs
 * takes the main thread's heap flag for a moment (tiny/trim.c, the fork
 * handlers, say why that matters). */
static void *churner(void *arg)
{
    hs_rng_t r;
    hs_rng_seed(&r, (uintptr_t)arg);
    void *slot[SLOTS] = {0};
    while (!atomic_load(&stop)) {
        unsigned i = (unsigned)hs_rng_below(&r, SLOTS);
        free(slot[i]);
        size_t size = hs_rng_below(&r, 8) == 0 ? 1 + hs_rng_below(&r, (size_t)4 << 20)
                                               : 16 + hs_rng_below(&r, 4000);
        slot[i] = malloc(size);
        if (slot[i]) ((char *)slot[i])[size - 1] = 1;
        free(atomic_exchange(&handoff[hs_rng_below(&r, HANDOFF)], NULL));
    }
    for (unsigned i = 0; i < SLOTS; i++) free(slot[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    hs_setup("fork_handlers");
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    signal(SIGALRM, hung);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, churner, (void *)(i + 1)) == 0, "thread %u", (unsigned)i);
    int children_failed = 0;
    hs_rng_t r;
    hs_rng_seed(&r, 99);
    for (int f = 0; f < forks; f++) {
        alarm(120);
        for (unsigned i = 0; i < HANDOFF; i++) {
            void *p = malloc(16 + hs_rng_below(&r, 2000));
            free(atomic_exchange(&handoff[i], p));
        }
        pid_t pid = fork();
        if (pid == 0) {
            int bad = atomic_load(&fork_handlers_errors) != 0 ||
                      atomic_load(&fork_handlers_calls[2]) != 1;
            void *p = malloc(12345), *q = malloc((size_t)3 << 20);
            bad |= !p || !q;
            free(q);
            free(p);
            _exit(bad);
        }
        CHECK(pid > 0, "fork %d: %s", f, strerror(errno));
        if (pid < 0) break;
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) children_failed++;
    }
    alarm(0);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (unsigned i = 0; i < HANDOFF; i++) free(atomic_exchange(&handoff[i], NULL));
    CHECK(children_failed == 0, "%d of %d children found their handler's work wrong",
          children_failed, forks);
    CHECK(atomic_load(&fork_handlers_calls[0]) == (unsigned)forks &&
              atomic_load(&fork_handlers_calls[1]) == (unsigned)forks,
          "handlers ran %u (prepare) and %u (parent) times in %d forks",
          atomic_load(&fork_handlers_calls[0]), atomic_load(&fork_handlers_calls[1]), forks);
    CHECK(atomic_load(&fork_handlers_errors) == 0, "%u checks in the parent's handlers failed",
          atomic_load(&fork_handlers_errors));
    printf("RESULT: %d forks, each with handlers allocating in the fork window\n", forks);
    return hs_finish("fork_handlers");
}
