#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The image's root file system as a directory: Debian bookworm by mmdebstrap (no docs,
# man pages or locales), then image/customize.sh. No mount or loop device is needed.
#
# usage: image/rootfs.sh ARCH WHEELS OUT
source "$(dirname "$0")/lib.sh"
ARCH=$1 WHEELS=$2 OUT=$3

rm -rf "$OUT"
components=main
[ "$ARCH" = arm64 ] && components=main,non-free-firmware
mmdebstrap --mode=root --variant=apt --format=directory --quiet \
    --architectures="$(deb_arch "$ARCH")" --components="$components" \
    --include="$(packages_for "$ARCH")" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --setup-hook='mkdir -p "$1/boot/firmware"' \
    --customize-hook="\"$IMAGE_DIR/customize.sh\" \"\$1\" $ARCH \"$WHEELS\"" \
    "$SUITE" "$OUT" "$MIRROR"
step "root file system: kernel and initramfs out to the boot partition, timestamps clamped"
# customize.sh purged apt; mmdebstrap's own configuration of it goes now.
rm -rf "$OUT"/etc/apt "$OUT"/var/lib/apt "$OUT"/var/cache/apt
# The kernel and initramfs go to the boot partition, not the root: OUT.boot keeps them.
rm -rf "$OUT.boot"
mkdir -p "$OUT.boot"
kernel=$(cd "$OUT/boot" && ls vmlinuz-* | sort -V | tail -1)
echo "${kernel#vmlinuz-}" > "$OUT.boot/version"
mv "$OUT/boot/$kernel" "$OUT.boot/vmlinuz"
mv "$OUT/boot/initrd.img-${kernel#vmlinuz-}" "$OUT.boot/initrd.img"
rm -f "$OUT"/boot/vmlinuz-* "$OUT"/boot/initrd.img-* "$OUT"/vmlinuz* "$OUT"/initrd.img*
# Normalised once mmdebstrap is done (and its /proc, /sys and /dev are unmounted): what
# the build wrote carries its own time, and /etc/shadow the day of the build. The boot
# files too: mcopy -m keeps their times in the ESP.
days=$((SOURCE_DATE_EPOCH / 86400))
sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$days:/" "$OUT/etc/shadow"
rm -f "$OUT/etc/shadow-" "$OUT/etc/gshadow-" "$OUT/etc/passwd-" "$OUT/etc/group-" \
    "$OUT/etc/subuid-" "$OUT/etc/subgid-" "$OUT/var/cache/ldconfig/aux-cache"
find "$OUT" "$OUT.boot" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 \
    | xargs -0 -r touch --no-dereference --date="@$SOURCE_DATE_EPOCH"
step "root file system: package list"
# What went in, for the record and for comparing two builds.
chroot "$OUT" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' > "$OUT.packages"
