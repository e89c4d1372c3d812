"""postgresql.mode=cloudnativepg: the rendered CloudNativePG objects against the CRDs of
CloudNativePG 1.30.0 (../shared/schemas/cloudnative-pg-1.30.0/, tag v1.30.0, commit
4b5e244a), the wiring of the app/Job/gate/backup to the operator's Secret, Service and
CA, the NetworkPolicies, and the schema's refusals of impossible combinations."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO, find, one, pod_spec, render, render_values, strip_private, workloads

CRDS = Path(os.environ.get("GREETER_CNPG_CRDS", REPO.parent / "shared/schemas/cloudnative-pg-1.30.0"))
# The Barman Cloud Plugin's ObjectStore CRD (cloudnative-pg/plugin-barman-cloud, tag
# v0.14.0, config/crd/bases/barmancloud.cnpg.io_objectstores.yaml): read from a git
# clone of that repository named by GREETER_BARMAN_MIRROR when there is one (not vendored:
# it is upstream code, and the pinned schemas in ../shared do not include it).
BARMAN_MIRROR = Path(os.environ.get("GREETER_BARMAN_MIRROR", "/nonexistent"))
CLUSTER = "greeter-db"


def strict(schema):
    """A CRD's structural schema, with unknown fields an error (kubectl's --validate=strict)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(s) for s in schema]
    return schema


def crd_schema(text: str, version: str = "v1"):
    crd = yaml.safe_load(text)
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(v["schema"]["openAPIV3Schema"])
    # metadata is validated by the API server itself, not by the CRD.
    schema["properties"]["metadata"] = {"type": "object"}
    return crd["spec"]["names"]["kind"], schema


@pytest.fixture(scope="module")
def schemas():
    if not CRDS.is_dir():
        pytest.fail(f"{CRDS} is missing (the pinned CloudNativePG 1.30.0 CRDs; set GREETER_CNPG_CRDS)")
    found = dict(crd_schema(p.read_text()) for p in sorted(CRDS.glob("postgresql.cnpg.io_*.yaml")))
    assert {"Cluster", "ScheduledBackup", "Backup", "Pooler"} <= found.keys()
    return found


def validate(schema, obj):
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(strip_private(obj)), key=str)
    assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_every_cloudnativepg_object_validates_against_the_pinned_crds(schemas, chart):
    for value_set in (render("cloudnativepg"), render_values(chart, {"postgresql": {"mode": "cloudnativepg"}})):
        cnpg = [o for o in value_set if o["apiVersion"] == "postgresql.cnpg.io/v1"]
        assert cnpg, "no CloudNativePG objects rendered"
        for obj in cnpg:
            validate(schemas[obj["kind"]], obj)
    kinds = {o["kind"] for o in render("cloudnativepg") if o["apiVersion"] == "postgresql.cnpg.io/v1"}
    assert kinds == {"Cluster", "ScheduledBackup"}


def test_the_validation_catches_a_mistyped_field(schemas):
    cluster = one(render("cloudnativepg"), "Cluster")
    cluster["spec"]["instance"] = 3  # not "instances"
    with pytest.raises(AssertionError, match="instance"):
        validate(schemas["Cluster"], cluster)
    backup = one(render("cloudnativepg"), "ScheduledBackup")
    backup["spec"]["method"] = "barman"
    with pytest.raises(AssertionError, match="method"):
        validate(schemas["ScheduledBackup"], backup)


def test_the_object_store_validates_against_the_plugin_crd():
    if not (BARMAN_MIRROR / "HEAD").exists() and not (BARMAN_MIRROR / ".git").exists():
        pytest.skip("GREETER_BARMAN_MIRROR names no git clone of cloudnative-pg/plugin-barman-cloud")
    text = subprocess.run(["git", "--git-dir", str(BARMAN_MIRROR if (BARMAN_MIRROR / "HEAD").exists() else BARMAN_MIRROR / ".git"),
                           "show", "v0.14.0:config/crd/bases/barmancloud.cnpg.io_objectstores.yaml"],
                          capture_output=True, text=True, check=True).stdout
    kind, schema = crd_schema(text)
    store = one(render("cloudnativepg"), "ObjectStore")
    assert kind == "ObjectStore" and store["apiVersion"] == "barmancloud.cnpg.io/v1"
    validate(schema, store)


def test_cluster_spec():
    objects = render("cloudnativepg")
    spec = one(objects, "Cluster", CLUSTER)["spec"]
    assert spec["instances"] == 3
    assert spec["bootstrap"]["initdb"] == {"database": "greeter", "owner": "greeter"}
    assert spec["affinity"]["enablePodAntiAffinity"] and spec["affinity"]["topologyKey"] == "kubernetes.io/hostname"
    assert spec["storage"]["size"] == "1Gi" and spec["resources"]["limits"]["memory"] == "512Mi"
    assert int(spec["postgresql"]["parameters"]["max_connections"]) >= 100
    # The bundled database is not rendered, nor its password.
    assert not find(objects, "StatefulSet")
    assert not find(objects, "NetworkPolicy", "greeter-postgresql")
    # Backups: the Barman Cloud Plugin (WAL archiver) and a ScheduledBackup through it.
    (plugin,) = spec["plugins"]
    assert plugin == {"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
                      "parameters": {"barmanObjectName": CLUSTER}}
    assert "backup" not in spec, "the deprecated in-tree barmanObjectStore is not used"
    sb = one(objects, "ScheduledBackup", CLUSTER)["spec"]
    assert sb["method"] == "plugin" and sb["pluginConfiguration"]["name"] == plugin["name"]
    assert sb["cluster"]["name"] == CLUSTER and len(sb["schedule"].split()) == 6
    store = one(objects, "ObjectStore", CLUSTER)["spec"]["configuration"]
    assert store["destinationPath"] == "s3://greeter-backups/kind"
    assert store["s3Credentials"]["accessKeyId"]["name"] == "greeter-s3"


