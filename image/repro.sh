#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Reproducibility check: build the image twice from this commit (same SOURCE_DATE_EPOCH,
# same wheels, the Debian mirror as it is now), compare the two root trees file by file,
# and say whether the boot files, partitions, disk and compressed image are byte for byte
# the same.
#
# usage: image/repro.sh ARCH PYTHON
source "$(dirname "$0")/lib.sh"
ARCH=$1 PYTHON=$2
base=$BUILD_ROOT/repro
rm -rf "$base"
mkdir -p "$BUILD_ROOT"
for run in a b; do
    echo "image: reproducibility build $run of 2"
    BUILD_ROOT=$base/$run ZSTD_LEVEL=${ZSTD_LEVEL:-3} "$IMAGE_DIR/build.sh" "$ARCH" "$PYTHON" \
        > "$base.$run.log" 2>&1 || die "build $run failed; see $base.$run.log"
done
status=0
"$IMAGE_DIR/compare.sh" "$base/a/image-$ARCH/rootfs" "$base/b/image-$ARCH/rootfs" || status=1
diff -u "$base/a/image-$ARCH/rootfs.packages" "$base/b/image-$ARCH/rootfs.packages" \
    || { echo "image: the Debian packages differ (the mirror changed between the builds)"; status=1; }
case "$ARCH" in
    x86_64) boot_fs=esp.img name=x86_64 ;;
    arm64) boot_fs=firmware.img name=rpi-arm64 ;;
esac
for part in rootfs.boot/vmlinuz rootfs.boot/initrd.img "$boot_fs" root.ext4 disk.img \
    "../edgecoder-$VERSION-$name.img.zst"; do
    if cmp -s "$base/a/image-$ARCH/$part" "$base/b/image-$ARCH/$part"; then
        echo "image: $part: identical"
    else
        echo "image: $part: differs"
        status=1
    fi
done
exit "$status"
