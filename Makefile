# hugeslab build.  `make` builds the library, `make test` runs every test,
# `make bench` runs the main comparison.  Both install missing Debian packages
# when run as root (scripts/ensure-packages.sh), else print the command.
# `make install` / `make uninstall` take PREFIX (default /usr/local) and DESTDIR.

CC       ?= cc
BUILD    ?= build
DEBUG    ?= 0

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CSTD     := -std=c11 -D_GNU_SOURCE
OPT      := -O2 -fno-plt -fno-semantic-interposition
ifeq ($(DEBUG),1)
OPT      := -O1 -g -DHS_DEBUG=1
endif
LIBCFLAGS := $(CSTD) $(WARN) $(OPT) -g -fPIC -fvisibility=hidden -ftls-model=initial-exec \
             -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
             -pthread -Iinclude -Isrc
# nodelete: a dlclose()d copy must stay mapped, since its purge thread and its
# thread-exit destructors may still run code in it.
# pack-relative-relocs: the relative relocations (the empty heap's and the
# option tables' pointers, 333 of them) packed as DT_RELR take 300 bytes
# instead of 8 KiB, a page less of the library mapped into every process.
# hugeslab.ld: the library's whole layout, for what a process keeps resident
# of the library and of libc (see its comment). LIB_LOAD_OFFSET: the file
# offset scripts/load-offset gives the first segment after the link, which
# decides where libc lies below the library (the script's comment): 0xf000
# puts libc at page 13 of a 64 KiB window (src/hugeslab.ld's comment).
LIB_LOAD_OFFSET := 0xf000
# hugeslab.map: the exported names and their versions (see its comment);
# --exclude-libs keeps the archives' names (liburing's) out of the export
# list, which the map's version nodes cannot close with "local: *".
LIBLDFLAGS := -shared -pthread -Wl,-z,now -Wl,-z,nodelete -Wl,-z,pack-relative-relocs \
              -Wl,--version-script=src/hugeslab.map -Wl,--exclude-libs,ALL -Wl,-T,src/hugeslab.ld \
              -Wl,--defsym=HS_LOAD_OFFSET=$(LIB_LOAD_OFFSET)
# The build machine's compiler, for the tool the library's link runs.
HOSTCC   ?= cc
LIBS     :=

