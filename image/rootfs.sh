#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The image's root file system as a directory: Debian bookworm by mmdebstrap (no docs,
# man pages or locales), then image/customize.sh. No mount or loop device is needed.
#
# usage: image/rootfs.sh ARCH WHEELS OUT
source "$(dirname "$0")/lib.sh"
ARCH=$1 WHEELS=$2 OUT=$3

rm -rf "$OUT"
# The initramfs is made once, by customize.sh after pruning the kernel modules: until then
# update-initramfs is diverted to a no-op, so installing the kernel and every trigger
# after it make none (under arm64 emulation each run takes about 9 minutes).
no_initramfs='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs
    printf "#!/bin/sh\n# image/rootfs.sh: made once, after pruning (customize.sh)\nexit 0\n" \
        > "$1/usr/sbin/update-initramfs"
    chmod 0755 "$1/usr/sbin/update-initramfs"'
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
    --essential-hook="$no_initramfs" \
    --customize-hook="\"$IMAGE_DIR/customize.sh\" \"\$1\" $ARCH \"$WHEELS\"" \
    "$SUITE" "$OUT" "$MIRROR"
step "root file system: kernel and initramfs out to the boot partition, timestamps clamped"
# customize.sh purged apt; mmdebstrap's own configuration of it goes now.
rm -rf "$OUT"/etc/apt "$OUT"/var/lib/apt "$OUT"/var/cache/apt
# The kernel and initramfs go to the boot partition, not the root: OUT.boot keeps them.
# On arm64 that is the whole firmware partition raspi-firmware filled (its config.txt
# names the kernel and initramfs by their versioned names); vmlinuz and initrd.img link to
# them there, for the report and the boot test.
rm -rf "$OUT.boot"
mkdir -p "$OUT.boot"
kernel=$(cd "$OUT/boot" && ls vmlinuz-* | sort -V | tail -1)
version=${kernel#vmlinuz-}
echo "$version" > "$OUT.boot/version"
if [ "$ARCH" = arm64 ]; then
    [ -f "$OUT/boot/firmware/config.txt" ] || die "raspi-firmware filled no /boot/firmware"
    mv "$OUT/boot/firmware" "$OUT.boot/firmware"
    mkdir -m 0755 "$OUT/boot/firmware"
    ln "$OUT.boot/firmware/$kernel" "$OUT.boot/vmlinuz"
    ln "$OUT.boot/firmware/initrd.img-$version" "$OUT.boot/initrd.img"
else
    mv "$OUT/boot/$kernel" "$OUT.boot/vmlinuz"
    mv "$OUT/boot/initrd.img-$version" "$OUT.boot/initrd.img"
fi
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
