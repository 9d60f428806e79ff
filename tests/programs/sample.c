/* A C file for gcc to compile under both allocators (tests/programs.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *l, *r;
    int key;
    char name[24];
};

static struct node *insert(struct node *t, int key)
{
    if (!t) {
        t = calloc(1, sizeof *t);
        t->key = key;
        snprintf(t->name, sizeof t->name, "k%d", key);
        return t;
    }
    if (key < t->key)
        t->l = insert(t->l, key);
    else if (key > t->key)
        t->r = insert(t->r, key);
    return t;
}

static unsigned long walk(const struct node *t, unsigned long h)
{
    if (!t) return h;
    h = walk(t->l, h);
    h = h * 131 + (unsigned long)t->key + strlen(t->name);
    return walk(t->r, h);
}

static void drop(struct node *t)
{
    if (t) {
        drop(t->l);
        drop(t->r);
        free(t);
    }
}

/* Twenty small functions; the assertion makes each GEN(n) a declaration
 * that ends with a semicolon, which keeps the list stable under clang-format. */
#define GEN(n)                                                                                     \
    static int f##n(int x) { return x * n + (x >> (n % 7)) - n; }                                  \
    _Static_assert(n > 0, "GEN")
GEN(1);
GEN(2);
GEN(3);
GEN(4);
GEN(5);
GEN(6);
GEN(7);
GEN(8);
GEN(9);
GEN(10);
GEN(11);
GEN(12);
GEN(13);
GEN(14);
GEN(15);
GEN(16);
GEN(17);
GEN(18);
GEN(19);
GEN(20);

int main(void)
{
    struct node *t = NULL;
    unsigned x = 1;
    for (int i = 0; i < 100000; i++) {
        x = x * 1103515245u + 12345u;
        t = insert(t, (int)(x >> 8) % 1000000);
    }
    int s = 0;
    for (int i = 0; i < 1000; i++)
        s += f1(i) ^ f2(i) ^ f3(i) ^ f4(i) ^ f5(i) ^ f6(i) ^ f7(i) ^ f8(i) ^ f9(i) ^ f10(i) ^
             f11(i) ^ f12(i) ^ f13(i) ^ f14(i) ^ f15(i) ^ f16(i) ^ f17(i) ^ f18(i) ^ f19(i) ^
             f20(i);
    printf("%lu %d\n", walk(t, 0), s);
    drop(t);
    return 0;
}
