#!/bin/sh
# Usage: format-check.sh [--list] [FILE...]
# Fails, naming each file, when one differs from what clang-format makes of
# it with the root .clang-format; exit 77 (skipped) without clang-format.
# Without FILE: every C and C++ file of the tree (git's tracked and new
# files, or every one below the root outside a git checkout). --list prints
# that list instead (make format uses it).
set -u
cd "$(dirname "$0")/.."
list_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- '*.c' '*.h' '*.cpp'
    else
        find . -path './build*' -prune -o \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) \
            -type f -print | sed 's|^\./||'
    fi | sort -u
}
if [ "${1:-}" = --list ]; then
    list_files
    exit 0
fi
if ! command -v clang-format >/dev/null 2>&1; then
    echo "SKIP: clang-format is not installed (Debian package clang-format)"
    exit 77
fi
[ $# -gt 0 ] || set -- $(list_files)
bad=0
for f in "$@"; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "FAIL: $f is not formatted (make format, or clang-format -i $f)"
        bad=$((bad + 1))
    fi
done
[ "$bad" -eq 0 ] || exit 1
echo "$# files formatted as .clang-format says"
