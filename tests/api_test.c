/* API conformance of every allocation entry point.
 *
 * Built twice from this file:
 *   api_test         standard names; run with LD_PRELOAD=build/libhugeslab.so
 *                    (also passes on plain glibc, where hugeslab-only checks are off)
 *   api_test_static  -DHS_PREFIX, linked with build/libhugeslab.a, calls hugeslab_*
 *
 * Run alone:  LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/api_test
 *             build/tests/api_test_static
 * Optional argument: a section name (sizes calloc realloc align valloc errno
 * sized info exhaustion libc_names) to run only that one.
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "api_names.h"

#ifdef HS_PREFIX
#define API_NAME "api_static"
#else
#define API_NAME "api"
#endif

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static int g_hs; /* running on hugeslab: hugeslab-only checks on */
static size_t g_page;

static size_t usable(void *p) { return HS(malloc_usable_size)(p); }

/* Fills the whole usable size of p with the pattern of `seed`. */
static size_t fill_block(void *p, size_t req, uint64_t seed, const char *what)
{
    size_t u = usable(p);
    CHECK(u >= req, "%s: malloc_usable_size(%p)=%zu < request %zu", what, p, u, req);
    if (u < req) u = req;
    hs_fill(p, u, seed);
    return u;
}

static void check_block(void *p, size_t n, uint64_t seed, const char *what)
{
    size_t off = hs_check_fill(p, n, seed);
    CHECK(off == SIZE_MAX, "%s: block %p (%zu bytes) corrupted at offset %zu", what, p, n, off);
}

static void check_align(void *p, size_t req, size_t align, const char *what)
{
    size_t a = align;
    if (req >= 16 && a < 16) a = 16;
    if (g_hs && a < 16) a = 16; /* hugeslab contract: every block is 16-byte aligned */
    CHECK(((uintptr_t)p & (a - 1)) == 0, "%s: %p (request %zu) not %zu-byte aligned", what, p, req,
          a);
}

/* ---- sizes -------------------------------------------------------------- */

typedef struct {
    void *p;
    size_t n; /* bytes filled */
    uint64_t seed;
} live_t;

static void test_sizes(void)
{
    enum { RING = 64 };
    live_t ring[RING];
    memset(ring, 0, sizeof ring);
    uint64_t seed = 1;

    for (size_t n = 0; n <= 4096; n++) {
        void *p = HS(malloc)(n);
        CHECK(p != NULL, "malloc(%zu) returned NULL", n);
        if (!p) continue;
        check_align(p, n, 1, "malloc");
        live_t *slot = &ring[n % RING];
        if (slot->p) {
            check_block(slot->p, slot->n, slot->seed, "malloc small (ring)");
            HS(free)(slot->p);
        }
        slot->p = p;
        slot->seed = ++seed;
        slot->n = fill_block(p, n, slot->seed, "malloc small");
    }
    for (int i = 0; i < RING; i++) {
        if (ring[i].p) {
            check_block(ring[i].p, ring[i].n, ring[i].seed, "malloc small (final)");
            HS(free)(ring[i].p);
        }
    }

    /* powers of two and +-1 around them, up to 64 MiB; the three live together */
    for (int s = 3; s <= 26; s++) {
        size_t k = (size_t)1 << s;
        live_t l[3];
        for (int j = 0; j < 3; j++) {
            size_t n = k - 1 + (size_t)j;
            l[j].p = HS(malloc)(n);
            l[j].seed = ++seed;
            l[j].n = 0;
            CHECK(l[j].p != NULL, "malloc(%zu) returned NULL", n);
            if (!l[j].p) continue;
            check_align(l[j].p, n, 1, "malloc pow2");
            l[j].n = fill_block(l[j].p, n, l[j].seed, "malloc pow2");
        }
        for (int j = 0; j < 3; j++) {
            if (!l[j].p) continue;
            check_block(l[j].p, l[j].n, l[j].seed, "malloc pow2");
            HS(free)(l[j].p);
        }
    }

    /* many live blocks of one size must not overlap */
    static const size_t sz[] = {16, 48, 128, 1000, 8192, 70000};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        enum { N = 400 };
        static live_t many[N];
        for (int j = 0; j < N; j++) {
            many[j].p = HS(malloc)(sz[i]);
            many[j].seed = ++seed;
            CHECK(many[j].p != NULL, "malloc(%zu) returned NULL", sz[i]);
            if (many[j].p) many[j].n = fill_block(many[j].p, sz[i], many[j].seed, "many");
        }
        for (int j = 0; j < N; j++) {
            if (many[j].p) {
                check_block(many[j].p, many[j].n, many[j].seed, "many live blocks");
                HS(free)(many[j].p);
            }
        }
    }

    CHECK(HS(malloc_usable_size)(NULL) == 0, "malloc_usable_size(NULL) != 0");
}

/* ---- calloc ------------------------------------------------------------- */

