#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compare two root trees file by file (type, mode, owner, size, mtime, link target,
# SHA-256), as two builds of one commit should give: prints every path that differs and
# how, and exits 1 when any does.
#
# usage: image/compare.sh ROOT_A ROOT_B
source "$(dirname "$0")/lib.sh"
A=$1 B=$2

manifest() {
    (cd "$1" && find . -xdev -printf '%y %m %U:%G %s %T@ %p -> %l\n' | sort -k6) > "$2.meta"
    (cd "$1" && find . -xdev -type f -print0 | sort -z | xargs -0 -r sha256sum) > "$2.sha"
}
work=$(mktemp -d)
manifest "$A" "$work/a"
manifest "$B" "$work/b"
status=0
if ! diff "$work/a.meta" "$work/b.meta" > "$work/meta.diff"; then
    echo "image: metadata differs (type mode owner size mtime path -> link):"
    grep '^[<>]' "$work/meta.diff" | sed 's/^/image:   /'
    status=1
fi
if ! diff "$work/a.sha" "$work/b.sha" > "$work/sha.diff"; then
    echo "image: contents differ:"
    grep '^[<>]' "$work/sha.diff" | awk '{print $3}' | sort -u | sed 's/^/image:   /'
    status=1
fi
[ "$status" = 0 ] && echo "image: the two trees are identical ($(wc -l < "$work/a.sha") files)"
rm -rf "$work"
exit "$status"
