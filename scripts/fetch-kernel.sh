#!/usr/bin/env bash
# Fetches a real Debian kernel package (linux-image-*-amd64, with its modules) with `apt-get download` and extracts it.
#
#   scripts/fetch-kernel.sh [DEST]        (default DEST: build/kernel)
#
# Result: DEST/root/boot/vmlinuz-<kver>, DEST/root/boot/config-<kver>, DEST/root/lib/modules/<kver>/, and DEST/PACKAGE
# naming the package, its version and the sha256 of the .deb. The kernel that the metapackage linux-image-amd64 points to
# today is used, unless CVMFORGE_KERNEL_PACKAGE names one (e.g. linux-image-6.1.0-56-amd64). Re-running is cheap: an
# already extracted package is kept.
set -euo pipefail

dest=${1:-build/kernel}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

if [ -f "$dest/PACKAGE" ] && [ -d "$dest/root/boot" ]; then
  echo "fetch-kernel: using $(head -n1 "$dest/PACKAGE") in $dest" >&2
  exit 0
fi

if [ -n "${CVMFORGE_KERNEL_PACKAGE:-}" ]; then
  pkg=$CVMFORGE_KERNEL_PACKAGE
else
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    echo "fetch-kernel: apt does not know linux-image-amd64 yet; running apt-get update" >&2
    apt-get update -qq
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
fi
[ -n "$pkg" ] || { echo "error: could not find the kernel package that linux-image-amd64 depends on" >&2; exit 1; }

work=$(mktemp -d "$dest/.download.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch-kernel: apt-get download $pkg" >&2
(cd "$work" && apt-get download "$pkg" >/dev/null 2>"$work/apt.log") || { cat "$work/apt.log" >&2; exit 1; }
deb=$(ls "$work"/*.deb)
rm -rf "$dest/root"
dpkg-deb -x "$deb" "$dest/root"
version=$(dpkg-deb -f "$deb" Version)
sha=$(sha256sum "$deb" | cut -d' ' -f1)
kver=$(ls "$dest/root/lib/modules")
printf '%s %s\nkernel_release %s\ndeb_sha256 %s\n' "$pkg" "$version" "$kver" "$sha" > "$dest/PACKAGE"
echo "fetch-kernel: extracted $pkg $version ($kver) into $dest/root" >&2
