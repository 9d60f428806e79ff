/* A process ends when its last thread does, as without hugeslab: the purge
 * thread never keeps it alive. glibc ends a process when its last thread
 * leaves, and the purge thread counts as one; with every signal blocked in
 * it, a process left with only that thread ignored SIGTERM and SIGINT too.
 * Each scenario runs in a child whose main thread leaves by pthread_exit
 * once the purge thread runs; the child must be gone, with status 0,
 * within DEADLINE_MS:
 *   allocating  the worker allocates and returns;
 *   silent      the worker never allocates (no thread-exit hook of ours
 *               runs for it);
 *   orphans     the main thread leaves blocks behind that no one frees, so
 *               the purge thread keeps sweeping;
 *   forked      a thread forks, and in the child the forking thread starts
 *               a thread, joins it and leaves by pthread_exit (Python's
 *               test_threading: a fork from a thread);
 *   atexit      as allocating, with an exit handler that needs 256 KiB of
 *               stack: the last thread's exit(0) runs it, and the purge
 *               thread's own stack is 64 KiB.
 *
 * Usage: last_thread_test [scenario]   (no argument: every scenario)
 * Run alone: LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/last_thread_test
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define DEADLINE_MS 10000
#define KEPT 4096

static void *kept[KEPT];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* Whether this process has a thread named hugeslab-purge. */
static int purge_thread_runs(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, comm, sizeof comm - 1);
        close(fd);
        found = n > 0 && strncmp(comm, "hugeslab-purge", 14) == 0;
    }
    closedir(d);
    return found;
}

/* Memory falls idle, which starts the purge thread; waits until it runs.
 * The blocks are all live at once: SuperSlabs of them go idle whole, in a
 * fork child too, whose heap came from the parent with room to spare. */
static void start_purge_thread(void)
{
    static char *blocks[32];
    for (int i = 0; i < 32; i++) {
        blocks[i] = malloc(1 << 20);
        if (!blocks[i]) _exit(3);
        blocks[i][0] = 1;
    }
    for (int i = 0; i < 32; i++) free(blocks[i]);
    if (!hs_expect_hugeslab()) return;
    for (int i = 0; i < 200 && !purge_thread_runs(); i++) usleep(10000);
    if (!purge_thread_runs()) {
        static const char msg[] = "FAIL: the purge thread did not start\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(2);
    }
}

static void *worker_allocating(void *arg)
{
    (void)arg;
    usleep(100000);
    char *p = malloc(100);
    if (p) p[0] = 1;
    free(p);
    return NULL;
}

static void *worker_silent(void *arg)
{
    (void)arg;
    usleep(100000);
    return NULL;
}

static void *worker_joined(void *arg)
{
    (void)arg;
    free(malloc(64));
    return NULL;
}

/* Waits for pid for at most DEADLINE_MS; its status, or -1 (then killed). */
static int wait_deadline(pid_t pid, long *took_ms)
{
    long start = now_ms();
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 || now_ms() - start > DEADLINE_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *took_ms = now_ms() - start;
            return -1;
        }
        usleep(5000);
    }
    *took_ms = now_ms() - start;
    return status;
}

/* atexit: 256 KiB of locals, as a program's exit handler may have. */
static void deep_exit_handler(void)
{
    volatile char big[256 * 1024];
    for (size_t i = 0; i < sizeof big; i += 4096) big[i] = (char)i;
    if (big[4096] != (char)4096) _exit(7);
}

/* forked: in the grandchild the forking thread is the only one. */
static void *worker_forking(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0) _exit(4);
    if (pid == 0) {
        start_purge_thread();
        pthread_t t;
        if (pthread_create(&t, NULL, worker_joined, NULL) != 0) _exit(5);
        pthread_join(t, NULL);
        pthread_exit(NULL);
    }
    long took;
    int status = wait_deadline(pid, &took);
    if (status != 0) {
        fprintf(stderr, "FAIL: forked: the fork child %s after %ld ms\n",
                status < 0 ? "was still running" : "did not exit with status 0", took);
        _exit(6);
    }
    return NULL;
}

/* Returns through pthread_exit, which loads glibc's unwinder (libgcc_s,
 * by dlopen) the first time a process calls it. */
static void *exits_at_once(void *arg) { pthread_exit(arg); }

static int run_scenario(const char *name)
{
    void *(*worker)(void *) = NULL;
    if (strcmp(name, "allocating") == 0) worker = worker_allocating;
    if (strcmp(name, "silent") == 0) worker = worker_silent;
    if (strcmp(name, "orphans") == 0) worker = worker_silent;
    /* The unwinder first, on a thread of its own: else the worker's fork
     * could come while the main thread's pthread_exit (below) is inside that
     * dlopen, and the child's own pthread_exit then found the loader's state
     * half changed ("dl_open_worker_begin: Assertion ... RT_CONSISTENT";
     * SIGABRT or SIGSEGV). Without hugeslab too: 13 of 800 runs of the
     * scenario under glibc's malloc, 9 of 800 under the library; none of 800
     * either way with this. */
    if (strcmp(name, "forked") == 0) {
        pthread_t unwinder;
        if (pthread_create(&unwinder, NULL, exits_at_once, NULL) != 0) return 66;
        pthread_join(unwinder, NULL);
        worker = worker_forking;
    }
    if (strcmp(name, "atexit") == 0) {
        worker = worker_allocating;
        atexit(deep_exit_handler);
    }
    if (!worker) return 64;
    start_purge_thread();
    if (strcmp(name, "orphans") == 0)
        for (int i = 0; i < KEPT; i++) kept[i] = malloc(16 + (size_t)(i % 64) * 16);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 65;
    pthread_exit(NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1) return run_scenario(argv[1]);
    static const char *const scenarios[] = {"allocating", "silent", "orphans", "forked", "atexit"};
    for (unsigned i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            HS_FAIL("fork: %s", strerror(errno));
            continue;
        }
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], scenarios[i], (char *)NULL);
            _exit(127);
        }
        long took;
        int status = wait_deadline(pid, &took);
        if (status < 0)
            HS_FAIL("%s: the process was still running %ld ms after it started; its last "
                    "thread of its own had left",
                    scenarios[i], took);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s: status %#x (exit %d) after %ld ms", scenarios[i], status,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, took);
        hs_note("%s: ended after %ld ms", scenarios[i], took);
    }
    return hs_finish("last_thread_test");
}
