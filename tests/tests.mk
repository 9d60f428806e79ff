# Tests, included from the top Makefile (which defines CC, BUILD, SO, AR_LIB,
# LIB_HDR and the `lib` target).
#
#   make test                 packages, library, test programs, tests/run.sh
#   make test TESTS="api fork" only those tests (names: see tests/run.sh)
#   make test CC=clang        C tests and sanitizer builds with clang
#   make test-build           only build the test programs into $(BUILD)/tests/
#   make fuzz                 the fuzzers, FUZZ_SECONDS (default 300) each
#
# Each test alone, e.g.:
#   LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/api_test
#   tests/run.sh api      (same, with the PASS/FAIL line)

CXX ?= g++
TESTS ?=

TEST_DIR      := $(BUILD)/tests
TEST_CFLAGS   := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fno-builtin -pthread \
                 -Iinclude -Itests
TEST_CXXFLAGS := -std=c++17 -Wall -Wextra -Werror -O2 -g -fno-builtin -fsized-deallocation -pthread
TEST_LDLIBS   := -ldl

TEST_PACKAGES := clang-format sqlite3 python3 g++ coreutils perl binutils grep mawk liburing-dev \
                 qemu-system-x86 linux-image-amd64 busybox-static cpio numactl libnuma-dev pkgconf \
                 libhugetlbfs-dev
# more real programs for tests/programs.sh (clang comes with libFuzzer's line)
TEST_PACKAGES += git jq tcl bzip2 xz-utils findutils
# clang's libFuzzer (the runtime is in libclang-rt-14-dev) for fuzz_libfuzzer
TEST_PACKAGES += clang libclang-rt-14-dev
# PostgreSQL, pgbench and pg_amcheck for tests/postgres
TEST_PACKAGES += postgresql postgresql-contrib
# gnuplot for tests/charts, which draws bench/compare.py's charts: without it
# the test skips, as it did on a fresh machine, where only make bench had it
TEST_PACKAGES += gnuplot-nox

# Library objects rebuilt with a sanitizer, for the stress test that calls the
# hugeslab_* names directly.  The standard names (malloc, free, ...) are made
# local in these objects so that they do not interpose on the sanitizer's own
# allocator; only hugeslab_* stay global.
# Mirrors the library's own -D/-I/-std flags (so HS_HAVE_URING etc. follow).
SAN_LIBCFLAGS := $(or $(filter -std=% -D% -I%,$(LIBCFLAGS)),-std=c11 -D_GNU_SOURCE -Iinclude -Isrc) \
                 -pthread -g -O1 \
                 -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
SAN_STD_NAMES := malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign \
                 valloc pvalloc malloc_usable_size free_sized free_aligned_sized mallopt \
                 malloc_trim malloc_stats mallinfo mallinfo2 malloc_info
