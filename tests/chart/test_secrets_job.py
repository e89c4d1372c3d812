"""The secrets hook Job's script (secrets-job.yaml), as rendered, run with sh and curl
against a fake Kubernetes API: it creates missing Secrets with random values made in the
pod, adds a missing key, and never changes an existing value (a rotation survives every
later upgrade and rollback, which run this Job again)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import component, render

pytestmark = pytest.mark.skipif(not (shutil.which("sh") and shutil.which("curl")), reason="needs sh and curl")


class FakeSecretsApi:
    def __init__(self, namespace: str):
        self.store: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str, str]] = []
        fake = self
        prefix = f"/api/v1/namespaces/{namespace}/secrets"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                payload = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _name(self):
                assert self.path.startswith(prefix), self.path
                assert self.headers["Authorization"] == "Bearer the-token"
                return self.path[len(prefix):].strip("/")

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def do_GET(self):
                name = self._name()
                fake.calls.append(("GET", name, ""))
                if name in fake.store:
                    self._send(200, {"kind": "Secret", "metadata": {"name": name}, "data": fake.store[name]})
                else:
                    self._send(404, {"kind": "Status", "code": 404})

            def do_POST(self):
                body = self._body()
                name = body["metadata"]["name"]
                fake.calls.append(("POST", name, self.headers["Content-Type"]))
                if name in fake.store:
                    return self._send(409, {"kind": "Status", "code": 409})
                fake.store[name] = dict(body["stringData"])
                fake.labels = body["metadata"]["labels"]
                self._send(201, body)

            def do_PATCH(self):
                name, body = self._name(), self._body()
                fake.calls.append(("PATCH", name, self.headers["Content-Type"]))
                fake.store[name].update(body["stringData"])
                self._send(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def job_run(tmp_path):
    objects = render("defaults")
    job = component(objects, "Job", "secrets")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = container["args"][0]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "api-token")
    # The pod's projected token volume and the API server, here: a directory and plain HTTP.
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("the-token")
    (sa / "namespace").write_text(job["metadata"]["namespace"])
    (sa / "ca.crt").write_text("")
    assert f"sa={mount}\n" in script and 'api="https://' in script
    script = script.replace(f"sa={mount}\n", f"sa={sa}\n").replace('api="https://', 'api="http://')
    env = {e["name"]: e["value"] for e in container["env"]}
    fake = FakeSecretsApi(job["metadata"]["namespace"])

    def run():
        result = subprocess.run(
            ["sh", "-c", script],
            env={"PATH": "/usr/bin:/bin", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                 "KUBERNETES_SERVICE_PORT": str(fake.server.server_address[1]), **env},
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    yield fake, run
    fake.server.shutdown()


def test_creates_missing_secrets_with_random_values(job_run):
    fake, run = job_run
    out = run()
    assert "created Secret greeter\n" in out and "created Secret greeter-postgresql" in out
    assert {k: len(v) for k, v in fake.store["greeter"].items()} == {
        "SECRET_KEY": 64, "PAYMENT_API_KEY": 40, "ADMIN_PASSWORD": 24}
    assert len(fake.store["greeter-postgresql"]["password"]) == 32
    for value in [*fake.store["greeter"].values(), *fake.store["greeter-postgresql"].values()]:
        assert value.isalnum() and len(set(value)) > 8
    assert fake.labels == {"app.kubernetes.io/part-of": "greeter", "app.kubernetes.io/instance": "greeter"}
    first = json.dumps(fake.store, sort_keys=True)
    fake.store.clear()
    run()
    assert json.dumps(fake.store, sort_keys=True) != first, "values are generated per run, not literals"


def test_an_existing_secret_is_kept_and_only_a_missing_key_added(job_run):
    fake, run = job_run
    # As after a rotation: the Secret holds values the chart never saw.
    fake.store["greeter"] = {"SECRET_KEY": "cm90YXRlZA==", "ADMIN_PASSWORD": "a2VwdA=="}
    fake.store["greeter-postgresql"] = {"password": "cm90YXRlZC1kYg=="}
    out = run()
    assert "added the missing key PAYMENT_API_KEY to Secret greeter" in out
    assert fake.store["greeter"]["SECRET_KEY"] == "cm90YXRlZA=="
    assert fake.store["greeter"]["ADMIN_PASSWORD"] == "a2VwdA=="
    assert len(fake.store["greeter"]["PAYMENT_API_KEY"]) == 40
    assert fake.store["greeter-postgresql"] == {"password": "cm90YXRlZC1kYg=="}
    assert ("PATCH", "greeter", "application/merge-patch+json") in fake.calls
    assert not [c for c in fake.calls if c[0] == "POST"]
    # Again (the next upgrade or a rollback): nothing changes.
    before = json.dumps(fake.store, sort_keys=True)
    fake.calls.clear()
    run()
    assert json.dumps(fake.store, sort_keys=True) == before
    assert [c[0] for c in fake.calls] == ["GET", "GET"]
