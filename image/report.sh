#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What takes the space in a built image: sizes of the disk, its compressed form, and the
# largest parts of the root tree (compressed with the image's zstd settings).
#
# usage: image/report.sh WORK OUT.img.zst
source "$(dirname "$0")/lib.sh"
WORK=$1 OUT=$2
root=$WORK/rootfs
mib() { echo "$(( ($1 + 524288) / 1048576 )) MiB"; }
# Parts are compressed alone at -3 (fast; a few percent more than in the image itself).
zsize() { tar -C "$root" -cf - "$@" 2>/dev/null | zstd -q -T0 -3 --long=27 -c | wc -c; }

echo "image: $(basename "$OUT"): $(mib "$(stat -c %s "$OUT")") compressed," \
    "$(mib "$(stat -c %s "$WORK/disk.img")") disk, $(mib "$(du -s -B1 "$WORK/disk.img" | cut -f1)") allocated"
echo "image: what takes the space (files; compressed alone with zstd -3):"
parts=(
    "opt/edgecoder/share/models|the default model (Gemma 3 270M Q4_K_M)"
    "opt/edgecoder/lib/python3.11/site-packages/numpy opt/edgecoder/lib/python3.11/site-packages/numpy.libs|numpy (llama-cpp-python needs it)"
    "opt/edgecoder/lib/python3.11/site-packages/llama_cpp opt/edgecoder/lib/llama-fallback|llama.cpp and its bindings"
    "usr/lib/modules|kernel modules (pruned)"
    "usr/lib/python3.11|Python standard library"
    "usr/lib/x86_64-linux-gnu usr/lib/aarch64-linux-gnu|shared libraries"
    "usr/lib/udev|udev rules and hardware database"
    "usr/bin usr/sbin|programs"
)
for part in "${parts[@]}"; do
    paths=() present=()
    read -r -a paths <<< "${part%%|*}"
    for p in "${paths[@]}"; do [ -e "$root/$p" ] && present+=("$p"); done
    [ "${#present[@]}" -gt 0 ] || continue
    size=$(cd "$root" && du -s -B1 --apparent-size "${present[@]}" | awk '{s+=$1} END {print s}')
    printf 'image:   %8s  %8s zst  %s\n' "$(mib "$size")" "$(mib "$(zsize "${present[@]}")")" "${part#*|}"
done
other=$(cd "$root" && du -s -B1 --apparent-size opt/edgecoder | cut -f1)
printf 'image:   %8s            all of /opt/edgecoder\n' "$(mib "$other")"
printf 'image:   %8s            the whole root tree\n' "$(mib "$(du -s -B1 --apparent-size "$root" | cut -f1)")"
printf 'image:   %8s            kernel + initramfs on the boot partition\n' \
    "$(mib "$(cat "$WORK/rootfs.boot/vmlinuz" "$WORK/rootfs.boot/initrd.img" | wc -c)")"
