#!/usr/bin/env bash
# Checks of the Nix part that run without a Nix store or network (run from the repo
# root; non-zero exit on any failure):
#   1. nix-instantiate --parse on every .nix file (Debian nix-bin)
#   2. nixfmt --check (crates.io nixfmt_rs, the official RFC 166 style), deadnix --fail
#   3. shellcheck on every script, also as writeShellApplication assembles the apps
#   3b. the kind/Helm apps, assembled the same way, against fake nix/kind/kubectl/helm/
#      docker/podman/uname (tests/nix/test_apps.sh)
#   4. .github/workflows/ci.yml against the GitHub workflow schema (check-jsonschema)
#   5. flake.lock: lock v7, nodes == flake inputs, pins == ../shared/flake-pins.md
#   6. local mode for real: nix/apps/local.sh with the debug binaries, GET /, an admin
#      login (nix/apps/smoke.sh), then Ctrl-C (SIGINT to its process group) must leave
#      no postgres or greeter process and free the port.
# Needs: nix-bin, shellcheck, postgresql, curl (apt); nixfmt_rs, deadnix (cargo install);
# check-jsonschema (in .venv). scripts/setup-debian.sh installs them all.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
need() { command -v "$1" >/dev/null 2>&1 || { fail "$1 not installed (see scripts/setup-debian.sh)"; return 1; }; }

tmp=$(mktemp -d)
local_pgid=
cleanup() {
  # Let a still-running local mode stop its PostgreSQL before its directory goes.
  if [[ -n $local_pgid ]]; then
    kill -TERM -- "-$local_pgid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$local_pgid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

mapfile -t nix_files < <(git ls-files --cached --others --exclude-standard -- '*.nix')
mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- 'nix/apps/*.sh' 'scripts/test-nix.sh' 'tests/nix/*.sh')

# 1. syntax
parse_all() {
  local f ok=0
  for f in "${nix_files[@]}"; do
    nix-instantiate --parse "$f" >/dev/null || ok=1
  done
  return $ok
}
if need nix-instantiate; then
  check "nix-instantiate --parse (${#nix_files[@]} files)" parse_all
fi

# 2. style
if need nixfmt; then
  check "nixfmt --check (${#nix_files[@]} files; fix with nixfmt FILE...)" nixfmt --check "${nix_files[@]}"
fi
if need deadnix; then
  check "deadnix --fail" deadnix --fail "${nix_files[@]}"
fi

