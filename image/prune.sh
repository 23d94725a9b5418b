#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Remove from a built root file system what the box never uses: kernel modules for
# hardware an office box does not have (sound, GPUs, cameras, Wi-Fi, server NICs and HBAs,
# exotic file systems), test suites inside Python packages, and the build-only Python
# wheels. docs/image.md lists what is left and how much each part takes.
#
# usage: image/prune.sh ROOT ARCH
source "$(dirname "$0")/lib.sh"
ROOT=$1 ARCH=$2

# Kernel modules: only those a box may load, and what they need. Each entry is a directory
# or a module under lib/modules/<version>/kernel; everything they depend on (modules.dep)
# stays too, wherever it lives, and every other module goes: sound, GPUs, cameras, Wi-Fi
# and Bluetooth (until the BLE mesh lands), server NICs and storage adapters, firewalls,
# file systems the box never mounts, KVM.
WANTED_COMMON=(
    crypto/crc32c_generic.ko fs/ext4 fs/fat/vfat.ko fs/efivarfs fs/autofs fs/binfmt_misc.ko
    fs/nls/nls_cp437.ko fs/nls/nls_ascii.ko fs/nls/nls_utf8.ko fs/nls/nls_iso8859-1.ko
    net/8021q net/sched/sch_fq_codel.ko
    drivers/block/virtio_blk.ko drivers/scsi/sd_mod.ko drivers/scsi/sg.ko
    drivers/scsi/virtio_scsi.ko drivers/usb/storage/usb-storage.ko drivers/usb/storage/uas.ko
    drivers/usb/core drivers/mmc/core drivers/virtio drivers/char/hw_random
    drivers/char/virtio_console.ko
    drivers/net/usb drivers/net/phy drivers/net/mdio drivers/net/virtio_net.ko
    drivers/hid/hid-generic.ko drivers/hid/usbhid drivers/input/evdev.ko
    drivers/thermal drivers/cpufreq
)
# Mini PCs: AHCI and NVMe disks, eMMC; Intel, Realtek, Broadcom and Atheros wired NICs
# of desktops and small boxes (not 25-100G server NICs); the chipsets' watchdogs.
WANTED_x86_64=(
    arch/x86/crypto/crc32c-intel.ko drivers/ata/ahci.ko drivers/ata/ata_piix.ko
    drivers/ata/ata_generic.ko drivers/nvme/host/nvme.ko drivers/acpi drivers/pinctrl/intel
    drivers/mmc/host/sdhci-pci.ko drivers/mmc/host/sdhci-acpi.ko
    drivers/usb/host/xhci-pci.ko drivers/usb/host/ehci-pci.ko drivers/usb/host/ohci-pci.ko
    drivers/usb/host/uhci-hcd.ko
    drivers/net/ethernet/intel/e1000 drivers/net/ethernet/intel/e1000e
    drivers/net/ethernet/intel/igb drivers/net/ethernet/intel/igc
    drivers/net/ethernet/intel/ixgbe drivers/net/ethernet/realtek/r8169.ko
    drivers/net/ethernet/atheros/alx drivers/net/ethernet/atheros/atl1c
    drivers/net/ethernet/broadcom/tg3.ko
    drivers/watchdog/iTCO_wdt.ko drivers/watchdog/sp5100_tco.ko drivers/watchdog/wdat_wdt.ko
    drivers/watchdog/i6300esb.ko
)
# Raspberry Pi 3/4: their SoC's MMC, USB, PCIe, Ethernet and clocks.
WANTED_arm64=(
    arch/arm64/crypto drivers/mmc/host drivers/dma drivers/nvme/host drivers/pci drivers/clk
    drivers/soc drivers/mailbox drivers/firmware drivers/pinctrl drivers/gpio drivers/mfd
    drivers/phy drivers/reset drivers/regulator drivers/net/ethernet/broadcom
    drivers/net/ethernet/cadence drivers/usb/host drivers/usb/dwc2 drivers/usb/dwc3
    drivers/i2c drivers/spi drivers/misc drivers/watchdog/bcm2835_wdt.ko
)
# ...but not these, even inside a wanted directory: PCMCIA cards, RDMA, netfilter (the box
# runs no firewall), NVMe targets, parallel ports, and ISDN over Bluetooth.
UNWANTED='_cs\.ko|rdma|/netfilter/|nvme/target|parport|ptp_ocp'
wanted_name="WANTED_$ARCH[@]"
wanted=("${WANTED_COMMON[@]}" "${!wanted_name}")

