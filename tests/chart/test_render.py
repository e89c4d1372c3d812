"""Render the chart with the real Helm engine and assert the issue's rules on the objects."""

from __future__ import annotations

import base64
import re

import helm_python as helm
import pytest

from conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    component,
    find,
    one,
    pod_spec,
    render,
    render_raw,
    render_values,
    resolve_env,
    workloads,
)

ALL_SETS = list(VALUE_SETS)
WEAK = {"admin", "password", "changeme", "secret", "greeter", "postgres", "123456", "test", "default"}


# --- Helm lint and values.schema.json -------------------------------------------------


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_lint_strict_has_no_errors_or_warnings(value_set):
    values, namespace = VALUE_SETS[value_set]
    report = helm.lint(CHART, values, strict=True, namespace=namespace)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize(
    "values, message",
    [
        ({"replicaCount": 1}, "at '/replicaCount': minimum: got 1, want 2"),
        ({"service": {"nodePort": 80}}, "at '/service/nodePort': minimum: got 80, want 30,000"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
        ({"config": {"debug": "yes"}}, "at '/config/debug': got string, want boolean"),
        ({"config": {"appEnv": "dev"}}, "at '/config/appEnv': value must be one of 'local', 'production'"),
        ({"config": {"appEnv": "production", "debug": True}}, "at '/config/debug': value must be false"),
        ({"secrets": {"secretKey": "too-short"}}, "at '/secrets/secretKey'"),
        ({"secrets": {"adminPassword": "admin"}}, "at '/secrets/adminPassword': 'not' failed"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"postgresql": {"enabled": False}}, "at '/externalDatabase/host': minLength: got 0, want 1"),
        ({"externalDatabase": {"sslMode": "verify-full"}}, "at '/externalDatabase/sslMode': value must be one of"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"resources": {"limits": None}}, "missing property 'limits'"),  # null deletes a default
        ({"postgresql": {"securityContext": {"runAsUser": 0}}}, "at '/postgresql/securityContext/runAsUser': minimum"),
        # DATABASE_POOL_MAX: the app accepts 1-1000 (src/config.rs); 0 = its default.
        ({"config": {"databasePoolMax": 1001}}, "at '/config/databasePoolMax': maximum: got 1,001, want 1,000"),
        ({"config": {"databasePoolMax": -1}}, "at '/config/databasePoolMax': minimum"),
        # maxUnavailable is 0, so the surge must not be.
        ({"rollingUpdate": {"maxSurge": 0}}, "at '/rollingUpdate/maxSurge'"),
        ({"rollingUpdate": {"maxSurge": "0%"}}, "at '/rollingUpdate/maxSurge'"),
        ({"rollingUpdate": {"maxSurge": "00%"}}, "at '/rollingUpdate/maxSurge'"),
    ],
    ids=lambda v: str(v)[:60] if isinstance(v, dict) else None,
)
def test_schema_rejects_bad_values_with_a_clear_message(chart, values, message):
    with pytest.raises(helm.HelmValuesError) as failure:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(failure.value), str(failure.value)
    # The message names the offending key, never just "invalid".
    assert "at '" in str(failure.value)


def test_secret_values_are_rejected_not_echoed(chart):
    with pytest.raises(helm.HelmValuesError) as failure:
        chart.render({"secrets": {"secretKey": "hunter2-is-my-key"}}, name=RELEASE, namespace=NAMESPACE)
    assert "minLength: got 17, want 32" in str(failure.value)
    assert "hunter2" not in str(failure.value)


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_value_sets_pass_the_schema(chart, value_set):
    chart.validate_schema(chart.merge_values(VALUE_SETS[value_set][0]))


