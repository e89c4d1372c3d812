#!/usr/bin/env bash
# Install everything the tests and the benchmark need on a fresh Debian 12 machine.
# Idempotent: what is already there is skipped. Runs as root, or uses sudo if present.
#
#   apt:   postgresql (server for the test harness), musl-tools (static suite), chromium + chromium-driver (the
#          admin's browser test), nix-bin (nix-instantiate --parse), shellcheck, wrk
#          (benchmark), curl, jq
#   pip:   .venv/ with the chart suite's tools (helm-python-sdk, kubernetes-validate,
#          checkov, check-jsonschema, pytest) and the docs checks; .venv-schema/ with
#          schemathesis (the API's contract suite)
#   rustup: the <arch>-unknown-linux-musl std library (static suite)
#   cargo: nixfmt (crate nixfmt_rs, the official Nix style) and deadnix
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-debian: run as root (no sudo found)" >&2; exit 1; }
  sudo=sudo
fi

apt_packages=(postgresql musl-tools openssl chromium chromium-driver nix-bin shellcheck wrk curl jq ca-certificates)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-debian: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust itself comes from rustup (rust-toolchain.toml pins 1.95.0); Debian's cargo is older.
command -v cargo >/dev/null || {
  echo "setup-debian: cargo not found: install rustup (https://rustup.rs), then run this again" >&2
  exit 1
}

# The static suite builds the images' binaries for musl: the std library for that target
# (rustup skips it when it is already installed).
musl_target="$(uname -m)-unknown-linux-musl"
if command -v rustup >/dev/null; then
  rustup target list --installed | grep -qx "$musl_target" || rustup target add "$musl_target"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "setup-debian: pip install -r tests/chart/requirements.txt"
.venv/bin/pip install --quiet -r tests/chart/requirements.txt
# The API's contract suite (scripts/test-schema.sh) has a venv of its own: schemathesis
# pins its own jsonschema and hypothesis, which must not move the chart suite's.
[ -x .venv-schema/bin/python ] || python3 -m venv .venv-schema
echo "setup-debian: pip install -r tests/schema/requirements.txt"
.venv-schema/bin/pip install --quiet -r tests/schema/requirements.txt

# Versions pinned so every machine formats and lints Nix files the same way.
command -v nixfmt >/dev/null || cargo install --locked --quiet nixfmt_rs@0.5.3
command -v deadnix >/dev/null || cargo install --locked --quiet deadnix@1.3.1

echo "setup-debian: done"
