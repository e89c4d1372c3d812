#!/usr/bin/env bash
# Build both images for the kind nodes' architecture, load them into the cluster and
# install or upgrade the chart:
#   nix build .#packages.<arch>-linux.{image,migrate-image}  (each a docker-archive file)
#   kind load image-archive <that file>
#   the namespace, labelled pod-security.kubernetes.io/{enforce,audit,warn}=restricted
#   helm upgrade --install greeter ./chart --cleanup-on-fail --wait --wait-for-jobs ...
#     --set image.tag=... --set migrateImage.tag=...
# Any failed step stops here, before Helm, with a non-zero exit.
# On macOS the images are Linux binaries: this needs a Linux builder (see DOCS.md).
#
# Settings: GREETER_CLUSTER (greeter), GREETER_NAMESPACE (greeter), GREETER_HOST_PORT
# (8080), HELM_TIMEOUT (10m), GREETER_SKIP_BUILDER_CHECK (macOS: 1 skips the builder
# check), GREETER_POSTGRES (bundled | cloudnativepg: sets postgresql.mode; the operator
# comes from `GREETER_POSTGRES=cloudnativepg nix run .#cluster-up`); extra arguments are
# passed to helm (e.g. -f values.yaml).
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

release=greeter
helm_timeout=${HELM_TIMEOUT:-10m}
[[ -f $root/chart/Chart.yaml && -f $root/flake.nix ]] \
  || die "run this from the greeter checkout (no chart/ or flake.nix in $root)"
require_cluster

arch=$(kubectl --context "$context" get nodes -o jsonpath='{.items[0].status.nodeInfo.architecture}') \
  || die "could not read the node architecture of cluster '$cluster' (kubectl get nodes failed)"
case $arch in
  amd64) system=x86_64-linux ;;
  arm64) system=aarch64-linux ;;
  *) die "unsupported node architecture '$arch'" ;;
esac
say "cluster '$cluster' runs $arch nodes: building images for $system"

# Nix builds for another system only through a remote builder or a VM (nix-darwin's
# linux-builder); say precisely what is missing instead of failing deep in the build.
# GREETER_SKIP_BUILDER_CHECK=1 skips the check for a builder Nix does not list in either
# setting (e.g. one a Nix distribution provides natively); the build then says the rest.
if [[ $(uname -s) == Darwin && ${GREETER_SKIP_BUILDER_CHECK:-0} != 1 ]]; then
  builders=$(nix config show builders 2>/dev/null || true)
  # The default is "@/etc/nix/machines": the builders listed in that file.
  if [[ $builders == @* ]]; then
    builders=$(grep -v '^[[:space:]]*#' "${builders#@}" 2>/dev/null || true)
  fi
  platforms=$(nix config show extra-platforms 2>/dev/null || true)
  if [[ -z ${builders// /} && $platforms != *"$system"* ]]; then
    cat >&2 <<HELP
error: the images are $system binaries, and this Mac has no Linux builder.
Nix reports builders = '${builders}' and extra-platforms = '${platforms}'.
Set one up, then run this again:
  nix-darwin:  nix.linux-builder.enable = true;  (then darwin-rebuild switch)
  otherwise:   see "Images on macOS" in DOCS.md (a remote $system builder in
               /etc/nix/machines, or 'nix run nixpkgs#darwin.linux-builder').
Check with: nix build --no-link .#packages.$system.greeter-static
A builder Nix lists in neither setting: GREETER_SKIP_BUILDER_CHECK=1 nix run .#deploy
HELP
    exit 1
  fi
fi

# The image outputs are uncompressed docker-archive files, built (on the Linux builder,
# from macOS) by Nix; nothing built for Linux runs on this machine. kind opens the
# file once per node, concurrently, which a file allows and a pipe does not.
build_and_load() {
  local attr=$1 archive tag
  say "building .#packages.$system.$attr"
  archive=$(nix build --no-link --print-out-paths "$root#packages.$system.$attr") \
    || die "nix build .#packages.$system.$attr failed"
  [[ -f $archive ]] || die "nix build .#packages.$system.$attr gave '$archive', not an image archive file"
  tag=$(nix eval --raw "$root#packages.$system.$attr.imageTag") \
    || die "nix eval .#packages.$system.$attr.imageTag failed"
  [[ -n $tag ]] || die "nix eval .#packages.$system.$attr.imageTag gave an empty tag"
  say "loading $archive into kind ($attr:$tag)"
  kind load image-archive "$archive" --name "$cluster" >&2 \
    || die "kind load image-archive $archive --name $cluster failed"
  printf '%s\n' "$tag"
}
# A plain assignment, not `|| exit`: a `||` would switch errexit off inside the function.
# A failed step exits the substitution's subshell (inherit_errexit, die), and then this.
image_tag=$(build_and_load image)
migrate_tag=$(build_and_load migrate-image)

# The namespace is created here, not by Helm, so it carries the Pod Security labels:
# the cluster then enforces the restricted profile the chart complies with. `apply` is
# idempotent and keeps the labels on an existing namespace.
say "namespace $namespace (pod security: restricted)"
kubectl --context "$context" apply -f - >&2 <<NAMESPACE || die "could not create or label namespace $namespace"
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/audit: restricted
    pod-security.kubernetes.io/warn: restricted
NAMESPACE

show_failure() {
  warn "helm upgrade failed; the pods that are not healthy:"
  kubectl --context "$context" -n "$namespace" get pods -o wide >&2 || true
  local pods pod
  pods=$(kubectl --context "$context" -n "$namespace" get pods \
    -o jsonpath='{range .items[?(@.status.phase!="Succeeded")]}{.metadata.name}{" "}{range .status.containerStatuses[*]}{.ready}{" "}{end}{"\n"}{end}' \
    | awk '/false/ || NF == 1 {print $1}')
  for pod in $pods; do
    printf '\n----- events of %s\n' "$pod" >&2
    kubectl --context "$context" -n "$namespace" get events \
      --field-selector "involvedObject.name=$pod" --sort-by=.lastTimestamp >&2 || true
    printf '\n----- logs of %s (all containers, last 50 lines)\n' "$pod" >&2
    kubectl --context "$context" -n "$namespace" logs "$pod" --all-containers --prefix --tail=50 >&2 || true
  done
  printf '\n----- jobs\n' >&2
  kubectl --context "$context" -n "$namespace" get jobs >&2 || true
}

# Only when asked: --set beats -f, so a default here would override a values file.
mode_args=()
if [[ -n ${GREETER_POSTGRES:-} ]]; then
  mode_args=(--set "postgresql.mode=$GREETER_POSTGRES")
fi
say "helm upgrade --install $release (namespace $namespace, timeout $helm_timeout)"
if ! helm upgrade --install "$release" "$root/chart" \
  --kube-context "$context" --namespace "$namespace" --cleanup-on-fail \
  --wait --wait-for-jobs --timeout "$helm_timeout" \
  --set "image.tag=$image_tag" --set "migrateImage.tag=$migrate_tag" \
  --set "service.kindHostPort=$host_port" "${mode_args[@]}" "$@"; then
  show_failure
  exit 1
fi

cat >&2 <<DONE

  greeter is deployed (images greeter:$image_tag, greeter-migrate:$migrate_tag).
    API:    http://localhost:$host_port/
    Admin:  http://localhost:$host_port/admin/  (user admin)
    Admin password:
      kubectl --context $context -n $namespace get secret $release -o jsonpath='{.data.ADMIN_PASSWORD}' | base64 -d; echo
    Check:  nix run .#smoke

DONE
