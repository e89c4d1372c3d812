# shellcheck shell=bash
# Shared by the scripts in nix/apps/. `nix run` prepends this file to each script; run
# directly, each script sources it from its own directory.

# writeShellApplication sets only errexit, nounset and pipefail (nixpkgs
# pkgs/build-support/trivial-builders/default.nix, `bashOptions`). Without
# inherit_errexit bash runs every `$(...)` with errexit off, so a failed command inside
# one would go unnoticed; the scripts still add `|| die` where a step can fail.
say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# inherit_errexit exists from bash 4.4; `nix run` brings nixpkgs' bash 5, but macOS's
# /bin/bash (3.2) runs these scripts when they are started directly.
shopt -s inherit_errexit 2>/dev/null ||
  die "bash ${BASH_VERSION} is too old: these scripts need bash 4.4 or newer (nix run brings one; on macOS: nix develop)"

# The project checkout: the scripts read nix/kind.yaml and chart/ from it.
root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)

cluster=${GREETER_CLUSTER:-greeter}
context=kind-$cluster
namespace=${GREETER_NAMESPACE:-greeter}
host_port=${GREETER_HOST_PORT:-8080}
export cluster context namespace host_port root

# kind talks to Docker by default; with only Podman running, tell kind to use it.
use_podman_if_no_docker() {
  if ! docker info >/dev/null 2>&1 && podman info >/dev/null 2>&1; then
    export KIND_EXPERIMENTAL_PROVIDER=podman
  fi
}

# Whether kind has the cluster. kind's output is read in full first: in
# `kind get clusters | grep -qx` grep stops at the first match, kind can then die of
# SIGPIPE, and pipefail reports the cluster as missing.
cluster_exists() {
  local clusters
  clusters=$(kind get clusters 2>/dev/null) || clusters=
  grep -qx -- "$cluster" <<<"$clusters"
}

require_cluster() {
  use_podman_if_no_docker
  cluster_exists || die "kind cluster '$cluster' not found: run 'nix run .#cluster-up' first"
}
