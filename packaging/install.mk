# Installation, included from the top Makefile (which defines BUILD, SO,
# SO_REAL, SONAME, AR_LIB, VERSION and LIBS).
#
#   make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]
#   make uninstall [PREFIX=...] [DESTDIR=...]
#
# Installs the shared library (real file, soname link, development link), the
# static archive, include/hugeslab.h, hugeslab.pc, the man pages and the
# hugeslab command. After an
# install into the running system (no DESTDIR) ldconfig refreshes the loader's
# cache, so programs find libhugeslab.so.0 without LD_LIBRARY_PATH.

PREFIX       ?= /usr/local
DESTDIR      ?=
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
BINDIR       ?= $(PREFIX)/bin
MANDIR       ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install

PC_FILE      := $(BUILD)/hugeslab.pc
MAN_PAGES    := $(wildcard man/*.1 man/*.7)
# What a static link needs besides the archive: the threads library and,
# when the purge backend was built with it, liburing.
LIBS_PRIVATE := -pthread $(ARCHIVE_LIBS)

.PHONY: install uninstall

# Rebuilt when the prefix changes, since the paths are written into it.
$(PC_FILE): packaging/hugeslab.pc.in packaging/install.mk include/hugeslab.h FORCE
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(strip $(LIBS_PRIVATE))|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "  GEN     $@"; fi

FORCE:

# The command (tools/hugeslab) is installed when it could be built.
install: lib tool $(PC_FILE)
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 755 $(SO_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SO_REAL)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libhugeslab.so
	$(INSTALL) -m 644 $(AR_LIB) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 644 include/hugeslab.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 $(PC_FILE) $(DESTDIR)$(PKGCONFIGDIR)/
	@if [ -x $(CLI) ]; then \
	    echo "$(INSTALL) -D -m 755 $(CLI) $(DESTDIR)$(BINDIR)/hugeslab"; \
	    $(INSTALL) -D -m 755 $(CLI) $(DESTDIR)$(BINDIR)/hugeslab; fi
	$(foreach m,$(MAN_PAGES),$(INSTALL) -d $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m))) && \
	    $(INSTALL) -m 644 $(m) $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/ &&) true
	@if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache ] && command -v ldconfig >/dev/null; then \
	    ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(notdir $(SO_REAL)) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libhugeslab.so $(DESTDIR)$(LIBDIR)/libhugeslab.a \
	      $(DESTDIR)$(INCLUDEDIR)/hugeslab.h $(DESTDIR)$(PKGCONFIGDIR)/hugeslab.pc \
	      $(DESTDIR)$(BINDIR)/hugeslab \
	      $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	@if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache ] && command -v ldconfig >/dev/null; then \
	    ldconfig; fi
