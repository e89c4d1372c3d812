#!/usr/bin/env bash
# Delete the local kind cluster (and with it every image loaded into it and the
# PostgreSQL volume). GREETER_CLUSTER selects the cluster (greeter).
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

use_podman_if_no_docker
if cluster_exists; then
  say "deleting kind cluster '$cluster'"
  kind delete cluster --name "$cluster" || die "kind delete cluster '$cluster' failed"
else
  say "no kind cluster '$cluster'; nothing to do"
fi
