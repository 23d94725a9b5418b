# SPDX-License-Identifier: Apache-2.0
# Shared by the image scripts: strict mode, step logging with timings, the build's fixed
# inputs (version, SOURCE_DATE_EPOCH, paths). Sourced, never run.

set -euo pipefail
umask 022
export LC_ALL=C.UTF-8 TZ=UTC

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$IMAGE_DIR")
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/edgecoder/__init__.py")
# Every timestamp the build writes is clamped to the last commit's time, so two builds of
# one commit give the same files (a dirty tree still builds, with that commit's time).
: "${SOURCE_DATE_EPOCH:=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH
BUILD_ROOT=${BUILD_ROOT:-$REPO/build}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# Built wheels that take minutes (llama.cpp) are kept here, keyed by everything that
# shapes them, so a clean clone (CI) reuses them.
WHEEL_CACHE=${EDGECODER_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgecoder-image/wheels}

# Fixed partition and file system identifiers: the boot entry and fstab name the root by
# them, and two builds of one commit must give the same bytes. Every box flashed from one
# image shares them (as with any disk image); the node's identity is made at first boot.
DISK_GUID=6c6f6f62-6564-4563-8f64-657230303031
ESP_GUID=6c6f6f62-6564-4563-8f64-657230303032
ROOT_GUID=6c6f6f62-6564-4563-8f64-657230303033
FS_UUID=6c6f6f62-6564-4563-8f64-657230303034

_step_started=0
_build_started=$(date +%s)

step() {
    local now
    now=$(date +%s)
    if [ "$_step_started" != 0 ]; then
        echo "image:   ... $((now - _step_started)) s"
    fi
    _step_started=$now
    echo "image: [$(( now - _build_started )) s] $*"
}

done_steps() {
    step "done"
}

die() {
    echo "image: error: $*" >&2
    exit 1
}

# The Debian package list for an architecture: common.txt plus ARCH.txt, comments dropped.
packages_for() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$IMAGE_DIR/packages/common.txt" \
        "$IMAGE_DIR/packages/$1.txt" | tr -d ' ' | paste -sd, -
}

deb_arch() {
    case "$1" in
        x86_64) echo amd64 ;;
        arm64) echo arm64 ;;
        *) die "unknown architecture $1 (x86_64 or arm64)" ;;
    esac
}
