# Benchmarks, included from the top Makefile (which defines CC, BUILD, SO and
# the `lib` target).
#
#   make bench       1M and 10M iterations, 5 runs per allocator (~1 minute)
#   make bench-full  adds the xorshift-RNG workloads, 11 runs per allocator
#
# Extra arguments for bench/compare.py go in BENCH_ARGS, e.g.
#   make bench BENCH_ARGS='--quick --cpu 1'

BENCH_DIR    := $(BUILD)/bench
BENCH_BIN    := $(BENCH_DIR)/bench_random_mixed
# No -march=native: figures must stay comparable across machines, and the
# loop is dominated by the allocator, not by the benchmark's own code.
BENCH_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow \
                -Wstrict-prototypes -Wmissing-prototypes
BENCH_PKGS   := libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 gnuplot-nox
BENCH_ARGS   ?=
BENCH_FULL_WORKLOADS := \
	--cmd '1000000 400 1 16 1040' \
	--cmd '10000000 400 1 16 1040' \
	--cmd '1000000 400 1 16 1040 --rng=xorshift' \
	--cmd '10000000 400 1 16 1040 --rng=xorshift'

.PHONY: bench bench-full packages-bench

$(BENCH_BIN): bench/bench_random_mixed.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

# A missing comparison allocator only removes its row from the table, so a
# failed install (not root, no network) warns instead of stopping the bench.
packages-bench:
	@scripts/ensure-packages.sh $(BENCH_PKGS) || \
	    echo "bench: warning: some of $(BENCH_PKGS) are missing; their rows will be skipped" >&2

bench: packages-bench lib $(BENCH_BIN)
	python3 bench/compare.py --bin $(BENCH_BIN) --so $(SO) $(BENCH_ARGS)

bench-full: packages-bench lib $(BENCH_BIN)
	python3 bench/compare.py --bin $(BENCH_BIN) --so $(SO) --runs 11 \
	    $(BENCH_FULL_WORKLOADS) $(BENCH_ARGS)

# --- THP / hugetlb comparison (bench/thp-compare) --------------------------
#
#   make thp-compare                    about 4-5 minutes; sets the system THP
#                                       mode and reserves hugetlb pages when
#                                       root, restoring both afterwards
#   make thp-compare THP_ARGS=--quick   about 1 minute
#
# thp_workload is bench_random_mixed's loop plus AnonHugePages / Rss /
# hugetlb figures read before the live set is freed (bench/thp_workload.c).

THP_WORKLOAD := $(BENCH_DIR)/thp_workload
THP_ARGS     ?=

.PHONY: thp-compare thp-workload

$(THP_WORKLOAD): bench/thp_workload.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

thp-workload: $(THP_WORKLOAD)

thp-compare: packages-bench lib $(BENCH_BIN) $(THP_WORKLOAD)
	bench/thp-compare --so $(SO) --workload-bin $(THP_WORKLOAD) $(THP_ARGS)

# --- purge backends (bench/purge_bench.c) -----------------------------------
#
#   make purge-bench                      madvise vs io_uring x MADV_FREE vs
#                                         MADV_DONTNEED, 5 runs each (~1 min)
#   make purge-bench PURGE_ARGS='--runs 9 --mb 256'
#
# Linked against the library rather than preloaded: it calls hugeslab_stats().

PURGE_BENCH := $(BENCH_DIR)/purge_bench
PURGE_ARGS  ?=

.PHONY: purge-bench

$(PURGE_BENCH): bench/purge_bench.c include/hugeslab.h bench/bench.mk $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -pthread -Iinclude -o $@ $< -L$(BUILD) -lhugeslab \
	    -Wl,-rpath,$(abspath $(BUILD))

purge-bench: lib $(PURGE_BENCH)
	$(PURGE_BENCH) $(PURGE_ARGS)
