/* The fork window, where the forking thread allocates under the locks its
 * fork holds (src/common/locks.h, rule 5), when another thread held the
 * forking thread's heap flag as fork() began: linked with the library's
 * objects and built against src/ headers, like orphan_test.
 * A handler registered before the library's (a constructor of higher
 * priority) allocates in the child, in classes the heap has no slab of, so
 * that each allocation refills and takes the heap's flag. A second thread
 * takes the main thread's flag, as a thread freeing the last block of one
 * of its slabs does, and leaves it 200 ms later; the main thread forks
 * meanwhile. The child's flag must be free: held at fork(), it stayed held
 * in the child, whose thread that held it does not exist, and the child's
 * handler waited for ever. */
#include "test_util.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "tiny/tiny_internal.h"

static atomic_int child_failures;

/* Every class from 2 KiB to 512 KiB: none had a slab in the child. */
static void child_allocates(void)
{
    for (size_t size = 2048; size <= ((size_t)512 << 10); size += size / 8) {
        void *p = malloc(size);
        if (!p) atomic_fetch_add(&child_failures, 1);
        if (p) memset(p, 1, 64);
        free(p);
    }
}

__attribute__((constructor(101))) static void register_before_the_library(void)
{
    pthread_atfork(NULL, NULL, child_allocates);
}

static tiny_heap_t *main_heap;
static atomic_int flag_held;

static void *flag_holder(void *arg)
{
    (void)arg;
    while (!heap_try_enter_other(main_heap)) sched_yield();
    atomic_store(&flag_held, 1);
    hs_sleep_ms(200);
    heap_leave(main_heap, 0);
    return NULL;
}

int main(void)
{
    void *first = malloc(16); /* the main thread's heap */
    main_heap = tiny_heap_tls;
    CHECK(main_heap != &tiny_empty_heap, "the main thread has a heap");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, flag_holder, NULL) == 0, "pthread_create");
    while (!atomic_load(&flag_held)) sched_yield();
    pid_t pid = fork();
    if (pid == 0) _exit(atomic_load(&child_failures) != 0);
    CHECK(pid > 0, "fork: %s", strerror(errno));
    int status = 0;
    bool done = false;
    for (int ms = 0; pid > 0 && ms < 10000 && !done; ms += 10) {
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done) hs_sleep_ms(10);
    }
    if (pid > 0 && !done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK(done, "the child's fork handler allocated within 10 s (the child hung)");
    CHECK(!done || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
          "the child's allocations succeeded");
    pthread_join(t, NULL);
    free(first);
    return hs_finish("fork_window");
}
