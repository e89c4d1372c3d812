#!/usr/bin/env bash
# Smoke test over the NodePort: GET / answers 200 with the greeting JSON, and the admin
# login works: GET /admin/login/ (session cookie + the form's csrf_token), POST the
# credentials, expect 302 to /admin/, then GET /admin/ is 200. Non-zero exit on failure.
#
# Settings: SMOKE_URL (http://localhost:$GREETER_HOST_PORT), ADMIN_USERNAME (admin),
# ADMIN_PASSWORD (else read from the release's Secret with kubectl). Works against the
# local mode too: SMOKE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=... nix/apps/smoke.sh
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

base=${SMOKE_URL:-http://localhost:$host_port}
base=${base%/}
user=${ADMIN_USERNAME:-admin}
password=${ADMIN_PASSWORD:-}
if [[ -z $password ]]; then
  password=$(kubectl --context "$context" -n "$namespace" get secret greeter \
    -o jsonpath='{.data.ADMIN_PASSWORD}' | base64 -d) \
    || die "could not read the admin password from Secret greeter; set ADMIN_PASSWORD"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jar=$tmp/cookies
http() { curl -sS --max-time 10 -b "$jar" -c "$jar" "$@"; }

say "GET $base/"
status=$(http -o "$tmp/root.json" -w '%{http_code}' "$base/") || die "GET / failed: is the cluster up and deployed?"
[[ $status == 200 ]] || die "GET / answered $status: $(head -c 300 "$tmp/root.json")"
grep -q '"message"' "$tmp/root.json" || die "GET / has no message: $(head -c 300 "$tmp/root.json")"
say "GET / -> 200 $(head -c 200 "$tmp/root.json")"

say "GET $base/admin/login/"
status=$(http -o "$tmp/login.html" -w '%{http_code}' "$base/admin/login/")
[[ $status == 200 ]] || die "GET /admin/login/ answered $status"
csrf=$(grep -o '<input[^>]*name="csrf_token"[^>]*>' "$tmp/login.html" \
  | sed -n 's/.*value="\([^"]*\)".*/\1/p' | head -n 1)
[[ -n $csrf ]] || die "no csrf_token field in the login form"

say "POST $base/admin/login/ as $user"
status=$(http -o /dev/null -D "$tmp/headers" -w '%{http_code}' \
  --data-urlencode "username=$user" --data-urlencode "password=$password" \
  --data-urlencode "csrf_token=$csrf" "$base/admin/login/")
location=$(tr -d '\r' <"$tmp/headers" | sed -n 's/^[Ll]ocation: *//p' | head -n 1)
[[ $status == 302 ]] || die "login answered $status, expected 302 (wrong password?)"
[[ $location == /admin/ || $location == "$base/admin/" ]] \
  || die "login redirected to '$location', expected /admin/"

status=$(http -o /dev/null -w '%{http_code}' "$base/admin/")
[[ $status == 200 ]] || die "GET /admin/ after login answered $status"
say "admin login -> 302 /admin/ -> 200"
echo "smoke: ok (GET / and the admin login)"