for kernel in "$ROOT"/usr/lib/modules/*/; do
    version=$(basename "$kernel")
    keep=$(mktemp)
    printf '%s\n' "${wanted[@]}" | awk -v unwanted="$UNWANTED" '
        NR == FNR { wanted["kernel/" $0] = 1; next }
        {
            module = substr($1, 1, length($1) - 1)
            if (module ~ unwanted) next
            for (w in wanted) {
                if (module == w || index(module, w "/") == 1) {
                    print module
                    for (i = 2; i <= NF; i++) print $i
                    break
                }
            }
        }' - "${kernel}modules.dep" | sort -u > "$keep"
    (cd "$kernel" && find kernel -name '*.ko*' | sort) \
        | comm -23 - "$keep" | (cd "$kernel" && xargs -r rm -f)
    find "${kernel}kernel" -type d -empty -delete
    echo "image:   kernel $version: $(wc -l < "$keep") modules kept"
    rm -f "$keep"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$ROOT" depmod "$version"
done

# glibc's character set converters: nothing on the box calls iconv (Python has its own
# codecs); the Unicode ones stay.
find "$ROOT"/usr/lib/*-linux-gnu/gconv -name '*.so' ! -name 'UTF-*' ! -name 'UNICODE.so' \
    -delete

# udev's hardware database names vendors, models and special keys of devices a headless
# box never has; without it udev works the same (systemd-hwdb-update finds no sources).
rm -f "$ROOT"/usr/lib/udev/hwdb.bin "$ROOT"/usr/lib/udev/hwdb.d/*.hwdb "$ROOT"/etc/udev/hwdb.bin

# dpkg's checksums of installed files serve only debsums and dpkg --verify.
rm -f "$ROOT"/var/lib/dpkg/info/*.md5sums

# Python: test suites inside installed packages; the interpreter's own build-only parts
# and its Asian codecs (nothing on the box speaks Shift-JIS or Big5).
site=$ROOT/opt/edgecoder/lib/python3.11/site-packages
find "$site" -depth -type d -name tests -exec rm -rf {} +
# llama-cpp-python's wheel also installs llama.cpp's C SDK at the top of site-packages: a
# second copy of every library (plus libllama-common), CMake files and headers. The
# bindings load theirs from llama_cpp/lib; nothing else uses these.
rm -rf "$site/lib" "$site/include"
# Never read at run time: type stubs, Cython and C sources, static libraries; numpy's
# compilers and build helpers (f2py, distutils), its SIMD test module, the submodules
# llama-cpp-python never touches (random, polynomial: numpy imports them on demand), and
# pydantic's v1 compatibility copy (ollama uses v2).
find "$site" -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.c' \
    -o -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.a' \) -delete
rm -rf "$site"/numpy/{f2py,distutils,random,polynomial,_core/include,_core/lib} \
    "$site"/numpy/_core/_simd.* "$site"/numpy/_core/_*_tests.* "$site"/pydantic/v1
stdlib=$ROOT/usr/lib/python3.11
rm -rf "$stdlib"/{lib2to3,pydoc_data,ensurepip,test,distutils,unittest,venv,curses,dbm} \
    "$stdlib"/{xmlrpc,wsgiref,turtledemo,idlelib,tkinter,__phello__} \
    "$stdlib"/lib-dynload/{_codecs_{cn,hk,jp,kr,tw,iso2022},_test*,_xxtestfuzz,xxlimited*}.* \
    "$stdlib"/lib-dynload/{_ctypes_test,_curses*,_dbm,audioop,ossaudiodev,nis,_xxsubinterpreters}.*
find "$stdlib/__pycache__" -name 'turtle.*' -o -name 'pydoc.*' -o -name 'doctest.*' \
    -o -name 'mailbox.*' -o -name 'imaplib.*' -o -name 'nntplib.*' -o -name 'smtplib.*' \
    -o -name 'ftplib.*' -o -name 'poplib.*' -o -name 'telnetlib.*' -o -name 'tkinter.*' \
    | xargs -r rm -f
rm -f "$stdlib"/{turtle,pydoc,doctest,mailbox,imaplib,nntplib,smtplib,ftplib,poplib,telnetlib}.py

# Documentation and caches dpkg's path-exclude did not stop (files made by maintainer
# scripts); copyright files stay.
find "$ROOT/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
rm -rf "$ROOT"/usr/share/{man,info,lintian,linda} "$ROOT"/var/cache/apt/* \
    "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/*.log
