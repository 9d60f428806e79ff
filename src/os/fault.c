/* Fault injection for tests (see fault.h); empty unless HS_FAULT_INJECTION. */
#include "os/fault.h"
#include "common/common.h"

#if defined(HS_FAULT_INJECTION) && HS_FAULT_INJECTION
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static const char *const site_names[OS_FAULT_SITES] = {
    [OS_FAULT_MMAP] = "mmap",       [OS_FAULT_MUNMAP] = "munmap", [OS_FAULT_MREMAP] = "mremap",
    [OS_FAULT_MADVISE] = "madvise", [OS_FAULT_MBIND] = "mbind",   [OS_FAULT_URING] = "uring",
    [OS_FAULT_THREAD] = "thread",   [OS_FAULT_FILE] = "file",     [OS_FAULT_PIPE] = "pipe",
    [OS_FAULT_PLACE] = "place",
};

/* Read once from the environment; 0 = not yet read, 1 = being read, 2 = ready. */
static struct fault_config_s {
    unsigned sites;   /* bit per os_fault_site_t that may fail */
    uint64_t nth;     /* the first call (1-based ticket) that fails; 0: none */
    uint64_t repeat;  /* failures from nth on; 0: all */
    uint64_t percent; /* chance per call, 0..100 */
    uint64_t seed;    /* for the random draws */
    bool report;      /* print the counts at exit */
} config;
static _Atomic int config_state;
static _Atomic bool armed = true;
static _Atomic uint64_t tickets;                /* calls at the chosen sites, all threads */
static _Atomic uint64_t calls[OS_FAULT_SITES];  /* calls counted, by site */
static _Atomic uint64_t failed[OS_FAULT_SITES]; /* failures injected, by site */

static uint64_t env_number(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    uint64_t n = 0;
    if (!v || !*v || !hs_parse_u64(v, NULL, &n)) return fallback;
    return n;
}

/* "mmap,madvise" or "all" into a bit set. */
static unsigned parse_sites(const char *list)
{
    if (!list || !*list || strcmp(list, "all") == 0) return (1u << OS_FAULT_SITES) - 1;
    unsigned set = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        for (unsigned s = 0; s < OS_FAULT_SITES; s++)
            if (strlen(site_names[s]) == len && strncmp(p, site_names[s], len) == 0) set |= 1u << s;
        p += len;
        if (*p == ',') p++;
    }
    return set;
}

/* A destructor, not atexit(): registering that may allocate. */
__attribute__((destructor)) static void report_at_exit(void)
{
    if (!config.report) return;
    char line[512];
    hs_text_t t = hs_text(line, sizeof line);
    hs_text_str(&t, "fault injection:");
    for (unsigned s = 0; s < OS_FAULT_SITES; s++) {
        hs_text_str(&t, s ? ", " : " ");
        hs_text_str(&t, site_names[s]);
        hs_text_str(&t, " ");
        hs_text_uint(&t, (unsigned)atomic_load(&failed[s]));
        hs_text_str(&t, "/");
        hs_text_uint(&t, (unsigned)atomic_load(&calls[s]));
    }
    hs_message("%s", line);
}

static void read_config(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&config_state, &expected, 1)) {
        while (atomic_load(&config_state) != 2) sched_yield();
        return;
    }
    config.sites = parse_sites(getenv("HUGESLAB_FAULT_SITES"));
    config.nth = env_number("HUGESLAB_FAULT_NTH", 0);
    config.repeat = env_number("HUGESLAB_FAULT_REPEAT", 1);
    config.percent = env_number("HUGESLAB_FAULT_PERCENT", 0);
    config.seed = env_number("HUGESLAB_FAULT_SEED", 1);
    config.report = env_number("HUGESLAB_FAULT_REPORT", 0) != 0;
    atomic_store(&config_state, 2);
}

/* splitmix64: one well-mixed draw per ticket, so a seed repeats a run. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

bool os_fault_hit(os_fault_site_t site)
{
    if (atomic_load_explicit(&config_state, memory_order_acquire) != 2) read_config();
    if (!atomic_load_explicit(&armed, memory_order_relaxed) || !((config.sites >> site) & 1))
        return false;
    atomic_fetch_add_explicit(&calls[site], 1, memory_order_relaxed);
    uint64_t ticket = atomic_fetch_add_explicit(&tickets, 1, memory_order_relaxed) + 1;
    bool fail = config.nth && ticket >= config.nth &&
                (config.repeat == 0 || ticket < config.nth + config.repeat);
    if (!fail && config.percent) fail = mix(config.seed ^ mix(ticket)) % 100 < config.percent;
    if (fail) atomic_fetch_add_explicit(&failed[site], 1, memory_order_relaxed);
    return fail;
}

void os_fault_arm(bool on) { atomic_store(&armed, on); }

void os_fault_counts(os_fault_site_t site, uint64_t *calls_out, uint64_t *failed_out)
{
    *calls_out = atomic_load(&calls[site]);
    *failed_out = atomic_load(&failed[site]);
}

const char *os_fault_site_name(os_fault_site_t site) { return site_names[site]; }
#endif
