#!/bin/sh
# Symbol hygiene: the shared library and the static archive define, as
# global symbols, exactly the malloc API and hugeslab_* names, nothing of the
# library's internals (which would clash with, or interpose on, other
# libraries' names: libnuma's numa_init and numa_bind, for one). The shared
# library also defines glibc's other names for its allocator (__libc_malloc
# and the rest, cfree), which the archive leaves to glibc's, and mlockall and
# munlockall, which the archive leaves to glibc too; both define prctl. The shared
# library's symbol versions (src/hugeslab.map). And the shared library's
# layout that src/hugeslab.ld and scripts/load-offset make.
#
# Usage: tests/symbols.sh LIBHUGESLAB.so LIBHUGESLAB.a
# Exit status 0 when both are clean, 1 otherwise (lines "FAIL: ...").
set -u
so=$1
ar=$2
API="malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc pvalloc
malloc_usable_size free_sized free_aligned_sized mallopt malloc_trim malloc_stats mallinfo
mallinfo2 malloc_info"
LIBC_NAMES="__libc_malloc __libc_free __libc_calloc __libc_realloc __libc_memalign __libc_valloc
__libc_pvalloc __libc_mallopt __libc_mallinfo cfree"
SO_ONLY_NAMES="$LIBC_NAMES"
# mlockall and munlockall: the registry's read-only zeroes, which mlockall
# would make resident, given back (src/api/memlock.c); prctl: the program
# turning THP off for itself (src/api/prctl.c). Both forms, each.
BOTH_NAMES="mlockall munlockall prctl"
SO_NAMES="$SO_ONLY_NAMES $BOTH_NAMES"
bad=0

# check WHAT NAMES OTHERS: NAMES is one defined global name a line, OTHERS
# the names beyond the API and hugeslab_* that it must define (and may)
check() {
    what=$1
    names=$2
    others=$3
    count=$(printf '%s\n' "$names" | grep -c .)
    stray=$(printf '%s\n' "$names" | grep -v '^hugeslab_' | grep -v -x -F "$(printf '%s\n' $API $others)")
    if [ -n "$stray" ]; then
        echo "FAIL: $what defines internal names as global: $(echo $stray)"
        bad=1
    fi
    for name in $API $others hugeslab_malloc hugeslab_free hugeslab_stats; do
        if ! printf '%s\n' "$names" | grep -q -x "$name"; then
            echo "FAIL: $what does not define $name"
            bad=1
        fi
    done
    echo "$what: $count global names, $(printf '%s\n' "$names" | grep -c '^hugeslab_') of them hugeslab_*"
}

for f in "$so" "$ar"; do
    if [ ! -f "$f" ]; then
        echo "FAIL: $f not built"
        exit 1
    fi
done

# The shared library: its dynamic symbol table, read by two tools. The
# names of the versions themselves (HUGESLAB_0.1, absolute symbols the link
# adds for each) are not code.
VERSIONS='HUGESLAB_[0-9]*\.[0-9]*'
check "$so (nm -D)" "$(nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//' |
    grep -v -x "$VERSIONS" | sort -u)" "$SO_NAMES"
check "$so (readelf)" "$(readelf -W --dyn-syms "$so" |
    awk '$5 == "GLOBAL" || $5 == "WEAK" { if ($7 != "UND") print $8 }' | sed 's/@.*//' |
    grep -v -x "$VERSIONS" | sort -u)" "$SO_NAMES"