# --- every container: the restricted Pod Security profile -----------------------------


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_every_container_is_restricted(value_set):
    objects = render(value_set)
    checked = 0
    for obj, spec, c, _ in workloads(objects):
        where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
        pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("privileged", False) is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not sc.get("capabilities", {}).get("add"), where
        assert (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) is True, where
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        assert isinstance(uid, int) and uid > 0, where
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), where
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], where
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{where} {kind}"
        image = c["image"]
        assert not image.endswith(":latest") and (":" in image.rsplit("/", 1)[-1] or "@sha256:" in image), where
        # A read-only root needs somewhere to write temporary files.
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        if c["name"] != "curl":
            assert "/tmp" in mounts, where
            volume = next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"])
            assert "emptyDir" in volume, where
        checked += 1
    # app + init gate + migrate Job + helm test (+ postgres when in-cluster)
    assert checked >= 4


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_greeter_images_run_as_65532(value_set):
    objects = render(value_set)
    for obj, spec, c, _ in workloads(objects):
        if obj["metadata"]["labels"]["app.kubernetes.io/component"] in ("app", "migrate", "test"):
            assert spec["securityContext"]["runAsUser"] == 65532
            assert spec["securityContext"]["runAsGroup"] == 65532


def test_postgres_runs_as_the_image_user():
    sts = one(render("defaults"), "StatefulSet")
    sc = sts["spec"]["template"]["spec"]["securityContext"]
    # postgres:*-alpine: UID/GID 70 (the Debian variant would be 999, see values.yaml).
    assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (70, 70, 70)
    assert sc["fsGroupChangePolicy"] == "OnRootMismatch"


# --- the app Deployment ----------------------------------------------------------------


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_deployment_rollout_and_probes(value_set):
    objects = render(value_set)
    dep = one(objects, "Deployment")
    spec = dep["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = find(objects, "HorizontalPodAutoscaler")
    if hpa:
        assert "replicas" not in spec, "the HPA owns the replica count"
        assert hpa[0]["apiVersion"] == "autoscaling/v2"
        assert hpa[0]["spec"]["minReplicas"] >= 2
        assert hpa[0]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    else:
        assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    (app,) = pod["containers"]
    assert app["args"] == ["serve"] and "command" not in app
    ports = {p["name"]: p["containerPort"] for p in app["ports"]}
    assert ports == {"http": 8080, "metrics": 9090}
    assert app["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # No shell in the image: the kubelet's native sleep action, shorter than the grace period.
    sleep = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < sleep < pod["terminationGracePeriodSeconds"]
    assert "exec" not in app["lifecycle"]["preStop"]
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])


