/* A small heap's large blocks, by every route: malloc, memalign, realloc
 * (growing and shrinking), free and malloc_trim of blocks of 64-512 KiB,
 * eight at a time at most (4 MiB), so the heap stays small the whole run.
 * While it is small, a block of 128 KiB or more gets a slab of its own that
 * is not made its class's current slab, so that its free gives its pages
 * back; a refill that did so once left the class's previous current slab,
 * which it had just moved to the full list, current, and the next
 * malloc_trim or eviction of kept slabs collected a slab on the full list:
 * an assertion in the DEBUG=1 library, a free list and a remote-free word
 * out of step in the release one. Run as debug_small_heap too.
 *
 * Each seed runs in a child of its own, since the small heap is the
 * process's state until it has grown: the parent allocates nothing large.
 * Every block carries its seed-derived pattern at its first and last bytes,
 * checked before it is freed or moved.
 *
 * Usage: small_heap_test [seeds=64] [steps=4000] */
#include "test_util.h"

#include <malloc.h>
#include <stdbool.h>
#include <sys/wait.h>

#define SLOTS 8

typedef struct {
    unsigned char *p; /* the block, or NULL */
    size_t size;      /* bytes asked for */
    unsigned char tag;
} slot_t;

static void mark(slot_t *s, unsigned char tag)
{
    s->tag = tag;
    s->p[0] = tag;
    s->p[s->size - 1] = (unsigned char)~tag;
}

/* Whether the block's marks are as written. */
static bool intact(const slot_t *s)
{
    return s->p[0] == s->tag && s->p[s->size - 1] == (unsigned char)~s->tag;
}

/* One seed's steps; the child's exit status: 0, or 1 with a message. */
static int run_seed(unsigned seed, unsigned steps)
{
    slot_t slot[SLOTS] = {{0}};
    for (unsigned i = 0; i < steps; i++) {
        seed = seed * 1103515245u + 12345u;
        slot_t *s = &slot[(seed >> 8) % SLOTS];
        unsigned op = (seed >> 4) % 5;
        size_t size = ((size_t)64 + (seed >> 16) % 448) * 1024;
        unsigned char tag = (unsigned char)(seed >> 24);
        if (s->p && !intact(s)) {
            fprintf(stderr, "step %u: a block of %zu bytes lost its marks\n", i, s->size);
            return 1;
        }
        switch (op) {
        case 0:
            free(s->p);
            s->p = NULL;
            break;
        case 1: {
            unsigned char *q = realloc(s->p, size);
            if (!q) {
                fprintf(stderr, "step %u: realloc(%zu) failed\n", i, size);
                return 1;
            }
            if (s->p && q[0] != s->tag) {
                fprintf(stderr, "step %u: realloc(%zu) lost the block's first byte\n", i, size);
                return 1;
            }
            s->p = q;
            s->size = size;
            mark(s, tag);
            break;
        }
        case 2:
        case 3:
            if (s->p) break;
            s->p = op == 2 ? memalign(4096, size) : malloc(size);
            if (!s->p) {
                fprintf(stderr, "step %u: %s(%zu) failed\n", i, op == 2 ? "memalign" : "malloc",
                        size);
                return 1;
            }
            s->size = size;
            mark(s, tag);
            break;
        default:
            malloc_trim(0);
        }
    }
    for (unsigned k = 0; k < SLOTS; k++) free(slot[k].p);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned seeds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 64;
    unsigned steps = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 4000;
    for (unsigned seed = 1; seed <= seeds; seed++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            HS_FAIL("fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) _exit(run_seed(seed, steps));
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) {
            HS_FAIL("waitpid: %s", strerror(errno));
            break;
        }
        hs_checks++;
        if (WIFSIGNALED(status))
            hs_fail_at(__FILE__, __LINE__, "seed %u: the child was killed by signal %d", seed,
                       WTERMSIG(status));
        else if (WEXITSTATUS(status) != 0)
            hs_fail_at(__FILE__, __LINE__, "seed %u: the child exited with %d", seed,
                       WEXITSTATUS(status));
    }
    hs_note("%u seeds of %u steps", seeds, steps);
    return hs_finish("small_heap_test");
}
