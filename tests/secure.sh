#!/bin/sh
# A setuid program linked with the library reads no HUGESLAB_ variable of
# the environment its caller chose: run as root's setuid copy by another
# user, HUGESLAB_STATS_FILE must not overwrite a file only root may write
# (it did: the statistics report replaced it, mode 644), HUGESLAB_CONFIG
# must not print the lines of a file only root may read, and
# HUGESLAB_VERBOSE must print nothing. And the opposite: the same program
# run by root, not setuid, reads the same environment and writes the file.
#
# Usage: tests/secure.sh BUILD/tests/secure_test
# Exit 0 (PASS), 1 (FAIL), 77 (SKIP: not root, no setpriv, or a mount
# that ignores the setuid bit).
set -u
prog=$1
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (a setuid-root copy of the program)"; exit 77; }
command -v setpriv >/dev/null 2>&1 || { echo "SKIP: no setpriv (util-linux)"; exit 77; }
nobody=65534
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-secure.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cp "$prog" "$tmp/prog" && chown 0:0 "$tmp/prog" && chmod 4755 "$tmp/prog" || exit 1
secret="a line only root may read"
printf '%s\n' "$secret" >"$tmp/victim"
chmod 600 "$tmp/victim"
out=$(setpriv --reuid=$nobody --regid=$nobody --clear-groups \
    env HUGESLAB_STATS_FILE="$tmp/victim" HUGESLAB_CONFIG="$tmp/victim" HUGESLAB_VERBOSE=1 \
    "$tmp/prog" 2>&1)
case $out in
*"secure 1"*) ;;
*) echo "SKIP: the copy did not run setuid here ($(findmnt -no OPTIONS -T "$tmp" 2>/dev/null)): $out"; exit 77 ;;
esac
bad=0
if [ "$(cat "$tmp/victim")" != "$secret" ] || [ "$(stat -c %a "$tmp/victim")" != 600 ]; then
    echo "FAIL: HUGESLAB_STATS_FILE of the setuid program's caller rewrote root's file ($(stat -c %a "$tmp/victim"): $(head -c 80 "$tmp/victim"))"
    bad=1
fi
case $out in
*hugeslab*)
    echo "FAIL: the setuid program printed what its caller's HUGESLAB_ variables asked for: $(printf '%s' "$out" | head -n 2)"
    bad=1 ;;
esac
# The opposite setting: root's own run of the same program (not setuid)
# reads the environment: the statistics go to the file asked for.
cp "$prog" "$tmp/plain"
env HUGESLAB_STATS_FILE="$tmp/report" "$tmp/plain" >/dev/null 2>&1
if ! grep -q "statistics of pid" "$tmp/report" 2>/dev/null; then
    echo "FAIL: not setuid, HUGESLAB_STATS_FILE wrote no report: the check above proves nothing"
    bad=1
fi
[ $bad -eq 0 ] || exit 1
echo "setuid: root's file unchanged (600), nothing printed; not setuid: the report written"
echo "PASS"
