#!/usr/bin/env bash
# The kind/Helm app scripts as `nix run` runs them (tests/nix/assemble_app.sh: the
# writeShellApplication header, lib.sh, the script), against fake nix, kind, kubectl, helm,
# docker, podman and uname that append their argv to a log and fail on demand
# (FAKE_FAIL="nix-build kind-load ..."). No cluster, no Nix store, no network, no sleeps.
# Run from anywhere; prints ok/FAIL per case, non-zero exit on any failure.
# The cases read `condition && condition || { report; return 1; }`: the report runs
# whenever any condition fails, which is the intent.
# shellcheck disable=SC2015
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=tests/nix/assemble_app.sh
source tests/nix/assemble_app.sh

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/bin
mkdir -p "$bin" "$tmp/apps"

# --- the fakes -------------------------------------------------------------------------
# Common prologue: log the call, fail if FAKE_FAIL names this step.
cat >"$tmp/fake-common.sh" <<'COMMON'
name=${0##*/}
printf '%s\n' "$name $*" >>"$FAKE_DIR/log"
fails() {
  local step
  for step in ${FAKE_FAIL:-}; do
    [[ $step == "$1" ]] && { echo "fake $name: $1 fails (FAKE_FAIL)" >&2; exit 1; }
  done
  return 0
}
COMMON
fake() {
  { printf '#!/usr/bin/env bash\nset -euo pipefail\nsource %q\n' "$tmp/fake-common.sh"; cat; } >"$bin/$1"
  chmod +x "$bin/$1"
}

fake nix <<'FAKE'
attr=${!#}
case "$1 ${2:-}" in
  "build --no-link")
    attr=${attr##*.}
    fails nix-build
    fails "nix-build:$attr"
    # An image output is the archive file. Executable, so running it (the old stream
    # script way) would show in the log.
    mkdir -p "$FAKE_DIR/store"
    out=$FAKE_DIR/store/$attr.tar
    printf '#!/bin/sh\necho "EXECUTED %s" >>"%s"\n' "$out" "$FAKE_DIR/log" >"$out"
    chmod +x "$out"
    echo "$out" ;;
  "eval --raw")
    attr=${attr%.imageTag}
    attr=${attr##*.}
    fails nix-eval
    fails "nix-eval:$attr"
    echo "tag-$attr" ;;
  "config show")
    case $3 in
      builders) echo "${FAKE_NIX_BUILDERS:-}" ;;
      extra-platforms) echo "${FAKE_NIX_PLATFORMS:-}" ;;
    esac ;;
  *) echo "fake nix: unexpected call: $*" >&2; exit 2 ;;
esac
FAKE

# kind's clusters live in $FAKE_DIR/clusters; `get clusters` prints them, then
# FAKE_MANY other clusters (enough output that a reader quitting early kills the writer).
fake kind <<'FAKE'
opt() { local want=$1; shift; while (($#)); do [[ $1 == "$want" ]] && { echo "$2"; return; }; shift; done; }
case "$1 ${2:-}" in
  "get clusters")
    fails kind-get
    cat "$FAKE_DIR/clusters"
    if ((${FAKE_MANY:-0} > 0)); then printf 'other-cluster-%06d\n' $(seq 1 "$FAKE_MANY"); fi ;;
  "create cluster")
    fails kind-create
    cp "$(opt --config "$@")" "$FAKE_DIR/kind-config.yaml"
    opt --name "$@" >>"$FAKE_DIR/clusters" ;;
  "delete cluster")
    fails kind-delete
    name=$(opt --name "$@")
    grep -vx -- "$name" "$FAKE_DIR/clusters" >"$FAKE_DIR/clusters.new" || true
    mv "$FAKE_DIR/clusters.new" "$FAKE_DIR/clusters" ;;
  "load image-archive")
    fails kind-load
    [[ -f $3 ]] || { echo "fake kind: no archive $3" >&2; exit 1; } ;;
  *) echo "fake kind: unexpected call: $*" >&2; exit 2 ;;
esac
FAKE

fake kubectl <<'FAKE'
args=" $* "
case $args in
  *" apply -f - "*)
    fails kubectl-apply
    n=$(wc -l <"$FAKE_DIR/log")
    cat >"$FAKE_DIR/applied-$n.yaml"
    printf 'applied-%s.yaml\n' "$n" >>"$FAKE_DIR/log" ;;
  *" get nodes -o jsonpath="*) fails kubectl-nodes; echo "${FAKE_ARCH:-amd64}" ;;
  *" get nodes --no-headers "*) printf 'n%s Ready\n' 1 2 3 ;;
  *" get deployment metrics-server -o jsonpath="*) echo '["--kubelet-insecure-tls"]' ;;
  *" apply --server-side "*) fails kubectl-cnpg ;;
  *" rollout status deployment/cnpg-controller-manager "*) fails cnpg-rollout ;;
  *) fails kubectl ;;
