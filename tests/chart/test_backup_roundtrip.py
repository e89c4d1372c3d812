"""Backup and restore, round trip, against a real PostgreSQL and the real binaries.

Manifest-driven like test_manifest_run.py: the backup is the rendered CronJob's own
script with its own env (only PGHOST/PGPORT point at the throwaway PostgreSQL and
BACKUP_DIR at a directory), started by nix/apps/backup.sh through the fake kubectl
(tests/nix/fake_kubectl.sh), whose `create job --from=cronjob/...` runs it. The restore
is nix/apps/restore.sh --yes, whose `kubectl exec` into the database pod runs the same
pg_restore/psql here; its migrate Job copy runs the rendered migrate container (real
greeter-migrate); its `scale` starts/stops two real `greeter serve` replicas, which it
then asks for GET /. Afterwards: every table is as it was at backup time, the old user
logs in with the old password (nix/apps/smoke.sh), `/` serves the restored greeting, the
audit log is intact and still append-only. A second test restores a dump taken at
schema version 1 into the current binaries and checks it comes out current.

The figures (time and size for 100k audit entries) are printed; run with -s to see them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, component, one, pod_spec, resolve_env
from test_manifest_run import binaries, container_command, http_get, objects, postgres  # noqa: F401 (fixtures)

AUDIT_ROWS = 100_000
PASSWORD = "old password, still good 42"


def psql(postgres, sql, db=None):
    cmd = list(postgres["psql"])
    if db:
        cmd[len(cmd) - 1 - cmd[::-1].index("-d") + 1] = db  # the last -d wins
    result = subprocess.run([*cmd, "-c", sql], capture_output=True, text=True, timeout=300, env=postgres["env"])
    return result


def q(postgres, sql, db=None) -> str:
    result = psql(postgres, sql, db)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def fingerprint(postgres, db=None) -> dict[str, str]:
    """Every public table's rows, as one md5 per table."""
    tables = q(postgres, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", db).split()
    return {t: q(postgres, f'SELECT count(*) || \':\' || coalesce(md5(string_agg(x::text, \'|\' ORDER BY x::text)), \'\') '
                           f'FROM public."{t}" x', db) for t in tables}


def write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def env_file(env: dict[str, str]) -> str:
    for k, v in env.items():
        assert not re.search(r"\s", v), f"{k} has whitespace; the fake's env file cannot carry it"
    return " ".join(f"{k}={v}" for k, v in env.items())


@pytest.fixture(scope="module")
def world(binaries, objects, postgres, tmp_path_factory):  # noqa: F811
    """A fake cluster (see tests/nix/fake_kubectl.sh) wired to the rendered manifests."""
    d = tmp_path_factory.mktemp("fake-cluster")
    bindir = d / "bin"
    (d / "hooks").mkdir()
    bindir.mkdir()
    os.symlink(REPO / "tests/nix/fake_kubectl.sh", bindir / "kubectl")
    write_exe(bindir / "kind", "#!/bin/sh\n[ \"$1 $2\" = 'get clusters' ] && echo greeter\n")

    sts = one(objects, "StatefulSet")
    pg_env = resolve_env(objects, sts["spec"]["template"]["spec"]["containers"][0])
    (d / "mode").write_text("bundled")
    (d / "db").write_text(pg_env["POSTGRES_DB"])
    (d / "owner").write_text(pg_env["POSTGRES_USER"])
    (d / "pg.env").write_text(f"PGHOST=127.0.0.1 PGPORT={postgres['port']} PGPASSWORD={pg_env['POSTGRES_PASSWORD']}")

    # The backup CronJob, as rendered.
    cj = one(objects, "CronJob", "greeter-backups")
    (c,) = pod_spec(cj)["containers"]
    assert c["command"][:2] == ["/bin/sh", "-c"]
    (d / "cronjob.sh").write_text(c["command"][2])
    cj_env = resolve_env(objects, c)
    cj_env.update(PGHOST="127.0.0.1", PGPORT=str(postgres["port"]))
    (d / "cronjob.env").write_text(env_file(cj_env))

    # The migrate Job, as rendered; the hook checks that restore.sh's copy runs the same
    # container and then runs it with the real greeter-migrate.
    job = component(objects, "Job", "migrate")
    (d / "migrate-job.json").write_text(json.dumps({k: v for k, v in job.items() if not k.startswith("_")}))
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    menv = resolve_env(objects, migrate)
    menv.update(DATABASE_HOST="127.0.0.1", DATABASE_PORT=str(postgres["port"]))
    (d / "migrate.env").write_text(env_file(menv))
    (d / "migrate.container.json").write_text(json.dumps(migrate, sort_keys=True))
    write_exe(d / "hooks/migrate", f"""#!/usr/bin/env bash
set -euo pipefail
[[ $(jq -S -c '.spec.template.spec.containers[0]' "$1") == "$(jq -S -c . {d}/migrate.container.json)" ]] \\
  || {{ echo "the copied Job runs another container" >&2; echo "Failed "; exit 0; }}
if env -i PATH="$PATH" $(cat {d}/migrate.env) {shlex.join(container_command(binaries, migrate))} >>{d}/migrate.log 2>&1; then
  echo "Complete "
else
  echo "Failed "
fi
""")

    # The app: `scale deployment greeter --replicas=N` starts N real servers (after
    # stopping the old ones), each on its own port, and waits for /readyz like the kubelet.
    app = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    aenv = resolve_env(objects, app)
    aenv.update(DATABASE_HOST="127.0.0.1", DATABASE_PORT=str(postgres["port"]))
    (d / "app.env").write_text(env_file(aenv))
    write_exe(d / "hooks/scale", f"""#!/usr/bin/env bash
set -euo pipefail
d={d}
if [[ -f $d/app-pids ]]; then
  for pid in $(cat $d/app-pids); do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $(cat $d/app-pids); do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
fi
: >$d/app-pids; : >$d/app-pods
for ((i = 0; i < $1; i++)); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env -i PATH="$PATH" $(cat $d/app.env) LISTEN_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:$metrics \\
    setsid {shlex.join(container_command(binaries, app))} >>$d/app-$i.log 2>&1 &
  echo $! >>$d/app-pids
  echo "greeter-pod-$i" >>$d/app-pods
  echo "http://127.0.0.1:$port" >$d/app-url.greeter-pod-$i
  for ((t = 0; t < 600; t++)); do
    [[ $(curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:$port/readyz) == 200 ]] && break
    sleep 0.1
  done
done
""")
    env = {**os.environ, "FAKE_DIR": str(d), "PATH": f"{bindir}:{os.environ['PATH']}"}
    yield {"dir": d, "env": env}
    pids = (d / "app-pids").read_text().split() if (d / "app-pids").exists() else []
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_app(world, script, *args, cwd=None, timeout=900):
    return subprocess.run(["bash", str(REPO / "nix/apps" / script), *args], env=world["env"], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout)


def migrate(world):
    d = world["dir"]
    assert (subprocess.run([str(d / "hooks/migrate"), str(d / "migrate-job.json")], capture_output=True, text=True,
                           timeout=300, env=world["env"]).stdout.strip() == "Complete"), (d / "migrate.log").read_text()


def create_user(world, binaries, username):  # noqa: F811
    env = dict(kv.split("=", 1) for kv in (world["dir"] / "app.env").read_text().split())
    result = subprocess.run([str(binaries["greeter"]), "createsuperuser", "--username", username], input=PASSWORD + "\n",
                            env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def app_urls(world):
    d = world["dir"]
    return [(d / f"app-url.{p}").read_text().strip() for p in (d / "app-pods").read_text().split()]


def test_backup_destroy_restore_round_trip(world, binaries, postgres, tmp_path):  # noqa: F811
    d = world["dir"]
    migrate(world)
    create_user(world, binaries, "olduser")
    q(postgres, "UPDATE greetings SET is_active = false; "
                "INSERT INTO greetings (message, is_active) VALUES ('Restored from the backup, ünïcode ✓', true)")
    q(postgres, f"INSERT INTO admin_audit_log (username, action, object_type, object_id, object_repr, after) "
                f"SELECT 'olduser', 'change', 'greeting', g, 'greeting ' || g, jsonb_build_object('n', g) "
                f"FROM generate_series(1, {AUDIT_ROWS}) g")
    before = fingerprint(postgres)
    assert int(before["admin_audit_log"].split(":")[0]) == AUDIT_ROWS
    if "api_tokens" in before:
        print(f"api_tokens present: {before['api_tokens'].split(':')[0]} rows")

    # Older backups in the PVC: the run keeps the newest 7 (backup.keep) and drops the rest.
    (d / "pvc").mkdir(exist_ok=True)
    old = [d / "pvc" / f"greeter-2020010{i}T030000Z.dump" for i in range(1, 9)]
    for f in old:
        f.write_bytes(b"PGDMP old")
    (d / "pvc" / "greeter-20200109T030000Z.dump.partial").write_bytes(b"half")

    # 1. Back up: backup.sh -> Job from the CronJob -> the rendered script -> ./backups/.
    started = time.monotonic()
    result = run_app(world, "backup.sh", cwd=tmp_path)
    backup_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr + (d / "log").read_text()
    path, size = result.stdout.split()
    dump = tmp_path / path
    assert dump.parent == tmp_path / "backups" and re.fullmatch(r"greeter-\d{8}T\d{6}Z\.dump", dump.name)
    assert dump.stat().st_size == int(size) and dump.read_bytes()[:5] == b"PGDMP"
    assert (d / "pvc" / dump.name).read_bytes() == dump.read_bytes()
    kept = sorted(p.name for p in (d / "pvc").iterdir())
    assert kept == sorted([dump.name] + [f.name for f in old[-6:]]), kept
    assert " create job greeter-backups-now-" in (d / "log").read_text()
    assert "--from=cronjob/greeter-backups" in (d / "log").read_text()

    # 2. Destroy the data.
    q(postgres, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    assert fingerprint(postgres) == {}

    # 3. Restore (--yes), as the restore app does it: app scaled down, one transaction,
    # migrations, app back, every replica asked.
    (d / "replicas").write_text("2")
    started = time.monotonic()
    result = run_app(world, "restore.sh", "--yes", str(dump))
    restore_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr + (d / "hooks.log").read_text()
    assert result.stderr.count("serves the restored greeting") == 2, result.stderr
    calls = (d / "log").read_text()
    assert calls.index("--replicas=0") < calls.index("sh -c") < calls.index("create -f -") < calls.index("--replicas=2")
    print(f"\n100k audit entries: backup {backup_seconds:.1f} s, {int(size) / 1e6:.1f} MB "
          f"(custom format); restore incl. migrations and restart {restore_seconds:.1f} s")

    # Exactly what was backed up (the servers only read at start).
    after = fingerprint(postgres)
    assert after == before

    # 4. The restored service: / on every replica, the old user's login (smoke.sh).
    for url in app_urls(world):
        status, body, _ = http_get(url + "/")
        assert status == 200 and json.loads(body)["message"] == "Restored from the backup, ünïcode ✓"
    smoke = subprocess.run(["bash", str(REPO / "nix/apps/smoke.sh")], capture_output=True, text=True, timeout=60,
                           env={**world["env"], "SMOKE_URL": app_urls(world)[0], "ADMIN_USERNAME": "olduser",
                                "ADMIN_PASSWORD": PASSWORD})
    assert smoke.returncode == 0, smoke.stderr
    wrong = subprocess.run(["bash", str(REPO / "nix/apps/smoke.sh")], capture_output=True, text=True, timeout=60,
                           env={**world["env"], "SMOKE_URL": app_urls(world)[0], "ADMIN_USERNAME": "olduser",
                                "ADMIN_PASSWORD": "not the password"})
    assert wrong.returncode != 0, "a wrong password logged in: the check above proves nothing"

    # 5. The audit log is intact and still append-only (its trigger came back with the dump).
    assert int(q(postgres, "SELECT count(*) FROM admin_audit_log WHERE username = 'olduser'")) >= AUDIT_ROWS
    for sql in ("UPDATE admin_audit_log SET action = 'forged' WHERE id = 1", "DELETE FROM admin_audit_log WHERE id = 1"):
        refused = psql(postgres, sql)
        assert refused.returncode != 0 and "append-only" in refused.stderr, refused

    # 6. A change after the restore reaches every replica (LISTEN/NOTIFY works again).
    q(postgres, "UPDATE greetings SET message = 'after the restore' WHERE is_active")
    for url in app_urls(world):
        deadline = time.monotonic() + 10
        while json.loads(http_get(url + "/")[1])["message"] != "after the restore" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(http_get(url + "/")[1])["message"] == "after the restore"


def test_a_dump_from_schema_version_1_comes_out_current(world, binaries, postgres, tmp_path):  # noqa: F811
    d = world["dir"]
    migrate(world)
    current = q(postgres, "SELECT max(version) FROM refinery_schema_history")
    v1_row = q(postgres, "SELECT version, name, applied_on, checksum FROM refinery_schema_history WHERE version = 1")
    version, name, applied_on, checksum = v1_row.split("|")
    create_user(world, binaries, "v1user")
    user_row = q(postgres, "SELECT password_hash FROM users WHERE username = 'v1user'")
    assert int(current) > 1, "there is only one migration: nothing to prove"

    # A database at version 1 only: V1's SQL and refinery's own record of it.
    q(postgres, "DROP DATABASE IF EXISTS greeter_v1")
    q(postgres, "CREATE DATABASE greeter_v1")
    q(postgres, (REPO / "migrations/V1__initial_schema.sql").read_text(), db="greeter_v1")
    q(postgres, "CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name varchar(255), "
                "applied_on varchar(255), checksum varchar(255)); "
                f"INSERT INTO refinery_schema_history VALUES ({version}, '{name}', '{applied_on}', '{checksum}'); "
                f"INSERT INTO users (username, password_hash, is_staff, is_superuser) VALUES ('v1user', '{user_row}', true, true); "
                "UPDATE greetings SET message = 'from schema version 1'", db="greeter_v1")
    assert "admin_audit_log" not in fingerprint(postgres, "greeter_v1")

    # Its dump, by the CronJob's script pointed at that database.
    pvc = tmp_path / "pvc"
    pvc.mkdir()
    env = dict(kv.split("=", 1) for kv in (d / "cronjob.env").read_text().split())
    env.update(PGDATABASE="greeter_v1", BACKUP_DIR=str(pvc), PATH=os.environ["PATH"])
    result = subprocess.run(["/bin/sh", "-c", (d / "cronjob.sh").read_text()], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    (dump,) = pvc.glob("greeter-*.dump")

    (d / "replicas").write_text("2")
    result = run_app(world, "restore.sh", "--yes", str(dump))
    assert result.returncode == 0, result.stderr + (d / "hooks.log").read_text()
    assert f"schema version 1 -> {current}" in result.stderr
    assert q(postgres, "SELECT max(version) FROM refinery_schema_history") == current
    for url in app_urls(world):
        assert json.loads(http_get(url + "/")[1])["message"] == "from schema version 1"
    smoke = subprocess.run(["bash", str(REPO / "nix/apps/smoke.sh")], capture_output=True, text=True, timeout=60,
                           env={**world["env"], "SMOKE_URL": app_urls(world)[0], "ADMIN_USERNAME": "v1user",
                                "ADMIN_PASSWORD": PASSWORD})
    assert smoke.returncode == 0, smoke.stderr
    # The tables of the newer migrations exist now, with their guarantees.
    refused = psql(postgres, "INSERT INTO admin_audit_log (username, action, object_type) VALUES ('x', 'y', 'z'); "
                             "DELETE FROM admin_audit_log")
    assert refused.returncode != 0 and "append-only" in refused.stderr


def test_a_failing_backup_says_so_and_leaves_no_file(world, tmp_path):
    d = world["dir"]
    pvc = tmp_path / "pvc"
    pvc.mkdir()
    env = dict(kv.split("=", 1) for kv in (d / "cronjob.env").read_text().split())
    env.update(PGPASSWORD="wrong-password", BACKUP_DIR=str(pvc), PATH=os.environ["PATH"])
    result = subprocess.run(["/bin/sh", "-c", (d / "cronjob.sh").read_text()], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "backup: FAILED: pg_dump exited with status" in result.stderr
    assert list(pvc.iterdir()) == [], "a failed run must leave no file that looks like a backup"


# Cut in the data (psql sees an unterminated COPY) and in the table of contents
# (pg_restore fails before it writes any SQL: only the script's own guard stops the
# DROP SCHEMA from being committed).
@pytest.mark.parametrize("keep", [lambda n: n * 2 // 3, lambda n: 200], ids=["cut-in-data", "cut-in-toc"])
def test_a_broken_dump_changes_nothing_and_the_app_comes_back(world, postgres, tmp_path, keep):  # noqa: F811
    d = world["dir"]
    pvc = tmp_path / "pvc"
    pvc.mkdir()
    env = dict(kv.split("=", 1) for kv in (d / "cronjob.env").read_text().split())
    env.update(BACKUP_DIR=str(pvc), PATH=os.environ["PATH"])
    result = subprocess.run(["/bin/sh", "-c", (d / "cronjob.sh").read_text()], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    (dump,) = pvc.glob("greeter-*.dump")
    broken = tmp_path / "broken.dump"
    data = dump.read_bytes()
    broken.write_bytes(data[: keep(len(data))])  # the PGDMP header is fine, the rest ends early
    before = fingerprint(postgres)

    (d / "replicas").write_text("2")
    result = run_app(world, "restore.sh", "--yes", str(broken))
    assert result.returncode != 0
    assert "the restore failed and was rolled back" in result.stderr, result.stderr
    assert fingerprint(postgres) == before, "a failed restore changed the database"
    # The app is back (the failure handler scaled it up again) and serves.
    assert (d / "replicas").read_text().strip() == "2"
    for url in app_urls(world):
        assert http_get(url + "/")[0] == 200


def test_a_dump_cut_in_the_rows_of_a_one_column_table_fails_the_restore(world, postgres, tmp_path):  # noqa: F811
    """pg_restore dies inside `COPY ... FROM stdin`: psql then reads the script's failure
    guard as one more row, which a single text column accepts, and at EOF ends the COPY
    and exits 0 (the uncommitted transaction is rolled back). The restore must still fail
    and say so, not report a restore that never happened."""
    d = world["dir"]
    q(postgres, "DROP DATABASE IF EXISTS cutsrc")
    q(postgres, "CREATE DATABASE cutsrc")
    q(postgres, "CREATE TABLE notes (line text); "
                "INSERT INTO notes SELECT 'row ' || i || ' ' || repeat('x', 40) FROM generate_series(1, 20000) i", db="cutsrc")
    cmd = list(postgres["psql"])
    args = [*cmd[cmd.index("-h"):cmd.index("-U") + 2], "-d", "cutsrc"]
    dump = tmp_path / "full.dump"
    subprocess.run([str(Path(cmd[0]).with_name("pg_dump")), *args, "--format=custom", "--compress=0", f"--file={dump}"],
                   check=True, env=postgres["env"], timeout=120)
    data = dump.read_bytes()
    cut = data.index(b"row 10000 ") + 5  # uncompressed: the cut is in the middle of a row
    broken = tmp_path / "cut-in-rows.dump"
    broken.write_bytes(data[:cut])
    before = fingerprint(postgres)

    (d / "replicas").write_text("2")
    result = run_app(world, "restore.sh", "--yes", str(broken))
    assert result.returncode != 0, result.stderr
    assert "the restore failed and was rolled back" in result.stderr, result.stderr
    assert "scaling deployment/greeter back to 2" in result.stderr
    assert fingerprint(postgres) == before, "a failed restore changed the database"
    assert "notes" not in fingerprint(postgres)