static void calloc_round(size_t n, int iters)
{
    for (int i = 0; i < iters; i++) {
        void *p = HS(malloc)(n);
        CHECK(p != NULL, "malloc(%zu) NULL", n);
        if (!p) return;
        memset(p, 0xAA, n);
        HS(free)(p);
        void *q = (i & 1) ? HS(calloc)(n, 1) : HS(calloc)(1, n);
        CHECK(q != NULL, "calloc(%zu) NULL", n);
        if (!q) return;
        check_align(q, n, 1, "calloc");
        size_t off = hs_first_nonzero(q, n);
        CHECK(off == SIZE_MAX,
              "calloc(%zu) iteration %d (prev block %p, now %p): byte %zu is 0x%02x", n, i, p, q,
              off, off == SIZE_MAX ? 0 : ((unsigned char *)q)[off]);
        memset(q, 0xAA, n);
        HS(free)(q);
    }
    /* batch: dirty many blocks, free them, calloc the same number */
    enum { B = 16 };
    void *b[B];
    if (n > 4 * MiB) return;
    for (int i = 0; i < B; i++) {
        b[i] = HS(malloc)(n);
        if (b[i]) memset(b[i], 0xAA, n);
    }
    for (int i = 0; i < B; i++) HS(free)(b[i]);
    for (int i = 0; i < B; i++) {
        b[i] = (n % 8 == 0) ? HS(calloc)(n / 8, 8) : HS(calloc)(n, 1);
        CHECK(b[i] != NULL, "calloc batch %zu NULL", n);
        if (b[i]) {
            size_t off = hs_first_nonzero(b[i], n);
            CHECK(off == SIZE_MAX, "calloc batch (%zu): byte %zu not zero", n, off);
        }
    }
    for (int i = 0; i < B; i++) HS(free)(b[i]);
}

static void test_calloc(void)
{
    static const size_t small[] = {1, 8, 16, 24, 64, 100, 512, 1000, 2048, 4000, 8000, 30000};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) calloc_round(small[i], 200);
    calloc_round(100 * KiB, 50);
    /* One-block slabs, whose blocks a calloc fresh from the kernel leaves
     * unwritten: reused, they must be zeroed. */
    calloc_round(300 * KiB, 20);
    calloc_round(MiB, 20);
    calloc_round(3 * MiB, 10);
    calloc_round(40 * MiB, 4);

    void *p = HS(calloc)(0, 16);
    HS(free)(p);
    p = HS(calloc)(16, 0);
    HS(free)(p);
}

/* ---- realloc ------------------------------------------------------------ */

static void *realloc_checked(void *p, size_t oldn, size_t newn, uint64_t seed)
{
    void *q = HS(realloc)(p, newn);
    CHECK(q != NULL, "realloc(%p, %zu -> %zu) returned NULL", p, oldn, newn);
    if (!q) return p;
    check_align(q, newn, 1, "realloc");
    size_t keep = oldn < newn ? oldn : newn;
    size_t off = hs_check_fill(q, keep, seed);
    CHECK(off == SIZE_MAX, "realloc %zu -> %zu (%p -> %p) lost content at offset %zu", oldn, newn,
          p, q, off);
    size_t u = usable(q);
    CHECK(u >= newn, "realloc: usable %zu < %zu", u, newn);
    hs_fill(q, newn, seed);
    return q;
}

static void test_realloc(void)
{
    size_t n;
    static const size_t chain[] = {16,      1 * KiB,   100 * KiB, 3 * MiB, 40 * MiB,
                                   3 * MiB, 100 * KiB, 1 * KiB,   16};
    uint64_t seed = 77;
    void *p = HS(malloc)(chain[0]);
    CHECK(p != NULL, "malloc(16)");
    if (!p) return;
    hs_fill(p, chain[0], seed);
    for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++)
        p = realloc_checked(p, chain[i - 1], chain[i], seed);
    /* every jump between ranges, both directions */
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 5; j++) {
            void *q = HS(malloc)(chain[i]);
            if (!q) continue;
            hs_fill(q, chain[i], seed + i);
            q = realloc_checked(q, chain[i], chain[j], seed + i);
            q = realloc_checked(q, chain[j], chain[j], seed + i); /* same size */
            HS(free)(q);
        }
    HS(free)(p);

    /* doubling past 1 MiB from a block of its own slab (sqlite3's buffers,
     * 8 bytes over each power of two): up to 1 MiB it grows in place in
     * its SuperSlab, which may then become the block's run */
    static const size_t doubling[] = {32776, 65544, 131080, 262152, 524296, 1048584, 2048008};
    for (int round = 0; round < 2; round++) {
        p = HS(malloc)(doubling[0]);
        CHECK(p != NULL, "malloc(%zu)", doubling[0]);
        if (!p) return;
        hs_fill(p, doubling[0], seed + 9);
        for (size_t i = 1; i < sizeof doubling / sizeof doubling[0]; i++)
            p = realloc_checked(p, doubling[i - 1], doubling[i], seed + 9);
        HS(free)(p);
    }

    /* grow one byte at a time, then geometric growth to 64 MiB and back down */
    n = 1;
    p = HS(malloc)(n);
    hs_fill(p, n, seed);
    for (size_t m = 2; m <= 5000; m++) {
        p = realloc_checked(p, n, m, seed);
        n = m;
    }
    while (n < 64 * MiB) {
        size_t m = n + n / 4 + 1;
        if (m > 64 * MiB) m = 64 * MiB;
        p = realloc_checked(p, n, m, seed);
        n = m;
    }
    while (n > 16) {
        size_t m = n - n / 5 - 1;
        p = realloc_checked(p, n, m, seed);
        n = m;
    }
    HS(free)(p);

    /* realloc(NULL, n) behaves as malloc */
    static const size_t rn[] = {0, 1, 100, 5000, 100 * KiB, 3 * MiB};
    for (size_t i = 0; i < sizeof rn / sizeof rn[0]; i++) {
        void *q = HS(realloc)(NULL, rn[i]);
        CHECK(q != NULL, "realloc(NULL, %zu) returned NULL", rn[i]);
        if (q) {
            check_align(q, rn[i], 1, "realloc(NULL)");
            fill_block(q, rn[i], seed, "realloc(NULL)");
            HS(free)(q);
        }
    }

    /* realloc(p, 0): glibc frees and returns NULL; a freeable block is fine too */
    for (size_t i = 1; i < sizeof rn / sizeof rn[0]; i++) {
        void *q = HS(malloc)(rn[i]);
        if (!q) continue;
        void *r = HS(realloc)(q, 0);
        if (r) HS(free)(r);
    }

    /* realloc of an over-aligned block keeps content */
    void *a = HS(aligned_alloc)(4096, 8192);
    CHECK(a != NULL, "aligned_alloc(4096, 8192)");
    if (a) {
        hs_fill(a, 8192, seed);
        a = realloc_checked(a, 8192, 300000, seed);
        a = realloc_checked(a, 300000, 100, seed);
        HS(free)(a);
    }
}