# The versions: the malloc family in the base version, none of ours (a
# program linked against glibc asks for malloc@GLIBC_2.2.5, which a name
# under HUGESLAB_0.1 would not give it under LD_PRELOAD); hugeslab_stats
# under HUGESLAB_0.1 (0.1's struct) and HUGESLAB_0.2, the default; every
# other hugeslab_* name under HUGESLAB_0.1, which 0.1's unversioned
# references bind to.
dyn=$(readelf -W --dyn-syms "$so" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && $7 != "ABS" {print $8}')
for name in $API $SO_NAMES; do
    got=$(printf '%s\n' "$dyn" | grep -E "^$name(@|\$)" | tr '\n' ' ')
    if [ "$got" != "$name " ]; then
        echo "FAIL: $so: $name is not in the base version alone: $got"
        bad=1
    fi
done
for want in hugeslab_stats@HUGESLAB_0.1 hugeslab_stats@@HUGESLAB_0.2; do
    if ! printf '%s\n' "$dyn" | grep -q -x -F "$want"; then
        echo "FAIL: $so does not define $want"
        bad=1
    fi
done
others=$(printf '%s\n' "$dyn" | grep '^hugeslab_' | grep -v '^hugeslab_stats@' | grep -v '@@HUGESLAB_0\.1$')
if [ -n "$others" ]; then
    echo "FAIL: $so: hugeslab_* names not under HUGESLAB_0.1: $(echo $others)"
    bad=1
fi
echo "$so: versions $(readelf -V "$so" | sed -n '/version_d/,/version_r/p' | awk '/Flags: none/ {printf "%s ", $NF}'); hugeslab_stats: $(printf '%s\n' "$dyn" | grep '^hugeslab_stats@' | tr '\n' ' ')"

# The archive: every member's defined global and weak symbols.
check "$ar (nm)" "$(nm -g --defined-only "$ar" | awk 'NF == 3 {print $3}' | sort -u)" "$BOTH_NAMES"
for name in $SO_ONLY_NAMES; do
    if nm -g --defined-only "$ar" | awk 'NF == 3 {print $3}' | grep -q -x "$name"; then
        echo "FAIL: $ar defines $name, which a static link leaves to glibc's archive"
        bad=1
    fi
done
hidden=$(readelf -W -s "$ar" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $6 != "DEFAULT" && $7 != "UND" {print $8}')
if [ -n "$hidden" ]; then
    echo "FAIL: $ar keeps hidden names global: $(echo $hidden)"
    bad=1
fi

# The layout: the first loadable segment at address 0 and file offset
# HS_LOAD_OFFSET (the symbol the link defines from the Makefile's
# LIB_LOAD_OFFSET), which places the library that far past a 2 MiB boundary,
# and .init, where the code every process runs starts, on a 64 KiB boundary
# of the library's address space there. A strip that lays the file out
# again loses the offset.
want=$(nm "$so" 2>/dev/null | awk '$3 == "HS_LOAD_OFFSET" {print "0x" $1}')
[ -n "$want" ] && want=$(printf '0x%x' "$want")
first=$(readelf -lW "$so" | awk '$1 == "LOAD" {print $2, $3; exit}')
init=$(readelf -SW "$so" | sed 's/^ *\[ *[0-9]*\]//' | awk '$1 == ".init" {print "0x" $3}')
[ -n "$init" ] && init=$(printf '0x%x' "$init")
if [ -z "$want" ] || [ -z "$init" ]; then
    echo "FAIL: $so has no HS_LOAD_OFFSET symbol or no .init section"
    bad=1
elif [ "$first" != "$(printf '0x%06x 0x%016x' "$want" 0)" ]; then
    echo "FAIL: $so's first segment (offset, address) is $first, not ($want, 0)"
    bad=1
elif [ $(((init + want) % 0x10000)) -ne 0 ]; then
    echo "FAIL: $so's .init at $init does not start a 64 KiB window at offset $want"
    bad=1
else
    echo "$so: first segment at file offset $want, .init at $init"
fi

# The code every process runs, from .init to the end of .fini, in at most
# TEXT_PAGES_MAX pages: the kernel's fault-around maps all of it into every
# process that preloads the library, so each page more is 4 KiB more RSS in
# every one (an eleventh page: 44 KiB of the library's text resident at a
# program's start, against 40). Code that not every process runs goes to
# HS_SELDOM or HS_APART (src/common/common.h).
TEXT_PAGES_MAX=10
fini_end=$(readelf -SW "$so" | sed 's/^ *\[ *[0-9]*\]//' | awk '$1 == ".fini" {print "0x" $3, "0x" $5}')
if [ -n "$init" ] && [ -n "$fini_end" ]; then
    set -- $fini_end
    pages=$(((($1 + $2 + 4095) / 4096) - init / 4096))
    if [ "$pages" -gt "$TEXT_PAGES_MAX" ]; then
        echo "FAIL: $so's text every process runs spans $pages pages, more than $TEXT_PAGES_MAX"
        bad=1
    else
        echo "$so: the text every process runs spans $pages pages (at most $TEXT_PAGES_MAX)"
    fi
else
    echo "FAIL: $so has no .fini section"
    bad=1
fi

[ $bad -eq 0 ] && echo PASS
exit $bad
