/* The allocation API as a test calls it: the hugeslab_* names when built
 * with -DHS_PREFIX (linked with the library, next to the system allocator),
 * else the standard names (the test runs under LD_PRELOAD).  free_sized and
 * free_aligned_sized are looked up at run time: the C library's headers of
 * this Debian do not declare them and the system allocator may lack them
 * (NULL then). */
#ifndef HS_TEST_API_NAMES_H
#define HS_TEST_API_NAMES_H

#include <dlfcn.h>
#include <string.h>

#ifdef HS_PREFIX
#include "hugeslab.h"
#define HS(f) hugeslab_##f
#else
#include <malloc.h>
#define HS(f) f
#endif

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

static inline free_sized_fn get_free_sized(void)
{
#ifdef HS_PREFIX
    return hugeslab_free_sized;
#else
    free_sized_fn f;
    void *s = dlsym(RTLD_DEFAULT, "free_sized");
    memcpy(&f, &s, sizeof f);
    return f;
#endif
}

static inline free_aligned_sized_fn get_free_aligned_sized(void)
{
#ifdef HS_PREFIX
    return hugeslab_free_aligned_sized;
#else
    free_aligned_sized_fn f;
    void *s = dlsym(RTLD_DEFAULT, "free_aligned_sized");
    memcpy(&f, &s, sizeof f);
    return f;
#endif
}

#endif /* HS_TEST_API_NAMES_H */
