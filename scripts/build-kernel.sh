#!/usr/bin/env bash
# Builds the sealed guest kernel reproducibly: Debian's linux-source-6.12 (pinned in kernel-config/linux-source.pin),
# configured by kernel-config/sealed-guest.config on top of allnoconfig, compiled with Debian 12's gcc.
#
#   scripts/build-kernel.sh [--work DIR] [OUT]      (default OUT: build/kernel-sealed, DIR: OUT/work)
#
# OUT gets: bzImage, config (the final .config), BUILDINFO (source package, version and .deb sha256, gcc --version,
# the pinned KBUILD_* values). Nothing else in OUT depends on where or when the build ran: the timestamp comes from
# recipes/demo-sealed.yaml's source_date_epoch, user/host/version are fixed, source paths are mapped to `.`, and there
# are no modules (so no module-signing key) and no randomized struct layout. scripts/kernel-repro.sh builds twice in
# two directories and compares. OUT/build.log keeps the compiler output and the elapsed time (not part of the result).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
pin_file=kernel-config/linux-source.pin
fragment=$repo/kernel-config/sealed-guest.config

work=
if [ "${1:-}" = "--work" ]; then
  work=${2:?--work needs a directory}
  shift 2
fi
out=${1:-build/kernel-sealed}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${work:-$out/work}
mkdir -p "$work"
work=$(cd "$work" && pwd)

pin_field() { awk -v k="$1" '$1 == k {print $2}' "$pin_file"; }
pkg=$(pin_field package)
version=$(pin_field version)
sha=$(pin_field sha256)
[[ "$sha" =~ ^[0-9a-f]{64}$ ]] || { echo "error: $pin_file: \`sha256\` must be 64 hex digits" >&2; exit 1; }
epoch=$(awk '$1 == "source_date_epoch:" {print $2}' recipes/demo-sealed.yaml)
[[ "$epoch" =~ ^[0-9]+$ ]] || { echo "error: recipes/demo-sealed.yaml: no numeric source_date_epoch" >&2; exit 1; }

for tool in gcc make bison flex bc perl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing; run scripts/setup.sh --kernel" >&2; exit 1; }
done
[ -e /usr/include/libelf.h ] || { echo "error: libelf-dev is missing; run scripts/setup.sh --kernel" >&2; exit 1; }

# 1. The pinned source package, checked before anything is unpacked.
deb="$work/$pkg.deb"
if ! [ -f "$deb" ] || [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sha" ]; then
  rm -f "$work"/*.deb
  echo "build-kernel: apt-get download $pkg=$version" >&2
  dl() { (cd "$work" && apt-get -o APT::Sandbox::User=root download "$pkg=$version" >/dev/null 2>"$work/apt.log"); }
  dl || { apt-get update -qq && dl; } || {
    cat "$work/apt.log" >&2
    echo "error: the Debian archive does not serve $pkg $version, which $pin_file pins" >&2
    exit 1
  }
  mv "$work"/"${pkg}"_*.deb "$deb"
fi
actual=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$actual" != "$sha" ]; then
  echo "error: $deb has sha256 $actual, but $pin_file pins $sha" >&2
  exit 1
fi

# 2. A clean source tree every time: a stale object file must never reach the output.
src="$work/linux"
rm -rf "$src" "$work/unpack"
mkdir -p "$work/unpack"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/unpack" "./usr/src/$pkg.tar.xz"
tar -xJf "$work/unpack/usr/src/$pkg.tar.xz" -C "$work/unpack"
mv "$work/unpack/$pkg" "$src"
rm -rf "$work/unpack"

# 3. Configure, and check that Kconfig kept every value of the fragment.
kbuild=(
  "KBUILD_BUILD_TIMESTAMP=$(date -u -d "@$epoch" '+%Y-%m-%d %H:%M:%S UTC')"
  KBUILD_BUILD_USER=cvmforge KBUILD_BUILD_HOST=cvmforge KBUILD_BUILD_VERSION=1
  "KCFLAGS=-ffile-prefix-map=$src/=./"
  "KAFLAGS=-ffile-prefix-map=$src/=./"
)
make -C "$src" -s "${kbuild[@]}" KCONFIG_ALLCONFIG="$fragment" allnoconfig
dropped=0
while read -r line; do
  grep -qxF "$line" "$src/.config" || { echo "error: Kconfig dropped \`$line\` (a dependency is missing)" >&2; dropped=$((dropped + 1)); }
done < <(grep -E '^CONFIG_' "$fragment")
while read -r opt; do
  if grep -qE "^$opt=" "$src/.config"; then echo "error: \`$opt\` is set, but the fragment turns it off" >&2; dropped=$((dropped + 1)); fi
done < <(grep -E '^# CONFIG_[A-Z0-9_]+ is not set' "$fragment" | awk '{print $2}')
[ "$dropped" = 0 ] || exit 1

# 4. Build (modules are off; bzImage is the whole kernel).
started=$(date +%s)
echo "build-kernel: make -j$(nproc) bzImage in $src" >&2
if ! make -C "$src" -j"$(nproc)" "${kbuild[@]}" bzImage >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log" >&2
  echo "error: the kernel build failed; the whole log is $out/build.log" >&2
  exit 1
fi
elapsed=$(( $(date +%s) - started ))
echo "elapsed_seconds $elapsed on $(nproc) cores" >>"$out/build.log"

# 5. Publish: temp files, then rename.
cp "$src/arch/x86/boot/bzImage" "$out/.bzImage.tmp"
cp "$src/.config" "$out/.config.tmp"
{
  echo "source_package $pkg"
  echo "source_version $version"
  echo "source_deb_sha256 $sha"
  echo "kernel_release $(make -C "$src" -s kernelrelease)"
  echo "config_fragment_sha256 $(sha256sum "$fragment" | cut -d' ' -f1)"
  echo "source_date_epoch $epoch"
  printf '%s\n' "${kbuild[@]}" | sed "s|$src/|<src>/|; s/^/kbuild /"
  echo "gcc $(gcc --version | head -1)"
  echo "bzImage_sha256 $(sha256sum "$out/.bzImage.tmp" | cut -d' ' -f1)"
} >"$out/.BUILDINFO.tmp"
mv "$out/.bzImage.tmp" "$out/bzImage"
mv "$out/.config.tmp" "$out/config"
mv "$out/.BUILDINFO.tmp" "$out/BUILDINFO"
echo "build-kernel: $out/bzImage ($(sha256sum "$out/bzImage" | cut -d' ' -f1)) in ${elapsed}s" >&2
