#!/bin/sh
# Assemble a bundle's rootfs from the host's static busybox (Debian: busybox-static).
# Usage: bundles/build-rootfs.sh [BUNDLE_DIR]   (default: bundles/busybox)
# The rootfs is never committed; this script makes it again in well under a second.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bundle=${1:-$here/busybox}
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "build-rootfs: $busybox is missing; install busybox-static" >&2; exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "build-rootfs: $busybox is dynamically linked; install busybox-static" >&2; exit 1
fi
root=$bundle/rootfs
rm -rf "$root.tmp"
mkdir -p "$root.tmp"
cd "$root.tmp"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/run run
chmod 1777 tmp
cp "$busybox" bin/busybox
for applet in $(./bin/busybox --list-full 2>/dev/null || ./bin/busybox --list | sed 's|^|bin/|'); do
    [ "$applet" = bin/busybox ] && continue
    [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done
cat > etc/passwd <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > etc/group <<'GR'
root:x:0:
daemon:x:1:
tty:x:5:
users:x:100:
nogroup:x:65534:
GR
echo "127.0.0.1 localhost" > etc/hosts
: > etc/resolv.conf
cd - >/dev/null
rm -rf "$root"
mv "$root.tmp" "$root"
echo "rootfs ready: $root"
