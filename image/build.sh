#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the appliance image for ARCH: x86_64 (UEFI mini PCs) or arm64 (Raspberry Pi):
# wheels -> root tree -> disk image -> build/edgecoder-<version>-<name>.img.zst.
# Needs root (mmdebstrap and chroot) and the Debian tools `make image-deps` installs; an
# arm64 tree is built under qemu-user (image/binfmt.sh), its wheels cross-compiled.
#
# usage: image/build.sh ARCH PYTHON
source "$(dirname "$0")/lib.sh"
ARCH=$1 PYTHON=$2
[ "$(id -u)" = 0 ] || die "building an image needs root (mmdebstrap --mode=root, chroot)"

WORK=$BUILD_ROOT/image-$ARCH
case "$ARCH" in
    x86_64) name=x86_64 disk=x86 ;;
    arm64) name=rpi-arm64 disk=rpi; "$IMAGE_DIR/binfmt.sh" ;;
    *) die "no image for $ARCH (x86_64 or arm64)" ;;
esac
OUT=$BUILD_ROOT/edgecoder-$VERSION-$name.img.zst
mkdir -p "$WORK"
echo "image: EdgeCoder $VERSION for $ARCH, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, into $WORK"

step "wheels (llama.cpp builds once per CPU level, then comes from $WHEEL_CACHE)"
"$IMAGE_DIR/wheels.sh" "$ARCH" "$WORK/wheels" "$PYTHON"

step "root file system: mmdebstrap $SUITE + customize (x86_64 1-4 minutes; arm64, emulated, 7-10)"
"$IMAGE_DIR/rootfs.sh" "$ARCH" "$WORK/wheels" "$WORK/rootfs"

step "disk image"
"$IMAGE_DIR/mkdisk-$disk.sh" "$WORK/rootfs" "$WORK/rootfs.boot" "$WORK/disk.img"

step "compress: zstd -${ZSTD_LEVEL:=19} --long=27 (a few minutes: most of it is the model)"
# Written beside, then renamed: zstd gives its output the disk's time, so a file cut short
# by a killed build would look up to date to make.
zstd -q -f -T0 "-$ZSTD_LEVEL" --long=27 "$WORK/disk.img" -o "$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
"$IMAGE_DIR/report.sh" "$WORK" "$OUT" | tee "$WORK/report.txt"
# The x86 image's limit, kept at the release level (lower levels give a larger file on
# purpose). The Pi image carries numpy's OpenBLAS and more kernel modules, unbudgeted.
MAX_BYTES=300000000
size=$(stat -c %s "$OUT")
if [ "$ARCH" = x86_64 ] && [ "$ZSTD_LEVEL" -ge 19 ] && [ "$size" -gt "$MAX_BYTES" ]; then
    rm -f "$OUT"
    die "$(basename "$OUT") is $size bytes, over the $MAX_BYTES the image may take" \
        "(docs/image.md, \"Measured\": prune before adding)"
fi
done_steps
