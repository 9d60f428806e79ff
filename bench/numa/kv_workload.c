/* A database-like workload for the NUMA locality benchmark: one shared hash
 * table of keys to values of 16 B..4 KiB, threads pinned one per node they
 * may run on, each inserting, looking up and deleting random keys (so many
 * frees are of blocks another thread allocated). At the end, for every live
 * value, the kernel says where its pages are (move_pages in query mode),
 * compared with the node of the thread that allocated it.
 *
 *   kv_workload [OPS_PER_THREAD]      default 100000
 *
 * Prints per-thread figures and "figures: case=kv local=... remote_frees=...
 * numa_maps_kib=..." for bench/numa/locality.sh. Placement is the figure,
 * not time: in the test VM timings mean nothing. */
#include <stdbool.h>

#include "hugeslab.h"
#define NT_REMOTE_FREES_OFFSET offsetof(hugeslab_stats_t, remote_frees)
#include "numa_test_util.h"

#define KEYS_PER_THREAD 8192
#define BUCKET_LOCKS 256
#define MIN_VALUE 16
#define MAX_VALUE 4096

typedef struct entry_s {
    struct entry_s *next;
    uint64_t key;
    int owner_node; /* node of the thread that allocated value and entry */
    size_t size;
    unsigned char *value;
} entry_t;

static entry_t **buckets;
static size_t bucket_count;
static pthread_mutex_t locks[BUCKET_LOCKS];
static long ops_per_thread = 100000;
static uint64_t key_space;
static int nodes;

typedef struct worker_s {
    int node;
    pthread_t tid;
    long inserts, lookups, deletes, hits;
} worker_t;

static size_t bucket_of(uint64_t key) { return (key * 0x9e3779b97f4a7c15ULL >> 20) % bucket_count; }

static void *worker_main(void *p)
{
    worker_t *w = p;
    nt_pin_to_node(w->node);
    uint64_t s = 0x1234567ULL * (uint64_t)(w->node + 1) | 1;
    for (long i = 0; i < ops_per_thread; i++) {
        uint64_t r = nt_rand(&s);
        uint64_t key = r % key_space;
        unsigned op = (unsigned)(r >> 40) % 10;
        size_t b = bucket_of(key);
        pthread_mutex_t *lock = &locks[b % BUCKET_LOCKS];
        if (op < 5) { /* insert or replace */
            size_t size = MIN_VALUE + (size_t)(nt_rand(&s) % (MAX_VALUE - MIN_VALUE + 1));
            entry_t *e = malloc(sizeof *e);
            e->value = malloc(size);
            memset(e->value, (int)key, size);
            e->key = key;
            e->size = size;
            e->owner_node = w->node;
            entry_t *old = NULL;
            pthread_mutex_lock(lock);
            for (entry_t **pp = &buckets[b]; *pp; pp = &(*pp)->next)
                if ((*pp)->key == key) {
                    old = *pp;
                    *pp = old->next;
                    break;
                }
            e->next = buckets[b];
            buckets[b] = e;
            pthread_mutex_unlock(lock);
            if (old) {
                free(old->value);
                free(old);
            }
            w->inserts++;
        } else if (op < 8) { /* lookup: read the value */
            pthread_mutex_lock(lock);
            for (entry_t *e = buckets[b]; e; e = e->next)
                if (e->key == key) {
                    volatile unsigned char sink = e->value[e->size - 1];
                    (void)sink;
                    w->hits++;
                    break;
                }
            pthread_mutex_unlock(lock);
            w->lookups++;
        } else { /* delete */
            entry_t *old = NULL;
            pthread_mutex_lock(lock);
            for (entry_t **pp = &buckets[b]; *pp; pp = &(*pp)->next)
                if ((*pp)->key == key) {
                    old = *pp;
                    *pp = old->next;
                    break;
                }
            pthread_mutex_unlock(lock);
            if (old) {
                free(old->value);
                free(old);
            }
            w->deletes++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) ops_per_thread = atol(argv[1]);
    nodes = nt_node_count();

    /* One thread per node this process may run on (numactl --cpunodebind
     * narrows the set). */
    cpu_set_t allowed, node_cpus;
    sched_getaffinity(0, sizeof allowed, &allowed);
    worker_t workers[NT_MAX_NODES];
    int count = 0;
    for (int n = 0; n < nodes; n++) {
        if (nt_node_cpus(n, &node_cpus) == 0) continue;
        CPU_AND(&node_cpus, &node_cpus, &allowed);
        if (CPU_COUNT(&node_cpus) == 0) continue;
        workers[count++] = (worker_t){.node = n};
    }
    if (count == 0) {
        printf("result: FAIL no node to run on\n");
        return NT_EXIT_FAIL;
    }
    key_space = (uint64_t)KEYS_PER_THREAD * (uint64_t)count;
    bucket_count = (size_t)key_space;
    buckets = calloc(bucket_count, sizeof *buckets);
    for (int i = 0; i < BUCKET_LOCKS; i++) pthread_mutex_init(&locks[i], NULL);
    for (int i = 0; i < count; i++) pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
    for (int i = 0; i < count; i++) pthread_join(workers[i].tid, NULL);

    /* Where do the live values of each thread sit? */
    long local = 0, total = 0;
    for (int i = 0; i < count; i++) {
        nt_pages_t pages = {0};
        for (size_t b = 0; b < bucket_count; b++)
            for (entry_t *e = buckets[b]; e; e = e->next)
                if (e->owner_node == workers[i].node) nt_pages_add_range(&pages, e->value, e->size);
        nt_pages_finish(&pages);
        long per_node[NT_MAX_NODES];
        long known = nt_pages_where(&pages, per_node);
        nt_pages_free(&pages);
        char text[512];
        nt_format_nodes(text, sizeof text, per_node, nodes);
        printf("thread on node %d: %ld inserts, %ld lookups (%ld hits), %ld deletes; live value "
               "pages %ld: %s: %.2f%% local\n",
               workers[i].node, workers[i].inserts, workers[i].lookups, workers[i].hits,
               workers[i].deletes, known, text,
               known ? 100.0 * per_node[workers[i].node] / known : 0.0);
        local += per_node[workers[i].node];
        total += known;
    }
    long kib[NT_MAX_NODES];
    char per_node_kib[512], rf_text[32] = "-";
    nt_numa_maps_kib(kib);
    nt_format_nodes(per_node_kib, sizeof per_node_kib, kib, nodes);
    long long rf = nt_remote_frees();
    if (rf >= 0) snprintf(rf_text, sizeof rf_text, "%lld", rf);
    printf("figures: case=kv local=%.4f remote_frees=%s numa_maps_kib=%s\n",
           total ? (double)local / total : 0.0, rf_text, per_node_kib);
    printf("result: PASS\n");
    return NT_EXIT_PASS;
}
