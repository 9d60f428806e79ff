# Benchmarks, included from the top Makefile (which defines CC, BUILD, SO and
# the `lib` target).
#
#   make bench          every group (mixed, sizes, mt: 5 runs per allocator;
#                       memory: 3 runs), about 10 minutes on 2 cores
#   make bench-memory   only the memory group (bench/bench_memory.c: peak RSS,
#                       RSS 3 s after everything was freed), about 7 minutes
#   make bench-full     11 runs, 2 s multithreaded runs, plus the 1M-iteration
#                       mixed workloads (about 8 minutes)
#   make bench-threads THREADS=16 [LIB_DIR=/path/to/copies]
#                       only the multithreaded group, with THREADS threads
#   make bench-scaling [SCALING_THREADS=2,4,8,16] [LIB_DIR=...]
#                       the multithreaded group at several thread counts,
#                       3 runs each, for a machine with many cores
#   make bench-programs real programs (PostgreSQL, Redis, git, sqlite3, xz,
#                       python3, ls, sort): peak RSS, RSS once idle, time;
#                       3 runs, about 30 minutes (bench/programs.py)
#
# Extra arguments for bench/compare.py go in BENCH_ARGS, e.g.
#   make bench BENCH_ARGS='--quick --groups mixed,sizes'

BENCH_DIR    := $(BUILD)/bench
BENCH_BIN    := $(BENCH_DIR)/bench_random_mixed
BENCH_MT     := $(BENCH_DIR)/bench_mt
BENCH_MEM    := $(BENCH_DIR)/bench_memory
BENCH_HWM    := $(BENCH_DIR)/exit_hwm
# No -march=native: figures must stay comparable across machines, and the
# loop is dominated by the allocator, not by the benchmark's own code.
BENCH_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow \
                -Wstrict-prototypes -Wmissing-prototypes
BENCH_PKGS   := libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 gnuplot-nox
BENCH_ARGS   ?=
THREADS      ?= $(shell nproc)
LIB_DIR      ?= /usr/lib/x86_64-linux-gnu
COMPARE      := python3 bench/compare.py --bin $(BENCH_BIN) --mt-bin $(BENCH_MT) \
                --mem-bin $(BENCH_MEM) --so $(SO) \
                --lib-dir $(LIB_DIR)

.PHONY: bench bench-full bench-threads bench-scaling bench-memory bench-programs packages-bench

# Header-only shared code, so each program is still one compiler command.
BENCH_COMMON := bench/bench_common.h

$(BENCH_BIN): bench/bench_random_mixed.c $(BENCH_COMMON) bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_MT): bench/bench_mt.c $(BENCH_COMMON) bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -pthread -o $@ $< -ldl

$(BENCH_MEM): bench/bench_memory.c $(BENCH_COMMON) bench/peak_trace.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -pthread -o $@ $< -ldl

# What the first touch of fresh memory costs, huge pages against base pages
# (see its header); not part of `make bench`.
BENCH_FIRST_TOUCH := $(BENCH_DIR)/first_touch
$(BENCH_FIRST_TOUCH): bench/first_touch.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

# What a program gets from malloc under RLIMIT_AS (see its header); not
# part of `make bench`.
BENCH_AS_FILL := $(BENCH_DIR)/as_fill
$(BENCH_AS_FILL): bench/as_fill.c $(BENCH_COMMON) bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -ldl

# A command's exact peak RSS (see its header); not part of `make bench`.
$(BENCH_HWM): bench/exit_hwm.c bench/peak_trace.h $(BENCH_COMMON) bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

# An experiment in front of the allocator under test (see its header): the
# huge page where a program stopped writing a large block, split once that
# end stops moving. Not part of `make bench`.
FRONTIER_SPLIT := $(BENCH_DIR)/libfrontiersplit.so

$(FRONTIER_SPLIT): bench/frontier_split.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -fPIC -shared -pthread -o $@ $< -ldl

# A missing comparison allocator only removes its row from the table, so a
# failed install (not root, no network) warns instead of stopping the bench.
packages-bench:
	@scripts/ensure-packages.sh $(BENCH_PKGS) || \
	    echo "bench: warning: some of $(BENCH_PKGS) are missing; their rows will be skipped" >&2

bench: packages-bench lib $(BENCH_BIN) $(BENCH_MT) $(BENCH_MEM)
	$(COMPARE) $(BENCH_ARGS)
	@echo "bench: real programs (PostgreSQL, Redis, git, sqlite3, xz, python3, ls, sort):" \
	    "make bench-programs (about 30 minutes)"

bench-full: packages-bench lib $(BENCH_BIN) $(BENCH_MT) $(BENCH_MEM)
	$(COMPARE) --full $(BENCH_ARGS)

bench-memory: packages-bench lib $(BENCH_MEM)
	$(COMPARE) --groups memory $(BENCH_ARGS)

