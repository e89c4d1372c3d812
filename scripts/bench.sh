#!/usr/bin/env bash
# Benchmark: greeter's GET / against a throwaway PostgreSQL (nix/apps/local.sh), side by
# side with a constant-JSON warp server (examples/ceiling.rs) as the ceiling, both under
# wrk on this machine. Then the admin pages with a logged-in session, and GET / while a
# flood of wrong-password logins runs. Prints requests/s, p50/p99 latency and RSS.
#
#   scripts/bench.sh                 10 s per run, 32 connections
#   DURATION=30s CONNECTIONS=64 scripts/bench.sh
#   ROUNDS=7 ROUND_DURATION=5s scripts/bench.sh   GET / vs the ceiling: the median of ROUNDS
#                                    alternating rounds (default 9 x 3 s)
#   scripts/bench.sh abuse           the pen test's attacks instead (issue 12): RSS peak,
#                                    whether GET / keeps answering, checks per login burst,
#                                    time to close idle connections
#   scripts/bench.sh api             authenticated GET /api/v1/greetings (a token from
#                                    `greeter createtoken`) beside GET / (issue 14)
#   scripts/bench.sh admin           the admin at scale (issue 13): scripts/bench-admin.sh
#
# Numbers depend on the machine: wrk and the server share its cores, so read the ratio
# to the ceiling rather than the absolute figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-throughput}
case $mode in throughput | abuse | api) ;; admin) exec scripts/bench-admin.sh ;; *) echo "usage: scripts/bench.sh [abuse|api|admin]" >&2; exit 2 ;; esac
# The attacks open thousands of sockets: both sides need the descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

duration=${DURATION:-10s}
# GET / against the ceiling: ROUNDS interleaved rounds of ROUND_DURATION each.
rounds=${ROUNDS:-9}
round_duration=${ROUND_DURATION:-3s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
admin_connections=${ADMIN_CONNECTIONS:-4}
[ "$mode" = abuse ] || command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }

echo "bench: building release binaries"
cargo build --release --quiet --bins --example ceiling

tmp=$(mktemp -d)
local_pid=
ceiling_pid=
cleanup() {
  if [ -n "$ceiling_pid" ]; then kill "$ceiling_pid" 2>/dev/null || true; fi
  # local.sh stops greeter and PostgreSQL on SIGTERM.
  if [ -n "$local_pid" ]; then
    kill -TERM "$local_pid" 2>/dev/null || true
    wait "$local_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
ceiling_port=$(free_port)

echo "bench: starting greeter (local mode, JSON logs to a file) on :$port"
mkdir -p "$tmp/local"
[ "$(id -u)" -ne 0 ] || chmod 755 "$tmp"
greeter_bin=target/release/greeter
if [ "$mode" = api ]; then
  # local.sh runs GREETER_BIN with the throwaway database's DATABASE_*: this wrapper makes
  # a read token there (as a client's CI would) before it becomes the server.
  cat >"$tmp/greeter" <<SH
#!/usr/bin/env bash
set -euo pipefail
if [ "\${1:-}" = serve ]; then
  "$PWD/target/release/greeter" createtoken --name bench --scope greetings:read --username admin >"$tmp/token"
fi
exec "$PWD/target/release/greeter" "\$@"
SH
  chmod 755 "$tmp/greeter"
  greeter_bin=$tmp/greeter
fi
# The per-token rate limit would otherwise answer most of the benchmark with 429.
PORT=$port METRICS_PORT=$(free_port) GREETER_LOCAL_DIR=$tmp/local \
  GREETER_BIN=$greeter_bin GREETER_MIGRATE_BIN=target/release/greeter-migrate \
  DEBUG=false LOG_FORMAT=json API_RATE_LIMIT=1000000 \
  nix/apps/local.sh >"$tmp/access.log" 2>"$tmp/local.err" &
local_pid=$!
for _ in $(seq 1 300); do
  grep -q "password:" "$tmp/local.err" 2>/dev/null && break
  kill -0 "$local_pid" 2>/dev/null || { cat "$tmp/local.err" >&2; exit 1; }
  sleep 0.1
done
admin_password=$(sed -n 's/^ *password: //p' "$tmp/local.err" | head -n 1)
[ -n "$admin_password" ] || { cat "$tmp/local.err" >&2; echo "bench: local mode did not start" >&2; exit 1; }
greeter_pid=$(pgrep -f "target/release/greeter serve" | head -n 1)
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

if [ "$mode" = abuse ]; then
  # Attackers come from 127.0.1.1-8 (loopback /8), so that the per-address connection cap
  # alone does not absorb the attacks; the probe of GET / comes from 127.0.0.2.
  cat >"$tmp/abuse.py" <<'PY'
import asyncio, re, sys, threading, time, urllib.parse

port, pid, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ATTACKERS = [f"127.0.1.{i}" for i in range(1, 9)]

def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0

class Watch:
    # Samples RSS every 50 ms and GET / (from 127.0.0.2) every 200 ms during a phase.
    def __init__(self):
        self.peak, self.ok, self.failed, self.stop = rss(), 0, 0, False
    async def run(self):
        async def sample():
            while not self.stop:
                self.peak = max(self.peak, rss())
                await asyncio.sleep(0.05)
        async def probe():
            while not self.stop:
                try:
                    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)), 2)
                    w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    head = await asyncio.wait_for(r.read(12), 2)
                    w.close()
                    if head.startswith(b"HTTP/1.1 200"):
                        self.ok += 1
                    else:
                        self.failed += 1
                except Exception:
                    self.failed += 1
                await asyncio.sleep(0.2)
        await asyncio.gather(sample(), probe())

