#!/usr/bin/env bash
# The admin at scale (issue 13): seeds a throwaway PostgreSQL with 1,000,000 audit entries,
# 100,000 users and 10,000 greetings (generate_series), logs in, and runs wrk with the
# session cookie at 4 connections against every list page (first page, a deep page, the
# last page), the index page and every search and filter. Prints p50/p99 per page; the
# goal is p99 < 10 ms everywhere. Also times migration V4 (the indexes) on the seeded
# tables, built CONCURRENTLY while the data is there.
#
#   scripts/bench.sh admin                 (this script; 5 s per page)
#   DURATION=10s ADMIN_CONNECTIONS=8 scripts/bench.sh admin
#   GREETER_BIN=... GREETER_MIGRATE_BIN=... scripts/bench.sh admin   other binaries (e.g.
#                                          an older release for a before/after comparison;
#                                          its deep pages are then ?p=N offsets)
#
# The database role the server and the migrations use owns the database but is not a
# superuser, as on the cluster: V4 creates pg_trgm as a trusted extension.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

duration=${DURATION:-5s}
connections=${ADMIN_CONNECTIONS:-4}
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"
if ! command -v initdb >/dev/null 2>&1; then
  pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [[ -n $pgbin ]] || die "PostgreSQL server tools (initdb, pg_ctl) not found"
  PATH=$pgbin:$PATH
fi

if [[ -z ${GREETER_BIN:-} || -z ${GREETER_MIGRATE_BIN:-} ]]; then
  say "building release binaries"
  cargo build --release --quiet --bins
fi
greeter=${GREETER_BIN:-target/release/greeter}
migrate=${GREETER_MIGRATE_BIN:-target/release/greeter-migrate}

tmp=$(mktemp -d)
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  as_pg=(runuser -u postgres --)
  chmod 755 "$tmp"
  install -d -o postgres "$tmp/pgdata" "$tmp/pglog"
else
  install -d "$tmp/pgdata" "$tmp/pglog"
fi
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  "${as_pg[@]}" pg_ctl -D "$tmp/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
port=$(free_port)
say "PostgreSQL on 127.0.0.1:$pg_port (trust auth, loopback only)"
"${as_pg[@]}" initdb -D "$tmp/pgdata" -U postgres --auth=trust --encoding=UTF8 --locale=C \
  --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
# Durability off only to seed quickly; the reads measured here do not depend on it.
"${as_pg[@]}" pg_ctl -D "$tmp/pgdata" -l "$tmp/pglog/postgres.log" -w -t 60 -o \
  "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories='' -c fsync=off \
   -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB" start >/dev/null \
  || { tail -n 20 "$tmp/pglog/postgres.log" >&2; die "PostgreSQL did not start"; }

sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d greeter "$@"; }
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
  -c "CREATE ROLE greeter_app LOGIN NOSUPERUSER" -c "CREATE DATABASE greeter OWNER greeter_app"

export DATABASE_NAME=greeter DATABASE_USER=greeter_app DATABASE_PASSWORD=unused
export DATABASE_HOST=127.0.0.1 DATABASE_PORT=$pg_port DATABASE_SSLMODE=disable
admin_password=bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
say "migrations (as the database owner, not a superuser) and the admin"
ADMIN_USERNAME=admin ADMIN_PASSWORD=$admin_password "$migrate" --timeout 60 >"$tmp/migrate.log" 2>&1 \
  || { cat "$tmp/migrate.log" >&2; die "greeter-migrate failed"; }

say "seeding 100,000 users, 10,000 greetings, 1,000,000 audit entries"
started=$(date +%s)
sql <<'SQL'
-- Users 2..100001; 7 share each date_joined (ties for the keyset), a third never logged in.
INSERT INTO users (username, password_hash, is_active, is_staff, date_joined, last_login)
SELECT format('%s.%s%s', (ARRAY['anna','ben','carla','dev','emil','fatima','georg','hana','ivan','jules'])[1 + i % 10],
              substr(md5(i::text), 1, 6), i),
       'x', i % 50 <> 0, i % 10 = 0,
       timestamptz '2020-01-01 00:00Z' + (i / 7) * interval '1 hour',
       CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00Z' + (i % 5000) * interval '1 minute' END