esac
FAKE

fake helm <<'FAKE'
fails helm
FAKE
fake docker <<'FAKE'
fails docker
FAKE
fake podman <<'FAKE'
fails podman
FAKE
fake uname <<'FAKE'
echo "${FAKE_UNAME:-Linux}"
FAKE

for app in deploy cluster-up cluster-down; do
  assemble_app "$app" "$bin" "$tmp/apps/$app"
done

# --- running an app --------------------------------------------------------------------
# run APP [VAR=value...]: a fresh fake world (the clusters in FAKE_CLUSTERS), then the
# app with those variables; sets $status, output in $out, the calls in $log.
out=$tmp/out
log=$tmp/fake/log
run() {
  local app=$1
  shift
  rm -rf "$tmp/fake"
  mkdir -p "$tmp/fake"
  : >"$log"
  # shellcheck disable=SC2086 # one cluster name per word
  printf '%s\n' ${FAKE_CLUSTERS:-} >"$tmp/fake/clusters"
  again "$app" "$@"
}
# again APP [VAR=value...]: the same, keeping the fake world of the previous run.
again() {
  local app=$1
  shift
  env -u GREETER_CLUSTER -u GREETER_NAMESPACE -u GREETER_HOST_PORT -u GREETER_SKIP_BUILDER_CHECK -u KIND_EXPERIMENTAL_PROVIDER \
    -u GREETER_POSTGRES -u CNPG_VERSION \
    FAKE_DIR="$tmp/fake" "$@" "$tmp/apps/$app" >"$out" 2>&1 </dev/null
  status=$?
}
show() { sed 's/^/  | /' "$out"; echo "  calls:"; sed 's/^/  > /' "$log"; }
called() { grep -q -- "$1" "$log"; }
line_of() { grep -n -- "$1" "$log" | head -n 1 | cut -d: -f1; }

# --- deploy ----------------------------------------------------------------------------
deploy_stops() {
  local step=$1 message=$2
  FAKE_CLUSTERS=greeter run deploy FAKE_FAIL="$step"
  if [[ $status == 0 ]]; then echo "  deploy exited 0 after a failed $step"; show; return 1; fi
  if called '^helm'; then echo "  deploy ran helm after a failed $step"; show; return 1; fi
  if ! grep -q "^error: .*$message" "$out"; then echo "  no 'error: ...$message' in the output"; show; return 1; fi
}
check "deploy: a failed nix build stops it before helm, naming the step" deploy_stops nix-build "nix build"
check "deploy: a failed nix build of the second image stops it before helm" deploy_stops nix-build:migrate-image "nix build .*migrate-image"
check "deploy: a failed nix eval of the tag stops it before helm" deploy_stops nix-eval "nix eval"
check "deploy: a failed kind load stops it before helm" deploy_stops kind-load "kind load"
check "deploy: a failed namespace apply stops it before helm" deploy_stops kubectl-apply "namespace"