def test_config_and_secret_changes_roll_the_pods(chart):
    base = one(render("defaults"), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    changed = one(render_values(chart, {"config": {"logFormat": "pretty"}}), "Deployment")
    assert changed["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != base["checksum/config"]
    # The chart knows no secret value: the checksum covers which Secret is read.
    moved = one(render_values(chart, {"secrets": {"existingSecret": "other"}}), "Deployment")
    assert moved["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] != base["checksum/secret"]
    again = one(render("defaults", revision=2), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert again["checksum/secret"] == base["checksum/secret"]


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_init_container_gates_on_migrations(value_set):
    objects = render(value_set)
    dep, job = one(objects, "Deployment"), component(objects, "Job", "migrate")
    (gate,) = dep["spec"]["template"]["spec"]["initContainers"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert gate["image"] == migrate["image"]
    assert gate["image"].startswith("greeter-migrate")
    assert gate["args"][:2] == ["--wait", "--timeout"] and int(gate["args"][2]) > 0
    assert "command" not in gate
    # The gate checks the same database the Job migrates.
    assert gate["envFrom"] == migrate["envFrom"]
    db_password = [e for e in gate["env"] if e["name"] == "DATABASE_PASSWORD"]
    assert db_password and db_password[0] in migrate["env"]


# --- the per-revision migration Job -----------------------------------------------------


@pytest.mark.parametrize("revision", [1, 2, 17])
def test_migration_job_is_named_per_revision(revision):
    job = component(render("defaults", revision=revision), "Job", "migrate")
    assert job["metadata"]["name"] == f"greeter-migrate-{revision}"


def test_migration_job_is_a_plain_release_resource():
    job = component(render("defaults"), "Job", "migrate")
    # Not a hook (see the comment in migrate-job.yaml): created with the database.
    assert not [k for k in job["metadata"]["annotations"] if k.startswith("helm.sh/hook")]
    spec = job["spec"]
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] >= 60
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert "args" not in c and "command" not in c
    env = {e["name"]: e for e in c["env"]}
    assert env["ADMIN_USERNAME"]["value"] == "admin"
    assert env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "ADMIN_PASSWORD"
    # The Job's pods must never be selected by the app's Service or Deployment.
    dep = one(render("defaults"), "Deployment")
    selector = dep["spec"]["selector"]["matchLabels"].items()
    assert not selector <= spec["template"]["metadata"]["labels"].items()


def test_migration_template_explains_why_it_is_not_a_hook():
    text = (CHART / "templates" / "migrate-job.yaml").read_text()
    assert "pre-install" in text and "post-install" in text and "deadlock" in text


# --- configuration and secrets ---------------------------------------------------------


def test_app_env_wiring():
    objects = render("defaults")
    dep = one(objects, "Deployment")
    env = resolve_env(objects, dep["spec"]["template"]["spec"]["containers"][0])
    assert env["DATABASE_HOST"] == "greeter-postgresql"
    assert env["DATABASE_PORT"] == "5432"
    assert env["DATABASE_NAME"] == "greeter" and env["DATABASE_USER"] == "greeter"
    assert env["DATABASE_SSLMODE"] == "disable"
    assert env["DEBUG"] == "false" and env["APP_ENV"] == "local" and env["LOG_FORMAT"] == "json"
    assert env["LISTEN_ADDR"] == "0.0.0.0:8080" and env["METRICS_ADDR"] == "0.0.0.0:9090"
    assert len(env["SECRET_KEY"]) >= 32
    assert env["PAYMENT_API_KEY"] and env["DATABASE_PASSWORD"]
    assert "ADMIN_PASSWORD" not in env, "only the migration Job needs the admin password"
    # The app and the database agree on the password.
    sts = one(objects, "StatefulSet")
    assert resolve_env(objects, sts["spec"]["template"]["spec"]["containers"][0])["POSTGRES_PASSWORD"] == env[
        "DATABASE_PASSWORD"
    ]


@pytest.mark.parametrize("value_set", ["defaults", "staging", "ingress-tls", "autoscaling-off"])
def test_every_env_reference_resolves_within_the_render(value_set):
    objects = render(value_set)
    for obj, _, c, _ in workloads(objects):
        resolve_env(objects, c)  # raises KeyError on a dangling reference


@pytest.mark.parametrize("value_set", ["production", "external-db"])
def test_existing_secrets_are_referenced_not_created(value_set):
    values, _ = VALUE_SETS[value_set]
    objects = render(value_set)
    names = {o["metadata"]["name"] for o in find(objects, "Secret")}
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for _, _, c, _ in workloads(objects)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    db_secret = values["externalDatabase"]["existingSecret"]
    assert db_secret in refs and db_secret not in names
    if values.get("secrets", {}).get("existingSecret"):
        assert values["secrets"]["existingSecret"] in refs and values["secrets"]["existingSecret"] not in names


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_no_secret_value_is_in_the_release(value_set):
    """Secret values must stay out of the release manifest (and so out of every stored
    revision, which `helm rollback` would re-apply): the chart renders no Secret at all,
    hooks included; the secrets hook Job generates missing values inside its pod."""
    raw = render_raw(value_set)
    objects = render(value_set)
    assert not find(objects, "Secret"), [o["metadata"]["name"] for o in find(objects, "Secret")]
    assert "kind: Secret\n" not in "".join(raw.values())
    for _, _, c, _ in workloads(objects):
        for e in c.get("env", []):
            if re.search(r"PASSWORD|SECRET|_KEY$", e["name"]):
                assert "value" not in e, f"{c['name']}: {e['name']} is a literal"


def test_the_secrets_job_creates_what_the_pods_read():
    objects = render("defaults")
    job = component(objects, "Job", "secrets")
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade", "pre-rollback"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    listing = next(e["value"] for e in container["env"] if e["name"] == "GENERATE")
    assert listing.splitlines() == [
        "greeter SECRET_KEY:64 PAYMENT_API_KEY:40 ADMIN_PASSWORD:24",
        "greeter-postgresql password:32",
    ]
    role = one(objects, "Role", "greeter-secrets")
    assert role["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert named == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"],
                      "resourceNames": ["greeter", "greeter-postgresql"]}]
    # Production brings its own Secrets: no Job, no RBAC.
    production = render("production")
    assert not [j for j in find(production, "Job") if j["metadata"]["name"] == "greeter-secrets"]
    assert not find(production, "Role")


@pytest.mark.parametrize("key", ["secretKey", "paymentApiKey", "adminPassword"])
def test_explicit_secret_values_are_refused_with_the_procedure(chart, key):
    value = "k" * 16 + "Q7x!" * 4 + "z" * 16
    with pytest.raises(Exception) as failure:
        render_values(chart, {"secrets": {key: value}})
    text = str(failure.value)
    assert f"secrets.{key}: secret values are not taken from values" in text, text
    assert "DOCS.md#secrets-and-rotation" in text and value not in text


# --- Services, Ingress, monitoring -------------------------------------------------------


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_only_the_public_port_is_exposed_outside_the_cluster(value_set):
    values, _ = VALUE_SETS[value_set]
    objects = render(value_set)
    for svc in find(objects, "Service"):
        if svc["spec"].get("type") in ("NodePort", "LoadBalancer"):
            ports = svc["spec"]["ports"]
            assert [p["name"] for p in ports] == ["http"], svc["metadata"]["name"]
            assert ports[0]["targetPort"] == "http"
    metrics = one(objects, "Service", "greeter-metrics")
    assert metrics["spec"]["type"] == "ClusterIP"
    if value_set == "defaults":
        public = one(objects, "Service", "greeter")
        assert public["spec"]["type"] == "NodePort" and public["spec"]["ports"][0]["nodePort"] == 30080


def test_postgres_service_is_headless():
    svc = one(render("defaults"), "Service", "greeter-postgresql")
    assert svc["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in svc["spec"]["ports"]] == [5432]


def test_ingress_with_tls_and_cert_manager():
    objects = render("ingress-tls")
    ing = one(objects, "Ingress")
    assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ing["spec"]["tls"] == [{"secretName": "greeter-tls", "hosts": ["greeter.example.org"]}]
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "greeter", "port": {"name": "http"}}
    assert not find(render("defaults"), "Ingress")


def test_production_values():
    objects = render("production")
    dep = one(objects, "Deployment")
    env_cm = one(objects, "ConfigMap")["data"]
    assert env_cm["DEBUG"] == "false" and env_cm["APP_ENV"] == "production"
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    assert find(objects, "Ingress")[0]["spec"]["tls"]
    assert one(objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    constraints = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert constraints[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert all(o["metadata"]["namespace"] == "greeter-production" for o in objects)


def test_staging_values():
    objects = render("staging")
    assert one(objects, "ConfigMap")["data"]["DEBUG"] == "false"
    assert one(objects, "StatefulSet")["metadata"]["namespace"] == "greeter-staging"
    assert one(objects, "Service", "greeter")["spec"]["type"] == "ClusterIP"


def test_pdb():
    for value_set in ALL_SETS:
        pdb = one(render(value_set), "PodDisruptionBudget")
        dep = one(render(value_set), "Deployment")
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["maxUnavailable"] == 1


# --- PostgreSQL ----------------------------------------------------------------------------


def test_postgres_statefulset(chart):
    objects = render("defaults")
    sts = one(objects, "StatefulSet")
    spec = sts["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert "storageClassName" not in claim["spec"], "empty storageClass = the cluster default"
    assert "helm.sh/chart" not in claim["metadata"]["labels"], "VCTs are immutable; no version labels"
    (pg,) = spec["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert pg[probe]["exec"]["command"][0] == "pg_isready"
    mounts = {m["mountPath"] for m in pg["volumeMounts"]}
    assert {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"} <= mounts
    custom = one(render_values(chart, {"postgresql": {"persistence": {"storageClass": "fast-ssd"}}}), "StatefulSet")
    assert custom["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd"


def test_external_database_switch():
    objects = render("external-db")
    assert not find(objects, "StatefulSet")
    assert "greeter-postgresql" not in {o["metadata"]["name"] for o in objects}
    data = one(objects, "ConfigMap")["data"]
    assert (data["DATABASE_HOST"], data["DATABASE_PORT"], data["DATABASE_NAME"], data["DATABASE_USER"]) == (
        "db.internal.example.com",
        "6432",
        "greeter_prod",
        "greeter_app",
    )
    assert data["DATABASE_SSLMODE"] == "require"
    dep = one(objects, "Deployment")
    ref = next(
        e["valueFrom"]["secretKeyRef"]
        for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "DATABASE_PASSWORD"
    )
    assert ref == {"name": "managed-db", "key": "db-password"}
    app_policy = one(objects, "NetworkPolicy", "greeter-app")
    db_rule = app_policy["spec"]["egress"][0]
    assert db_rule["ports"] == [{"protocol": "TCP", "port": 6432}]
    assert db_rule["to"] == [{"ipBlock": {"cidr": "10.30.0.0/16"}}]


# --- NetworkPolicies ---------------------------------------------------------------------


def _peers_match(peer, labels):
    return peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items() and "namespaceSelector" not in peer


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_network_policies(value_set):
    objects = render(value_set)
    policies = find(objects, "NetworkPolicy")
    deny = one(objects, "NetworkPolicy", "greeter-default-deny")
    assert deny["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "greeter",
        "app.kubernetes.io/instance": "greeter",
    }
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    # Every pod of the release is under the default deny.
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            if obj["kind"] == "Pod":
                labels = obj["metadata"]["labels"]
            elif obj["kind"] == "CronJob":
                labels = obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            else:
                labels = obj["spec"]["template"]["metadata"]["labels"]
            assert deny["spec"]["podSelector"]["matchLabels"].items() <= labels.items(), obj["metadata"]["name"]
    app = one(objects, "NetworkPolicy", "greeter-app")
    ingress = app["spec"]["ingress"]
    assert ingress[0] == {"ports": [{"protocol": "TCP", "port": "http"}]}
    metrics_rule = ingress[1]
    assert metrics_rule["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    assert metrics_rule["from"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    dns = app["spec"]["egress"][1]["ports"]
    assert {(p["protocol"], p["port"]) for p in dns} == {("UDP", 53), ("TCP", 53)}
    if VALUE_SETS[value_set][0].get("postgresql", {}).get("enabled", True) and VALUE_SETS[value_set][0].get(
            "postgresql", {}).get("mode", "bundled") == "bundled":
        db = one(objects, "NetworkPolicy", "greeter-postgresql")
        sts = one(objects, "StatefulSet")
        assert db["spec"]["podSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
        (rule,) = db["spec"]["ingress"]
        allowed = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}
        assert allowed == {"app", "migrate", "backup"}, "only the app, its migrator and the backup reach PostgreSQL"
        assert all("namespaceSelector" not in p and "ipBlock" not in p for p in rule["from"])
        assert "egress" not in db["spec"], "PostgreSQL opens no connections"
        # ...and the test pod may not reach it.
        test_policy = one(objects, "NetworkPolicy", "greeter-test")
        for rule in test_policy["spec"]["egress"]:
            for peer in rule.get("to", []):
                assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "app"
    assert len(policies) >= 4


def test_metrics_peers_are_configurable(chart):
    objects = render_values(
        chart,
        {"networkPolicy": {"metrics": {"namespaceSelector": {"matchLabels": {"team": "obs"}},
                                       "podSelector": {"matchLabels": {"app": "prometheus"}}}}},
    )
    peer = one(objects, "NetworkPolicy", "greeter-app")["spec"]["ingress"][1]["from"][0]
    assert peer == {"namespaceSelector": {"matchLabels": {"team": "obs"}}, "podSelector": {"matchLabels": {"app": "prometheus"}}}


# --- labels, names, NOTES, helm test -------------------------------------------------------


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_recommended_labels_and_namespace(value_set):
    _, namespace = VALUE_SETS[value_set]
    for obj in render(value_set):
        labels = obj["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"
        assert obj["metadata"]["namespace"] == namespace
        assert len(obj["metadata"]["name"]) <= 63


def test_notes_tell_how_to_get_the_admin_password_and_curl():
    notes = render_raw("defaults")["greeter/templates/NOTES.txt"]
    assert "kubectl -n greeter get secret greeter -o jsonpath='{.data.ADMIN_PASSWORD}' | base64 -d" in notes
    assert "curl http://localhost:8080/" in notes
    assert "WARNING" not in notes
    prod = render_raw("production")["greeter/templates/NOTES.txt"]
    assert "get secret greeter-app " in prod and "curl https://greeter.example.com/" in prod


def test_helm_test_pod():
    pod = one(render("defaults"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert re.fullmatch(r"curlimages/curl:\d+\.\d+\.\d+", c["image"]), "a pinned, small curl image"
    assert c["command"] == ["curl"] and "--fail" in c["args"]
    urls = [a for a in c["args"] if a.startswith("http://")]
    assert urls == ["http://greeter:80/readyz", "http://greeter:80/"]
    assert pod["spec"]["restartPolicy"] == "Never"
    # `helm test --logs` reads the pod's logs after the hooks ran; Helm 3 deletes
    # hook-succeeded hooks before that (pkg/action/hooks.go execHook, v3.21.4).
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"


def test_notes_use_the_real_host_port_and_find_the_job_by_label(chart):
    notes = parse_notes(chart, {"service": {"kindHostPort": 8181}})
    assert "curl http://localhost:8181/" in notes and "localhost:8080" not in notes
    assert "-l app.kubernetes.io/instance=greeter,app.kubernetes.io/component=migrate" in notes
    assert "helm test greeter -n greeter --logs" in notes


def parse_notes(chart, values):
    return chart.render(values, name=RELEASE, namespace=NAMESPACE)["greeter/templates/NOTES.txt"]


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_spread_honours_taints_and_affinity_in_production(value_set):
    spread = pod_spec(one(render(value_set), "Deployment"))["topologySpreadConstraints"]
    if value_set == "production":
        assert all(c["nodeTaintsPolicy"] == "Honor" and c["nodeAffinityPolicy"] == "Honor" for c in spread)
        assert spread[0]["whenUnsatisfiable"] == "DoNotSchedule"
    elif value_set == "defaults":
        # kind: the Kubernetes defaults, and ScheduleAnyway.
        assert all("nodeTaintsPolicy" not in c and "nodeAffinityPolicy" not in c for c in spread)
        assert spread[0]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_postgres_pod_template_is_identical_across_a_chart_version_bump(tmp_path):
    """A chart or app version bump must not change the database's pod template (a change
    there restarts PostgreSQL). Renders a copy of the chart with new versions."""
    import shutil

    import yaml

    bumped = tmp_path / "chart"
    shutil.copytree(CHART, bumped)
    meta = yaml.safe_load((bumped / "Chart.yaml").read_text())
    meta["version"], meta["appVersion"] = "9.8.7", "9.8.7"
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(meta))

    def template(path) -> str:
        with helm.Chart.load(path) as loaded:
            sts = one(parse(loaded.render({}, name=RELEASE, namespace=NAMESPACE)), "StatefulSet")
        return yaml.safe_dump(sts["spec"]["template"], sort_keys=True)

    before, after = template(CHART), template(bumped)
    assert "9.8.7" not in after and "0.1.0" not in before, "no version in the pod template"
    assert after == before
    # The app Deployment does carry the version (it changes with the image anyway).
    with helm.Chart.load(bumped) as loaded:
        assert "9.8.7" in str(one(parse(loaded.render({}, name=RELEASE, namespace=NAMESPACE)), "Deployment"))


def parse(manifests):
    from conftest import parse_manifests

    return parse_manifests(manifests)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"autoscaling": {"minReplicas": 6, "maxReplicas": 5}},
         "autoscaling.minReplicas (6) is larger than autoscaling.maxReplicas (5)"),
        ({"image": {"tag": "abc123"}}, 'image.tag ("abc123") and migrateImage.tag ("") must be set together'),
        ({"migrateImage": {"tag": "abc123"}}, 'image.tag ("") and migrateImage.tag ("abc123") must be set together'),
        ({"image": {"digest": "sha256:" + "a" * 64}}, "image.digest and migrateImage.digest must be set together"),
    ],
    ids=lambda v: str(v)[:50] if isinstance(v, dict) else None,
)
def test_cross_field_rules_fail_with_a_clear_message(chart, values, message):
    with pytest.raises(Exception) as failure:
        render_values(chart, values)
    assert message in str(failure.value), str(failure.value)


def test_cross_field_rules_accept_the_value_sets(chart):
    render_values(chart, {"autoscaling": {"minReplicas": 5, "maxReplicas": 5}})
    render_values(chart, {"image": {"tag": "abc"}, "migrateImage": {"tag": "def"}, "rollingUpdate": {"maxSurge": "10%"}})


def test_the_migrate_job_fails_at_once_on_a_configuration_error():
    job = component(render("defaults"), "Job", "migrate")
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never", "podFailurePolicy requires it"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob",
                        "onExitCodes": {"containerName": "migrate", "operator": "In", "values": [2]}}
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    names = [c["name"] for c in spec["template"]["spec"]["containers"]]
    assert rules[0]["onExitCodes"]["containerName"] in names


def _max_connections(objects) -> int:
    (pg,) = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert pg["args"][0] == "-c"
    return int(pg["args"][1].removeprefix("max_connections="))


def test_postgres_max_connections_fits_the_connection_budget(chart):
    # (5 HPA max + 1 surge) x (16 pool + 1 LISTEN) + 1 Job + 8 reserved = 111.
    assert _max_connections(render("defaults")) == 111
    # 10 replicas, 50 % surge (rounded up: 5), pool 30: 15 x 31 + 9 = 474.
    bigger = render_values(chart, {"autoscaling": {"maxReplicas": 10}, "rollingUpdate": {"maxSurge": "50%"},
                                   "config": {"databasePoolMax": 30}})
    assert _max_connections(bigger) == 474
    # Small budgets keep PostgreSQL's default.
    small = render_values(chart, {"autoscaling": {"enabled": False}, "replicaCount": 2, "config": {"databasePoolMax": 4}})
    assert _max_connections(small) == 100
    assert _max_connections(render_values(chart, {"postgresql": {"maxConnections": 200}})) == 200
    with pytest.raises(Exception) as failure:
        render_values(chart, {"postgresql": {"maxConnections": 100}})
    assert "postgresql.maxConnections (100) is below the connection budget 111" in str(failure.value)


def test_external_database_connection_budget_is_checked(chart):
    from conftest import load_values

    production = load_values("values-production.yaml")
    # 25 pods x 21 + 9 = 534.
    render_values(chart, {**production, "externalDatabase": {**production["externalDatabase"], "maxConnections": 534}},
                  namespace="greeter-production")
    with pytest.raises(Exception) as failure:
        render_values(chart, {**production, "externalDatabase": {**production["externalDatabase"], "maxConnections": 500}},
                      namespace="greeter-production")
    assert "externalDatabase.maxConnections (500) is below the connection budget 534" in str(failure.value)


@pytest.mark.parametrize("source", ["secretName", "configMapName"])
def test_a_database_ca_bundle_reaches_the_app_the_gate_and_the_job(chart, source):
    from conftest import external_db_values

    values = external_db_values()
    values["externalDatabase"]["caBundle"] = {"secretName": "", "configMapName": "", "key": "rds-ca.pem",
                                              source: "provider-ca"}
    objects = render_values(chart, values)
    seen = set()
    for obj, spec, c, _ in workloads(objects):
        if c["name"] not in ("greeter", "wait-for-migrations", "migrate"):
            continue
        seen.add(c["name"])
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert env["SSL_CERT_FILE"] == "/etc/greeter/database-ca/rds-ca.pem", c["name"]
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "database-ca"]
        assert mount == {"name": "database-ca", "mountPath": "/etc/greeter/database-ca", "readOnly": True}
        (volume,) = [v for v in spec["volumes"] if v["name"] == "database-ca"]
        kind = "secret" if source == "secretName" else "configMap"
        ref = volume[kind]
        assert ref.get("secretName", ref.get("name")) == "provider-ca"
        assert ref["items"] == [{"key": "rds-ca.pem", "path": "rds-ca.pem"}]
    assert seen == {"greeter", "wait-for-migrations", "migrate"}
    # Without a bundle: the image's CAs, no variable, no volume.
    for _, spec, c, _ in workloads(render("external-db")):
        assert "SSL_CERT_FILE" not in {e["name"] for e in c.get("env", [])}
        assert "database-ca" not in {v["name"] for v in spec.get("volumes", [])}


def test_a_ca_bundle_from_both_sources_is_refused(chart):
    from conftest import external_db_values

    values = external_db_values()
    values["externalDatabase"]["caBundle"] = {"secretName": "a", "configMapName": "b", "key": "ca.crt"}
    with pytest.raises(Exception) as failure:
        render_values(chart, values)
    assert "set secretName or configMapName, not both" in str(failure.value)