/* ---- alignment ---------------------------------------------------------- */

enum { AL_POSIX, AL_ALIGNED, AL_MEMALIGN };
static const char *const al_name[] = {"posix_memalign", "aligned_alloc", "memalign"};

static void test_align(void)
{
    free_aligned_sized_fn fas = get_free_aligned_sized();
    uint64_t seed = 1000;
    for (size_t a = 1; a <= 8 * MiB; a <<= 1) {
        size_t sizes[] = {1, 8, 16, 100, a > 1 ? a - 1 : 2, a, a + 1, a + a / 2, 100000, 3 * MiB};
        for (int fn = AL_POSIX; fn <= AL_MEMALIGN; fn++) {
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                size_t n = sizes[si];
                void *p = NULL;
                if (fn == AL_POSIX) {
                    void *out = (void *)0x1;
                    int rc = HS(posix_memalign)(&out, a, n);
                    if (a < sizeof(void *)) {
                        CHECK(rc == EINVAL, "posix_memalign(align %zu) returned %d, want EINVAL", a,
                              rc);
                        if (rc == 0) HS(free)(out);
                        continue;
                    }
                    CHECK(rc == 0, "posix_memalign(align %zu, size %zu) returned %d", a, n, rc);
                    if (rc != 0) continue;
                    p = out;
                } else if (fn == AL_ALIGNED) {
                    p = HS(aligned_alloc)(a, n);
                } else {
                    p = HS(memalign)(a, n);
                }
                CHECK(p != NULL, "%s(align %zu, size %zu) returned NULL", al_name[fn], a, n);
                if (!p) continue;
                check_align(p, n, a, al_name[fn]);
                size_t u = fill_block(p, n, ++seed, al_name[fn]);
                check_block(p, u, seed, al_name[fn]);
                if (fn == AL_ALIGNED && fas && (si & 1))
                    fas(p, a, n);
                else
                    HS(free)(p);
            }
        }
    }
    /* several live over-aligned blocks at once do not overlap */
    enum { N = 32 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)64 << (i % 10);
        b[i] = HS(aligned_alloc)(a, 3 * a);
        if (b[i]) {
            check_align(b[i], 3 * a, a, "aligned_alloc live");
            hs_fill(b[i], 3 * a, (uint64_t)i + 5000);
        }
    }
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)64 << (i % 10);
        if (b[i]) {
            check_block(b[i], 3 * a, (uint64_t)i + 5000, "aligned_alloc live");
            HS(free)(b[i]);
        }
    }
    /* Zero-byte aligned blocks, all live at once: each pointer is distinct
     * and frees alone (an aligned pointer at its block's very end would be
     * the next block's start, and freeing both would be a double free). */
    enum { Z = 64 };
    void *z[Z];
    for (int i = 0; i < Z; i++) {
        z[i] = HS(aligned_alloc)((size_t)32 << (i % 4), 0);
        CHECK(z[i] != NULL, "aligned_alloc(%zu, 0) returned NULL", (size_t)32 << (i % 4));
        for (int j = 0; j < i; j++)
            CHECK(z[i] != z[j], "aligned_alloc(.., 0) returned %p twice", z[i]);
    }
    for (int i = 0; i < Z; i++) HS(free)(z[i]);
    /* Zero-byte blocks aligned to a SuperSlab or more (runs), a few live at
     * once: each pointer lies inside its own run, so its usable size can be
     * written and free finds it (found by the fuzzer: the pointer was the
     * first byte past its run). */
    for (size_t a = 2 * MiB; a <= 8 * MiB; a <<= 1) {
        void *r[3];
        size_t u[3];
        for (int i = 0; i < 3; i++) {
            r[i] = HS(aligned_alloc)(a, 0);
            CHECK(r[i] != NULL, "aligned_alloc(%zu, 0) returned NULL", a);
            if (!r[i]) continue;
            check_align(r[i], 0, a, "aligned_alloc(.., 0)");
            u[i] = fill_block(r[i], 0, seed + (uint64_t)i, "aligned_alloc(.., 0)");
        }
        for (int i = 0; i < 3; i++) {
            if (!r[i]) continue;
            check_block(r[i], u[i], seed + (uint64_t)i, "aligned_alloc(.., 0)");
            HS(free)(r[i]);
        }
    }
}

