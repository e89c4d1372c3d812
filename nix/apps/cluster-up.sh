#!/usr/bin/env bash
# Create the local kind cluster from nix/kind.yaml (1 control plane + 2 workers, NodePort
# 30080 on http://localhost:8080), wait until every node is Ready and install
# metrics-server so the HPA has CPU metrics. Safe to run again: an existing cluster is
# kept and only checked.
#
# Settings: GREETER_CLUSTER (greeter), GREETER_HOST_PORT (8080),
# METRICS_SERVER_VERSION (v0.8.1; its manifest is downloaded from GitHub),
# GREETER_POSTGRES (bundled | cloudnativepg: cloudnativepg also installs the
# CloudNativePG operator, CNPG_VERSION 1.30.0, from its release manifest
# releases/cnpg-<version>.yaml, and waits until it is available).
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

metrics_server_version=${METRICS_SERVER_VERSION:-v0.8.1}
postgres_mode=${GREETER_POSTGRES:-bundled}
cnpg_version=${CNPG_VERSION:-1.30.0}
case $postgres_mode in
  bundled | cloudnativepg) ;;
  *) die "GREETER_POSTGRES is '$postgres_mode'; use bundled (the default) or cloudnativepg" ;;
esac

say "checking the container runtime"
if docker info >/dev/null 2>&1; then
  say "Docker is running ($(docker context show 2>/dev/null || echo default context))"
elif podman info >/dev/null 2>&1; then
  export KIND_EXPERIMENTAL_PROVIDER=podman
  say "Podman is running; kind will use it"
else
  cat >&2 <<'HELP'
error: no running container runtime found; kind runs its nodes as containers.
Start one of these, then run this again:
  Docker Desktop   open the Docker app (macOS/Windows) or `systemctl --user start docker-desktop`
  Docker Engine    sudo systemctl start docker   (and add yourself to the `docker` group)
  Colima           colima start --cpu 4 --memory 8
  OrbStack         orb start
  Podman           podman machine init --cpus 4 --memory 8192 && podman machine start  (macOS)
                   on Linux, rootful Podman: see https://kind.sigs.k8s.io/docs/user/rootless/
The cluster needs about 4 CPUs and 6 GB of memory for three nodes.
HELP
  exit 1
fi

if cluster_exists; then
  say "kind cluster '$cluster' already exists; keeping it"
else
  config=$root/nix/kind.yaml
  [[ -f $config ]] || die "$config not found: run this from the greeter checkout"
  if [[ $host_port != 8080 ]]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    sed "s/hostPort: 8080/hostPort: $host_port/" "$config" >"$tmp"
    config=$tmp
  fi
  say "creating kind cluster '$cluster' (1 control plane, 2 workers; localhost:$host_port -> NodePort 30080)"
  kind create cluster --name "$cluster" --config "$config" --wait 5m \
    || die "kind create cluster '$cluster' failed"
fi

say "waiting until all nodes are Ready"
kubectl --context "$context" wait --for=condition=Ready nodes --all --timeout=5m \
  || die "the nodes of '$cluster' did not become Ready"

# kind ships no metrics-server, so `kubectl top` fails and an HPA shows <unknown>.
# kind's kubelets serve self-signed certificates, hence --kubelet-insecure-tls (local
# clusters only).
if kubectl --context "$context" -n kube-system get deployment metrics-server >/dev/null 2>&1; then
  say "metrics-server already installed"
else
  say "installing metrics-server $metrics_server_version"
  kubectl --context "$context" apply \
    -f "https://github.com/kubernetes-sigs/metrics-server/releases/download/$metrics_server_version/components.yaml"
fi
args=$(kubectl --context "$context" -n kube-system get deployment metrics-server \
  -o jsonpath='{.spec.template.spec.containers[0].args}')
if [[ $args != *--kubelet-insecure-tls* ]]; then
  kubectl --context "$context" -n kube-system patch deployment metrics-server --type=json \
    -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
fi
kubectl --context "$context" -n kube-system rollout status deployment/metrics-server --timeout=5m

# CloudNativePG: the operator (namespace cnpg-system, Deployment cnpg-controller-manager)
# and its CRDs, from the release manifest. Server-side apply: the CRDs are too large for
# the last-applied annotation of a client-side apply (the operator's install docs).
if [[ $postgres_mode == cloudnativepg ]]; then
  cnpg_minor=${cnpg_version%.*}
  manifest=https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-$cnpg_minor/releases/cnpg-$cnpg_version.yaml
  say "installing the CloudNativePG operator $cnpg_version ($manifest)"
  kubectl --context "$context" apply --server-side --force-conflicts -f "$manifest" >&2 \
    || die "could not apply the CloudNativePG $cnpg_version manifest"
  kubectl --context "$context" -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=5m >&2 \
    || die "the CloudNativePG operator (cnpg-system/cnpg-controller-manager) did not become available"
  kubectl --context "$context" wait --for=condition=Established --timeout=2m \
    crd/clusters.postgresql.cnpg.io crd/scheduledbackups.postgresql.cnpg.io >&2 \
    || die "the CloudNativePG CRDs are not established"
  say "CloudNativePG operator $cnpg_version is running; deploy with GREETER_POSTGRES=cloudnativepg nix run .#deploy"
fi

cat >&2 <<NEXT

  kind cluster '$cluster' is ready ($(kubectl --context "$context" get nodes --no-headers | wc -l | tr -d ' ') nodes, context $context).
  Next:
    nix run .#deploy     build the images, load them into kind, install the chart
    nix run .#smoke      check http://localhost:$host_port/ and the admin login
    nix run .#cluster-down   delete the cluster

NEXT
