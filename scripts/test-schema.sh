#!/usr/bin/env bash
# The API's contract suite: schemathesis (PyPI, pinned in tests/schema/requirements.txt)
# fuzzes every operation of the OpenAPI document that a live server serves at
# /api/v1/openapi.json, with a write token made by `greeter createtoken`, and checks every
# response against that document: no 5xx, status codes, headers, content types and
# bodies as documented, invalid input refused, valid input accepted, 405 + Allow for
# other methods, 401 without the token, and the stateful links (create -> read, change,
# activate, delete). Bounded examples keep it well under two minutes.
#
#   scripts/test-schema.sh                 the suite
#   MAX_EXAMPLES=200 scripts/test-schema.sh   fuzz harder
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=nix/apps/lib.sh disable=SC1091 # say, die; followed with -x
source nix/apps/lib.sh

venv=.venv-schema
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$(sed -n 's/^schemathesis==//p' tests/schema/requirements.txt)"; then
  say "test-schema: installing tests/schema/requirements.txt into $venv"
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r tests/schema/requirements.txt
fi
[[ -x target/debug/greeter && -x target/debug/greeter-migrate ]] || cargo build --locked --bins --quiet

tmp=$(mktemp -d)
local_pid=
cleanup() {
  if [[ -n $local_pid ]]; then
    kill -TERM "$local_pid" 2>/dev/null || true
    wait "$local_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
[[ $(id -u) -ne 0 ]] || chmod 755 "$tmp"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)

# local.sh starts the server it is given as GREETER_BIN with the throwaway database's
# DATABASE_* in its environment: this wrapper first makes the write token there, the way
# a CI job would (`greeter createtoken`), then becomes the server.
cat >"$tmp/greeter" <<SH
#!/usr/bin/env bash
set -euo pipefail
if [[ \${1:-} == serve ]]; then
  "$PWD/target/debug/greeter" createtoken --name schemathesis --scope greetings:write \
    --username admin >"$tmp/token"
fi
exec "$PWD/target/debug/greeter" "\$@"
SH
chmod 755 "$tmp/greeter"

say "test-schema: starting greeter (local mode) on :$port"
mkdir -p "$tmp/local"
# The rate limit is raised so that the fuzzer explores the API rather than 429s (the
# limit itself is tested in tests/api/api_tokens.rs).
PORT=$port METRICS_PORT=$(free_port) GREETER_LOCAL_DIR=$tmp/local \
  GREETER_BIN=$tmp/greeter GREETER_MIGRATE_BIN=$PWD/target/debug/greeter-migrate \
  DEBUG=false LOG_FORMAT=json API_RATE_LIMIT=100000 \
  nix/apps/local.sh >"$tmp/access.log" 2>"$tmp/local.err" &
local_pid=$!
for _ in $(seq 1 300); do
  grep -q "greeter is running" "$tmp/local.err" 2>/dev/null && break
  kill -0 "$local_pid" 2>/dev/null || { cat "$tmp/local.err" >&2; die "local mode stopped"; }
  sleep 0.2
done
grep -q "greeter is running" "$tmp/local.err" || { cat "$tmp/local.err" >&2; die "greeter did not start"; }
token=$(cat "$tmp/token")
[[ $token == grt_* ]] || die "createtoken printed no token"

set +e
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${MAX_EXAMPLES:-100}" \
  --seed "${SEED:-1}" \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir "$tmp/report"
status=$?
set -e
# The server's own count, from its access log: no API request may have been a 5xx.
api_requests=$(grep -c '"path":"/api/' "$tmp/access.log" || true)
server_errors=$(grep -c '"path":"/api/[^"]*","status":5' "$tmp/access.log" || true)
say "test-schema: API requests served: $api_requests, 5xx among them: $server_errors"
[[ $status -eq 0 ]] || die "schemathesis found failures (exit $status)"
if [[ $server_errors -ne 0 ]]; then
  grep '"path":"/api/[^"]*","status":5' "$tmp/access.log" >&2
  grep -iE '"level":"(ERROR|WARN)"' "$tmp/access.log" | tail -n 20 >&2 || true
fi
[[ $server_errors -eq 0 ]] || die "the server answered $server_errors requests with 5xx"