static void test_valloc(void)
{
    static const size_t sz[] = {0, 1, 100, 4095, 4096, 4097, 100000, 3 * MiB};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        size_t n = sz[i];
        void *p = HS(valloc)(n);
        CHECK(p != NULL, "valloc(%zu) NULL", n);
        if (p) {
            CHECK(((uintptr_t)p & (g_page - 1)) == 0, "valloc(%zu)=%p not page aligned", n, p);
            fill_block(p, n, 9, "valloc");
            HS(free)(p);
        }
        p = HS(pvalloc)(n);
        CHECK(p != NULL, "pvalloc(%zu) NULL", n);
        if (p) {
            size_t r = (n + g_page - 1) & ~(g_page - 1);
            CHECK(((uintptr_t)p & (g_page - 1)) == 0, "pvalloc(%zu)=%p not page aligned", n, p);
            CHECK(usable(p) >= r, "pvalloc(%zu): usable %zu < rounded %zu", n, usable(p), r);
            memset(p, 0x5A, r); /* pvalloc rounds the size up to the page */
            HS(free)(p);
        }
    }
}

/* ---- errno -------------------------------------------------------------- */

static void expect_enomem(void *p, const char *what)
{
    int e = errno;
    CHECK(p == NULL, "%s: expected NULL, got %p", what, p);
    CHECK(e == ENOMEM, "%s: errno %d (%s), want ENOMEM", what, e, strerror(e));
    if (p) HS(free)(p);
}

static void expect_einval(void *p, const char *what, int *glibc_note)
{
    int e = errno;
    if (!g_hs && p != NULL) {
        /* glibc < 2.38 rounds a non-power-of-two alignment up */
        if (!*glibc_note)
            hs_note("%s returned a block on the system allocator (glibc < 2.38 rounds the "
                    "alignment up); EINVAL checked only under hugeslab",
                    what);
        *glibc_note = 1;
        HS(free)(p);
        return;
    }
    CHECK(p == NULL, "%s: expected NULL, got %p", what, p);
    CHECK(e == EINVAL, "%s: errno %d (%s), want EINVAL", what, e, strerror(e));
    if (p) HS(free)(p);
}

