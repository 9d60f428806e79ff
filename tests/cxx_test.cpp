// C++ new/delete in all variants on top of the preloaded allocator:
// scalar, array, nothrow, sized delete, aligned new (64, 4096, 2 MiB),
// standard containers churn, exceptions, threads.
//
// Run alone: LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/cxx_test
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static int failures = 0;
static long checks = 0;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            std::fprintf(stderr, "FAIL: %s:%d: (%s) ", __FILE__, __LINE__, #cond);                 \
            std::fprintf(stderr, __VA_ARGS__);                                                     \
            std::fputc('\n', stderr);                                                              \
        }                                                                                          \
    } while (0)

static char *volatile sink;

static size_t opaque(size_t x)
{
    __asm__ volatile("" : "+r"(x));
    return x;
}

static bool under_hugeslab()
{
    void *hm = dlsym(RTLD_DEFAULT, "hugeslab_malloc");
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info a, b;
    return hm && m && dladdr(hm, &a) && dladdr(m, &b) && a.dli_fbase == b.dli_fbase;
}

struct Obj {
    uint64_t a[5];
    explicit Obj(uint64_t v)
    {
        for (auto &x : a) x = v;
    }
    bool ok(uint64_t v) const
    {
        return std::all_of(std::begin(a), std::end(a), [v](uint64_t x) { return x == v; });
    }
};

struct alignas(64) A64 {
    char c[100];
};
struct alignas(4096) A4K {
    char c[5000];
};
struct alignas(2 * 1024 * 1024) A2M {
    char c[3000];
};

template <class T> static void check_aligned_new(const char *what)
{
    constexpr size_t al = alignof(T);
    std::vector<T *> v;
    for (int i = 0; i < 8; i++) {
        T *p = new T;
        CHECK(reinterpret_cast<uintptr_t>(p) % al == 0, "new %s = %p not %zu-aligned", what,
              (void *)p, al);
        std::memset(p->c, i, sizeof p->c);
        v.push_back(p);
    }
    for (size_t i = 0; i < v.size(); i++) {
        CHECK(v[i]->c[sizeof v[i]->c - 1] == (char)i, "aligned %s block corrupted", what);
        delete v[i];
    }
    T *arr = new T[3];
    CHECK(reinterpret_cast<uintptr_t>(arr) % al == 0, "new %s[3] = %p not aligned", what,
          (void *)arr);
    std::memset(arr, 7, sizeof(T) * 3);
    delete[] arr;
    T *nt = new (std::nothrow) T;
    CHECK(nt && reinterpret_cast<uintptr_t>(nt) % al == 0, "nothrow new %s", what);
    delete nt;
    // explicit operator new with align_val_t, sized + aligned delete
    void *raw = ::operator new(12345, std::align_val_t(al));
    CHECK(reinterpret_cast<uintptr_t>(raw) % al == 0, "operator new(12345, align %zu)", al);
    std::memset(raw, 1, 12345);
    ::operator delete(raw, 12345, std::align_val_t(al));
    raw = ::operator new[](777, std::align_val_t(al), std::nothrow);
    CHECK(raw && reinterpret_cast<uintptr_t>(raw) % al == 0, "operator new[](nothrow, align %zu)",
          al);
    ::operator delete[](raw, std::align_val_t(al), std::nothrow);
    raw = ::operator new(100, std::align_val_t(al));
    ::operator delete(raw, std::align_val_t(al));
}

static void test_basic()
{
    // scalar, array, sized delete
    for (int round = 0; round < 1000; round++) {
        Obj *o = new Obj(round);
        CHECK(o->ok(round), "Obj");
        delete o;
        int *arr = new int[round + 1];
        for (int i = 0; i <= round; i++) arr[i] = i;
        CHECK(arr[round] == round, "int[]");
        delete[] arr;
        std::string *sa = new std::string[3]{"a", std::string(100, 'b'), std::string(round, 'c')};
        CHECK(sa[2].size() == (size_t)round, "string[]");
        delete[] sa;
        void *raw = ::operator new(round + 1);
        std::memset(raw, 0x5A, round + 1);
        ::operator delete(raw, round + 1); // sized delete
        raw = ::operator new[](round + 1);
        ::operator delete[](raw, round + 1);
    }
    // nothrow
    int *n = new (std::nothrow) int[1000];
    CHECK(n != nullptr, "nothrow new");
    delete[] n;
    char *huge = new (std::nothrow) char[opaque(SIZE_MAX / 2)];
    CHECK(huge == nullptr, "nothrow new of SIZE_MAX/2 returned %p", (void *)huge);
    delete[] huge;
    bool thrown = false;
    try {
        sink = new char[opaque(SIZE_MAX / 2)];
        delete[] sink;
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "new of SIZE_MAX/2 did not throw bad_alloc");
    void *big = ::operator new(40u << 20);
    std::memset(big, 3, 40u << 20);
    ::operator delete(big, 40u << 20);
}

