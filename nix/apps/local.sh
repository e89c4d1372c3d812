#!/usr/bin/env bash
# greeter local mode: a throwaway PostgreSQL in .greeter-local/, the migrations, an admin
# with a fresh password, and the server on http://127.0.0.1:8080 with APP_ENV=local.
# Ctrl-C stops the server and PostgreSQL and removes the database.
#
# Runs with `nix run` (tools from Nix) or directly as `nix/apps/local.sh` when the tools
# are on PATH:
#   greeter, greeter-migrate  $GREETER_BIN / $GREETER_MIGRATE_BIN, else PATH, else
#                             target/release or target/debug (cargo build --bins)
#   initdb, pg_ctl, createdb  PATH, else the newest /usr/lib/postgresql/*/bin (Debian)
# Settings: PORT (8080), METRICS_PORT (9090), GREETER_PG_PORT (first free from 54329),
# GREETER_LOCAL_DIR (.greeter-local in the project), ADMIN_USERNAME (admin).
set -euo pipefail
if ! declare -F say >/dev/null; then
  # shellcheck source=nix/apps/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

state=${GREETER_LOCAL_DIR:-$root/.greeter-local}
port=${PORT:-8080}
metrics_port=${METRICS_PORT:-9090}
admin_user=${ADMIN_USERNAME:-admin}

find_bin() {
  local name=$1 var=$2 dir override
  override=${!var:-}
  if [[ -n $override ]]; then
    [[ -x $override ]] || die "$name: $override is not executable"
    printf '%s\n' "$override"
    return
  fi
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return
  fi
  # The newer of the release and debug builds, so a fresh `cargo build` is what runs.
  local found=
  for dir in "$root/target/release" "$root/target/debug"; do
    if [[ -x $dir/$name && ( -z $found || $dir/$name -nt $found ) ]]; then
      found=$dir/$name
    fi
  done
  [[ -n $found ]] || die "$name not found: set $var, put it on PATH, or run 'cargo build --bins'"
  printf '%s\n' "$found"
}
greeter=$(find_bin greeter GREETER_BIN)
migrate=$(find_bin greeter-migrate GREETER_MIGRATE_BIN)

if ! command -v initdb >/dev/null 2>&1; then
  pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [[ -n $pgbin ]] || die "PostgreSQL server tools (initdb, pg_ctl) not found: install PostgreSQL or use 'nix run'"
  PATH=$pgbin:$PATH
fi

# PostgreSQL refuses to run as root; as root (containers, CI) run it as `postgres`.
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to run PostgreSQL"
  as_pg=(runuser -u postgres --)
fi
pg() { "${as_pg[@]}" "$@"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$port" || die "port $port is in use: set PORT to another one"
port_free "$metrics_port" || die "port $metrics_port is in use: set METRICS_PORT to another one"
pg_port=${GREETER_PG_PORT:-54329}
while ! port_free "$pg_port"; do pg_port=$((pg_port + 1)); done

random() { head -c "$1" /dev/urandom | base64 | tr -d '/+=\n'; }
db_password=$(random 24)
admin_password=$(random 18)

data=$state/pgdata
server_pid=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    say "stopping greeter"
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ -f $data/postmaster.pid ]]; then
    say "stopping PostgreSQL"
    pg pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$state"
rm -rf "$data"
if [[ -f $state/postmaster.log ]]; then mv -f "$state/postmaster.log" "$state/postmaster.log.old"; fi
install -d -m 700 "$data"
touch "$state/postmaster.log"
pwfile=$state/pwfile
(umask 077 && printf '%s\n' "$db_password" >"$pwfile")
if [[ ${#as_pg[@]} -gt 0 ]]; then
  chown postgres "$data" "$state/postmaster.log" "$pwfile"
  pg test -w "$data" || die "user postgres cannot write $data: set GREETER_LOCAL_DIR to a directory it can reach"
fi

say "initialising PostgreSQL in $data"
pg initdb -D "$data" -U greeter --pwfile="$pwfile" --auth=scram-sha-256 \
  --encoding=UTF8 --locale=C >"$state/initdb.log" 2>&1 \
  || { cat "$state/initdb.log" >&2; die "initdb failed"; }
rm -f "$pwfile"

say "starting PostgreSQL on 127.0.0.1:$pg_port (log: $state/postmaster.log)"
# TCP on loopback only; no Unix socket, so nothing is written outside the data dir.
pg pg_ctl -D "$data" -l "$state/postmaster.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=''" start >/dev/null \
  || { tail -n 20 "$state/postmaster.log" >&2; die "PostgreSQL did not start"; }
PGPASSWORD=$db_password createdb -h 127.0.0.1 -p "$pg_port" -U greeter greeter

export DATABASE_NAME=greeter DATABASE_USER=greeter DATABASE_PASSWORD=$db_password
export DATABASE_HOST=127.0.0.1 DATABASE_PORT=$pg_port DATABASE_SSLMODE=disable
export SECRET_KEY
SECRET_KEY=$(random 48)
export DEBUG=${DEBUG:-true} APP_ENV=local LOG_FORMAT=${LOG_FORMAT:-pretty}
export LISTEN_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:$metrics_port

say "applying migrations and creating the admin '$admin_user'"
ADMIN_USERNAME=$admin_user ADMIN_PASSWORD=$admin_password "$migrate" --timeout 60

say "starting greeter ($greeter)"
"$greeter" serve &
server_pid=$!

# 200 from GET /readyz; curl when present, else bash's /dev/tcp.
ready_now() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null
  else
    local status
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r _ status _ <&3 || true
    exec 3>&-
    [[ $status == 200 ]]
  fi
}

ready=
for _ in $(seq 1 100); do
  kill -0 "$server_pid" 2>/dev/null || { wait "$server_pid" || true; die "greeter exited during start-up"; }
  if ready_now 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
[[ -n $ready ]] || die "greeter did not become ready on port $port"

cat >&2 <<BANNER

  greeter is running (APP_ENV=local)
    API:    http://127.0.0.1:$port/
    Admin:  http://127.0.0.1:$port/admin/
            username: $admin_user
            password: $admin_password
  Press Ctrl-C to stop; the database is thrown away.

BANNER

wait "$server_pid"
