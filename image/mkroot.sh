#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ext4 root file system (label "root") of a disk image from a root tree, by mke2fs -d:
# no mount, fixed UUID and hash seed, every time stamp at SOURCE_DATE_EPOCH. Sized to the
# files plus room for ext4's metadata and a little slack; first boot grows it to the disk.
#
# usage: image/mkroot.sh ROOTFS OUT.ext4
source "$(dirname "$0")/lib.sh"
ROOTFS=$1 OUT=$2

used_kib=$(du -s --apparent-size -k "$ROOTFS" | cut -f1)
root_mib=$(( (used_kib * 115 / 100 / 1024) + 64 ))
echo "image:   root: ext4 of $root_mib MiB from $((used_kib / 1024)) MiB of files"
rm -f "$OUT"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L root -U "$FS_UUID" -m 1 \
    -E "hash_seed=$FS_UUID,root_owner=0:0" -d "$ROOTFS" "$OUT" "${root_mib}M"
# mke2fs -d copies each file's change time (ctime), which nobody can set in the tree (the
# kernel stamps it at every change), and its access time, which every read of the tree
# may move. debugfs sets both to SOURCE_DATE_EPOCH in the new file system, as the build
# did for the modification times.
paths=$(mktemp)
(cd "$ROOTFS" && find . -xdev -mindepth 1 -printf '%P\n') > "$paths"
if grep -q '"' "$paths"; then die "a path in the root tree holds a double quote"; fi
{
    printf 'sif <2> %s @%s\n' ctime "$SOURCE_DATE_EPOCH" atime "$SOURCE_DATE_EPOCH"
    sed "s|.*|sif \"/&\" ctime @$SOURCE_DATE_EPOCH\nsif \"/&\" atime @$SOURCE_DATE_EPOCH|" \
        "$paths"
} | E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f - "$OUT" 2>&1 \
    | grep -v '^debugfs' && die "debugfs could not set every change and access time" || true
rm -f "$paths"