deploy_good() {
  local ok=0 helm_line ns_line ns label
  FAKE_CLUSTERS=greeter FAKE_MANY=20000 run deploy
  [[ $status == 0 ]] || { echo "  deploy exited $status"; ok=1; }
  helm_line=$(grep '^helm ' "$log")
  [[ $(grep -c '^helm ' "$log") == 1 ]] || { echo "  helm not called exactly once"; ok=1; }
  local want
  for want in " upgrade --install greeter " " --set image.tag=tag-image " \
    " --set migrateImage.tag=tag-migrate-image " " --cleanup-on-fail " " --namespace greeter " \
    " --kube-context kind-greeter " " --set service.kindHostPort=8080 "; do
    [[ " $helm_line " == *"$want"* ]] || { echo "  helm call lacks '$want'"; ok=1; }
  done
  [[ $helm_line != *--create-namespace* ]] || { echo "  helm still creates the namespace"; ok=1; }
  for want in image migrate-image; do
    called "^kind load image-archive $tmp/fake/store/$want.tar --name greeter\$" \
      || { echo "  the $want archive built by nix was not loaded as a file"; ok=1; }
    called "^nix build --no-link --print-out-paths .*#packages.x86_64-linux.$want\$" \
      || { echo "  no nix build of .#packages.x86_64-linux.$want"; ok=1; }
  done
  ! called '^EXECUTED' || { echo "  an image output was executed on the host"; ok=1; }
  ns_line=$(line_of '^applied-')
  if [[ -z $ns_line ]]; then
    echo "  no namespace applied with kubectl apply -f -"; ok=1
  else
    [[ -n ${helm_line} && $ns_line -lt $(line_of '^helm ') ]] || { echo "  the namespace is applied after helm"; ok=1; }
    ns=$tmp/fake/$(sed -n "${ns_line}p" "$log")
    grep -qx 'kind: Namespace' "$ns" && grep -qx '  name: greeter' "$ns" \
      || { echo "  the applied object is not Namespace greeter:"; cat "$ns"; ok=1; }
    for label in enforce audit warn; do
      grep -qx "    pod-security.kubernetes.io/$label: restricted" "$ns" \
        || { echo "  namespace lacks pod-security.kubernetes.io/$label=restricted"; ok=1; }
    done
  fi
  [[ $ok == 0 ]] || show
  return $ok
}
check "deploy: helm upgrade --install with both tags, --cleanup-on-fail, the labelled namespace first (cluster among 20000)" deploy_good

deploy_arm() {
  FAKE_CLUSTERS=greeter run deploy FAKE_ARCH=arm64
  [[ $status == 0 ]] && called '^nix build .*#packages.aarch64-linux.image$' || { show; return 1; }
}
check "deploy: arm64 nodes get aarch64-linux images" deploy_arm

deploy_no_cluster() {
  FAKE_CLUSTERS=other run deploy
  [[ $status != 0 ]] && ! called '^helm' && ! called '^nix build' && grep -q "cluster-up" "$out" || { show; return 1; }
}
check "deploy: no cluster -> exit 1, points at cluster-up, builds nothing" deploy_no_cluster

mac_no_builder() {
  FAKE_CLUSTERS=greeter run deploy FAKE_UNAME=Darwin
  local ok=0
  [[ $status == 1 ]] || { echo "  exit $status, not 1"; ok=1; }
  grep -q 'no Linux builder' "$out" && grep -q 'nix.linux-builder.enable = true' "$out" \
    && grep -q 'Images on macOS' "$out" || { echo "  no builder instructions"; ok=1; }
  ! called '^nix build' && ! called '^helm' || { echo "  it built or deployed anyway"; ok=1; }
  [[ $ok == 0 ]] || show
  return $ok
}
check "deploy on macOS without a Linux builder: the instructions, exit 1" mac_no_builder

mac_builder() {
  FAKE_CLUSTERS=greeter run deploy FAKE_UNAME=Darwin FAKE_NIX_BUILDERS='ssh-ng://builder x86_64-linux'
  [[ $status == 0 ]] && called '^kind load image-archive .*/image.tar' && ! called '^EXECUTED' \
    && called '^helm upgrade' || { show; return 1; }
}
check "deploy on macOS with a builder: loads the built archive, runs nothing Linux on the host" mac_builder

mac_skip_check() {
  FAKE_CLUSTERS=greeter run deploy FAKE_UNAME=Darwin GREETER_SKIP_BUILDER_CHECK=1
  [[ $status == 0 ]] && ! grep -q 'no Linux builder' "$out" && called '^helm upgrade' || { show; return 1; }
}
check "deploy on macOS, builder check skipped (GREETER_SKIP_BUILDER_CHECK=1): builds and deploys" mac_skip_check

# --- cluster-up ------------------------------------------------------------------------
up_idempotent() {
  FAKE_CLUSTERS='' run cluster-up
  [[ $status == 0 && $(grep -c '^kind create' "$log") == 1 ]] || { echo "  first run:"; show; return 1; }
  again cluster-up FAKE_MANY=20000
  [[ $status == 0 && $(grep -c '^kind create' "$log") == 1 ]] || { echo "  second run:"; show; return 1; }
  grep -q "already exists" "$out" || { show; return 1; }
}
check "cluster-up: creates once; a second run (its cluster among 20000) creates nothing" up_idempotent

up_among_many() {
  FAKE_CLUSTERS="a greeter b" run cluster-up FAKE_MANY=20000
  [[ $status == 0 ]] && ! called '^kind create' || { show; return 1; }
}
check "cluster-up: finds its cluster among many (no SIGPIPE false negative)" up_among_many