FROM generate_series(1, 100000) AS i;

-- 9,999 more greetings (V1 inserted the active one).
INSERT INTO greetings (message, created_at, updated_at)
SELECT format('Greeting %s: %s', i, md5(i::text)), now() - i * interval '1 minute', now() - i * interval '1 minute'
FROM generate_series(1, 9999) AS i;

-- One entry a second (three share each second), a tenth of them by the admin (user 1);
-- usernames are the snapshot of the user's name, as the admin writes them.
INSERT INTO admin_audit_log (at, user_id, username, action, object_type, object_id, object_repr, before, after, client_addr)
SELECT now() - (i / 3) * interval '1 second', u.id, u.name, a.action, a.object_type, (i * 31) % 100000,
       CASE a.object_type WHEN 'greeting' THEN 'Greeting ' || (i % 9999) ELSE 'object ' || (i % 100000) END,
       CASE WHEN a.action = 'update' THEN '{"is_active": true}'::jsonb END,
       CASE WHEN a.action IN ('update', 'create') THEN '{"is_active": false}'::jsonb END,
       format('10.%s.%s.%s', i % 256, (i / 256) % 256, (i / 65536) % 256)
FROM generate_series(1, 1000000) AS i
CROSS JOIN LATERAL (
  SELECT CASE WHEN i % 10 = 0 THEN 1 ELSE 2 + (i::bigint * 7919) % 100000 END AS id
) AS pick
CROSS JOIN LATERAL (
  SELECT pick.id,
         CASE WHEN pick.id = 1 THEN 'admin'
              ELSE format('%s.%s%s', (ARRAY['anna','ben','carla','dev','emil','fatima','georg','hana','ivan','jules'])[1 + (pick.id - 1) % 10],
                          substr(md5((pick.id - 1)::text), 1, 6), pick.id - 1) END AS name
) AS u
CROSS JOIN LATERAL (
  SELECT (ARRAY['login','login','login','login','login','login','login','login','logout','logout',
                'logout','update','update','update','create','set_password','update','create','activate',
                'password_change'])[1 + i % 20] AS action,
         (ARRAY['session','session','session','session','session','session','session','session','session','session',
                'session','user','user','user','user','user','greeting','greeting','greeting','user'])[1 + i % 20] AS object_type
) AS a0
CROSS JOIN LATERAL (
  -- Rare actions: a delete every 1,000th entry, a locked login every 10,000th.
  SELECT CASE WHEN i % 10000 = 7 THEN 'login_locked' WHEN i % 1000 = 3 THEN 'delete' ELSE a0.action END AS action,
         CASE WHEN i % 10000 = 7 THEN 'session' WHEN i % 1000 = 3 THEN 'user' ELSE a0.object_type END AS object_type
) AS a;
VACUUM ANALYZE;
SQL
say "seeded in $(( $(date +%s) - started )) s"

# Migration V4 on the full tables: drop its indexes, run its SQL again the way
# greeter-migrate does (each statement on its own, outside a transaction: psql -f sends
# them one by one in autocommit), as the database owner. Its history row stays: refinery never re-applies a
# version below the newest applied one (V5), so deleting the row would time nothing.
v4=$(ls migrations/V4__*.sql 2>/dev/null || true)
if [[ -n $v4 ]] && [[ $(sql -tA -c "SELECT count(*) FROM refinery_schema_history WHERE version = 4") == 1 ]]; then
  indexes=$(grep -o 'CREATE INDEX CONCURRENTLY IF NOT EXISTS [a-z_]*' "$v4" | awk '{print $7}' | paste -sd, -)
  sql -c "DROP INDEX $indexes"
  started=$(date +%s.%N)
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U greeter_app -d greeter -f "$v4" >"$tmp/migrate-v4.log" 2>&1 || { cat "$tmp/migrate-v4.log" >&2; die "V4 failed"; }
  v4_seconds=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  valid=$(sql -tA -c "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                      WHERE i.indisvalid AND c.relname = ANY (string_to_array('$indexes', ','))")
  say "migration V4 on the seeded tables: ${v4_seconds} s, $valid valid indexes (CREATE INDEX CONCURRENTLY)"
  sql -c "ANALYZE"
