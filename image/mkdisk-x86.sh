#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The x86-64 disk image from a root tree, without mounts or loop devices: a FAT32 EFI
# system partition made by mkfs.vfat -C and filled by mtools (systemd-boot, the kernel,
# the initramfs), an ext4 root made by image/mkroot.sh, a GPT written by sfdisk on the file,
# and both partitions copied in with dd conv=notrunc.
#
# usage: image/mkdisk-x86.sh ROOTFS BOOT OUT.img   (BOOT holds vmlinuz and initrd.img)
source "$(dirname "$0")/lib.sh"
ROOTFS=$1 BOOT=$2 OUT=$3
WORK=$(dirname "$OUT")
ESP_MIB=256
MIB=$((1024 * 1024))
kernel=$BOOT/vmlinuz initrd=$BOOT/initrd.img

step "ESP: systemd-boot, kernel $(cat "$BOOT/version"), initramfs ($(du -h "$initrd" | cut -f1))"
cmdline="root=PARTUUID=$ROOT_GUID rw console=tty0 console=ttyS0,115200"
rm -f "$WORK/esp.img"
mkfs.vfat -F 32 -n ESP -i 45444745 --invariant -C "$WORK/esp.img" $((ESP_MIB * 1024)) >/dev/null
conf=$(mktemp -d)
# editor no: nobody at the keyboard can add init=/bin/sh to the kernel command line.
printf 'timeout 0\neditor no\n' > "$conf/loader.conf"
printf 'title EdgeCoder %s\nlinux /edgecoder/vmlinuz\ninitrd /edgecoder/initrd.img\noptions %s\n' \
    "$VERSION" "$cmdline" > "$conf/edgecoder.conf"
touch --date="@$SOURCE_DATE_EPOCH" "$conf"/*
# mtools stamps what it writes with the current time; faketime stops the clock at
# SOURCE_DATE_EPOCH for a stable ESP (-f with an absolute time stands still; "@time" runs).
faketime -f "$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')" sh -c '
    set -e
    img=$1 root=$2 conf=$3 boot=$4
    mmd -i "$img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/edgecoder
    mcopy -m -i "$img" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -m -i "$img" "$conf/loader.conf" ::/loader/loader.conf
    mcopy -m -i "$img" "$conf/edgecoder.conf" ::/loader/entries/edgecoder.conf
    mcopy -m -i "$img" "$boot/vmlinuz" ::/edgecoder/vmlinuz
    mcopy -m -i "$img" "$boot/initrd.img" ::/edgecoder/initrd.img
' sh "$WORK/esp.img" "$ROOTFS" "$conf" "$BOOT"
rm -rf "$conf"

step "root: ext4 by mke2fs -d"
"$IMAGE_DIR/mkroot.sh" "$ROOTFS" "$WORK/root.ext4"
root_mib=$(( $(stat -c %s "$WORK/root.ext4") / MIB ))

step "disk: GPT, ESP $ESP_MIB MiB + root $root_mib MiB"
esp_start=$MIB
root_start=$((esp_start + ESP_MIB * MIB))
total=$((root_start + root_mib * MIB + MIB))
rm -f "$OUT"
truncate -s "$total" "$OUT"
sfdisk --quiet --no-reread --no-tell-kernel "$OUT" <<TABLE
label: gpt
label-id: $DISK_GUID
unit: sectors
start=$((esp_start / 512)), size=$((ESP_MIB * MIB / 512)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_GUID, name="ESP"
start=$((root_start / 512)), size=$((root_mib * MIB / 512)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_GUID, name="root"
TABLE
dd if="$WORK/esp.img" of="$OUT" bs=1M seek=$((esp_start / MIB)) conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$OUT" bs=1M seek=$((root_start / MIB)) conv=notrunc,sparse status=none
