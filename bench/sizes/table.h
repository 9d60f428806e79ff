/* The live blocks of a replayed trace, by the address the traced program
 * saw: an open-addressing table (linear probing, at most half full) for
 * bench/sizes/replay.c and bench/sizes/rss_replay.c, each one program of
 * one file. Its memory comes from mmap, not from the allocator measured. */
#ifndef SIZES_TABLE_H
#define SIZES_TABLE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

typedef struct entry_s {
    uint64_t key;    /* address in the traced run; 0 = empty slot */
    void *block;     /* the replay's block (size_replay real, rss_replay) */
    uint64_t size;   /* bytes asked for */
    uint64_t usable; /* size_replay: bytes the block has (real) or its class
                        index (model) */
} entry_t;

static entry_t *table;
static uint64_t table_cap, table_used;

static void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("replay: mmap");
        exit(1);
    }
    return p;
}

static uint64_t slot_of(uint64_t key)
{
    return (key * UINT64_C(0x9E3779B97F4A7C15)) >> 20 & (table_cap - 1);
}

static entry_t *find(uint64_t key)
{
    for (uint64_t i = slot_of(key);; i = (i + 1) & (table_cap - 1)) {
        if (table[i].key == key) return &table[i];
        if (table[i].key == 0) return NULL;
    }
}

static void insert_entry(entry_t e);

/* Doubles the table (the first: 65,536 slots). */
static void grow(void)
{
    entry_t *old = table;
    uint64_t old_cap = table_cap;
    table_cap = old_cap ? old_cap * 2 : 1u << 16;
    table = map_zeroed(table_cap * sizeof(entry_t));
    table_used = 0;
    for (uint64_t i = 0; i < old_cap; i++)
        if (old[i].key) insert_entry(old[i]);
    if (old) munmap(old, old_cap * sizeof(entry_t));
}

static void insert_entry(entry_t e)
{
    if ((table_used + 1) * 2 > table_cap) grow();
    uint64_t i = slot_of(e.key);
    while (table[i].key != 0) i = (i + 1) & (table_cap - 1);
    table[i] = e;
    table_used++;
}

/* Linear probing's deletion: later entries of the run move back. */
static void remove_entry(entry_t *e)
{
    uint64_t i = (uint64_t)(e - table);
    table[i].key = 0;
    table_used--;
    for (uint64_t j = (i + 1) & (table_cap - 1); table[j].key; j = (j + 1) & (table_cap - 1)) {
        uint64_t home = slot_of(table[j].key);
        /* Move j to i when i lies cyclically in [home, j). */
        if (((j - home) & (table_cap - 1)) >= ((j - i) & (table_cap - 1))) {
            table[i] = table[j];
            table[j].key = 0;
            i = j;
        }
    }
}

#endif
