#!/bin/sh
# Usage: ensure-packages.sh PACKAGE...
# Installs the Debian packages that are missing when run as root; otherwise
# prints the exact command to run and fails, so `make` stops with a clear reason.
#
# Another apt-get or dpkg may hold the dpkg lock (unattended upgrades, a second
# `make test`): apt-get waits for it up to HS_DPKG_LOCK_TIMEOUT seconds
# (default 600), and we say who holds it. apt-get's own errors are shown.
set -u
missing=""
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "hugeslab: missing Debian packages. Run as root:"
    echo "    apt-get install -y --no-install-recommends$missing"
    exit 1
fi

timeout=${HS_DPKG_LOCK_TIMEOUT:-600}

# Prints the process that holds the dpkg lock, if any: dpkg and apt take
# fcntl() locks, which /proc/locks lists by inode.
lock_holder() {
    for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock; do
        [ -e "$lock" ] || continue
        inode=$(stat -c %i "$lock" 2>/dev/null) || continue
        pid=$(awk -v ino="$inode" '{ n = split($6, id, ":") } id[n] == ino && $2 ~ /POSIX|OFDLCK/ { print $5; exit }' /proc/locks 2>/dev/null)
        case "$pid" in
        '' | -1) ;;
        *)
            cmd=$(tr '\0\n' '  ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)
            echo "pid $pid (${cmd:-?}) holds $lock"
            return 0 ;;
        esac
    done
    return 1
}

# apt_get ARGS...: apt-get waiting for the lock; its output is kept in $log and
# shown when it fails.
log=$(mktemp "${TMPDIR:-/tmp}/hugeslab-apt.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
apt_get() {
    if holder=$(lock_holder); then
        echo "hugeslab: waiting up to ${timeout} s for the dpkg lock: $holder"
    fi
    if apt-get -o DPkg::Lock::Timeout="$timeout" "$@" >"$log" 2>&1; then
        return 0
    fi
    echo "hugeslab: apt-get $* failed:"
    grep -E '^(E|W):' "$log" || tail -n 20 "$log"
    return 1
}

echo "hugeslab: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt_get install -y -q --no-install-recommends $missing && exit 0
echo "hugeslab: refreshing the package lists (apt-get update), then trying again"
apt_get update -q || exit 1
# shellcheck disable=SC2086
apt_get install -y -q --no-install-recommends $missing || {
    echo "hugeslab: could not install:$missing"
    exit 1
}