def test_app_migrate_gate_and_backup_use_the_operator_secret_service_and_ca():
    objects = render("cloudnativepg")
    cm = one(objects, "ConfigMap", "greeter")["data"]
    assert cm["DATABASE_SSLMODE"] == "require"
    assert "DATABASE_HOST" not in cm, "the host comes from the operator's Secret (<cluster>-rw)"
    seen = set()
    for obj, spec, container, _ in workloads(objects):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})}
        values = {e["name"]: e.get("value") for e in container.get("env", [])}
        if "DATABASE_PASSWORD" in refs:
            for var, key in {"DATABASE_HOST": "host", "DATABASE_PORT": "port", "DATABASE_NAME": "dbname",
                             "DATABASE_USER": "username", "DATABASE_PASSWORD": "password"}.items():
                assert refs[var] == {"name": f"{CLUSTER}-app", "key": key}, (obj["metadata"]["name"], var)
            ca_path = values["SSL_CERT_FILE"]
        elif "PGPASSWORD" in refs:
            assert refs["PGHOST"] == {"name": f"{CLUSTER}-app", "key": "host"}
            assert values["PGSSLMODE"] == "verify-full"
            ca_path = values["PGSSLROOTCERT"]
        else:
            continue
        seen.add(container["name"])
        mount = next(m for m in container["volumeMounts"] if m["name"] == "database-ca")
        volume = next(v for v in spec["volumes"] if v["name"] == "database-ca")
        assert volume["secret"]["secretName"] == f"{CLUSTER}-ca"
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], "only the CA, never ca.key"
        assert ca_path == f"{mount['mountPath']}/ca.crt"
    assert seen == {"greeter", "wait-for-migrations", "migrate", "backup"}
    # The backup's pg_dump comes from the operand image (the server's major version).
    cj = one(objects, "CronJob")
    assert pod_spec(cj)["containers"][0]["image"] == one(objects, "Cluster")["spec"]["imageName"]


def test_network_policies_allow_what_the_operator_needs_and_nothing_else():
    objects = render("cloudnativepg")
    policy = one(objects, "NetworkPolicy", CLUSTER)
    assert policy["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": CLUSTER}}
    operator_rule, clients_rule, metrics_rule = policy["spec"]["ingress"]
    operator, peers = operator_rule["from"]
    assert operator == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cloudnative-pg"}}}
    assert peers == {"podSelector": {"matchLabels": {"cnpg.io/cluster": CLUSTER}}}
    assert {p["port"] for p in operator_rule["ports"]} == {8000, 5432}
    comps = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in clients_rule["from"]}
    assert comps == {"app", "migrate", "backup"} and clients_rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert metrics_rule["ports"] == [{"protocol": "TCP", "port": 9187}]
    egress_ports = [{p["port"] for p in rule["ports"]} for rule in policy["spec"]["egress"]]
    assert egress_ports == [{5432, 8000}, {53}, {443, 6443}, {443}]
    # The app reaches the instances on 5432 only.
    app = one(objects, "NetworkPolicy", "greeter-app")
    (db_rule,) = [r for r in app["spec"]["egress"] if r.get("to")]
    assert db_rule == {"to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": CLUSTER}}}],
                       "ports": [{"protocol": "TCP", "port": 5432}]}


def test_cidrs_narrow_the_api_server_and_object_store_egress(chart):
    values = {"postgresql": {"mode": "cloudnativepg"},
              "cloudnativepg": {"apiServerCIDRs": ["10.96.0.1/32"], "objectStoreCIDRs": ["203.0.113.0/24"],
                                "backup": {"enabled": True, "destinationPath": "s3://b/p", "s3CredentialsSecret": "s"}}}
    egress = one(render_values(chart, values), "NetworkPolicy", CLUSTER)["spec"]["egress"]
    assert egress[2]["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]
    assert egress[3]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


PRODUCTION_CNPG = {"config": {"appEnv": "production"}, "postgresql": {"mode": "cloudnativepg"},
                   "cloudnativepg": {"podAntiAffinityType": "required"}}


@pytest.mark.parametrize("bad, message", [
    ({**PRODUCTION_CNPG, "cloudnativepg": {"instances": 1, "podAntiAffinityType": "required"}},
     "at '/cloudnativepg/instances': minimum: got 1, want 2"),
    ({**PRODUCTION_CNPG, "cloudnativepg": {"podAntiAffinityType": "preferred"}},
     "at '/cloudnativepg/podAntiAffinityType': value must be 'required'"),
    ({"postgresql": {"mode": "cloudnativepg"}, "cloudnativepg": {"backup": {"enabled": True}}},
     "cloudnativepg.backup.destinationPath"),
    ({"postgresql": {"mode": "cloudnativepg"}, "cloudnativepg": {"backup": {"schedule": "0 2 * * *"}}},
     "at '/cloudnativepg/backup/schedule'"),
    ({"postgresql": {"mode": "cloudnativepg", "enabled": False}}, "at '/postgresql/mode'"),
    ({"postgresql": {"mode": "cloudnativepg", "auth": {"password": "a-long-enough-password"}}},
     "applies to the bundled PostgreSQL only"),
])
def test_impossible_combinations_are_refused(chart, bad, message):
    with pytest.raises(Exception, match=message):
        render_values(chart, bad)


def test_production_with_cloudnativepg_and_two_instances_renders(chart):
    values = {**PRODUCTION_CNPG, "cloudnativepg": {"instances": 2, "podAntiAffinityType": "required"}}
    assert one(render_values(chart, values), "Cluster")["spec"]["instances"] == 2