static void test_errno(void)
{
    char what[128];
    static const size_t huge[] = {
        SIZE_MAX,       SIZE_MAX / 2, SIZE_MAX - 4095, SIZE_MAX - 16, (size_t)PTRDIFF_MAX + 1,
        (size_t)1 << 62};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        size_t n = hs_opaque(huge[i]);
        errno = 0;
        snprintf(what, sizeof what, "malloc(%#zx)", n);
        expect_enomem(HS(malloc)(n), what);
        errno = 0;
        snprintf(what, sizeof what, "calloc(1, %#zx)", n);
        expect_enomem(HS(calloc)(1, n), what);
        errno = 0;
        snprintf(what, sizeof what, "aligned_alloc(64, %#zx)", n);
        expect_enomem(HS(aligned_alloc)(64, n), what);
        errno = 0;
        snprintf(what, sizeof what, "memalign(4096, %#zx)", n);
        expect_enomem(HS(memalign)(4096, n), what);
        errno = 0;
        snprintf(what, sizeof what, "valloc(%#zx)", n);
        expect_enomem(HS(valloc)(n), what);
        errno = 0;
        snprintf(what, sizeof what, "pvalloc(%#zx)", n);
        expect_enomem(HS(pvalloc)(n), what);
        void *out = NULL;
        int rc = HS(posix_memalign)(&out, 64, n);
        CHECK(rc == ENOMEM, "posix_memalign(64, %#zx) returned %d, want ENOMEM", n, rc);
        if (rc == 0) HS(free)(out);
    }
    /* calloc overflow */
    static const size_t cm[][2] = {{SIZE_MAX / 2 + 1, 2},
                                   {(size_t)1 << 33, (size_t)1 << 33},
                                   {3, SIZE_MAX / 3 + 1},
                                   {SIZE_MAX, SIZE_MAX}};
    for (size_t i = 0; i < sizeof cm / sizeof cm[0]; i++) {
        errno = 0;
        snprintf(what, sizeof what, "calloc(%#zx, %#zx)", cm[i][0], cm[i][1]);
        expect_enomem(HS(calloc)(hs_opaque(cm[i][0]), hs_opaque(cm[i][1])), what);
    }
    /* reallocarray / realloc overflow: NULL + ENOMEM, old block intact */
    static const size_t oldsz[] = {64, 5000, 100 * KiB, 3 * MiB};
    for (size_t i = 0; i < sizeof oldsz / sizeof oldsz[0]; i++) {
        size_t n = oldsz[i];
        void *p = HS(malloc)(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        if (!p) continue;
        hs_fill(p, n, 4242 + i);
        for (size_t c = 0; c < sizeof cm / sizeof cm[0]; c++) {
            errno = 0;
            void *q = HS(reallocarray)(hs_opaque_ptr(p), hs_opaque(cm[c][0]), hs_opaque(cm[c][1]));
            snprintf(what, sizeof what, "reallocarray(%zu-byte block, %#zx, %#zx)", n, cm[c][0],
                     cm[c][1]);
            expect_enomem(q, what);
            check_block(p, n, 4242 + i, "block after failed reallocarray");
        }
        for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
            errno = 0;
            void *q = HS(realloc)(hs_opaque_ptr(p), hs_opaque(huge[h]));
            snprintf(what, sizeof what, "realloc(%zu-byte block, %#zx)", n, huge[h]);
            expect_enomem(q, what);
            check_block(p, n, 4242 + i, "block after failed realloc");
        }
        /* a successful reallocarray */
        void *q = HS(reallocarray)(p, 2, n);
        CHECK(q != NULL, "reallocarray(p, 2, %zu) NULL", n);
        if (q) {
            check_block(q, n, 4242 + i, "reallocarray grow");
            p = q;
        }
        HS(free)(p);
    }
    /* posix_memalign bad alignment */
    static const size_t bad_pm[] = {3, 0, 24, 4, 2, 1, 48, 4097};
    for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
        void *out = NULL;
        int rc = HS(posix_memalign)(&out, hs_opaque(bad_pm[i]), 64);
        CHECK(rc == EINVAL, "posix_memalign(&out, %zu, 64) returned %d, want EINVAL", bad_pm[i],
              rc);
        if (rc == 0) HS(free)(out);
    }
    /* aligned_alloc: a non-power-of-two alignment fails (glibc 2.38 on).
     * memalign, in every glibc: rounded up to a power of two, and one of
     * 16 or less is malloc's; only one above SIZE_MAX / 2 + 1 fails. */
    static const size_t bad_al[] = {3, 24, 4097, 3 * 4096, 48};
    static const size_t pow2_al[] = {4, 32, 8192, 16384, 64};
    int note_a = 0;
    for (size_t i = 0; i < sizeof bad_al / sizeof bad_al[0]; i++) {
        errno = 0;
        snprintf(what, sizeof what, "aligned_alloc(%zu, 64)", bad_al[i]);
        expect_einval(HS(aligned_alloc)(hs_opaque(bad_al[i]), 64), what, &note_a);
        errno = EBADF;
        char *m = HS(memalign)(hs_opaque(bad_al[i]), 64);
        CHECK(m != NULL && errno == EBADF, "memalign(%zu, 64): %p, errno %d", bad_al[i], (void *)m,
              errno);
        bool aligned = ((uintptr_t)m & (pow2_al[i] - 1)) == 0;
        CHECK(aligned, "memalign(%zu, 64) = %p, not %zu-aligned", bad_al[i], (void *)m, pow2_al[i]);
        if (m) {
            memset(m, 1, 64);
            HS(free)(m);
        }
    }
    static const size_t small_al[] = {0, 1, 2, 8, 12, 16};
    for (size_t i = 0; i < sizeof small_al / sizeof small_al[0]; i++) {
        char *m = HS(memalign)(hs_opaque(small_al[i]), 40);
        bool aligned = m != NULL && ((uintptr_t)m & 15) == 0;
        CHECK(aligned, "memalign(%zu, 40) = %p", small_al[i], (void *)m);
        HS(free)(m);
    }
    errno = 0;
    snprintf(what, sizeof what, "memalign(SIZE_MAX / 2 + 2, 64)");
    void *too = HS(memalign)(hs_opaque(SIZE_MAX / 2 + 2), 64);
    int too_errno = errno;
    CHECK(too == NULL && too_errno == EINVAL, "%s: %p, errno %d, want NULL and EINVAL", what, too,
          too_errno);
    /* free(NULL); free and malloc_usable_size keep errno */
    errno = 1234;
    HS(free)(NULL);
    CHECK(errno == 1234, "free(NULL) changed errno to %d", errno);
    static const size_t fsz[] = {16, 1000, 100 * KiB, 3 * MiB, 40 * MiB};
    for (size_t i = 0; i < sizeof fsz / sizeof fsz[0]; i++) {
        void *p = HS(malloc)(fsz[i]);
        if (!p) continue;
        memset(p, 1, fsz[i]);
        errno = 4321;
        size_t u = HS(malloc_usable_size)(p);
        CHECK(errno == 4321, "malloc_usable_size changed errno to %d", errno);
        CHECK(u >= fsz[i], "usable %zu < %zu", u, fsz[i]);
        errno = 4321;
        HS(free)(p);
        CHECK(errno == 4321, "free(%zu-byte block) changed errno to %d", fsz[i], errno);
    }
    /* errno kept across free even when the allocator returns memory to the OS */
    void *big[8];
    for (int i = 0; i < 8; i++) big[i] = HS(malloc)(8 * MiB);
    for (int i = 0; i < 8; i++) {
        errno = EBADF;
        HS(free)(big[i]);
        CHECK(errno == EBADF, "free(8 MiB block) changed errno to %d", errno);
    }
    /* Under hugeslab a realloc that succeeds keeps errno, also one whose
     * block has to move (a page mapped right after it: growing in place is
     * refused first). glibc's leaves ENOMEM there. */
    for (int i = 0; g_hs && i < 4; i++) {
        char *p = HS(malloc)(3 * MiB);
        if (!p) continue;
        memset(p, 1, 3 * MiB);
        char *end = (char *)(((uintptr_t)p + 3 * MiB + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
        void *wall =
            mmap(end, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        errno = EBADF;
        char *q = HS(realloc)(p, 7 * MiB);
        CHECK(q != NULL, "realloc(3 MiB -> 7 MiB) failed");
        CHECK(errno == EBADF, "realloc(3 MiB -> 7 MiB, %s) changed errno to %d",
              q == p ? "in place" : "moved", errno);
        if (q) CHECK(q[3 * MiB - 1] == 1, "realloc lost the block's last byte");
        HS(free)(q ? q : p);
        if (wall != MAP_FAILED) munmap(wall, 4096);
    }
    /* A malloc that succeeds keeps errno also where the library tried
     * something first that failed: a hugetlb mapping where the pool is
     * empty (tried again a second after the last try), a cached run grown
     * where it cannot grow in place. */
    usleep(1100 * 1000);
    errno = EBADF;
    void *fresh = HS(malloc)(8 * MiB);
    CHECK(fresh != NULL && errno == EBADF, "malloc(8 MiB) of a new mapping changed errno to %d",
          errno);
    HS(free)(fresh);
    char *cached = HS(malloc)(6 * MiB), *fence = HS(malloc)(6 * MiB);
    if (cached && fence) {
        memset(cached, 1, 6 * MiB);
        HS(free)(cached);
        errno = EBADF;
        void *grown = HS(malloc)(9 * MiB);
        CHECK(grown != NULL && errno == EBADF,
              "malloc(9 MiB) after a 6 MiB block was freed changed errno to %d", errno);
        HS(free)(grown);
    }
    HS(free)(fence);
}

/* ---- free_sized / free_aligned_sized ---------------------------------- */

static void test_sized(void)
{
    free_sized_fn fs = get_free_sized();
    free_aligned_sized_fn fas = get_free_aligned_sized();
    if (!fs || !fas) {
        CHECK(!g_hs, "hugeslab does not export free_sized/free_aligned_sized");
        hs_note("free_sized/free_aligned_sized not available (glibc < 2.40): not tested");
        return;
    }
    static const size_t sz[] = {0, 1, 16, 17, 100, 1000, 4096, 65536, 100 * KiB, 3 * MiB, 40 * MiB};
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
            void *p = HS(malloc)(sz[i]);
            CHECK(p != NULL, "malloc(%zu)", sz[i]);
            if (!p) continue;
            memset(p, 0x11, sz[i]);
            errno = 999;
            fs(p, sz[i]);
            CHECK(errno == 999, "free_sized changed errno");
            p = HS(calloc)(1, sz[i]);
            if (p) fs(p, sz[i]);
            for (size_t a = 16; a <= 2 * MiB; a <<= 3) {
                p = HS(aligned_alloc)(a, sz[i]);
                CHECK(p != NULL, "aligned_alloc(%zu, %zu)", a, sz[i]);
                if (!p) continue;
                memset(p, 0x22, sz[i]);
                fas(p, a, sz[i]);
            }
        }
    fs(NULL, 0);
    fas(NULL, 64, 0);
}

/* ---- mallopt, malloc_trim, mallinfo, malloc_stats ------------------- */

/* Runs f with fds 1 and 2 redirected to a temporary file; returns the
 * number of bytes f printed. */
static long capture_output(void (*f)(void), int fds_mask)
{
    fflush(stdout);
    fflush(stderr);
    FILE *tmp = tmpfile();
    if (!tmp) return -1;
    int saved1 = dup(1), saved2 = dup(2);
    if (fds_mask & 1) dup2(fileno(tmp), 1);
    if (fds_mask & 2) dup2(fileno(tmp), 2);
    f();
    fflush(stdout);
    fflush(stderr);
    dup2(saved1, 1);
    dup2(saved2, 2);
    close(saved1);
    close(saved2);
    long n = lseek(fileno(tmp), 0, SEEK_END);
    fclose(tmp);
    return n;
}

static void call_malloc_stats(void) { HS(malloc_stats)(); }

#ifdef HS_PREFIX
#define TRIM hugeslab_trim
static void call_stats_print(void) { hugeslab_stats_print(); }
#else
#define TRIM malloc_trim
#endif

static void test_info(void)
{
    enum { NSMALL = 1000 };
    static void *small[NSMALL];
    CHECK(HS(mallopt)(M_TRIM_THRESHOLD, 1 << 20) >= 0, "mallopt");
    (void)HS(mallopt)(M_MMAP_THRESHOLD, 1 << 20);
    (void)HS(mallopt)(M_ARENA_MAX, 4);
    (void)HS(mallopt)(M_TOP_PAD, 0);
    (void)HS(mallopt)(12345, 1); /* unknown parameter: must not crash */
    int t = TRIM(0);
    CHECK(t == 0 || t == 1, "malloc_trim(0) returned %d", t);

#ifdef HS_PREFIX
    hugeslab_stats_t st_before, st_after;
    hugeslab_stats(&st_before);
#endif
    struct mallinfo2 before = HS(mallinfo2)();
    void *big = HS(malloc)(10 * MiB);
    CHECK(big != NULL, "malloc(10 MiB)");
    if (big) memset(big, 3, 10 * MiB);
    for (int i = 0; i < NSMALL; i++) small[i] = HS(malloc)(1024);
    struct mallinfo2 after = HS(mallinfo2)();
    if (g_hs) {
        CHECK(after.uordblks >= before.uordblks + 10 * MiB,
              "mallinfo2().uordblks %zu -> %zu after allocating 11 MiB", before.uordblks,
              after.uordblks);
        CHECK(after.arena + after.hblkhd >= after.uordblks,
              "mallinfo2: uordblks %zu exceeds arena %zu + hblkhd %zu", after.uordblks, after.arena,
              after.hblkhd);
    } else {
        CHECK(after.uordblks + after.hblkhd >= before.uordblks + before.hblkhd + 10 * MiB,
              "mallinfo2 (system) in-use did not grow by 10 MiB");
    }
#ifdef HS_PREFIX
    hugeslab_stats(&st_after);
    CHECK(st_after.bytes_mapped >= st_before.bytes_mapped + 10 * MiB ||
              st_before.bytes_mapped >= 11 * MiB,
          "hugeslab_stats bytes_mapped %llu -> %llu after allocating 11 MiB",
          (unsigned long long)st_before.bytes_mapped, (unsigned long long)st_after.bytes_mapped);
    CHECK(st_after.threads_live >= 1, "hugeslab_stats threads_live = %llu",
          (unsigned long long)st_after.threads_live);
#endif
    HS(free)(big);
    for (int i = 0; i < NSMALL; i++) HS(free)(small[i]);
    struct mallinfo2 freed = HS(mallinfo2)();
    if (g_hs)
        CHECK(freed.uordblks + 9 * MiB <= after.uordblks,
              "mallinfo2().uordblks did not shrink after free: %zu -> %zu", after.uordblks,
              freed.uordblks);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = HS(mallinfo)();
#pragma GCC diagnostic pop
    if (g_hs)
        CHECK(old.uordblks >= 0 && old.arena >= 0, "mallinfo: negative fields %d %d", old.uordblks,
              old.arena);

    t = TRIM(0);
    CHECK(t == 0 || t == 1, "malloc_trim(0) returned %d", t);
    t = TRIM(1 << 20);
    CHECK(t == 0 || t == 1, "malloc_trim(1 MiB) returned %d", t);

    long n = capture_output(call_malloc_stats, 2);
    CHECK(n > 0, "malloc_stats() printed nothing to stderr (%ld)", n);
#ifdef HS_PREFIX
    n = capture_output(call_stats_print, 3);
    CHECK(n > 0, "hugeslab_stats_print() printed nothing (%ld)", n);
#endif
}

/* ---- exhaustion (forked child with RLIMIT_AS) ------------------------- */

static int child_report(const char *fmt, ...) HS_PRINTF(1, 2);
static int child_report(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
    if (n > 0 && write(2, buf, (size_t)n) < 0) return -1;
    return 0;
}

/* Mappings of hugetlb memory in /proc/self/maps (the kernel names them
 * /anon_hugepage), read with no allocation: under RLIMIT_AS. */
static unsigned hugetlb_mappings(void)
{
    static char maps[1 << 20];
    if (hs_read_file_raw("/proc/self/maps", maps, sizeof maps) < 0) return 0;
    unsigned count = 0;
    for (const char *at = maps; (at = strstr(at, "/anon_hugepage")) != NULL; at++) count++;
    return count;
}

static int exhaustion_child(void)
{
    const size_t CAP = (size_t)1 << 22;
    int bad = 0;
    void **arr = mmap(NULL, CAP * sizeof(void *), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arr == MAP_FAILED) return 2;
    long vm = hs_proc_status_kib_raw("VmSize");
    if (vm <= 0) return 2;
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)vm * 1024 + 64 * MiB;
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 2;

    /* phase 1: 1 MiB blocks */
    size_t n = 0;
    int e = 0;
    while (n < CAP) {
        errno = 0;
        void *p = HS(malloc)(MiB);
        if (!p) {
            e = errno;
            break;
        }
        ((char *)p)[0] = 1;
        ((char *)p)[MiB - 1] = 1;
        arr[n++] = p;
    }
    if (n == CAP) {
        child_report("FAIL: 1 MiB blocks: no failure under RLIMIT_AS after %zu blocks\n", n);
        return 1;
    }
    if (e != ENOMEM) {
        child_report("FAIL: 1 MiB blocks: malloc returned NULL with errno %d, want ENOMEM\n", e);
        bad = 1;
    }
    /* A SuperSlab of hugetlb memory comes with a spare reservation of its
     * size (README, "Huge pages"): 4 MiB of address space a block, not 2. */
    unsigned hugetlb = hugetlb_mappings();
    size_t least = hugetlb ? 8 : 16;
    if (n < least) {
        child_report("FAIL: only %zu 1 MiB blocks fit in 64 MiB of address space (%u hugetlb "
                     "mappings)\n",
                     n, hugetlb);
        bad = 1;
    }
    for (size_t i = 0; i < n; i += 2) {
        HS(free)(arr[i]);
        arr[i] = NULL;
    }
    size_t again = 0;
    for (size_t i = 0; i < n; i += 2) {
        void *p = HS(malloc)(MiB);
        if (!p) break;
        ((char *)p)[MiB - 1] = 2;
        arr[i] = p;
        again++;
    }
    if (again < n / 4 || again == 0) {
        child_report("FAIL: after freeing %zu of %zu 1 MiB blocks only %zu could be allocated "
                     "again (errno %d)\n",
                     (n + 1) / 2, n, again, errno);
        bad = 1;
    }
    for (size_t i = 0; i < n; i++)
        if (arr[i]) HS(free)(arr[i]);
    child_report("note: exhaustion: %zu x 1 MiB before ENOMEM, %zu again after freeing half; %u "
                 "hugetlb mappings\n",
                 n, again, hugetlb);

    /* phase 2: 64-byte blocks */
    size_t m = 0;
    e = 0;
    while (m < CAP) {
        errno = 0;
        void *p = HS(malloc)(64);
        if (!p) {
            e = errno;
            break;
        }
        memset(p, 0x33, 64);
        arr[m++] = p;
    }
    if (m == CAP) {
        child_report("FAIL: 64-byte blocks: no failure under RLIMIT_AS after %zu blocks\n", m);
        return 1;
    }
    if (e != ENOMEM) {
        child_report("FAIL: 64-byte blocks: NULL with errno %d, want ENOMEM\n", e);
        bad = 1;
    }
    if (m < 100000) {
        child_report("FAIL: only %zu 64-byte blocks fit in 64 MiB of address space\n", m);
        bad = 1;
    }
    for (size_t i = 0; i < m; i += 2) {
        HS(free)(arr[i]);
        arr[i] = NULL;
    }
    again = 0;
    for (size_t i = 0; i < m / 4; i += 1) {
        void *p = HS(malloc)(64);
        if (!p) break;
        HS(free)(p);
        again++;
        if (again > 1000) break;
    }
    if (again == 0) {
        child_report("FAIL: after freeing half of %zu 64-byte blocks malloc(64) still fails\n", m);
        bad = 1;
    }
    for (size_t i = 0; i < m; i++)
        if (arr[i]) HS(free)(arr[i]);
    /* everything is back: a large block fits again */
    errno = 0;
    void *p = HS(malloc)(MiB);
    if (!p) {
        child_report("FAIL: after freeing all %zu 64-byte blocks, malloc(1 MiB) fails (errno %d): "
                     "memory of freed small blocks is not reusable for other sizes\n",
                     m, errno);
        bad = 1;
    } else {
        HS(free)(p);
    }
    p = HS(malloc)(64);
    if (!p) {
        child_report("FAIL: after freeing everything, malloc(64) fails\n");
        bad = 1;
    }
    child_report("note: exhaustion: %zu x 64 B before ENOMEM\n", m);
    return bad;
}

