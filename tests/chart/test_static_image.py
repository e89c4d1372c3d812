"""The images' binaries (static musl builds, scripts/test-static.sh) run the chart's
rendered containers in an image-shaped root.

The root holds only what nix/images.nix puts in an image: the binary at /bin/<name>,
/etc/passwd and /etc/group with UID/GID 65532 (what pkgs.fakeNss plus the extra lines
give), /var/empty (the user's home), the CA bundle at /etc/ssl/certs/ca-bundle.crt (the
image's SSL_CERT_FILE), and an empty /tmp (the chart's emptyDir is mounted there). Each
container runs the way a container runtime would run it: the root bind-mounted read-only
in a private mount namespace (`unshare -m`), a tmpfs on /tmp, `chroot --userspec
65532:65532`, the image's Env (PATH, SSL_CERT_FILE) overlaid by the container's rendered
env, the image's entrypoint or the container's command, then its args. Loopback is
shared, so the binaries reach the throwaway PostgreSQL on 127.0.0.1.

Runs: the init gate before the migrations (must hold), the migration Job (twice), the
gate with its rendered args, the app container serving its probes and GET /; then a
TLS-only PostgreSQL with a throwaway CA: sslmode=require connects with the CA in the
root's bundle and fails with a bundle that lacks it.

GREETER_STATIC_BIN_DIR names the directory of the static binaries; scripts/test-static.sh
always sets it (without it, this module skips: the chart suite does not build them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import component, one, resolve_env
from test_manifest_run import (  # noqa: F401 (objects, postgres: fixtures)
    free_port, http_get, objects, postgres, postgres_bin, running, wait_for_probes,
)

STATIC_DIR = os.environ.get("GREETER_STATIC_BIN_DIR")
pytestmark = pytest.mark.skipif(
    not STATIC_DIR, reason="GREETER_STATIC_BIN_DIR is unset: scripts/test-static.sh builds the static binaries and sets it"
)

UID = 65532
IMAGE_TO_BINARY = {"greeter": "greeter", "greeter-migrate": "greeter-migrate"}
# nix/images.nix: config.Env of both images.
CA_BUNDLE = "/etc/ssl/certs/ca-bundle.crt"
IMAGE_ENV = {"PATH": "/bin", "SSL_CERT_FILE": CA_BUNDLE}
# The host's public CA bundle stands in for dockerTools.caCertificates' content.
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def make_root(base: Path, binary: Path, bundle: bytes) -> Path:
    """An image-shaped root for one image: what nix/images.nix puts in it, nothing more."""
    root = Path(tempfile.mkdtemp(prefix=f"root-{binary.name}-", dir=base))
    root.chmod(0o755)
    (root / "bin").mkdir(mode=0o755)
    shutil.copy2(binary, root / "bin" / binary.name)
    (root / "bin" / binary.name).chmod(0o755)
    etc = root / "etc"
    (etc / "ssl" / "certs").mkdir(parents=True, mode=0o755)
    # pkgs.fakeNss (root, nobody) plus images.nix's extraPasswdLines/extraGroupLines.
    (etc / "passwd").write_text(
        "root:x:0:0:root user:/var/empty:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/var/empty:/bin/sh\n"
        f"greeter:x:{UID}:{UID}:greeter:/var/empty:/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nnobody:x:65534:\ngreeter:x:{UID}:\n")
    (etc / "ssl" / "certs" / "ca-bundle.crt").write_bytes(bundle)
    # dockerTools.caCertificates also links the Debian-style name to the same bundle.
    (etc / "ssl" / "certs" / "ca-certificates.crt").symlink_to("ca-bundle.crt")
    (root / "var" / "empty").mkdir(parents=True, mode=0o555)
    (root / "tmp").mkdir(mode=0o1777)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o755 if path.parent.name == "bin" else 0o644)
    return root


def in_root(root: Path, argv: list[str]) -> list[str]:
    """argv (absolute paths inside root) run read-only, as 65532, in root."""
    mount, chroot = shutil.which("mount"), shutil.which("chroot")
    assert mount and chroot, "mount/chroot not found"
    script = (
        f'{mount} --bind "$1" "$1" && {mount} -o remount,bind,ro "$1" && '
        f'{mount} -t tmpfs -o mode=1777 tmpfs "$1/tmp" && '
        f'shift && exec {chroot} --userspec={UID}:{UID} "$@"'
    )
    return [shutil.which("unshare") or "unshare", "-m", "/bin/sh", "-c", script, "sh", str(root), str(root), *argv]


def container_argv(container) -> tuple[str, list[str]]:
    """(binary name, what the runtime would exec inside the image)."""
    if "command" in container:
        name = Path(container["command"][0]).name
        entry = [f"/bin/{name}", *container["command"][1:]]
    else:
        image = container["image"].split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1]
        name = IMAGE_TO_BINARY[image]
        # The image's Entrypoint is the binary's store path; /bin/<name> is the same file.
        entry = [f"/bin/{name}"]
    return name, [*entry, *container.get("args", [])]


def image_env(objects, container, port: int, **overrides) -> dict[str, str]:
    env = {**IMAGE_ENV, **resolve_env(objects, container)}
    env.update(DATABASE_HOST="127.0.0.1", DATABASE_PORT=str(port), **overrides)
    return env


@pytest.fixture(scope="module")
def static_bins():
    directory = Path(STATIC_DIR)
    paths = {name: directory / name for name in IMAGE_TO_BINARY.values()}
    for path in paths.values():
        assert path.is_file(), f"{path} is missing (scripts/test-static.sh builds it)"
    return paths


@pytest.fixture(scope="module")
def roots(static_bins, tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the image-shaped root needs root (unshare -m, mount, chroot --userspec)")
    base = Path(tempfile.mkdtemp(prefix="greeter-static-roots-"))
    base.chmod(0o755)
    bundle = HOST_BUNDLE.read_bytes()
    try:
        yield {name: make_root(base, path, bundle) for name, path in static_bins.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_is_image_shaped_and_read_only(roots):
    root = roots["greeter-migrate"]
    probe = subprocess.run(in_root(root, ["/bin/greeter-migrate", "--help"]), capture_output=True, text=True,
                           timeout=30, env=IMAGE_ENV)
    assert probe.returncode == 0, probe.stderr
    # Nothing to run but the binary: there is no shell in the image.
    no_shell = subprocess.run(in_root(root, ["/bin/sh", "-c", "true"]), capture_output=True, text=True, timeout=30)
    assert no_shell.returncode != 0
    # The root is read-only and owned by root; the process cannot write outside /tmp.
    assert sorted(p.name for p in root.iterdir()) == ["bin", "etc", "tmp", "var"]


def test_chart_containers_run_in_the_image_root(roots, objects, postgres, tmp_path):  # noqa: F811
    job = component(objects, "Job", "migrate")
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (gate,) = pod["initContainers"]
    (app,) = pod["containers"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    port = postgres["port"]

    def run(container, argv=None, timeout=120, **overrides):
        name, default_argv = container_argv(container)
        return subprocess.run(in_root(roots[name], argv or default_argv), capture_output=True, text=True,
                              timeout=timeout, env=image_env(objects, container, port, **overrides))

    # 1. The gate holds while the schema is behind (shortened --timeout).
    _, gate_argv = container_argv(gate)
    assert gate_argv[-3:-1] == ["--wait", "--timeout"]
    early = run(gate, [*gate_argv[:-1], "3"], timeout=60)
    assert early.returncode != 0, "the init gate let a pod start before the migrations ran"

    # 2. The migration Job as rendered; a second run is a no-op.
    for attempt in (1, 2):
        result = run(migrate)
        assert result.returncode == 0, f"migration Job run {attempt}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    tables = subprocess.run([*postgres["psql"], "-c", "SELECT count(*) FROM information_schema.tables "
                             "WHERE table_schema = 'public'"], capture_output=True, text=True, timeout=30,
                            env=postgres["env"], check=True).stdout.strip()
    assert int(tables) > 1, "the migrations created no tables"

    # 3. The gate with its rendered args passes.
    passed = run(gate, timeout=60)
    assert passed.returncode == 0, passed.stdout[-2000:] + passed.stderr[-2000:]

    # 4. The app container serves.
    ports = {p["name"]: p["containerPort"] for p in app["ports"]}
    http_port, metrics_port = free_port(), free_port()
    port_of = {"http": http_port, "metrics": metrics_port, ports["http"]: http_port, ports["metrics"]: metrics_port}
    env = image_env(objects, app, port, LISTEN_ADDR=f"127.0.0.1:{http_port}", METRICS_ADDR=f"127.0.0.1:{metrics_port}")
    name, argv = container_argv(app)

    def probe_url(probe):
        get = app[probe]["httpGet"]
        return f"http://127.0.0.1:{port_of[get['port']]}{get['path']}"

    log_path = tmp_path / "greeter.log"
    with running(in_root(roots[name], argv), env, log_path) as proc:
        wait_for_probes(proc, app, probe_url, log_path)
        assert http_get(probe_url("livenessProbe"))[0] == 200

        status, body, headers = http_get(f"http://127.0.0.1:{http_port}/")
        assert status == 200 and headers.get("content-type", "").startswith("application/json")
        greeting = json.loads(body)
        app_env = resolve_env(objects, app)
        assert greeting["environment"] == app_env["APP_ENV"] and greeting["message"] and greeting["time"]
        status, body, _ = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and b"# TYPE" in body

        proc.terminate()
        code = proc.wait(timeout=pod["terminationGracePeriodSeconds"])
        assert code == 0, log_path.read_text()[-3000:]


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def tls_postgres(objects):  # noqa: F811
    """A TLS-only PostgreSQL (hostssl, scram-sha-256) with a server certificate for
    127.0.0.1 from a throwaway CA (as tests/api/tls_certs.rs makes it)."""
    sts = one(objects, "StatefulSet")
    env = resolve_env(objects, sts["spec"]["template"]["spec"]["containers"][0])
    user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    base = Path(tempfile.mkdtemp(prefix="greeter-static-tls-pg-"))
    data, sockets, certs = base / "data", base / "run", base / "certs"
    sockets.mkdir()
    certs.mkdir()
    openssl(certs, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=greeter test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl(certs, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=greeter test server",
            "-keyout", "server.key", "-out", "server.csr")
    (certs / "server.ext").write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    openssl(certs, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", "server.ext", "-out", "server.pem")
    (certs / "server.key").chmod(0o600)
    (base / "pwfile").write_text(password + "\n")
    prefix = ["runuser", "-u", "postgres", "--"]
    for path in (base, sockets, certs, base / "pwfile", certs / "server.key", certs / "server.pem"):
        shutil.chown(path, "postgres")
    port = free_port()
    pg_ctl = [*prefix, postgres_bin("pg_ctl"), "-D", str(data)]
    started = False
    try:
        subprocess.run([*prefix, postgres_bin("initdb"), "-D", str(data), "-U", user, f"--pwfile={base / 'pwfile'}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        # hostssl only: plain text is refused.
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} -c fsync=off "
                   f"-c ssl=on -c ssl_cert_file={certs / 'server.pem'} -c ssl_key_file={certs / 'server.key'}")
        subprocess.run([*pg_ctl, "-o", options, "-l", str(base / "postgres.log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=90)
        started = True
        subprocess.run([*prefix, postgres_bin("psql"), "-h", str(sockets), "-p", str(port), "-U", user,
                        "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt",
                        "-c", f'CREATE DATABASE "{database}" OWNER "{user}"'], check=True, capture_output=True,
                       timeout=30)
        yield {"port": port, "ca": (certs / "ca.pem").read_bytes()}
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "-t", "60", "stop"], capture_output=True, timeout=90)
        shutil.rmtree(base, ignore_errors=True)


def test_tls_to_postgres_with_the_image_ca_bundle(static_bins, objects, tls_postgres, tmp_path):  # noqa: F811
    job = component(objects, "Job", "migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    _, argv = container_argv(migrate)
    base = Path(tempfile.mkdtemp(prefix="greeter-static-tls-roots-"))
    base.chmod(0o755)
    try:
        public = HOST_BUNDLE.read_bytes()
        with_ca = make_root(base, static_bins["greeter-migrate"], public + b"\n" + tls_postgres["ca"])
        without_ca = make_root(base, static_bins["greeter-migrate"], public)
        env = image_env(objects, migrate, tls_postgres["port"], DATABASE_SSLMODE="require")

        # Control: the image's bundle without the test CA; the server certificate is refused.
        refused = subprocess.run(in_root(without_ca, [*argv, "--timeout", "3"]), capture_output=True, text=True,
                                 timeout=60, env=env)
        assert refused.returncode != 0, "connected although the bundle lacks the server's CA"
        assert "certificate" in (refused.stdout + refused.stderr).lower(), refused.stdout[-2000:] + refused.stderr

        # With the CA in the bundle at the image's SSL_CERT_FILE path: migrate over TLS, then the gate.
        migrated = subprocess.run(in_root(with_ca, argv), capture_output=True, text=True, timeout=120, env=env)
        assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
        gate = subprocess.run(in_root(with_ca, ["/bin/greeter-migrate", "--wait", "--timeout", "10"]),
                              capture_output=True, text=True, timeout=60, env=env)
        assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr[-2000:]

        # And plain text is refused by this server (it really is TLS-only).
        plain = subprocess.run(in_root(with_ca, ["/bin/greeter-migrate", "--wait", "--timeout", "2"]),
                               capture_output=True, text=True, timeout=60,
                               env={**env, "DATABASE_SSLMODE": "disable"})
        assert plain.returncode != 0, "the TLS-only server accepted a plain-text connection"
    finally:
        shutil.rmtree(base, ignore_errors=True)
