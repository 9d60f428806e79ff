#!/bin/sh
# Usage: gen-profiles.sh configs/*.conf > profiles.c
# Builds the named profiles into the library, so HUGESLAB_PROFILE=name works
# wherever the library is copied.
set -eu
echo '/* Generated from the files in configs/ by scripts/gen-profiles.sh. */'
echo '#include "common/common.h"'
echo 'const hs_profile_t hs_profiles[] = {'
for f in "$@"; do
    name=$(basename "$f" .conf)
    printf '    {"%s",\n' "$name"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/     "/' -e 's/$/\\n"/' "$f"
    echo '    },'
done
echo '    {0, 0},'
echo '};'
