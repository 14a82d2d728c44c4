#!/usr/bin/env bash
# Sets up everything the demo build and the test suite need, on a fresh Debian machine with the Rust toolchain:
#   1. Debian packages (QEMU, swtpm, cpio, pigz, time, xz, zstd) when missing;
#   2. the pinned Debian kernel package (recipes/demo-kernel.pin), fetched with apt-get download and checked
#      (scripts/fetch-kernel.sh) into build/kernel;
#   3. the firmware fixtures, decompressed into build/firmware and checked against their recorded sha256;
#   4. the static guest programs (guest-init, summarize-server) and make-weights into build/guest;
#   5. the demo inputs gathered in build/demo (with the demo model's weights), and cvmforge itself (release build);
#   6. with --test: the reference tools the differential tests compare against (sev-snp-measure 0.0.13 and pefile in
#      build/snp-diff-venv, veritysetup and erofs-utils for the data volumes), the kernel build tools (gcc, make,
#      bison, flex, bc, perl, libelf-dev, libssl-dev) for the sealed guest kernel, the real busybox/dropbear/zsh
#      binaries the sealing signatures are checked on, cargo-fuzz
#      (build/tools), zstd, and the workspace's crates (`cargo fetch`, for `cargo metadata --offline`).
# Everything it writes stays inside the repository (build/, target/).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup: $*" >&2; }

install_packages() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v swtpm >/dev/null || missing+=(swtpm)
  command -v swtpm_setup >/dev/null || missing+=(swtpm-tools)
  command -v cpio >/dev/null || missing+=(cpio)
  command -v pigz >/dev/null || missing+=(pigz)
  command -v xz >/dev/null || missing+=(xz-utils)
  command -v zstd >/dev/null || missing+=(zstd)
  [ -x /usr/bin/time ] || missing+=(time)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

decompress_firmware() {
  mkdir -p build/firmware
  local readme=tests/fixtures/firmware/README.md
  for xz_file in tests/fixtures/firmware/*.fd.xz; do
    local name out expected
    name=$(basename "$xz_file" .xz)
    out=build/firmware/$name
    expected=$(awk -F'|' -v n="$name" '$2 ~ "^ *"n" *$" {gsub(/ /, "", $6); print $6}' "$readme")
    if [ ! -f "$out" ] || [ "$(sha256sum "$out" | cut -d' ' -f1)" != "$expected" ]; then
      xz -dc "$xz_file" > "$out.tmp" && mv "$out.tmp" "$out"
    fi
    local actual
    actual=$(sha256sum "$out" | cut -d' ' -f1)
    if [ "$actual" != "$expected" ]; then
      echo "error: $out has sha256 $actual, but $readme records $expected" >&2
      exit 1
    fi
  done
  log "firmware fixtures in build/firmware (sha256 checked)"
}

gather_demo_inputs() {
  mkdir -p build/demo
  local kver
  kver=$(ls build/kernel/root/lib/modules)
  cp -f "build/kernel/root/boot/vmlinuz-$kver" build/demo/vmlinuz
  cp -f "build/kernel/root/boot/config-$kver" build/demo/kernel.config
  cp -f build/firmware/OVMF.amdsev.fd build/firmware/OVMF.inteltdx.ms.fd build/demo/
  cp -f build/guest/guest-init build/guest/summarize-server build/demo/
  # The demo's model: term weights computed from the public-domain corpus, for the `models` data volume.
  mkdir -p build/demo/weights
  build/guest/make-weights examples/summarize-server/corpus build/demo/weights/terms.tsv
  log "demo inputs in build/demo (kernel $kver)"
}

# cargo-fuzz for the fuzz stage, pinned, built into the repository (nothing is cached outside it).
CARGO_FUZZ_VERSION=0.13.2
fuzz_tools() {
  if ! build/tools/bin/cargo-fuzz fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into build/tools"
    cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root build/tools
  fi
  # The tests compare `--version` output with `cargo metadata --offline`, which needs the crates downloaded.
  cargo fetch --locked --quiet
}

reference_tools() {
  # veritysetup (cryptsetup-bin) and fsck.erofs/mkfs.erofs (erofs-utils): independent readers of the data volumes.
  local missing=()
  command -v veritysetup >/dev/null || missing+=(cryptsetup-bin)
  command -v fsck.erofs >/dev/null || missing+=(erofs-utils)
  # What scripts/build-kernel.sh needs to build the sealed guest kernel (the sealed-kernel stage) with Debian's gcc.
  for tool in gcc make bison flex bc perl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ -e /usr/include/libelf.h ] || missing+=(libelf-dev)
  [ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # securesystemslib and in-toto-attestation: the reference readers of our DSSE envelopes and statements.
  local publish_venv=build/publish-venv
  if ! "$publish_venv/bin/python" -c 'import securesystemslib, in_toto_attestation, jsonschema' 2>/dev/null; then
    log "installing securesystemslib 1.6.0, in-toto-attestation 0.9.3 and jsonschema 4.23.0 into $publish_venv"
    python3 -m venv "$publish_venv"
    "$publish_venv/bin/pip" install --quiet --disable-pip-version-check "securesystemslib[crypto]==1.6.0" \
      "in-toto-attestation==0.9.3" "jsonschema==4.23.0"
  fi
  local venv=build/snp-diff-venv
  if ! "$venv/bin/python" -c 'import sevsnpmeasure, pefile' 2>/dev/null; then
    log "installing sev-snp-measure==0.0.13 and pefile into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "sev-snp-measure==0.0.13" pefile
  fi
  local root=build/signature-root
  if [ ! -x "$root/bin/busybox" ] || [ ! -x "$root/usr/sbin/dropbear" ] || [ ! -x "$root/bin/zsh" ]; then
    log "fetching busybox-static, dropbear-bin and zsh (real binaries for the forbidden-content signatures)"
    local work
    work=$(mktemp -d build/.signature.XXXXXX)
    (cd "$work" && apt-get download busybox-static dropbear-bin zsh >/dev/null 2>&1) || {
      apt-get update -qq
      (cd "$work" && apt-get download busybox-static dropbear-bin zsh >/dev/null)
    }
    rm -rf "$root"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    rm -rf "$work"
  fi
}

with_test_tools=false
[ "${1:-}" = "--test" ] && with_test_tools=true

install_packages
$with_test_tools && reference_tools
$with_test_tools && fuzz_tools
scripts/fetch-kernel.sh build/kernel
decompress_firmware
scripts/build-guest.sh build/guest
gather_demo_inputs
log "building cvmforge (release)"
cargo build --release --locked -p cvmforge
log "done"
