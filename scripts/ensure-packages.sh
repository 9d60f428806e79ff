#!/bin/sh
# Usage: ensure-packages.sh PACKAGE...
# Installs the Debian packages that are missing when run as root; otherwise
# prints the exact command to run and fails, so `make` stops with a clear reason.
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
if [ "$(id -u)" -eq 0 ]; then
    echo "hugeslab: installing missing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null 2>&1
        apt-get install -y --no-install-recommends $missing || exit 1
    }
    exit 0
fi
echo "hugeslab: missing Debian packages. Run as root:"
echo "    apt-get install -y$missing"
exit 1