async def phase(name, attack):
    watch = Watch()
    before = rss()
    task = asyncio.ensure_future(watch.run())
    started = time.monotonic()
    detail = await attack()
    took = time.monotonic() - started
    await asyncio.sleep(1)
    watch.stop = True
    await task
    print(f"{name:<44} RSS {before:6.1f} -> peak {watch.peak:6.1f} MiB (after {rss():6.1f})  "
          f"GET / ok {watch.ok}/{watch.ok + watch.failed}  {took:5.1f} s  {detail}", flush=True)
    return watch.peak

async def connect(i):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKERS[i % len(ATTACKERS)], 0))

async def login_token():
    r, w = await connect(0)
    w.write(b"GET /admin/login/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    page = (await r.read()).decode(errors="replace")
    w.close()
    cookie = re.search(r"Set-Cookie: ([^;]*)", page, re.I).group(1)
    token = re.search(r'name="csrf_token" value="([^"]*)"', page).group(1)
    return cookie, token

async def post_login(i, cookie, token, username, pw, pad=0):
    body = urllib.parse.urlencode({"username": username, "password": pw, "csrf_token": token})
    if pad:
        body += "&pad=" + "a" * (pad - len(body) - 5)
    try:
        r, w = await connect(i)
        w.write(f"POST /admin/login/ HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        await w.drain()
        head = await asyncio.wait_for(r.read(12), 60)
        w.close()
        return head[9:12].decode() or "closed"
    except Exception:
        return "closed"

def tally(statuses):
    counts = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))

async def main():
    cookie, token = await login_token()
    peaks = []

    async def burst():
        # 59 wrong guesses and the right password last, all at once, from one address.
        tasks = [post_login(0, cookie, token, "admin", "wrong guess") for _ in range(59)]
        tasks.append(post_login(0, cookie, token, "admin", password))
        statuses = await asyncio.gather(*tasks)
        return f"checks per burst of 60: {statuses.count('200')} (statuses {tally(statuses)}; right password last: {statuses[-1]})"
    peaks.append(await phase("login burst (60 at once, right one last)", burst))

    async def headers():
        writers = []
        async def one(i):
            try:
                r, w = await connect(i)
                w.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(383):
                    w.write(b"a" * 1024)
                    await w.drain()
                writers.append(w)
                return (await asyncio.wait_for(r.read(12), 30))[9:12].decode() or "closed"
            except Exception:
                return "closed"
        statuses = await asyncio.gather(*(one(i) for i in range(800)))
        for w in writers:
            w.close()
        return tally(statuses)
    peaks.append(await phase("800 x unterminated 383 KB header blocks", headers))

    async def posts():
        statuses = await asyncio.gather(*(post_login(i, cookie, token, f"user{i}", "wrong", 64 * 1024) for i in range(1500)))
        return tally(statuses)
    peaks.append(await phase("1500 concurrent 64 KB login posts", posts))

    async def idle():
        conns = []
        for i in range(500):
            try:
                conns.append(await connect(i))
            except Exception:
                pass
        started = time.monotonic()
        async def closed(r):
            try:
                await asyncio.wait_for(r.read(1), 120)
                return time.monotonic() - started
            except Exception:
                return None
        times = await asyncio.gather(*(closed(r) for r, _ in conns))
        done = [t for t in times if t is not None]
        return f"{len(done)}/{len(conns)} idle connections closed, the last after {max(done or [0]):.1f} s"
    peaks.append(await phase("500 idle connections", idle))
    print(f"peak RSS over all attacks: {max(peaks):.1f} MiB (goal < 128 MiB)")