SAN_LOCALIZE  := $(foreach s,$(SAN_STD_NAMES),--localize-symbol=$(s))
# the same object list as the library (LIB_OBJ from the top Makefile)
TEST_LIB_OBJ  := $(or $(LIB_OBJ),$(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/*/*.c)))
TSAN_OBJ      := $(patsubst $(BUILD)/obj/%,$(BUILD)/tsan/%,$(TEST_LIB_OBJ))
UBSAN_OBJ     := $(patsubst $(BUILD)/obj/%,$(BUILD)/ubsan/%,$(TEST_LIB_OBJ))
FUZZ_OBJ      := $(patsubst $(BUILD)/obj/%,$(BUILD)/fuzz/%,$(TEST_LIB_OBJ))
TSAN_FLAGS    := -fsanitize=thread
UBSAN_FLAGS   := -fsanitize=undefined -fno-sanitize-recover=undefined
# libFuzzer's coverage in the library as well, and UBSan; always clang
FUZZ_CC       := clang
FUZZ_FLAGS    := -fsanitize=fuzzer-no-link,undefined -fno-sanitize-recover=undefined
tsan_CC        = $(CC)
ubsan_CC       = $(CC)
fuzz_CC        = $(FUZZ_CC)
FAULT_OBJ     := $(patsubst $(BUILD)/obj/%,$(BUILD)/fault/%,$(TEST_LIB_OBJ))
FAULT_FLAGS   := -O2 -DHS_FAULT_INJECTION=1
fault_CC       = $(CC)

TEST_BINS := $(TEST_DIR)/api_test $(TEST_DIR)/api_test_static $(TEST_DIR)/bad_input_test \
             $(TEST_DIR)/stress_test $(TEST_DIR)/stress_tsan $(TEST_DIR)/stress_ubsan \
             $(TEST_DIR)/big_stress_tsan \
             $(TEST_DIR)/fork_test $(TEST_DIR)/thread_exit_test $(TEST_DIR)/dlopen_test \
             $(TEST_DIR)/cxx_test $(TEST_DIR)/kernel_test $(TEST_DIR)/internal_test \
             $(TEST_DIR)/libnuma_static $(TEST_DIR)/libnuma_preload $(TEST_DIR)/fuzz_test \
             $(TEST_DIR)/trim_deadlock_test $(TEST_DIR)/segment_test \
             $(TEST_DIR)/orphan_test $(TEST_DIR)/fault_test $(TEST_DIR)/small_heap_test \
             $(TEST_DIR)/abi_0_1 $(TEST_DIR)/abi_0_1_symver $(TEST_DIR)/abi_0_2 \
             $(TEST_DIR)/usable_test $(TEST_DIR)/last_thread_test $(TEST_DIR)/peak_test \
             $(TEST_DIR)/fork_handlers_test $(TEST_DIR)/fork_window_test \
             $(TEST_DIR)/secure_test $(TEST_DIR)/memlock_test $(TEST_DIR)/memlock_static

TEST_COMMON := tests/test_util.h tests/slab_util.h tests/api_names.h tests/tests.mk

.PHONY: test test-build test-packages fuzz

# The library is built by a second make, after the packages: the top one
# decided HAVE_URING before liburing-dev could be installed.  The DEBUG=1
# library (assertions on) goes to $(BUILD)/debug; the debug_* tests run on it.
test: test-packages
	@$(MAKE) --no-print-directory lib tool test-build
	@$(MAKE) --no-print-directory lib BUILD=$(BUILD)/debug DEBUG=1
	@BUILD=$(BUILD) SO=$(SO) sh tests/run.sh $(TESTS)

# The fuzzers alone, for longer: make fuzz FUZZ_SECONDS=3600
FUZZ_SECONDS ?= 300
fuzz: test-packages
	@$(MAKE) --no-print-directory lib test-build
	@BUILD=$(BUILD) SO=$(SO) FUZZ_SECONDS=$(FUZZ_SECONDS) HS_TEST_TIMEOUT=$$(($(FUZZ_SECONDS) + 120)) \
	    sh tests/run.sh fuzz fuzz_mt fuzz_libfuzzer

test-packages:
	@sh scripts/ensure-packages.sh $(TEST_PACKAGES)

# fuzz_libfuzzer needs clang with its libFuzzer runtime; without, the test
# is skipped (tests/run.sh says why).
LIBFUZZER_PROBE := int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return !d + (int)n; }
# bench/sizes' recorder, rss_replay and rss_layout, for tests/replay, and the
# exact-peak tools, for tests/peak (rules in bench/bench.mk)
TEST_REPLAY_TOOLS := $(BUILD)/bench/libsizerecord.so $(BUILD)/bench/rss_replay \
                     $(BUILD)/bench/rss_layout
TEST_PEAK_TOOLS := $(BUILD)/bench/exit_hwm $(BUILD)/bench/bench_memory
test-build: $(TEST_BINS) $(TEST_REPLAY_TOOLS) $(TEST_PEAK_TOOLS)
	@if echo '$(LIBFUZZER_PROBE)' | $(FUZZ_CC) -fsanitize=fuzzer -x c - -o $(TEST_DIR)/.libfuzzer-probe \
	    >/dev/null 2>&1; then $(MAKE) --no-print-directory $(TEST_DIR)/fuzz_libfuzzer; \
	else echo "  (no libFuzzer with $(FUZZ_CC): fuzz_libfuzzer not built)"; rm -f $(TEST_DIR)/fuzz_libfuzzer; fi
	@rm -f $(TEST_DIR)/.libfuzzer-probe

# plain programs (run under LD_PRELOAD, or not preloaded at all: dlopen_test)
$(TEST_DIR)/%_test: tests/%_test.c $(TEST_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(TEST_LDLIBS)

# a program linked with a library whose constructor registers fork handlers
# that allocate; --no-as-needed: the program names none of its symbols but
# the counters, and the library must load before the preloaded allocator's
# constructor runs
$(TEST_DIR)/libforkhandlers.so: tests/fork_handlers_lib.c tests/fork_handlers_lib.h $(TEST_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -shared -fPIC $< -o $@

$(TEST_DIR)/fork_handlers_test: tests/fork_handlers_test.c tests/fork_handlers_lib.h $(TEST_COMMON) \
                                $(TEST_DIR)/libforkhandlers.so
	$(CC) $(TEST_CFLAGS) $< -o $@ -Wl,--no-as-needed -L$(TEST_DIR) -lforkhandlers \
	    -Wl,-rpath,'$$ORIGIN' $(TEST_LDLIBS)

# api_test against the static archive, calling hugeslab_* names
$(TEST_DIR)/api_test_static: tests/api_test.c $(TEST_COMMON) include/hugeslab.h $(AR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -DHS_PREFIX $< -o $@ $(AR_LIB) $(LIBS) $(TEST_LDLIBS)

# memlock_test linked statically with the archive: its mlockall is the
# archive's, and the registry .bss until the library maps it read-only
$(TEST_DIR)/memlock_static: tests/memlock_test.c $(TEST_COMMON) include/hugeslab.h $(AR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -DHS_PREFIX -static $< -o $@ $(AR_LIB) $(LIBS)

# run setuid by tests/secure.sh: the archive, as a setuid program links it
$(TEST_DIR)/secure_test: tests/secure_test.c include/hugeslab.h $(AR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(AR_LIB) $(LIBS) $(TEST_LDLIBS)

# the fast paths' arithmetic, against the library's objects (the archive
# hides internal symbols) and its own headers
$(TEST_DIR)/internal_test: tests/internal_test.c $(TEST_COMMON) $(LIB_HDR) $(TEST_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Isrc $< -o $@ $(TEST_LIB_OBJ) $(LIBS) $(TEST_LDLIBS)

# segment's pool and purge state machine, tiny's orphan and trim paths, and
# the fork window's heap flag, against the library's objects
$(TEST_DIR)/segment_test $(TEST_DIR)/orphan_test $(TEST_DIR)/fork_window_test: $(TEST_DIR)/%_test: tests/%_test.c $(TEST_COMMON) $(LIB_HDR) $(TEST_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Isrc $< -o $@ $(TEST_LIB_OBJ) $(LIBS) $(TEST_LDLIBS)

# libnuma next to hugeslab: linked statically with both archives, and
# dynamically with libnuma.so for a run under LD_PRELOAD
$(TEST_DIR)/libnuma_static: tests/libnuma_test.c $(TEST_COMMON) include/hugeslab.h $(AR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -DHS_STATIC_LINK -static $< -o $@ $(AR_LIB) -lnuma $(LIBS) 2>$@.log || \
	    { cat $@.log >&2; exit 1; }
	@# libnuma.a's own warning about getaddrinfo in static programs is not ours
	@grep -v -e 'in function .affinity_ip' -e "Using 'getaddrinfo'" $@.log >&2 || true

$(TEST_DIR)/libnuma_preload: tests/libnuma_test.c $(TEST_COMMON) include/hugeslab.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ -lnuma $(TEST_LDLIBS)

# kernel accounting tests call hugeslab_stats(): linked to the shared library
$(TEST_DIR)/kernel_test: tests/kernel/kernel_test.c include/hugeslab.h $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< -o $@ -L$(BUILD) -lhugeslab -Wl,-rpath,$(abspath $(BUILD))

# hugeslab_stats as programs built against each version's header call it
# (tests/abi_test.c), each run on $(SO) through its rpath: 0.1's struct
# linked as against 0.1 (tests/abi_stub.c stands in for 0.1's library, whose
# names had no version), 0.1's struct bound to hugeslab_stats@HUGESLAB_0.1,
# and today's header.
ABI_STUB := $(TEST_DIR)/abi_stub/libhugeslab.so.0
$(ABI_STUB): tests/abi_stub.c tests/tests.mk
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -Wall -Wextra -Werror -Wl,-soname,$(notdir $@) $< -o $@

$(TEST_DIR)/abi_0_1: tests/abi_test.c $(TEST_COMMON) $(ABI_STUB) $(SO)
	$(CC) $(TEST_CFLAGS) -DHS_ABI_0_1 $< -o $@ $(ABI_STUB) -Wl,-rpath,$(abspath $(BUILD)) $(TEST_LDLIBS)

$(TEST_DIR)/abi_0_1_symver: tests/abi_test.c $(TEST_COMMON) $(SO)
	$(CC) $(TEST_CFLAGS) -DHS_ABI_0_1 -DHS_ABI_SYMVER $< -o $@ -L$(BUILD) -lhugeslab \
	    -Wl,-rpath,$(abspath $(BUILD)) $(TEST_LDLIBS)

$(TEST_DIR)/abi_0_2: tests/abi_test.c $(TEST_COMMON) include/hugeslab.h $(SO)
	$(CC) $(TEST_CFLAGS) $< -o $@ -L$(BUILD) -lhugeslab -Wl,-rpath,$(abspath $(BUILD)) $(TEST_LDLIBS)

$(TEST_DIR)/cxx_test: tests/cxx_test.cpp tests/tests.mk
	@mkdir -p $(dir $@)
	$(CXX) $(TEST_CXXFLAGS) $< -o $@ $(TEST_LDLIBS)

# sanitizer builds
define san_rules
$(BUILD)/$(1)/%.o: src/%.c tests/tests.mk
	@mkdir -p $$(dir $$@)
	$$($(1)_CC) $$(SAN_LIBCFLAGS) $(2) -MMD -MP -c $$< -o $$@
	objcopy $$(SAN_LOCALIZE) $$@

$(BUILD)/$(1)/gen/%.o: $(BUILD)/gen/%.c tests/tests.mk
	@mkdir -p $$(dir $$@)
	$$($(1)_CC) $$(SAN_LIBCFLAGS) $(2) -MMD -MP -c $$< -o $$@
	objcopy $$(SAN_LOCALIZE) $$@
endef
$(eval $(call san_rules,tsan,$(TSAN_FLAGS)))
$(eval $(call san_rules,ubsan,$(UBSAN_FLAGS)))
$(eval $(call san_rules,fuzz,$(FUZZ_FLAGS)))
$(eval $(call san_rules,fault,$(FAULT_FLAGS)))
-include $(TSAN_OBJ:.o=.d) $(UBSAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) $(FAULT_OBJ:.o=.d)

# the OS layer's calls failing on demand (src/os/fault.h): the library's
# objects built with HS_FAULT_INJECTION, which no other build has
$(TEST_DIR)/fault_test: tests/fault_test.c $(TEST_COMMON) include/hugeslab.h $(FAULT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Isrc -DHS_FAULT_INJECTION=1 $< $(FAULT_OBJ) -o $@ $(LIBS) $(TEST_LDLIBS)

$(TEST_DIR)/stress_tsan: tests/stress_test.c $(TEST_COMMON) include/hugeslab.h $(TSAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(TEST_CFLAGS)) -O1 $(TSAN_FLAGS) -DHS_PREFIX $< $(TSAN_OBJ) -o $@ $(LIBS) $(TEST_LDLIBS)

$(TEST_DIR)/big_stress_tsan: tests/big_stress_test.c $(TEST_COMMON) include/hugeslab.h $(TSAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(TEST_CFLAGS)) -O1 $(TSAN_FLAGS) $< $(TSAN_OBJ) -o $@ $(LIBS) $(TEST_LDLIBS)

$(TEST_DIR)/stress_ubsan: tests/stress_test.c $(TEST_COMMON) include/hugeslab.h $(UBSAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O2,$(TEST_CFLAGS)) -O1 $(UBSAN_FLAGS) -DHS_PREFIX $< $(UBSAN_OBJ) -o $@ $(LIBS) $(TEST_LDLIBS)

# the differential fuzzer under libFuzzer, on the hugeslab_* names of the
# library's objects (libFuzzer itself keeps the system allocator)
$(TEST_DIR)/fuzz_libfuzzer: tests/fuzz_test.c $(TEST_COMMON) include/hugeslab.h $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -O2,$(TEST_CFLAGS)) -O1 -fsanitize=fuzzer,undefined -fno-sanitize-recover=undefined \
	    -DHS_PREFIX -DHS_LIBFUZZER $< $(FUZZ_OBJ) -o $@ $(LIBS) $(TEST_LDLIBS)
