# The hugeslab command, included from the top Makefile after
# packaging/install.mk (which defines LIBDIR and BINDIR).
#
#   make tool      build $(BUILD)/hugeslab (needs libnuma-dev and libhugetlbfs-dev)
#
# It links libnuma and libhugetlbfs; the library never does (tests/symbols.sh).
# Its sources are outside src/, so the library's wildcard never picks them up.

CLI          := $(BUILD)/hugeslab
CLI_SRC      := $(wildcard tools/hugeslab/*.c)
CLI_OBJ      := $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(CLI_SRC))
CLI_LIBS     := -lnuma -lhugetlbfs
# Recursive: LIBDIR may be set on the command line of `make install`.
CLI_CFLAGS    = $(CSTD) $(WARN) -O2 -g -DHS_CLI_VERSION='"$(VERSION)"' \
                -DHS_CLI_LIBDIR='"$(LIBDIR)"' \
                -DHS_CLI_PROFILES='"$(sort $(notdir $(basename $(PROFILES))))"'
CLI_HEADERS  := $(shell printf '\043include <numa.h>\n\043include <hugetlbfs.h>\n' | \
                  $(CC) -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)

.PHONY: tool
ifeq ($(CLI_HEADERS),1)
tool: $(CLI)
else
tool:
	@echo "hugeslab: the hugeslab command needs libnuma-dev and libhugetlbfs-dev" \
	      "(apt-get install libnuma-dev libhugetlbfs-dev); not built"
endif

# The flags as last compiled, rewritten only when they change: LIBDIR is
# written into the command (run's default library), and `make install
# LIBDIR=...` after `make` recompiled nothing, installing a command that
# preloaded the library from where it had been built for.
CLI_FLAGS_STAMP := $(BUILD)/tools/cli-flags
$(CLI_FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(CLI_CFLAGS)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/tools/%.o: tools/%.c tools/hugeslab/cli.h tools/hugeslab/hugeslab.mk $(PROFILES) \
                    $(CLI_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CLI_CFLAGS) -c $< -o $@

$(CLI): $(CLI_OBJ)
	$(CC) -o $@ $(CLI_OBJ) $(CLI_LIBS)
