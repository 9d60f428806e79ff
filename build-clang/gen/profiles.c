/* Generated from the files in configs/ by scripts/gen-profiles.sh. */
#include "common/common.h"
const hs_profile_t hs_profiles[] = {
    {"database",
     "# Long-lived servers with large, steady heaps (PostgreSQL, Redis, SQLite):\n"
     "# keep memory a little longer between bursts, and let RSS drop for real\n"
     "# when it goes back, since their operators watch RSS.\n"
     "backing=auto\n"
     "purge=dontneed\n"
     "purge_delay_ms=2000\n"
     "reserve_mb=32\n"
    },
    {"default",
     "# The defaults, written out: huge pages where the system offers them,\n"
     "# idle memory back to the kernel after half a second with MADV_FREE.\n"
     "backing=auto\n"
     "purge=free\n"
     "purge_delay_ms=500\n"
     "reserve_mb=4\n"
    },
    {"hugetlb",
     "# Take SuperSlabs from the hugetlbfs pool (reserve it first, for example\n"
     "# `echo 512 > /proc/sys/vm/nr_hugepages`); falls back to THP when it runs dry.\n"
     "backing=hugetlb\n"
    },
    {"low-memory",
     "# Small machines and containers with tight limits: base pages (no 2 MiB\n"
     "# rounding of RSS), idle memory returned quickly and visibly.\n"
     "backing=base\n"
     "purge=dontneed\n"
     "purge_delay_ms=100\n"
     "reserve_mb=0\n"
     "cache_mb=16\n"
    },
    {"thp-off",
     "# Comparison runs without huge pages: every SuperSlab on base pages, with\n"
     "# MADV_NOHUGEPAGE even where the system THP mode is \"always\".\n"
     "backing=base\n"
    },
    {"throughput",
     "# Batch jobs that want speed above all: memory is kept for ten seconds and\n"
     "# a generous reserve is never purged.\n"
     "backing=auto\n"
     "purge=free\n"
     "purge_delay_ms=10000\n"
     "reserve_mb=64\n"
    },
    {0, 0},
};
