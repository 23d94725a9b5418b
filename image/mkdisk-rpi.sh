#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Raspberry Pi disk image from a root tree, without mounts or loop devices: an MBR
# written by sfdisk on the file, a FAT32 partition labelled RASPIFIRM made by mkfs.vfat -C
# and filled by mtools with what raspi-firmware put in /boot/firmware (the GPU firmware,
# config.txt, cmdline.txt, the device trees, the kernel and initramfs), and an ext4 root
# labelled "root" made by mke2fs -d. The Pi's boot ROM reads the first FAT partition of
# an MBR disk; cmdline.txt and /etc/fstab name both partitions by label.
#
# usage: image/mkdisk-rpi.sh ROOTFS BOOT OUT.img   (BOOT/firmware: the FAT partition's files)
source "$(dirname "$0")/lib.sh"
ROOTFS=$1 BOOT=$2 OUT=$3
WORK=$(dirname "$OUT")
FIRMWARE_MIB=256
MIB=$((1024 * 1024))

step "firmware partition: $(ls "$BOOT/firmware" | wc -l) files, kernel $(cat "$BOOT/version")"
grep -q 'root=LABEL=root' "$BOOT/firmware/cmdline.txt" \
    || die "cmdline.txt does not name the root by its label: $(cat "$BOOT/firmware/cmdline.txt")"
rm -f "$WORK/firmware.img"
mkfs.vfat -F 32 -n RASPIFIRM -i 52504946 --invariant -C "$WORK/firmware.img" \
    $((FIRMWARE_MIB * 1024)) >/dev/null
# mtools stamps what it writes with the current time; faketime stops the clock at
# SOURCE_DATE_EPOCH (as for the x86 image's ESP). Files go in in sorted order.
faketime -f "$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')" sh -c '
    set -e
    img=$1 dir=$2
    cd "$dir"
    ls | LC_ALL=C sort | while read -r file; do mcopy -m -i "$img" "$file" "::/$file"; done
' sh "$WORK/firmware.img" "$BOOT/firmware"

step "root: ext4 by mke2fs -d"
"$IMAGE_DIR/mkroot.sh" "$ROOTFS" "$WORK/root.ext4"
root_mib=$(( $(stat -c %s "$WORK/root.ext4") / MIB ))

step "disk: MBR, RASPIFIRM $FIRMWARE_MIB MiB + root $root_mib MiB"
firmware_start=$((4 * MIB))
root_start=$((firmware_start + FIRMWARE_MIB * MIB))
total=$((root_start + root_mib * MIB))
rm -f "$OUT"
truncate -s "$total" "$OUT"
sfdisk --quiet --no-reread --no-tell-kernel "$OUT" <<TABLE
label: dos
label-id: 0x$(echo "$DISK_GUID" | cut -c1-8)
unit: sectors
start=$((firmware_start / 512)), size=$((FIRMWARE_MIB * MIB / 512)), type=c, bootable
start=$((root_start / 512)), size=$((root_mib * MIB / 512)), type=83
TABLE
dd if="$WORK/firmware.img" of="$OUT" bs=1M seek=$((firmware_start / MIB)) conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$OUT" bs=1M seek=$((root_start / MIB)) conv=notrunc,sparse status=none