# No package step: this target is meant for other machines, where the
# comparison allocators may be copies in LIB_DIR rather than packages.
bench-threads: lib $(BENCH_MT)
	$(COMPARE) --groups mt --threads $(THREADS) $(BENCH_ARGS)

# Like bench-threads, no package step: every mt workload at each count.
SCALING_THREADS ?= 2,4,8,16

bench-scaling: lib $(BENCH_MT)
	$(COMPARE) --groups mt --threads $(SCALING_THREADS) --runs 3 $(BENCH_ARGS)

# --- real programs (bench/programs.py) --------------------------------------
#
#   make bench-programs                   every section, 3 runs (~30 min)
#   make bench-programs PROGRAMS_ARGS='--sections redis --redis-keys 2000000'
#   make bench-programs PROGRAMS_ARGS='--git-repo ~/src/redis --runs 5'
#
# Each section installs its Debian packages itself (root) or is skipped with
# the command to run; nothing here is part of `make test`.

PROGRAMS_ARGS ?=

bench-programs: packages-bench lib
	python3 bench/programs.py --so $(SO) --lib-dir $(LIB_DIR) $(PROGRAMS_ARGS)

# --- instructions per operation (bench/instructions.py) ---------------------
#
#   make bench-instructions               callgrind, 1M ops of 16-1040 B (~10 s)
#   make bench-instructions INSTR_ARGS='-- 1000000 400 1 8192 65536 --rng=xorshift'

INSTR_ARGS ?=

.PHONY: bench-instructions

bench-instructions: packages-bench lib $(BENCH_BIN)
	@scripts/ensure-packages.sh valgrind
	python3 bench/instructions.py --bin $(BENCH_BIN) --so $(SO) --lib-dir $(LIB_DIR) $(INSTR_ARGS)

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

$(THP_WORKLOAD): bench/thp_workload.c $(BENCH_COMMON) bench/bench.mk
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

# --- size classes: the waste of the class spacing on real programs ----------
#
#   make bench-sizes                    records python3, PostgreSQL, Redis,
#                                       git, sqlite3 and bench_memory kv on
#                                       glibc, replays each trace against the
#                                       candidate spacings and under glibc,
#                                       mimalloc, jemalloc and hugeslab (about
#                                       3.5 minutes, 1.5 GB of traces in /tmp,
#                                       removed afterwards)
#   make bench-sizes SIZES_ARGS='--workloads redis,kv --traces /tmp/traces'
#
# bench/sizes/recorder.c is an LD_PRELOAD library over glibc's allocator
# that logs each call; bench/sizes/replay.c sums the block sizes.
# bench/sizes/rss_replay.c makes a trace's calls again under any allocator,
# each recorded thread on a thread of its own, and prints the RSS they took:
#
#   SIZES_TRACE_DIR=/tmp/t LD_PRELOAD=$(BENCH_DIR)/libsizerecord.so git log -p
#   LD_PRELOAD=$(SO) $(BENCH_DIR)/rss_replay [--stats] /tmp/t/git.PID.trace

SIZE_RECORDER := $(BENCH_DIR)/libsizerecord.so
SIZE_REPLAY   := $(BENCH_DIR)/size_replay
RSS_REPLAY    := $(BENCH_DIR)/rss_replay
SIZES_ARGS    ?=

.PHONY: bench-sizes

$(SIZE_RECORDER): bench/sizes/recorder.c bench/sizes/trace.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -fPIC -shared -fvisibility=hidden -pthread -o $@ $< -ldl

$(SIZE_REPLAY): bench/sizes/replay.c bench/sizes/table.h bench/sizes/trace.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(RSS_REPLAY): bench/sizes/rss_replay.c bench/sizes/table.h bench/sizes/trace.h $(BENCH_COMMON) \
               bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -pthread -o $@ $< -ldl

# rss_replay.c again with --layout, linked with the library's objects (it
# needs their internals, which the shared library and the archive hide;
# no LD_PRELOAD then), for where the bytes of a replay's peak lie:
#   $(BENCH_DIR)/rss_layout --layout /tmp/t/git.PID.trace
RSS_LAYOUT    := $(BENCH_DIR)/rss_layout

$(RSS_LAYOUT): bench/sizes/rss_replay.c bench/sizes/layout.c bench/sizes/layout.h \
               bench/sizes/table.h bench/sizes/trace.h $(BENCH_COMMON) $(LIB_HDR) $(LIB_OBJ) \
               bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -DRSS_LAYOUT -Iinclude -Isrc -pthread -o $@ bench/sizes/rss_replay.c \
		bench/sizes/layout.c $(LIB_OBJ) $(LIBS) -ldl

bench-sizes: packages-bench lib $(SIZE_RECORDER) $(SIZE_REPLAY) $(BENCH_MEM)
	python3 bench/sizes/study.py --build $(BUILD) --so $(SO) --lib-dir $(LIB_DIR) $(SIZES_ARGS)
