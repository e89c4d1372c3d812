#!/usr/bin/env bash
# The images' binaries, built static here the way the flake builds them (nix/rust.nix,
# staticAll): both binaries for <arch>-unknown-linux-musl, release profile, default
# features, +crt-static; C dependencies (ring, mimalloc) compiled by musl-gcc (Debian
# musl-tools) as gnu2x, which is what GCC 15 defaults to (the case that broke the flake's
# link). rustc links with its own self-contained musl (no linker override: musl-gcc as
# the linker gives a dynamic PIE with PT_INTERP /lib/ld-musl-*.so.1).
# Then: no INTERP, no NEEDED, sizes under 20 MB, and tests/chart/test_static_image.py runs
# the chart's rendered containers with them in an image-shaped, read-only root as UID
# 65532 (needs root: unshare -m, mount, chroot). Extra arguments go to pytest.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "test-static: $*" >&2; }
die() {
  say "$*"
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (unshare -m, mount and chroot build the image-shaped root)"
for tool in musl-gcc readelf unshare chroot mount openssl; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup-debian.sh installs musl-tools, binutils, util-linux, openssl)"
done

arch=$(uname -m)
case "$arch" in
  x86_64 | aarch64) ;;
  *) die "no musl target for $arch" ;;
esac
target="$arch-unknown-linux-musl"
target_env=${target//-/_}
rustup target list --installed | grep -qx "$target" || die "rust target $target missing: rustup target add $target"

export CARGO_TARGET_DIR="$PWD/target/static"
export "CC_$target_env=musl-gcc"
export "CFLAGS_$target_env=-std=gnu2x"
export RUSTFLAGS="-C target-feature=+crt-static"
say "cargo build --release --target $target (CC=musl-gcc, CFLAGS=-std=gnu2x, +crt-static)"
started=$(date +%s)
cargo build --locked --release --target "$target" --bins || die "static build failed"
say "static build: $(($(date +%s) - started))s"

bin_dir="$CARGO_TARGET_DIR/$target/release"
limit=$((20 * 1000 * 1000))
for name in greeter greeter-migrate; do
  bin="$bin_dir/$name"
  [ -x "$bin" ] || die "$bin missing after the build"
  program_headers=$(readelf -lW "$bin") || die "readelf -l $bin failed"
  dynamic=$(readelf -dW "$bin") || die "readelf -d $bin failed"
  if grep -q 'INTERP' <<<"$program_headers"; then
    die "$name has a program interpreter (not static): $(grep -A1 INTERP <<<"$program_headers")"
  fi
  if grep -q '(NEEDED)' <<<"$dynamic"; then
    die "$name needs shared libraries: $(grep '(NEEDED)' <<<"$dynamic")"
  fi
  size=$(stat -c %s "$bin")
  say "$name: static (no INTERP, no NEEDED), $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
  [ "$size" -le "$limit" ] || die "$name is $size bytes, over the 20 MB image goal"
done

venv=.venv
"$venv/bin/python" -c 'import helm_python, pytest, yaml' 2>/dev/null \
  || die "$venv lacks tests/chart/requirements.txt: run scripts/setup-debian.sh (or scripts/test-chart.sh once)"

export GREETER_STATIC_BIN_DIR="$bin_dir"
"$venv/bin/python" -m pytest tests/chart/test_static_image.py -p no:cacheprovider -q -rs --durations=5 "$@" \
  || die "the static binaries failed in the image-shaped root"