fi

say "starting greeter on 127.0.0.1:$port"
SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n') DEBUG=false APP_ENV=local LOG_FORMAT=json \
  LISTEN_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:$(free_port) \
  "$greeter" serve >"$tmp/greeter.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/greeter.log" >&2; die "greeter exited"; }
  sleep 0.2
done

jar=$tmp/cookies
curl -s -c "$jar" -b "$jar" -o "$tmp/login.html" "http://127.0.0.1:$port/admin/login/"
csrf=$(grep -o 'name="csrf_token"[^>]*' "$tmp/login.html" | sed -n 's/.*value="\([^"]*\)".*/\1/p' | head -n 1)
status=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{http_code}' \
  --data-urlencode "username=admin" --data-urlencode "password=$admin_password" \
  --data-urlencode "csrf_token=$csrf" "http://127.0.0.1:$port/admin/login/")
[[ $status == 302 ]] || die "admin login answered $status"
cookie=$(awk '!/^#/ || /^#HttpOnly_/ { if (NF >= 7) printf "%s=%s; ", $6, $7 }' "$jar")

fetch() { curl -fsS -H "Cookie: $cookie" "http://127.0.0.1:$port$1"; }
urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
# The cursor of the row at `offset` in an ordering: what the list's own links carry.
cursor() {
  local row
  row=$(sql -tA -F. -c "SELECT id, $2 FROM $1 ORDER BY $3 OFFSET $4 LIMIT 1")
  printf 'after=%s' "$(urlencode "$row")"
}
# Handlebars writes the = of a link inside an attribute as &#x3D;.
if fetch /admin/users/ | grep -Eq 'after(=|&#x3D;)'; then
  paging=keyset
  users_deep="?o=username&$(cursor users 'lower(username)' 'lower(username), id' 50000)"
  joined_deep="?o=-date_joined&$(cursor users 'date_joined::text' 'date_joined DESC, id DESC' 70000)"
  login_deep="?o=last_login&$(cursor users 'last_login::text' "COALESCE(last_login, '-infinity'), id" 50000)"
  search_deep="?q=anna&o=username&$(cursor "users WHERE username ILIKE '%anna%'" 'lower(username)' 'lower(username), id' 5000)"
  greetings_deep="?$(cursor greetings 'is_active::text' 'is_active DESC, id DESC' 5000)"
  audit_deep="?$(cursor admin_audit_log 'at::text' 'at DESC, id DESC' 500000)"
  login_audit_deep="?action=login&$(cursor "admin_audit_log WHERE action = 'login'" 'at::text' 'at DESC, id DESC' 200000)"
  users_last="?last=1" greetings_last="?last=1" audit_last="?last=1"
else
  paging=offset
  users_deep="?o=username&p=2000" joined_deep="?o=-date_joined&p=2800" login_deep="?o=last_login&p=2000"
  search_deep="?q=anna&o=username&p=200" greetings_deep="?p=200" audit_deep="?p=20000"
  login_audit_deep="?action=login&p=8000"
  users_last="?p=4001" greetings_last="?p=400" audit_last="?p=40000"
fi
some_user=$(sql -tA -c "SELECT username FROM admin_audit_log WHERE id = 4243")
rare=$(sql -tA -c "SELECT substr(md5('4241'), 2, 4)")
say "pages are $paging-paginated; ${connections} connections, $duration per page"

