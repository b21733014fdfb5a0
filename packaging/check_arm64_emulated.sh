#!/usr/bin/env bash
# Install an arm64 phytoscope .deb into an emulated aarch64 Debian 12 and run it offline.
#
# No Jetson needed: qemu-user-static runs an aarch64 userland (debootstrap) on this machine.
# Debian 12 has Python 3.11, so build the package for it first:
#     bash packaging/build_deb.sh --arch arm64 --python 3.11 --out /tmp/arm311
#     sudo bash packaging/check_arm64_emulated.sh /tmp/arm311/phytoscope_<version>_arm64.deb
# It checks what a static look at the .deb cannot: the aarch64 wheels install with dpkg and
# --no-index (inside `unshare --net`), the Depends cover what Qt's plugins link against
# (ldd), Qt starts offscreen, `phytoscope info` and `classify` run on the samples, and
# purge leaves nothing but user data. It is not JetPack (Ubuntu 22.04, Python 3.10,
# TensorRT): see the README for what remains unverified on hardware.
#
# Needs root, debootstrap, qemu-user-static, binfmt_misc, and a Debian mirror for the first
# run (the root file system is kept in $ROOTFS, default /var/tmp/phytoscope-arm64-rootfs).
set -euo pipefail

DEB=$(readlink -f "${1:?usage: check_arm64_emulated.sh PACKAGE.deb}")
ROOTFS=${ROOTFS:-/var/tmp/phytoscope-arm64-rootfs}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
die() { echo "check_arm64_emulated: $*" >&2; exit 1; }
log() { echo "check_arm64_emulated: $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, dpkg)"
[ "$(dpkg-deb -f "$DEB" Architecture)" = arm64 ] || die "$DEB is not an arm64 package"
command -v debootstrap >/dev/null || die "apt-get install debootstrap qemu-user-static"
[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -x /usr/bin/qemu-aarch64-static ] \
    || die "apt-get install qemu-user-static"

# binfmt_misc lets the kernel hand aarch64 ELF files to qemu.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    log "debootstrap bookworm arm64 into $ROOTFS (several minutes under emulation)"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv bookworm "$ROOTFS" "$MIRROR" >&2
fi

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    for m in proc/cpuinfo proc dev sys; do umount "$ROOTFS/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
mountpoint -q "$ROOTFS/dev" || mount --bind /dev "$ROOTFS/dev"
mountpoint -q "$ROOTFS/sys" || mount --bind /sys "$ROOTFS/sys"
# qemu-user shows the host's x86 /proc/cpuinfo; onnxruntime's cpuinfo library crashes on it
# (SIGSEGV at import). A real aarch64 kernel (Jetson Orin: Cortex-A78AE) lists its cores.
CPUINFO=$ROOTFS/tmp/cpuinfo.aarch64
: > "$CPUINFO"
for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n' "$i" >> "$CPUINFO"
done
mount --bind "$CPUINFO" "$ROOTFS/proc/cpuinfo"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

in_root() { chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home LC_ALL=C.UTF-8 \
    QT_QPA_PLATFORM=offscreen DEBIAN_FRONTEND=noninteractive "$@"; }
offline() { unshare --net chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home \
    LC_ALL=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; }

if in_root dpkg-query -W phytoscope >/dev/null 2>&1; then in_root dpkg --purge phytoscope >&2; fi
log "installing the system dependencies named in Depends (apt, network)"
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g; s/t64$//' | sort -u)
in_root apt-get update -qq >&2
# shellcheck disable=SC2086
in_root apt-get install -y -qq --no-install-recommends $deps >&2

cp "$DEB" "$ROOTFS/tmp/phytoscope.deb"
rm -rf "$ROOTFS/tmp/home" && mkdir -p "$ROOTFS/tmp/home/.local/share/phytoscope"
echo keep > "$ROOTFS/tmp/home/.local/share/phytoscope/keep.txt"
log "dpkg -i without network"
offline dpkg -i /tmp/phytoscope.deb >&2

fail=0
site=$(ls -d "$ROOTFS"/opt/phytoscope/venv/lib/python3*/site-packages)
for plugin in "$site"/PySide6/Qt/plugins/platforms/libq{xcb,wayland,eglfs}.so; do
    missing=$(in_root ldd "${plugin#"$ROOTFS"}" | grep 'not found' || true)
    if [ -n "$missing" ]; then log "FAIL ${plugin##*/}: $missing"; fail=1; fi
done
offline /opt/phytoscope/venv/bin/python -c \
    "from PySide6.QtWidgets import QApplication; import pyqtgraph; app = QApplication([]); print('Qt', app.platformName())"
offline /usr/bin/phytoscope info
offline /usr/bin/phytoscope classify --db -- /opt/phytoscope/resources/samples/images
[ -f "$ROOTFS/tmp/home/.local/share/phytoscope/results.sqlite" ] || { log "FAIL: no results database"; fail=1; }

log "purge"
in_root dpkg --purge phytoscope >&2
left=$(cd "$ROOTFS" && find opt usr etc var/lib/dpkg/info -name '*phytoscope*' 2>/dev/null) || true
[ -z "$left" ] || { log "FAIL: left after purge: $left"; fail=1; }
[ -f "$ROOTFS/tmp/home/.local/share/phytoscope/keep.txt" ] || { log "FAIL: user data removed"; fail=1; }
[ -f "$ROOTFS/tmp/home/.local/share/phytoscope/results.sqlite" ] || { log "FAIL: results removed"; fail=1; }
[ "$fail" = 0 ] && log "OK: installed offline, ran info and classify, purged (aarch64 under qemu)"
exit "$fail"
