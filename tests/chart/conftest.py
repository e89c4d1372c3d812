"""Shared fixtures for the chart suite: render chart/ with the real Helm engine.

Rendering goes through PyPI `helm-python-sdk`, which binds Helm v4's Go SDK, so template
functions, values coalescing and values.schema.json validation are Helm's own, with no
`helm` binary needed. Renders are cached per value set; every test reads the same objects.
"""

from __future__ import annotations

import base64
import copy
import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
RELEASE = "greeter"
NAMESPACE = "greeter"


def load_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / name).read_text()) or {}


def external_db_values() -> dict[str, Any]:
    return {
        "postgresql": {"enabled": False},
        "externalDatabase": {
            "host": "db.internal.example.com",
            "port": 6432,
            "database": "greeter_prod",
            "username": "greeter_app",
            "existingSecret": "managed-db",
            "existingSecretPasswordKey": "db-password",
            "sslMode": "require",
        },
        "networkPolicy": {"enabled": True, "externalDatabaseCIDRs": ["10.30.0.0/16"]},
    }


def ingress_tls_values() -> dict[str, Any]:
    return {
        "service": {"type": "ClusterIP", "port": 80},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt-prod"},
            "hosts": [{"host": "greeter.example.org", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": "greeter-tls", "hosts": ["greeter.example.org"]}],
        },
    }


def cloudnativepg_values() -> dict[str, Any]:
    return {
        "postgresql": {"mode": "cloudnativepg"},
        "cloudnativepg": {"backup": {"enabled": True, "destinationPath": "s3://greeter-backups/kind",
                                     "endpointURL": "https://s3.example.com", "s3CredentialsSecret": "greeter-s3"}},
    }


# name -> (values, namespace). The environments' files plus the switches worth rendering.
VALUE_SETS: dict[str, tuple[dict[str, Any], str]] = {
    "defaults": ({}, NAMESPACE),
    "staging": (load_values("values-staging.yaml"), "greeter-staging"),
    "production": (load_values("values-production.yaml"), "greeter-production"),
    "external-db": (external_db_values(), NAMESPACE),
    "ingress-tls": (ingress_tls_values(), NAMESPACE),
    "cloudnativepg": (cloudnativepg_values(), NAMESPACE),
    "autoscaling-off": ({"autoscaling": {"enabled": False}, "replicaCount": 3}, NAMESPACE),
}


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def parse_manifests(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Rendered templates -> Kubernetes objects (NOTES.txt and empty templates dropped)."""
    objects = []
    for source, text in sorted(manifests.items()):
        if not source.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                objects.append({**doc, "_source": source})
    return objects


@functools.lru_cache(maxsize=None)
def _render_cached(value_set: str, revision: int) -> tuple[dict[str, str], tuple]:
    values, namespace = VALUE_SETS[value_set]
    with helm.Chart.load(CHART) as loaded:
        manifests = loaded.render(
            copy.deepcopy(values), name=RELEASE, namespace=namespace, revision=revision, is_install=revision == 1
        )
    return manifests, tuple(parse_manifests(manifests))


def render(value_set: str, revision: int = 1) -> list[dict[str, Any]]:
    """The objects of one value set (deep copies, so tests cannot disturb each other)."""
    return copy.deepcopy(list(_render_cached(value_set, revision)[1]))


def render_raw(value_set: str, revision: int = 1) -> dict[str, str]:
    return dict(_render_cached(value_set, revision)[0])


def render_values(chart, values: dict[str, Any], namespace: str = NAMESPACE, revision: int = 1):
    return parse_manifests(chart.render(values, name=RELEASE, namespace=namespace, revision=revision))


def strip_private(obj: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in obj.items() if not k.startswith("_")}
    if not clean.get("metadata", {}).get("annotations"):
        clean["metadata"] = {k: v for k, v in clean["metadata"].items() if k != "annotations"}
    return clean


def find(objects, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects, kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def component(objects, kind: str, comp: str) -> dict[str, Any]:
    found = [o for o in find(objects, kind) if o["metadata"]["labels"].get("app.kubernetes.io/component") == comp]
    assert len(found) == 1, f"expected one {kind} of component {comp}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def workloads(objects):
    """(object, pod spec, container, is_init) for every container of every workload."""
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for is_init, key in ((True, "initContainers"), (False, "containers")):
            for container in spec.get(key, []):
                yield obj, spec, container, is_init


def secrets_job_specs(objects) -> dict[str, dict[str, int]]:
    """What the secrets hook Job (secrets-job.yaml) creates: {secret: {key: length}}."""
    specs: dict[str, dict[str, int]] = {}
    for job in find(objects, "Job"):
        if job["metadata"]["labels"].get("app.kubernetes.io/component") != "secrets":
            continue
        (container,) = job["spec"]["template"]["spec"]["containers"]
        listing = next(e["value"] for e in container["env"] if e["name"] == "GENERATE")
        for line in listing.splitlines():
            name, *keys = line.split()
            specs[name] = {k.split(":")[0]: int(k.split(":")[1]) for k in keys}
    return specs


def job_created_secrets(objects) -> dict[str, dict[str, str]]:
    """Stand-ins for the values that Job generates in its pod (stable per name and key,
    so every container of one render agrees, as they do in the cluster)."""
    import hashlib

    return {
        name: {key: hashlib.sha256(f"{name}/{key}".encode()).hexdigest()[:length] for key, length in keys.items()}
        for name, keys in secrets_job_specs(objects).items()
    }


def resolve_env(objects, container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets, resolved from the rendered ConfigMaps/Secrets.

    Raises KeyError for a reference to an object or key the render does not contain.
    """
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in find(objects, "ConfigMap")}
    secrets = {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
        for o in find(objects, "Secret")
    }
    secrets.update(job_created_secrets(objects))
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = configmaps[ref["name"]][ref["key"]]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            raise KeyError(f"unsupported env source for {var['name']}: {var}")
    return env