pages=(
  "/admin/"
  "/admin/users/"
  "/admin/users/$users_deep"
  "/admin/users/$users_last"
  "/admin/users/$joined_deep"
  "/admin/users/$login_deep"
  "/admin/users/?q=$rare"
  "/admin/users/?q=anna"
  "/admin/users/$search_deep"
  "/admin/users/?q=an"
  "/admin/users/?q=$some_user"
  "/admin/users/?q=nobody-matches-this"
  "/admin/greetings/"
  "/admin/greetings/$greetings_deep"
  "/admin/greetings/$greetings_last"
  "/admin/audit/"
  "/admin/audit/$audit_deep"
  "/admin/audit/$audit_last"
  "/admin/audit/?action=delete"
  "/admin/audit/?action=login"
  "/admin/audit/$login_audit_deep"
  "/admin/audit/?object_type=greeting"
  "/admin/audit/?user=admin"
  "/admin/audit/?user=$(urlencode "$some_user")"
  "/admin/audit/?action=update&object_type=user"
  "/admin/audit/?action=login_locked&user=admin"
)

# wrk's summary -> "requests/s p50 p99 non-2xx timeouts" (latencies in ms; a request that
# takes longer than wrk's 2 s timeout is counted as a timeout, not in the percentiles).
run_wrk() {
  wrk -t1 -c"$connections" -d"$1" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port$2" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50.000%" || $1 == "50%" { p50 = ms($2) }
    $1 == "99.000%" || $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { non2xx = $NF }
    /Socket errors/ { for (i = 1; i < NF; i++) if ($i == "timeout") timeouts = $(i + 1) }
    END { printf "%.0f %.2f %.2f %s %s\n", rps, p50, p99, (non2xx == "" ? 0 : non2xx), (timeouts == "" ? 0 : timeouts) }'
}

# The server's own latency of the requests since byte `offset` of its log (the access
# lines' latency_ms: from the request's arrival in the handler to its response), as
# "p50 p99". wrk's figures also hold the time wrk itself waits for a core on these two
# shared cores, so both are shown.
server_latency() {
  python3 - "$tmp/greeter.log" "$1" <<'PY'
import json, sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2]))
    v = []
    for line in f.read().decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut at the offset
        if record.get("target") == "access":
            v.append(record["latency_ms"])
    v.sort()
print("%.2f %.2f" % (v[len(v) // 2], v[int(len(v) * 0.99)]) if v else "- -")
PY
}

printf '\n%-64s %7s %8s %8s %7s %8s %9s %9s  %s\n' "page (c=$connections, $duration)" "req/s" "p50 ms" "p99 ms" "non-2xx" "timeouts" "srv p50" "srv p99" "shows"
worst=0
worst_server=0
for page in "${pages[@]}"; do
  body=$(fetch "$page") || die "GET $page failed"
  if [[ $page == /admin/ ]]; then
    shows="counts: $(grep -o '<td>[^<]*</td>' <<<"$body" | sed 's/<[^>]*>//g' | paste -sd/ - || true)"
  else
    shows=$(grep -o '[^>]* in total' <<<"$body" | head -n 1 | sed 's/^ *//' || true)
  fi
  run_wrk 1s "$page" >/dev/null # warm-up: caches and the pool's connections
  offset=$(stat -c %s "$tmp/greeter.log")
  read -r rps p50 p99 bad timeouts <<<"$(run_wrk "$duration" "$page")"
  read -r srv_p50 srv_p99 <<<"$(server_latency "$offset")"
  label=$page
  [[ ${#label} -le 64 ]] || label="${label:0:61}..."
  printf '%-64s %7s %8s %8s %7s %8s %9s %9s  %s\n' "$label" "$rps" "$p50" "$p99" "$bad" "$timeouts" "$srv_p50" "$srv_p99" "$shows"
  [[ $timeouts == 0 ]] || p99=2000
  worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN { print (b > a ? b : a) }')
  worst_server=$(awk -v a="$worst_server" -v b="$srv_p99" 'BEGIN { print (b + 0 > a + 0 ? b : a) }')
done
echo
echo "worst p99: $worst ms as wrk saw it, $worst_server ms in the server (goal < 10 ms at $connections connections; a page with wrk timeouts counts as 2000)"