# 3. shell scripts, standalone and as the apps' writeShellApplication text (assembled by
# tests/nix/assemble_app.sh, which the behaviour tests use too; SC1091 excluded as in
# nix/apps.nix).
# shellcheck source=tests/nix/assemble_app.sh disable=SC1091 # followed with -x (3. below)
source tests/nix/assemble_app.sh
shellcheck_apps() {
  local s ok=0
  for s in nix/apps/*.sh; do
    [[ $s == nix/apps/lib.sh ]] && continue
    s=${s#nix/apps/}
    assemble_app "${s%.sh}" /nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-kind/bin "$tmp/app.sh"
    shellcheck --exclude SC1091 "$tmp/app.sh" || { echo "  (in the app built from nix/apps/$s)"; ok=1; }
  done
  return $ok
}
if need shellcheck; then
  check "shellcheck (${#scripts[@]} scripts)" shellcheck -x "${scripts[@]}"
  check "shellcheck of the assembled apps" shellcheck_apps
fi

# 3b. the apps' behaviour (a failed step stops deploy before Helm, the SIGPIPE case, ...)
# Nix calls `outputs` with the inputs plus `self` (NixOS/nix src/libflake/call-flake.nix:
# `flake.outputs (inputs // { self = result; })`); an argument set that does not accept
# `self` fails every `nix run`, `nix develop` and `nix flake check` before anything builds.
# Call it the same way with stand-in inputs and list the output names (lazy: nothing of
# nixpkgs is needed for that).
flake_outputs_accept_call() {
  local names
  names=$(nix-instantiate --readonly-mode --eval --strict -E '
    let
      flake = import ./flake.nix;
      inputs = builtins.mapAttrs (_: _: { }) flake.inputs;
    in
    builtins.attrNames (flake.outputs (inputs // { self = { }; }))' 2>&1) || {
    printf '%s\n' "$names"
    return 1
  }
  [[ $names == *packages* && $names == *apps* && $names == *checks* ]] || {
    printf 'unexpected flake outputs: %s\n' "$names"
    return 1
  }
}
if need nix-instantiate; then
  check "flake outputs accept the inputs plus self, as Nix calls them" flake_outputs_accept_call
fi

check "app scripts against fake nix/kind/kubectl/helm (tests/nix/test_apps.sh)" tests/nix/test_apps.sh
check "backup/restore apps against the fake kubectl (tests/nix/test_backup_apps.sh)" tests/nix/test_backup_apps.sh

# 4. workflow schema
cj=.venv/bin/check-jsonschema
if [[ ! -x $cj ]]; then
  { [[ -d .venv ]] || python3 -m venv .venv; } && .venv/bin/pip install -q check-jsonschema >/dev/null
fi
if [[ -x $cj ]]; then
  check "ci.yml matches the GitHub workflow schema" \
    "$cj" --builtin-schema vendor.github-workflows .github/workflows/ci.yml
else
  fail "check-jsonschema could not be installed into .venv"
fi

# 5. flake.lock
if need nix-instantiate; then
  pins=../shared/flake-pins.md
  [[ -f $pins ]] || { echo "note: $pins not found; pins not compared"; pins=; }
  if nix-instantiate --eval --strict --json -E '(import ./flake.nix).inputs' >"$tmp/inputs.json" \
    && python3 tests/nix/check_lock.py flake.lock "$tmp/inputs.json" ${pins:+"$pins"}; then
    pass "flake.lock"
  else
    fail "flake.lock"
  fi
fi

# 6. local mode, for real
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
local_mode() {
  need curl || return 1
  # GREETER_BIN/GREETER_MIGRATE_BIN test other binaries (e.g. a release build).
  local bin=${GREETER_BIN:-$PWD/target/debug/greeter}
  local migrate_bin=${GREETER_MIGRATE_BIN:-$PWD/target/debug/greeter-migrate}
  if [[ -z ${GREETER_BIN:-} ]]; then
    echo "building the debug binaries (cargo build --bins)"
    cargo build --bins --quiet || { echo "cargo build failed"; return 1; }
  fi
  local port metrics_port state out pid status password i
  port=$(free_port 18080)
  metrics_port=$(free_port 19090)
  state=$tmp/local
  mkdir -p "$state" && chmod 755 "$tmp" "$state" # as root, PostgreSQL runs as `postgres`
  out=$tmp/local.out

  # Job control: the script gets its own process group, as in a terminal, so the INT
  # below reaches it like a Ctrl-C (and is not ignored as for a plain `&` job).
  set -m
  GREETER_BIN=$bin GREETER_MIGRATE_BIN=$migrate_bin \
    PORT=$port METRICS_PORT=$metrics_port GREETER_LOCAL_DIR=$state \
    nix/apps/local.sh >"$out" 2>&1 &
  pid=$!
  set +m
  local_pgid=$pid

  status=
  for i in $(seq 1 300); do
    status=$(curl -s -o "$tmp/root.json" -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null)
    [[ $status == 200 ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if [[ $status != 200 ]]; then
    echo "local mode did not serve GET / (last status '$status'); its output:"
    sed 's/^/  | /' "$out"
    return 1
  fi
  echo "GET / -> 200 after $((i / 5))s: $(head -c 200 "$tmp/root.json")"
  grep -q '"environment": *"local"' "$tmp/root.json" || { echo "GET / does not report environment local"; return 1; }

  # The banner's password line is printed just before the server is ready.
  for _ in $(seq 1 25); do grep -q 'password:' "$out" && break; sleep 0.2; done
  password=$(sed -n 's/^ *password: //p' "$out" | head -n 1)
  [[ -n $password ]] || { echo "no admin password printed"; sed 's/^/  | /' "$out"; return 1; }
  SMOKE_URL=http://127.0.0.1:$port ADMIN_PASSWORD=$password nix/apps/smoke.sh \
    || { echo "admin login failed"; return 1; }

  # What must be gone afterwards: the script's children (greeter) and the postmaster.
  local watched
  watched="$(pgrep -P "$pid" | tr '\n' ' ')$(head -n 1 "$state/pgdata/postmaster.pid" 2>/dev/null)"
  kill -INT -- "-$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "local mode still running 30 s after Ctrl-C"
    return 1
  fi
  local_pgid=
  wait "$pid"
  echo "local mode exited with status $? after Ctrl-C"
  sleep 0.5
  # A zombie only waits for init to reap it; it counts as gone.
  alive() { ps -o stat= -p "$1" 2>/dev/null | grep -qv '^Z'; }
  local p
  for p in $watched; do
    for _ in $(seq 1 50); do alive "$p" || break; sleep 0.2; done
    if alive "$p"; then echo "process left behind: $(ps -o pid=,args= -p "$p")"; return 1; fi
  done
  pgrep -g "$pid" >/dev/null && { echo "processes left in its process group"; return 1; }
  pgrep -f "postgres.*$state" >/dev/null && { echo "a postgres of $state is still running"; return 1; }
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "port $port still open"; return 1; }
  [[ ! -e $state/pgdata ]] || { echo "the throwaway database $state/pgdata was not removed"; return 1; }
  return 0
}
check "local mode: GET / 200, admin login, Ctrl-C leaves nothing behind" local_mode

echo
echo "test-nix: $passed passed, $failed failed"
[[ $failed == 0 ]]
