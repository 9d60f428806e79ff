/* malloc_trim must never hang. The scenario: a thread allocates a few ~1 MB
 * blocks and exits, so its slabs become orphans; the main thread frees one
 * of them and calls malloc_trim(0) before the background purge thread ever
 * started. Trimming releases the emptied slab, its SuperSlab falls idle and
 * the purge thread is started; pthread_create allocates the new thread's
 * TLS with calloc. If that calloc finds its class's current slab full, the
 * refill path looks for an orphan to adopt, and any lock the trim still
 * holds at that moment is taken a second time: a hang that only SIGKILL
 * ends (the purge thread is created with every signal blocked).
 *
 * Whether the calloc finds its slab full depends on how many blocks of its
 * class the program holds, so the scenario runs at every fill level from 0
 * to max_level: the parent holds `level` blocks of each class up to 4 KiB
 * and forks a child for each level, which inherits that state and runs the
 * scenario with no purge thread started. A class stops growing at twice
 * 64 KiB of blocks (FILL_BYTES), more than two of its slabs: by then its
 * current slab has been at every fill level, and the parent stays small
 * enough (7 MiB) for 2,100 forks to be quick. A child that does not exit within
 * the limit is killed, and the test fails naming the level.
 *
 * Usage: trim_deadlock_test [max_level=2100] [limit_ms=10000]
 * Run alone: LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/trim_deadlock_test
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define BIG_BLOCKS 4
#define BIG_SIZE 1000000

/* One size per class up to 4 KiB (hugeslab's classes: steps of 16 bytes
 * up to 512, then eight per doubling; for another allocator they are just
 * sizes), filled in by main. */
#define FILL_CLASSES (512 / 16 + 3 * 8)
#define FILL_BYTES (2 * 65536)
static size_t fill_sizes[FILL_CLASSES];

static void set_fill_sizes(void)
{
    size_t c = 0;
    for (size_t size = 16; size <= 512; size += 16) fill_sizes[c++] = size;
    for (size_t base = 512; base < 4096; base *= 2)
        for (size_t k = 1; k <= 8; k++) fill_sizes[c++] = base + k * base / 8;
}

static void *big[BIG_BLOCKS];

static void *allocate_big(void *arg)
{
    (void)arg;
    for (int i = 0; i < BIG_BLOCKS; i++) {
        big[i] = malloc(BIG_SIZE);
        if (big[i]) memset(big[i], 0x5a, 4096);
    }
    return NULL;
}

/* In the child: the scenario. Exit status 0, or 2 when a call failed. */
static void scenario(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, allocate_big, NULL) != 0) _exit(2);
    pthread_join(t, NULL);
    for (int i = 0; i < BIG_BLOCKS; i++)
        if (!big[i]) _exit(2);
    free(big[0]);
    malloc_trim(0);
    /* The purge thread exists now; a second round must not hang either. */
    free(big[1]);
    malloc_trim(0);
    _exit(0);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the scenario in a child at the current fill level. Returns 0 when it
 * exited cleanly, 1 when it hung (and was killed), 2 on another failure. */
static int run_level(unsigned level, long long limit_ms, long long *took_ms)
{
    fflush(NULL);
    long long start = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        HS_FAIL("level %u: fork: %s", level, strerror(errno));
        return 2;
    }
    if (pid == 0) scenario();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            HS_FAIL("level %u: waitpid: %s", level, strerror(errno));
            return 2;
        }
        if (now_ms() - start > limit_ms) {
            /* Every signal but SIGKILL may be blocked in a hung child. */
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *took_ms = now_ms() - start;
            return 1;
        }
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    *took_ms = now_ms() - start;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFSIGNALED(status))
        HS_FAIL("level %u: the child died of signal %d (%s)", level, WTERMSIG(status),
                strsignal(WTERMSIG(status)));
    else
        HS_FAIL("level %u: the child exited with status %d", level, WEXITSTATUS(status));
    return 2;
}

int main(int argc, char **argv)
{
    hs_setup("trim_deadlock_test");
    set_fill_sizes();
    unsigned max_level = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 2100;
    long long limit_ms = argc > 2 ? strtoll(argv[2], NULL, 0) : 10000;
    long long slowest = 0;
    unsigned levels = 0;
    long long started = now_ms();
    for (unsigned level = 0; level <= max_level; level++) {
        long long took = 0;
        int r = run_level(level, limit_ms, &took);
        hs_checks++;
        levels++;
        if (took > slowest) slowest = took;
        if (r == 1) {
            hs_fail_at(__FILE__, __LINE__,
                       "fill level %u: malloc_trim hung (the child had not exited after %lld ms "
                       "and was killed with SIGKILL)",
                       level, took);
            break;
        }
        if (r == 2) break;
        /* One more block of each class, kept until the end. */
        for (size_t c = 0; c < FILL_CLASSES; c++) {
            if ((size_t)level * fill_sizes[c] >= FILL_BYTES) continue;
            void *p = malloc(fill_sizes[c]);
            CHECK(p != NULL, "malloc(%zu) at level %u", fill_sizes[c], level);
            if (p) memset(p, 1, 16);
        }
    }
    hs_note("%u fill levels run in %lld ms, the slowest child took %lld ms", levels,
            now_ms() - started, slowest);
    return hs_finish("trim_deadlock_test");
}
