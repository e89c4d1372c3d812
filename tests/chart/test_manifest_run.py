"""Manifest-driven run: the chart's wiring, executed by the real binaries.

Takes the rendered (default values) migration Job, app Deployment and PostgreSQL
StatefulSet, and runs what they declare:
- a throwaway PostgreSQL initialised the way the postgres image does it from the
  StatefulSet's env (POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, scram-sha-256 over
  TCP), on 127.0.0.1 and a free port;
- the init gate (`greeter-migrate` with the init container's args) must fail before the
  migrations ran (with a shortened --timeout) ...
- ... the Job's container (`greeter-migrate`, its command/args, its env resolved from the
  rendered ConfigMap and Secrets) must exit 0, and again (a rollback re-runs it);
- the gate with exactly its rendered args must then exit 0;
- the app container (`greeter` + its args + env) must serve: its startup, readiness and
  liveness probe paths on the port named by the probes, GET / (APP_ENV from the
  ConfigMap), /metrics on the metrics port; then SIGTERM must turn readiness to 503 and
  end the process with status 0 within terminationGracePeriodSeconds.
Only DATABASE_HOST/DATABASE_PORT are overridden (127.0.0.1 and the free port), and the
ports of LISTEN_ADDR/METRICS_ADDR (free ports on 127.0.0.1 instead of 0.0.0.0:8080/9090).

What this does not prove (it needs a cluster; `nix run .#deploy` then `nix run .#smoke`
on kind covers it, plus `helm test`): images (entrypoints, UID 65532, no shell, CA
certificates), scheduling and topology spread, PVC provisioning and the fsGroup on it,
the postgres image's own entrypoint and its read-only root filesystem, Service/NodePort
routing, DNS, NetworkPolicy enforcement, probe timing under the kubelet, the preStop
sleep, HPA/PDB behaviour, and Helm's ordering and --wait/--wait-for-jobs on a real
install, upgrade and rollback.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, component, one, render, resolve_env

BIN_DIR = Path(os.environ.get("GREETER_BIN_DIR", REPO / "target" / "debug"))
IMAGE_TO_BINARY = {"greeter": "greeter", "greeter-migrate": "greeter-migrate"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        pytest.fail(f"{name} not found (apt-get install postgresql)")
    return candidates[-1]


@pytest.fixture(scope="module")
def binaries():
    """The service binaries. Built with cargo unless GREETER_BIN_DIR points at them."""
    if "GREETER_BIN_DIR" not in os.environ:
        # A no-op when target/ is fresh; may wait for another cargo's build lock.
        build = subprocess.run(["cargo", "build", "--bins", "--quiet"], cwd=REPO, capture_output=True, text=True,
                               timeout=1800)
        assert build.returncode == 0, build.stderr[-4000:]
    paths = {name: BIN_DIR / name for name in IMAGE_TO_BINARY.values()}
    for path in paths.values():
        assert path.exists(), f"{path} is missing"
    return paths


@pytest.fixture(scope="module")
def objects():
    return render("defaults")


@pytest.fixture(scope="module")
def postgres(objects):
    """PostgreSQL set up from the rendered StatefulSet's env, like the postgres image does."""
    sts = one(objects, "StatefulSet")
    env = resolve_env(objects, sts["spec"]["template"]["spec"]["containers"][0])
    user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    # Not pytest's tmp_path: the postgres user must be able to reach the directory.
    base = Path(tempfile.mkdtemp(prefix="greeter-chart-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    (base / "pwfile").write_text(password + "\n")
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        shutil.chown(base / "pwfile", "postgres")
    port = free_port()
    pg_ctl = [*prefix, postgres_bin("pg_ctl"), "-D", str(data)]
    started = False
    try:
        subprocess.run([*prefix, postgres_bin("initdb"), "-D", str(data), "-U", user, f"--pwfile={base / 'pwfile'}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} -c fsync=off"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(base / "postgres.log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=90)
        started = True
        psql = [postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-qAt"]
        pw_env = {**os.environ, "PGPASSWORD": password}
        subprocess.run([*psql, "-c", f'CREATE DATABASE "{database}" OWNER "{user}"'], check=True,
                       capture_output=True, timeout=30, env=pw_env)
        yield {"port": port, "psql": [*psql[:-3], "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt"], "env": pw_env}
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "-t", "60", "stop"], capture_output=True, timeout=90)
        shutil.rmtree(base, ignore_errors=True)


def container_command(binaries, container) -> list[str]:
    """What the container runtime would exec: the image's entrypoint (the binary), or the
    container's command, followed by its args."""
    if "command" in container:
        entrypoint = [str(binaries[Path(container["command"][0]).name]), *container["command"][1:]]
    else:
        image = container["image"].split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1]
        entrypoint = [str(binaries[IMAGE_TO_BINARY[image]])]
    return [*entrypoint, *container.get("args", [])]


def container_env(objects, container, postgres, **overrides) -> dict[str, str]:
    env = resolve_env(objects, container)
    env.update(DATABASE_HOST="127.0.0.1", DATABASE_PORT=str(postgres["port"]), **overrides)
    return env


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, error.read(), {k.lower(): v for k, v in error.headers.items()}


@contextlib.contextmanager
def running(cmd, env, log_path):
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for_probes(proc, container, probe_url, log_path) -> None:
    """Poll the container's startup probe for as long as the kubelet would give it
    (periodSeconds * failureThreshold), then its readiness probe (10 s); the process
    must stay up meanwhile. probe_url(name) gives the URL of container[name]."""
    startup = container["startupProbe"]
    deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
    status = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"greeter exited early:\n{log_path.read_text()[-3000:]}"
        with contextlib.suppress(OSError):
            status = http_get(probe_url("startupProbe"))[0]
            if status == 200:
                break
        time.sleep(0.2)
    assert status == 200, f"startup probe never passed:\n{log_path.read_text()[-3000:]}"
    deadline = time.monotonic() + 10
    while http_get(probe_url("readinessProbe"))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http_get(probe_url("readinessProbe"))[0] == 200


def test_manifests_run_with_the_real_binaries(binaries, objects, postgres, tmp_path):
    job = component(objects, "Job", "migrate")
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (gate,) = pod["initContainers"]
    (app,) = pod["containers"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]

    # 1. The gate holds while the schema is behind (shortened timeout; args otherwise as rendered).
    gate_cmd = container_command(binaries, gate)
    assert gate_cmd[-3:-1] == ["--wait", "--timeout"]
    early = subprocess.run([*gate_cmd[:-1], "3"], env=container_env(objects, gate, postgres),
                           capture_output=True, text=True, timeout=60)
    assert early.returncode != 0, "the init gate let a pod start before the migrations ran"

    # 2. The migration Job, exactly as rendered; a second run (rollback, retry) is a no-op.
    for attempt in (1, 2):
        result = subprocess.run(container_command(binaries, migrate), env=container_env(objects, migrate, postgres),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"migration Job run {attempt}: {result.stdout[-2000:]}{result.stderr[-2000:]}"

    # 3. The gate, with its rendered args, now passes.
    passed = subprocess.run(gate_cmd, env=container_env(objects, gate, postgres), capture_output=True, text=True,
                            timeout=60)
    assert passed.returncode == 0, passed.stderr[-2000:]

    # The bootstrap admin from the Job's ADMIN_USERNAME exists (the name is in the database).
    admin = next(e["value"] for e in migrate["env"] if e["name"] == "ADMIN_USERNAME")
    dump = subprocess.run([*postgres["psql"], "-c", "SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema = 'public'"], capture_output=True, text=True, timeout=30,
                          env=postgres["env"], check=True).stdout.split()
    found_admin = False
    for table in dump:
        rows = subprocess.run([*postgres["psql"], "-c", f'SELECT row_to_json(t)::text FROM "{table}" t'],
                              capture_output=True, text=True, timeout=30, env=postgres["env"]).stdout
        found_admin |= f'"{admin}"' in rows
    assert found_admin, f"no row names the bootstrap user {admin!r} in tables {dump}"

    # 4. The app container: its args, its env, the ports its probes name.
    ports = {p["name"]: p["containerPort"] for p in app["ports"]}
    env = resolve_env(objects, app)
    assert env["LISTEN_ADDR"].endswith(f":{ports['http']}") and env["METRICS_ADDR"].endswith(f":{ports['metrics']}")
    http_port, metrics_port = free_port(), free_port()
    port_of = {"http": http_port, "metrics": metrics_port, ports["http"]: http_port, ports["metrics"]: metrics_port}
    app_env = container_env(objects, app, postgres, LISTEN_ADDR=f"127.0.0.1:{http_port}",
                            METRICS_ADDR=f"127.0.0.1:{metrics_port}")

    def probe_url(probe):
        get = app[probe]["httpGet"]
        return f"http://127.0.0.1:{port_of[get['port']]}{get['path']}"

    log_path = tmp_path / "greeter.log"
    with running(container_command(binaries, app), app_env, log_path) as proc:
        wait_for_probes(proc, app, probe_url, log_path)
        assert http_get(probe_url("livenessProbe"))[0] == 200

        status, body, headers = http_get(f"http://127.0.0.1:{http_port}/")
        assert status == 200 and headers.get("content-type", "").startswith("application/json")
        greeting = json.loads(body)
        assert greeting["environment"] == env["APP_ENV"] and greeting["message"] and greeting["time"]
        assert headers.get("x-request-id")

        status, body, _ = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and b"# TYPE" in body
        # The metrics port is not the public one.
        assert http_get(f"http://127.0.0.1:{http_port}/metrics")[0] != 200

        # 5. SIGTERM (what the kubelet sends after the preStop sleep): not ready any more,
        # then a clean exit within the grace period.
        proc.send_signal(signal.SIGTERM)
        saw_unready = False
        with contextlib.suppress(OSError):
            saw_unready = http_get(probe_url("readinessProbe"))[0] == 503
        code = proc.wait(timeout=pod["terminationGracePeriodSeconds"])
        assert code == 0, log_path.read_text()[-3000:]
        if not saw_unready:
            # It may simply have exited before the probe got there: then nothing listens.
            with pytest.raises(OSError):
                http_get(probe_url("readinessProbe"), timeout=1)

    # LOG_FORMAT=json from the ConfigMap: every log line is a JSON object.
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    assert lines, "no log output"
    for line in lines:
        json.loads(line)
    # The secret values never reach the logs.
    text = log_path.read_text()
    for name in ("SECRET_KEY", "DATABASE_PASSWORD", "PAYMENT_API_KEY"):
        assert app_env[name] not in text, f"{name} leaked into the log"
