#!/usr/bin/env bash
# Fetches the pinned Debian kernel package (linux-image-*-amd64, with its modules) with `apt-get download`, checks it
# against the pin, and extracts it.
#
#   scripts/fetch-kernel.sh [DEST]            (default DEST: build/kernel)
#   scripts/fetch-kernel.sh --repin [DEST]    pin what linux-image-amd64 points to today, then fetch it
#
# The pin is recipes/demo-kernel.pin (package, version, sha256 of the .deb), so that the demo's measurements do not
# drift with the archive. When the archive no longer serves the pinned package, this fails and says how to re-pin.
# Result: DEST/root/boot/vmlinuz-<kver>, DEST/root/boot/config-<kver>, DEST/root/lib/modules/<kver>/, and DEST/PACKAGE
# naming the package, its version and the sha256 of the .deb. Re-running is cheap: the pinned package, once
# extracted, is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
pin_file=recipes/demo-kernel.pin

repin=false
if [ "${1:-}" = "--repin" ]; then
  repin=true
  shift
fi
dest=${1:-build/kernel}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

pin_field() { awk -v k="$1" '$1 == k {print $2}' "$pin_file"; }

if $repin; then
  apt-get update -qq
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || { echo "error: could not find the kernel package that linux-image-amd64 depends on" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download "$pkg" >/dev/null)
  deb=$(ls "$work"/*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  sha=$(sha256sum "$deb" | cut -d' ' -f1)
  { grep '^#' "$pin_file"; printf 'package %s\nversion %s\nsha256 %s\n' "$pkg" "$version" "$sha"; } > "$pin_file.tmp"
  mv "$pin_file.tmp" "$pin_file"
  echo "fetch-kernel: pinned $pkg $version (sha256 $sha) in $pin_file; the demo's measurements change" >&2
  rm -rf "$work"
  trap - EXIT
fi

pkg=$(pin_field package)
version=$(pin_field version)
sha=$(pin_field sha256)
if [ -z "$pkg" ] || [ -z "$version" ] || ! [[ "$sha" =~ ^[0-9a-f]{64}$ ]]; then
  echo "error: $pin_file must hold \`package NAME\`, \`version VERSION\` and \`sha256 <64 hex digits>\`" >&2
  exit 1
fi

if [ -f "$dest/PACKAGE" ] && [ -d "$dest/root/boot" ] && grep -qx "deb_sha256 $sha" "$dest/PACKAGE"; then
  echo "fetch-kernel: using $pkg $version in $dest" >&2
  exit 0
fi

work=$(mktemp -d "$dest/.download.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch-kernel: apt-get download $pkg=$version" >&2
if ! (cd "$work" && apt-get download "$pkg=$version" >/dev/null 2>"$work/apt.log"); then
  # apt may only lack an up-to-date package list.
  apt-get update -qq
  if ! (cd "$work" && apt-get download "$pkg=$version" >/dev/null 2>"$work/apt.log"); then
    cat "$work/apt.log" >&2
    echo "error: the Debian archive no longer serves $pkg $version, which $pin_file pins." >&2
    echo "hint: re-pin to the kernel that linux-image-amd64 points to today with \`scripts/fetch-kernel.sh --repin\`" >&2
    echo "      (the demo's measurements then change; commit the new $pin_file)" >&2
    exit 1
  fi
fi
deb=$(ls "$work"/*.deb)
actual=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$actual" != "$sha" ]; then
  echo "error: $pkg $version from the archive has sha256 $actual, but $pin_file pins $sha" >&2
  exit 1
fi
rm -rf "$dest/root"
dpkg-deb -x "$deb" "$dest/root"
kver=$(ls "$dest/root/lib/modules")
printf '%s %s\nkernel_release %s\ndeb_sha256 %s\n' "$pkg" "$version" "$kver" "$sha" > "$dest/PACKAGE"
echo "fetch-kernel: extracted $pkg $version ($kver) into $dest/root" >&2
