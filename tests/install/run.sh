#!/bin/sh
# Installation: `make install` into a temporary DESTDIR, then a program built
# with `pkg-config --cflags --libs hugeslab` against it, shared and static,
# then `make uninstall`. Prints PASS/FAIL/SKIP lines (install/...).
#
# Usage: tests/install/run.sh [BUILD]       Environment: CC, MAKE
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
CC=${CC:-cc}
MAKE=${MAKE:-make}
prefix=/usr/local

if ! command -v pkg-config >/dev/null; then
    for c in shared static uninstall; do echo "SKIP install/$c: no pkg-config (apt-get install pkgconf)"; done
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/root
log=$tmp/log
failed=0
fail() { echo "FAIL install/$1: $2"; failed=1; }

if ! (cd "$root" && $MAKE --no-print-directory -s install BUILD="$BUILD" CC="$CC" \
      DESTDIR="$dest" PREFIX="$prefix") >"$log" 2>&1; then
    for c in shared static uninstall; do fail "$c" "make install failed: $(tail -n 3 "$log" | tr '\n' ' ')"; done
    exit 1
fi
lib=$dest$prefix/lib
missing=""
for f in lib/libhugeslab.so.0.2 lib/libhugeslab.so.0 lib/libhugeslab.so lib/libhugeslab.a \
         include/hugeslab.h lib/pkgconfig/hugeslab.pc share/man/man7/hugeslab.7; do
    [ -e "$dest$prefix/$f" ] || missing="$missing $f"
done
[ "$(readlink "$lib/libhugeslab.so.0")" = libhugeslab.so.0.2 ] || missing="$missing (libhugeslab.so.0 -> libhugeslab.so.0.2)"

export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
cflags=$(pkg-config --cflags hugeslab) && libs=$(pkg-config --libs hugeslab) &&
    static_libs=$(pkg-config --static --libs hugeslab)
[ -n "${libs:-}" ] || missing="$missing (pkg-config --libs hugeslab: nothing)"

# ---- shared: the soname is what the program asks for; rpath finds it ----
prog=$tmp/prog_shared
# shellcheck disable=SC2086
if [ -n "$missing" ]; then
    fail shared "not installed:$missing"
elif ! $CC "$root/tests/install/install_prog.c" -o "$prog" $cflags $libs -Wl,-rpath,"$lib" >"$log" 2>&1; then
    fail shared "cc \$(pkg-config --cflags --libs hugeslab) failed: $(head -c 300 "$log")"
elif ! readelf -d "$prog" | grep -q 'NEEDED.*\[libhugeslab\.so\.0\]'; then
    fail shared "the program does not ask for the soname libhugeslab.so.0: $(readelf -d "$prog" | grep NEEDED | tr '\n' ' ')"
elif ! out=$("$prog" 2>&1) || [ "${out#OK}" = "$out" ]; then
    fail shared "the program built with rpath $lib: $out"
else
    # Without rpath nor LD_LIBRARY_PATH the loader cannot find it (README says
    # so); with LD_LIBRARY_PATH it can.
    $CC "$root/tests/install/install_prog.c" -o "$prog.norpath" $cflags $libs >/dev/null 2>&1
    no_path=$("$prog.norpath" 2>&1)
    with_path=$(LD_LIBRARY_PATH="$lib" "$prog.norpath" 2>&1)
    case "$no_path" in
    *libhugeslab.so.0*"cannot open shared object"*)
        if [ "${with_path#OK}" != "$with_path" ]; then
            echo "PASS install/shared"
        else
            fail shared "with LD_LIBRARY_PATH=$lib: $with_path"
        fi ;;
    *) fail shared "without rpath the program should not find libhugeslab.so.0, got: $no_path" ;;
    esac
fi

# ---- static: the archive plus Libs.private ----
prog=$tmp/prog_static
# -l:libhugeslab.a picks the archive where both kinds are installed.
static_libs=$(echo "${static_libs:-}" | sed 's/-lhugeslab\b/-l:libhugeslab.a/')
# shellcheck disable=SC2086
if [ -n "$missing" ]; then
    fail static "not installed:$missing"
elif ! $CC "$root/tests/install/install_prog.c" -o "$prog" $cflags $static_libs >"$log" 2>&1; then
    fail static "cc \$(pkg-config --cflags --static --libs hugeslab) failed: $(head -c 300 "$log")"
elif readelf -d "$prog" | grep -q 'NEEDED.*libhugeslab'; then
    fail static "the static program still needs libhugeslab.so"
elif ! out=$("$prog" 2>&1) || [ "${out#OK}" = "$out" ]; then
    fail static "$out"
else
    echo "PASS install/static"
fi

# ---- the command, when it was built, finds the installed library ----
if [ -x "$BUILD/hugeslab" ] || [ -x "$root/$BUILD/hugeslab" ]; then
    cmd=$dest$prefix/bin/hugeslab
    maps=$("$cmd" run -- cat /proc/self/maps 2>&1)
    if [ ! -x "$cmd" ]; then
        fail command "bin/hugeslab not installed"
    elif ! echo "$maps" | grep -q "$lib/libhugeslab.so.0.2"; then
        fail command "bin/hugeslab run does not preload $lib/libhugeslab.so.0.2: $(echo "$maps" | grep -i hugeslab | head -3)"
    else
        echo "PASS install/command"
    fi
fi

# ---- uninstall leaves nothing but the folders ----
if ! (cd "$root" && $MAKE --no-print-directory -s uninstall BUILD="$BUILD" CC="$CC" \
      DESTDIR="$dest" PREFIX="$prefix") >"$log" 2>&1; then
    fail uninstall "make uninstall failed: $(tail -n 3 "$log" | tr '\n' ' ')"
else
    left=$(find "$dest" ! -type d | sed "s|^$dest||" | tr '\n' ' ')
    if [ -n "$left" ]; then fail uninstall "left behind: $left"; else echo "PASS install/uninstall"; fi
fi
exit $failed