static void test_exhaustion(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        HS_FAIL("fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        /* a fresh process, so that memory cached by the earlier sections
         * does not count as headroom */
        alarm(60);
        execl("/proc/self/exe", "api_test", "--exhaustion-child", (char *)NULL);
        _exit(3);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        HS_FAIL("waitpid: %s", strerror(errno));
        return;
    }
    if (WIFSIGNALED(st))
        HS_FAIL("exhaustion child killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WEXITSTATUS(st) == 3)
        HS_FAIL("could not exec /proc/self/exe for the exhaustion child");
    else if (WEXITSTATUS(st) == 2)
        HS_FAIL("exhaustion child could not set up RLIMIT_AS");
    else
        CHECK(WEXITSTATUS(st) == 0, "exhaustion child failed (see lines above)");
}

/* ---- glibc's other names ------------------------------------------------ */

#ifndef HS_PREFIX
/* Blocks of malloc freed with __libc_free and cfree (glibc's compatibility
 * symbol, as a binary built before 2.26 calls it), and blocks of the
 * __libc_* names freed with free: one allocator either way. Not in the
 * static build, whose malloc is hugeslab_malloc by name and whose
 * __libc_* names are glibc's own. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *ptr);
#if defined(__x86_64__) && defined(__GLIBC__)
void cfree(void *ptr);
__asm__(".symver cfree, cfree@GLIBC_2.2.5");
#define HAVE_CFREE 1
#endif

static void test_libc_names(void)
{
    char *a = malloc(40);
    CHECK(a != NULL, "malloc(40)");
    if (a) strcpy(a, "malloc");
    __libc_free(a); /* glibc's own free aborted on hugeslab's block */
    char *b = __libc_malloc(40), *c = __libc_calloc(4, 10), *d = __libc_memalign(64, 40);
    CHECK(b && c && d, "__libc_malloc, __libc_calloc, __libc_memalign: %p %p %p", (void *)b,
          (void *)c, (void *)d);
    if (c) CHECK(c[0] == 0 && c[39] == 0, "__libc_calloc's block is not zeroed");
    bool aligned = d && ((uintptr_t)d & 63) == 0;
    CHECK(aligned, "__libc_memalign(64, 40) = %p", (void *)d);
    if (b) strcpy(b, "__libc_malloc");
    b = __libc_realloc(b, 4000);
    CHECK(b && strcmp(b, "__libc_malloc") == 0, "__libc_realloc lost the block's contents");
    CHECK(usable(b) >= 4000 && usable(c) >= 40 && usable(d) >= 40,
          "malloc_usable_size of the __libc_* blocks: %zu %zu %zu", usable(b), usable(c),
          usable(d));
    free(b);
    free(c);
    free(d);
#ifdef HAVE_CFREE
    char *e = malloc(100);
    cfree(e);
#endif
}
#else
static void test_libc_names(void) {}
#endif

/* ------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(void);
} sections[] = {
    {"sizes", test_sizes},           {"calloc", test_calloc},         {"realloc", test_realloc},
    {"align", test_align},           {"valloc", test_valloc},         {"errno", test_errno},
    {"sized", test_sized},           {"exhaustion", test_exhaustion}, {"info", test_info},
    {"libc_names", test_libc_names},
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--exhaustion-child") == 0) return exhaustion_child();
    g_hs = hs_setup(API_NAME);
    g_page = (size_t)sysconf(_SC_PAGESIZE);
    int ran = 0;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (argc > 1 && strcmp(argv[1], sections[i].name) != 0) continue;
        int before = hs_failures;
        sections[i].fn();
        fprintf(stderr, "  %-10s %s\n", sections[i].name, hs_failures == before ? "ok" : "FAILED");
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "unknown section %s\n", argv[1]);
        return 2;
    }
    return hs_finish(API_NAME);
}