up_port() {
  FAKE_CLUSTERS='' run cluster-up GREETER_HOST_PORT=18081 GREETER_CLUSTER=g2
  local cfg=$tmp/fake/kind-config.yaml
  [[ $status == 0 ]] && called '^kind create cluster --name g2 ' && [[ -f $cfg ]] \
    && grep -q 'hostPort: 18081' "$cfg" && ! grep -q 'hostPort: 8080' "$cfg" \
    && grep -q 'localhost:18081' "$out" || { show; [[ -f $cfg ]] && cat "$cfg"; return 1; }
  # the default keeps nix/kind.yaml as it is
  FAKE_CLUSTERS='' run cluster-up
  [[ $status == 0 ]] && cmp -s "$cfg" nix/kind.yaml || { echo "  default config differs from nix/kind.yaml"; show; return 1; }
}
check "cluster-up: GREETER_HOST_PORT becomes the kind config's hostPort" up_port

up_no_runtime() {
  FAKE_CLUSTERS='' run cluster-up FAKE_FAIL="docker podman"
  [[ $status == 1 ]] && ! called '^kind create' && grep -q 'no running container runtime' "$out" || { show; return 1; }
}
check "cluster-up: no Docker or Podman -> the runtime help, exit 1" up_no_runtime

up_create_fails() {
  FAKE_CLUSTERS='' run cluster-up FAKE_FAIL=kind-create
  [[ $status != 0 ]] && ! called '^kubectl' && grep -q '^error: kind create cluster' "$out" || { show; return 1; }
}
check "cluster-up: a failed kind create stops it" up_create_fails

up_cnpg() {
  local manifest=https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-1.30/releases/cnpg-1.30.0.yaml
  FAKE_CLUSTERS='' run cluster-up GREETER_POSTGRES=cloudnativepg
  [[ $status == 0 ]] && called "^kubectl --context kind-greeter apply --server-side --force-conflicts -f $manifest\$" \
    && [[ $(line_of 'apply --server-side') -lt $(line_of 'rollout status deployment/cnpg-controller-manager') ]] \
    && called 'wait --for=condition=Established --timeout=2m crd/clusters.postgresql.cnpg.io' || { show; return 1; }
  # Without the setting: no operator.
  FAKE_CLUSTERS='' run cluster-up
  [[ $status == 0 ]] && ! called 'cnpg' || { show; return 1; }
}
check "cluster-up: GREETER_POSTGRES=cloudnativepg applies the CNPG 1.30.0 release manifest and waits for the operator" up_cnpg

up_cnpg_fails() {
  FAKE_CLUSTERS='' run cluster-up GREETER_POSTGRES=cloudnativepg FAKE_FAIL=cnpg-rollout
  [[ $status != 0 ]] && grep -q '^error: the CloudNativePG operator .* did not become available' "$out" || { show; return 1; }
  FAKE_CLUSTERS='' run cluster-up GREETER_POSTGRES=postgres
  [[ $status != 0 ]] && grep -q "^error: GREETER_POSTGRES is 'postgres'" "$out" && ! called 'kind create' || { show; return 1; }
}
check "cluster-up: an operator that does not come up, or an unknown GREETER_POSTGRES, fails clearly" up_cnpg_fails

deploy_cnpg() {
  FAKE_CLUSTERS=greeter run deploy GREETER_POSTGRES=cloudnativepg
  [[ $status == 0 ]] && called '^helm upgrade --install .* --set postgresql.mode=cloudnativepg' || { show; return 1; }
  # Unset: no --set (it would beat a -f values file).
  FAKE_CLUSTERS=greeter run deploy
  [[ $status == 0 ]] && ! called 'postgresql.mode' || { show; return 1; }
}
check "deploy: GREETER_POSTGRES sets postgresql.mode, and only when given" deploy_cnpg

# --- cluster-down ----------------------------------------------------------------------
down_among_many() {
  FAKE_CLUSTERS="a greeter b" run cluster-down FAKE_MANY=20000
  [[ $status == 0 ]] && called '^kind delete cluster --name greeter$' || { show; return 1; }
  again cluster-down FAKE_MANY=20000
  [[ $status == 0 && $(grep -c '^kind delete' "$log") == 1 ]] && grep -q 'nothing to do' "$out" || { show; return 1; }
}
check "cluster-down: deletes its cluster found among many; a second run does nothing" down_among_many

echo
echo "test_apps: $passed passed, $failed failed"
[[ $failed == 0 ]]