asyncio.run(main())
PY
  echo "bench: abuse: attacking greeter (pid $greeter_pid, RSS $(rss_mib "$greeter_pid") MiB)"
  python3 "$tmp/abuse.py" "$port" "$greeter_pid" "$admin_password"
  echo "greeter peak RSS (VmHWM, whole run): $(hwm_mib "$greeter_pid") MiB"
  exit 0
fi

target/release/examples/ceiling "127.0.0.1:$ceiling_port" &
ceiling_pid=$!
sleep 0.5


# wrk's summary -> "requests/s p50 p99" (latencies in ms).
run_wrk() {
  local out
  out=$(wrk -t"$threads" -c"$1" -d"$duration" --latency "${@:2}")
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50.000%" || $1 == "50%" { p50 = ms($2) }
    $1 == "99.000%" || $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { non2xx = $NF }
    END { printf "%.0f %.2f %.2f %s\n", rps, p50, p99, (non2xx == "" ? 0 : non2xx) }
  ' <<<"$out"
}

echo "bench: GET / RSS after start-up: $(rss_mib "$greeter_pid") MiB"
printf '\n%-34s %10s %9s %9s %9s %10s\n' "run (c=$connections, $duration; GET /: median of $rounds x $round_duration)" "req/s" "p50 ms" "p99 ms" "non-2xx" "RSS MiB"
row() { printf '%-34s %10s %9s %9s %9s %10s\n' "$@"; }

if [ "$mode" = api ]; then
  token=$(cat "$tmp/token")
  auth="Authorization: Bearer $token"
  api_url="http://127.0.0.1:$port/api/v1/greetings"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$api_url")" = 200 ] \
    || { echo "bench: the token is not accepted" >&2; exit 1; }
  wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" >/dev/null   # warm up
  wrk -t1 -c4 -d2s -H "$auth" "$api_url" >/dev/null
  read -r g_rps g_p50 g_p99 g_bad <<<"$(run_wrk "$connections" "http://127.0.0.1:$port/")"
  row "greeter GET /" "$g_rps" "$g_p50" "$g_p99" "$g_bad" "$(rss_mib "$greeter_pid")"
  read -r a_rps a_p50 a_p99 a_bad <<<"$(run_wrk "$connections" -H "$auth" "$api_url")"
  row "GET /api/v1/greetings (token)" "$a_rps" "$a_p50" "$a_p99" "$a_bad" "$(rss_mib "$greeter_pid")"
  read -r u_rps u_p50 u_p99 u_bad <<<"$(run_wrk "$connections" -H "Authorization: Bearer grt_$(printf 'x%.0s' $(seq 43))" "$api_url")"
  row "  same, unknown token (401)" "$u_rps" "$u_p50" "$u_p99" "$u_bad" "$(rss_mib "$greeter_pid")"
  echo
  echo "API p99 at c=$connections: ${a_p99} ms (target < 5 ms); non-2xx: ${a_bad}"
  echo "token check and page: both from memory (no database round trip; see DOCS.md, API)"
  echo "greeter peak RSS: $(hwm_mib "$greeter_pid") MiB"
  exit 0
fi

wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" >/dev/null   # warm up
wrk -t1 -c4 -d2s "http://127.0.0.1:$ceiling_port/" >/dev/null
# The machine is shared and one run varies by +-30 %: short rounds alternating ceiling and
# greeter, and the median of each, so a burst of other load hits both sides alike.
c_runs=()
g_runs=()
for round in $(seq 1 "$rounds"); do
  c_runs+=("$(run_wrk "$connections" -d"$round_duration" "http://127.0.0.1:$ceiling_port/")")
  g_runs+=("$(run_wrk "$connections" -d"$round_duration" "http://127.0.0.1:$port/")")
  echo "bench: round $round/$rounds: ceiling $(cut -d' ' -f1 <<<"${c_runs[-1]}") req/s, greeter $(cut -d' ' -f1 <<<"${g_runs[-1]}") req/s" >&2
done
# "rps p50 p99 non2xx" lines -> the median of each column.
median_runs() {
  printf '%s\n' "$@" | awk '
    { for (i = 1; i <= 4; i++) v[i, NR] = $i }
    END {
      for (i = 1; i <= 4; i++) {
        n = 0
        for (r = 1; r <= NR; r++) a[++n] = v[i, r]
        for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
        m[i] = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      printf "%.0f %.2f %.2f %s\n", m[1], m[2], m[3], m[4]
    }'
}
read -r c_rps c_p50 c_p99 c_bad <<<"$(median_runs "${c_runs[@]}")"
row "ceiling (constant JSON, warp)" "$c_rps" "$c_p50" "$c_p99" "$c_bad" "$(rss_mib "$ceiling_pid")"
read -r g_rps g_p50 g_p99 g_bad <<<"$(median_runs "${g_runs[@]}")"
row "greeter GET /" "$g_rps" "$g_p50" "$g_p99" "$g_bad" "$(rss_mib "$greeter_pid")"

# Admin pages with a logged-in session (the smoke script's login, reused by hand).
jar=$tmp/cookies
curl -s -c "$jar" -b "$jar" -o "$tmp/login.html" "http://127.0.0.1:$port/admin/login/"
csrf=$(grep -o 'name="csrf_token"[^>]*' "$tmp/login.html" | sed -n 's/.*value="\([^"]*\)".*/\1/p' | head -n 1)
login_status=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{http_code}' \
  --data-urlencode "username=admin" --data-urlencode "password=$admin_password" \
  --data-urlencode "csrf_token=$csrf" "http://127.0.0.1:$port/admin/login/")
if [ "$login_status" = 302 ]; then
  cookie=$(awk '!/^#/ || /^#HttpOnly_/ { if (NF >= 7) printf "%s=%s; ", $6, $7 }' "$jar")
  # "Moderate load": a few concurrent admins, well below saturation of 2 cores. A short
  # warm-up first, so the pool's connections exist before latencies are measured.
  wrk -t1 -c"$admin_connections" -d2s -H "Cookie: $cookie" "http://127.0.0.1:$port/admin/" >/dev/null
  for page in /admin/ /admin/greetings/ /admin/users/ /admin/audit/; do
    read -r a_rps a_p50 a_p99 a_bad <<<"$(run_wrk "$admin_connections" -H "Cookie: $cookie" "http://127.0.0.1:$port$page")"
    row "admin $page (c=$admin_connections)" "$a_rps" "$a_p50" "$a_p99" "$a_bad" "$(rss_mib "$greeter_pid")"
  done
else
  echo "bench: admin login answered $login_status; admin pages skipped" >&2
fi

# GET / while 16 connections post wrong passwords with a valid CSRF token, so each
# attempt reaches the password check (argon2) until throttling locks the client out.
flood_jar=$tmp/flood-cookies
curl -s -c "$flood_jar" -o "$tmp/flood-login.html" "http://127.0.0.1:$port/admin/login/"
flood_csrf=$(grep -o 'name="csrf_token"[^>]*' "$tmp/flood-login.html" | sed -n 's/.*value="\([^"]*\)".*/\1/p' | head -n 1)
flood_cookie=$(awk '!/^#/ || /^#HttpOnly_/ { if (NF >= 7) printf "%s=%s; ", $6, $7 }' "$flood_jar")
cat >"$tmp/flood.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "$flood_cookie"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, "username=user" .. counter .. "&password=wrong-password&csrf_token=$flood_csrf")
end
LUA
wrk -t1 -c16 -d"$duration" -s "$tmp/flood.lua" "http://127.0.0.1:$port/admin/login/" >"$tmp/flood.out" &
flood_pid=$!
sleep 1
read -r f_rps f_p50 f_p99 f_bad <<<"$(run_wrk "$connections" "http://127.0.0.1:$port/")"
wait "$flood_pid" || true
row "greeter GET / during login flood" "$f_rps" "$f_p50" "$f_p99" "$f_bad" "$(rss_mib "$greeter_pid")"
flood_rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$tmp/flood.out")
flood_statuses=$(grep -o '"status":[0-9]*' "$tmp/access.log" | sort | uniq -c | tr -s ' ' | tr '\n' ',')

echo
awk -v g="$g_rps" -v c="$c_rps" -v n="$rounds" 'BEGIN { printf "greeter / ceiling throughput (medians of %d rounds): %.2fx (target >= 0.80x)\n", n, g / c }'
echo "greeter p99 at c=$connections: ${g_p99} ms (target < 5 ms)"
echo "greeter peak RSS: $(hwm_mib "$greeter_pid") MiB (target < 30 MiB)"
echo "login flood: ${flood_rps} wrong-password POSTs/s answered while GET / kept p99 ${f_p99} ms"
echo "statuses in the access log (count status): ${flood_statuses}"
echo "access log lines written: $(wc -l <"$tmp/access.log")"