# io_uring purge backend, when liburing's headers are installed. Its archive,
# where there is one, goes inside the shared library: liburing.so cost every
# process four mappings of its own (24 KiB of RSS) and the loader's work, for
# code only the purge thread runs, and only when asked to; inside, its code
# adds 6 KiB to ours.
HAVE_URING := $(shell printf '\043include <liburing.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)
LIBCFLAGS += -DHS_HAVE_URING=$(HAVE_URING)
# What a program linking libhugeslab.a needs besides it (hugeslab.pc's
# Libs.private): the library's own link may use liburing's archive instead.
ARCHIVE_LIBS :=
ifeq ($(HAVE_URING),1)
ARCHIVE_LIBS += -luring
URING_ARCHIVE := $(shell $(CC) -print-file-name=liburing.a)
ifneq ($(wildcard $(URING_ARCHIVE)),)
LIBS     += $(URING_ARCHIVE)
else
LIBS     += -luring
endif
endif

# src/segment/registry.c first: see the comment at its top.
LIB_SRC  := src/segment/registry.c $(filter-out src/segment/registry.c,$(wildcard src/*/*.c))
PROFILES := $(wildcard configs/*.conf)
LIB_OBJ  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/profiles.o
LIB_HDR  := include/hugeslab.h $(wildcard src/*/*.h)
# Each object lists the headers it really includes (-MMD, in a .d file next
# to it); -MP keeps a deleted header from breaking the build.
DEPFLAGS := -MMD -MP

# The version comes from the public header; the soname carries the major
# number only, so programs keep working across minor releases: a name whose
# ABI changes keeps its old definition under its old symbol version
# (src/hugeslab.map).
VERSION_MAJOR := $(shell sed -n 's/^\#define HUGESLAB_VERSION_MAJOR //p' include/hugeslab.h)
VERSION_MINOR := $(shell sed -n 's/^\#define HUGESLAB_VERSION_MINOR //p' include/hugeslab.h)
VERSION  := $(VERSION_MAJOR).$(VERSION_MINOR)
SONAME   := libhugeslab.so.$(VERSION_MAJOR)

# $(SO) is a link to the soname's link, which points at the real file.
SO       := $(BUILD)/libhugeslab.so
SO_REAL  := $(BUILD)/libhugeslab.so.$(VERSION)
AR_LIB   := $(BUILD)/libhugeslab.a

.PHONY: all lib test bench bench-full clean format format-check check-layers packages-test packages-bench
all: lib tool
lib: $(SO) $(AR_LIB)

# Code that runs at start-up, in messages and statistics, on the purge
# thread, once per mapping or SuperSlab header (segment.c, the system calls
# of os/memory.c) or (numa.c) once per new SuperSlab and every few dozen
# refills, never on a malloc's or free's fast path: optimised for size. Each page of text a
# process touches brings its neighbours in (the kernel maps up to 16 pages
# around a fault in a file), so the library's text is resident whole: 68 KiB
# with these at -O2, 60 KiB at -Os when these were first chosen. segment.c
# and os/memory.c took .text from 0xa01c to 0x9b9c bytes (ten pages again).
COLD_OPT := $(if $(filter 1,$(DEBUG)),,-Os)
COLD_SRC := src/api/report.c src/api/compat.c src/api/memlock.c src/api/prctl.c src/common/options.c src/common/text.c src/common/log.c \
            src/os/files.c src/os/fault.c src/os/memory.c src/segment/frontier.c src/segment/purge.c \
            src/segment/segment.c \
            src/thp/thp.c src/numa/numa.c
$(BUILD)/obj/%.o: src/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(LIBCFLAGS) $(if $(filter $<,$(COLD_SRC)),$(COLD_OPT)) $(DEPFLAGS) -c $< -o $@

$(BUILD)/gen/profiles.c: $(PROFILES) scripts/gen-profiles.sh
	@mkdir -p $(dir $@)
	scripts/gen-profiles.sh $(PROFILES) > $@

$(BUILD)/obj/gen/profiles.o: $(BUILD)/gen/profiles.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(LIBCFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/load-offset: scripts/load-offset.c
	@mkdir -p $(dir $@)
	$(HOSTCC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $<

$(SO_REAL): $(LIB_OBJ) src/hugeslab.map src/hugeslab.ld $(BUILD)/load-offset
	$(CC) $(LIBLDFLAGS) -Wl,-soname,$(SONAME) -o $@.tmp $(LIB_OBJ) $(LIBS)
	$(BUILD)/load-offset $@.tmp $(LIB_LOAD_OFFSET)
	mv $@.tmp $@

$(SO): $(SO_REAL)
	ln -sf $(notdir $(SO_REAL)) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# The archive holds one relocatable object in which every hidden symbol is
# made local, so that it exports only what the shared library exports and a
# program can link it next to libnuma (whose numa_* names hugeslab's internals
# would otherwise clash with).  Tests that need internals link $(LIB_OBJ).
# Without api/compat.o: the older versions of names are for programs linked
# against an older shared library.
ARCHIVE_OBJ := $(filter-out $(BUILD)/obj/api/compat.o,$(LIB_OBJ))
$(BUILD)/obj/hugeslab-all.o: $(ARCHIVE_OBJ)
	ld -r -o $@ $(ARCHIVE_OBJ)
	objcopy --localize-hidden $@

$(AR_LIB): $(BUILD)/obj/hugeslab-all.o
	@rm -f $@
	ar rcs $@ $<

include tests/tests.mk
include bench/bench.mk
include packaging/install.mk
include tools/hugeslab/hugeslab.mk

# Every C and C++ file of the tree, as scripts/format-check.sh lists them.
format:
	clang-format -i $$(sh scripts/format-check.sh --list)

# Fails, naming the files, when one is not formatted as .clang-format says
# (make test runs it as the test "format").
format-check:
	@sh scripts/format-check.sh

# Each module header's contract, checked on the sources: includes point down
# the layers, system calls and kernel files only in src/os/ (make test runs
# it as the test "layers"; --graph prints who includes whom).
check-layers:
	@python3 scripts/check-layers.py --graph

-include $(LIB_OBJ:.o=.d)

clean:
	rm -rf $(BUILD)
