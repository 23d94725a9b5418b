#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Let this x86-64 host run arm64 programs (the Raspberry Pi image's package scripts, under
# mmdebstrap's chroot): binfmt_misc mounted and qemu-user-static's aarch64 handler enabled.
# Neither survives a reboot, so every arm64 build runs this; it changes nothing when done.
source "$(dirname "$0")/lib.sh"
[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -x /usr/bin/qemu-aarch64-static ] \
    || die "qemu-user-static is missing (make image-deps-rpi installs it)"
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || die "arm64 programs cannot run here (binfmt_misc: no enabled qemu-aarch64 handler)"
# F: the handler is opened now, so it works inside the chroot with nothing copied in.
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "the qemu-aarch64 binfmt handler lacks the F flag (chroots cannot use it)"
