"""Secrets keep their values across upgrades: Helm's `lookup`, exercised for real.

`helm template` cannot show this (lookup returns nothing offline). Here the real Helm
engine renders cluster-aware (helm-python-sdk's Config.render, which only contacts the
API server for `lookup`) against a tiny fake kube-apiserver on 127.0.0.1 that serves the
two endpoints lookup uses: API discovery for v1 and GET of a Secret. The fake holds what a
previous install created, so each render below is what an upgrade would apply.

What it does not prove: server-side behaviour such as Helm adopting a kept Secret on
reinstall, or RBAC allowing the lookup; `nix run .#deploy` twice on kind covers those.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helm_python as helm
import pytest
import yaml

from conftest import CHART, NAMESPACE, RELEASE, component, one, parse_manifests


class FakeApiServer:
    def __init__(self):
        self.secrets: dict[str, dict[str, str]] = {}
        self.statefulsets: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
                sts_prefix = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/"
                dep_prefix = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/"
                if path == "/api/v1":
                    self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                     "resources": [{"name": "secrets", "singularName": "secret", "namespaced": True,
                                                    "kind": "Secret", "verbs": ["get", "list"]}]})
                elif path == "/apis/apps/v1":
                    self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                                     "resources": [{"name": "statefulsets", "singularName": "statefulset",
                                                    "namespaced": True, "kind": "StatefulSet",
                                                    "verbs": ["get", "list"]},
                                                   {"name": "deployments", "singularName": "deployment",
                                                    "namespaced": True, "kind": "Deployment",
                                                    "verbs": ["get", "list"]}]})
                elif path.startswith(dep_prefix) and path[len(dep_prefix):] in fake.deployments:
                    self._send(200, fake.deployments[path[len(dep_prefix):]])
                elif path.startswith(sts_prefix) and path[len(sts_prefix):] in fake.statefulsets:
                    self._send(200, fake.statefulsets[path[len(sts_prefix):]])
                elif path.startswith(prefix) and path[len(prefix):] in fake.secrets:
                    name = path[len(prefix):]
                    self._send(200, {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": name, "namespace": NAMESPACE},
                                     "data": fake.secrets[name]})
                else:
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "reason": "NotFound", "code": 404})

            def _send(self, code, body):
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def apply(self, objects):
        """Store the rendered Secrets and StatefulSets, as the API server would after an install."""
        for obj in objects:
            if obj["kind"] == "Secret":
                self.secrets[obj["metadata"]["name"]] = dict(obj["data"])
            elif obj["kind"] == "StatefulSet":
                self.statefulsets[obj["metadata"]["name"]] = obj
            elif obj["kind"] == "Deployment":
                self.deployments[obj["metadata"]["name"]] = obj


@pytest.fixture
def cluster(tmp_path):
    fake = FakeApiServer()
    fake.thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
        "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NAMESPACE}}],
    }))
    with helm.Config(kubeconfig_path=kubeconfig, namespace=NAMESPACE) as config, helm.Chart.load(CHART) as chart:
        def render(values=None, revision=1):
            return parse_manifests(config.render(chart, values or {}, name=RELEASE, namespace=NAMESPACE,
                                                 revision=revision, is_install=revision == 1,
                                                 is_upgrade=revision > 1))
        yield fake, render
    fake.server.shutdown()
    fake.server.server_close()


def _secret_data(objects):
    return {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "Secret"}


def test_an_upgrade_renders_no_secret_and_keeps_the_checksum(cluster):
    fake, render = cluster
    install = render(revision=1)
    fake.apply(install)
    # The generated Secrets exist outside the release (the hook Job made them).
    fake.secrets["greeter"] = {"SECRET_KEY": base64.b64encode(b"s" * 64).decode()}
    upgrade = render({"config": {"logFormat": "pretty"}}, revision=2)
    assert not _secret_data(install) and not _secret_data(upgrade)
    before = one(install, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = one(upgrade, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/secret"] == before["checksum/secret"]
    assert after["checksum/config"] != before["checksum/config"]
    assert component(upgrade, "Job", "migrate")["metadata"]["name"] == "greeter-migrate-2"


def test_an_explicit_database_password_must_match_the_stored_one(cluster):
    fake, render = cluster
    stored = "st0red-" + "Pq7" * 9
    fake.secrets["greeter-postgresql"] = {"password": base64.b64encode(stored.encode()).decode()}
    # The same password: accepted, and still no Secret in the release.
    assert not _secret_data(render({"postgresql": {"auth": {"password": stored}}}, revision=2))
    assert any("/secrets/greeter-postgresql" in r for r in fake.requests), "lookup did not reach the API server"
    # Another one would not change PostgreSQL's password and lock the pods out: refused.
    with pytest.raises(Exception) as failure:
        render({"postgresql": {"auth": {"password": "an0ther-" + "Zx9" * 9}}}, revision=2)
    text = str(failure.value)
    assert "postgresql.auth.password differs from the password in the Secret greeter-postgresql" in text, text
    assert "ALTER ROLE" in text and stored not in text
    # Without a stored Secret there is nothing to confirm: refused with the alternative.
    del fake.secrets["greeter-postgresql"]
    with pytest.raises(Exception) as failure:
        render({"postgresql": {"auth": {"password": stored}}}, revision=1)
    assert "does not exist" in str(failure.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": "5Gi"}, "postgresql.persistence.size is 5Gi but the live StatefulSet has 1Gi"),
        ({"storageClass": "fast-ssd"}, 'postgresql.persistence.storageClass is "fast-ssd" but the live StatefulSet has ""'),
        ({"accessModes": ["ReadWriteOncePod"]}, "postgresql.persistence.accessModes is"),
    ],
)
def test_an_immutable_statefulset_change_fails_with_the_procedure(cluster, change, message):
    fake, render = cluster
    fake.apply(render(revision=1))
    assert "greeter-postgresql" in fake.statefulsets
    # An unrelated upgrade renders fine against the live StatefulSet.
    render({"config": {"logFormat": "pretty"}}, revision=2)
    with pytest.raises(Exception) as failure:
        render({"postgresql": {"persistence": change}}, revision=2)
    text = str(failure.value)
    assert message in text, text
    assert "delete statefulset greeter-postgresql --cascade=orphan" in text, text
    assert "DOCS.md#changing-the-database-volume" in text


def test_an_upgrade_that_changes_one_image_only_is_rejected(cluster):
    fake, render = cluster
    fake.apply(render({"image": {"tag": "build1"}, "migrateImage": {"tag": "build1"}}, revision=1))
    assert "greeter" in fake.deployments
    # Both from a new build: fine. The same build again: fine.
    render({"image": {"tag": "build2"}, "migrateImage": {"tag": "build2"}}, revision=2)
    render({"image": {"tag": "build1"}, "migrateImage": {"tag": "build1"}}, revision=2)
    with pytest.raises(Exception) as failure:
        render({"image": {"tag": "build2"}, "migrateImage": {"tag": "build1"}}, revision=2)
    text = str(failure.value)
    assert "this upgrade changes only one of the two images" in text, text
    assert "greeter:build1 -> greeter:build2" in text