static void test_containers()
{
    std::map<int, std::string> m;
    std::unordered_map<std::string, std::vector<int>> um;
    std::vector<std::unique_ptr<Obj>> objs;
    uint64_t sum = 0;
    for (int i = 0; i < 100000; i++) {
        m[i % 5000] = std::to_string(i) + std::string(i % 200, 'x');
        um[std::to_string(i % 3000)].push_back(i);
        objs.emplace_back(new Obj(i));
        if (objs.size() > 1000) {
            CHECK(objs.front()->ok(objs.front()->a[0]), "unique_ptr<Obj>");
            objs.erase(objs.begin(), objs.begin() + 500);
        }
        if (i % 7000 == 0) {
            um.clear();
            std::vector<std::string> v(5000, std::string(50, 'q'));
            std::sort(v.begin(), v.end());
            sum += v.size();
        }
    }
    for (auto &kv : m) sum += kv.second.size();
    for (auto &kv : um) sum += kv.second.size();
    CHECK(sum > 0, "containers");
    std::vector<uint64_t> grow;
    for (uint64_t i = 0; i < 5000000; i++) grow.push_back(i);
    CHECK(grow[4999999] == 4999999, "vector growth");
    grow.shrink_to_fit();
}

static void test_exceptions()
{
    int caught = 0;
    for (int i = 0; i < 20000; i++) {
        try {
            if (i % 2) throw std::runtime_error(std::string(i % 300, 'e'));
            throw std::vector<int>(i % 100, i);
        } catch (const std::runtime_error &e) {
            caught += (std::strlen(e.what()) == (size_t)(i % 300));
        } catch (const std::vector<int> &v) {
            caught += (v.size() == (size_t)(i % 100));
        }
    }
    CHECK(caught == 20000, "caught %d of 20000 exceptions", caught);
}

static void test_threads()
{
    std::atomic<long> total{0};
    std::vector<std::thread> ts;
    std::vector<std::unique_ptr<std::string>> handoff[4];
    for (int t = 0; t < 4; t++)
        ts.emplace_back([t, &total, &handoff] {
            std::vector<std::unique_ptr<std::string>> mine;
            for (int i = 0; i < 50000; i++) {
                mine.emplace_back(new std::string(i % 500 + 1, char('a' + t)));
                if (mine.size() > 300) mine.erase(mine.begin(), mine.begin() + 150);
                total++;
            }
            handoff[t] = std::move(mine); // freed by the main thread
        });
    for (auto &t : ts) t.join();
    for (int t = 0; t < 4; t++)
        for (auto &s : handoff[t])
            CHECK(s->find_first_not_of(char('a' + t)) == std::string::npos,
                  "handoff string corrupted");
    CHECK(total == 200000, "threads");
}

int main()
{
    bool hs = under_hugeslab();
    const char *e = std::getenv("HS_EXPECT_HUGESLAB");
    if (e && *e && std::strcmp(e, "0") != 0 && !hs) {
        std::fprintf(stderr, "FAIL: cxx: HS_EXPECT_HUGESLAB=1 but malloc is not hugeslab's\n");
        return 1;
    }
    test_basic();
    check_aligned_new<A64>("align 64");
    check_aligned_new<A4K>("align 4096");
    check_aligned_new<A2M>("align 2 MiB");
    test_containers();
    test_exceptions();
    test_threads();
    if (failures) {
        std::fprintf(stderr, "cxx: %d of %ld checks failed\n", failures, checks);
        return 1;
    }
    std::fprintf(stderr, "PASS cxx (%ld checks)%s\n", checks, hs ? "" : " [system allocator]");
    return 0;
}
