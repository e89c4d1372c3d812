"""The backup CronJob as rendered: on by default, values wired in, restricted, and the
NetworkPolicies let it reach PostgreSQL and nothing else. What its script does against a
real PostgreSQL is tests/chart/test_backup_roundtrip.py."""

from __future__ import annotations

import pytest

from conftest import find, one, pod_spec, render, render_raw, render_values


def cronjob(objects):
    return one(objects, "CronJob", "greeter-backups")


def test_backup_cronjob_is_on_by_default_and_takes_its_schedule_from_values(chart):
    objects = render("defaults")
    cj = cronjob(objects)
    assert cj["spec"]["schedule"] == "0 3 * * *" and cj["spec"]["timeZone"] == "Etc/UTC"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    (c,) = pod_spec(cj)["containers"]
    script = c["command"][-1]
    assert c["command"][:2] == ["/bin/sh", "-c"]
    assert "pg_dump --format=custom" in script and "set -eu" in script
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["BACKUP_KEEP"] == "7" and env["BACKUP_DIR"] == "/backups"
    assert env["PGHOST"] == "greeter-postgresql" and env["PGDATABASE"] == "greeter" and env["PGSSLMODE"] == "disable"
    # pg_dump of the server's own image (same major version).
    sts = one(objects, "StatefulSet")
    assert c["image"] == sts["spec"]["template"]["spec"]["containers"][0]["image"]
    pvc = one(objects, "PersistentVolumeClaim", "greeter-backups")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", "backups outlive the release"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["backups"] == "/backups"
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod_spec(cj)["volumes"]}
    assert claims["backups"] == "greeter-backups"

    changed = cronjob(render_values(chart, {"backup": {"schedule": "15 1 * * 0", "keep": 30,
                                                       "persistence": {"size": "9Gi", "accessModes": ["ReadWriteOnce"]}}}))
    (c2,) = pod_spec(changed)["containers"]
    assert changed["spec"]["schedule"] == "15 1 * * 0"
    assert {e["name"]: e.get("value") for e in c2["env"]}["BACKUP_KEEP"] == "30"


def test_backup_runs_restricted_with_a_read_only_root():
    spec = pod_spec(cronjob(render("defaults")))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_backup_may_reach_postgresql_only():
    objects = render("defaults")
    policy = one(objects, "NetworkPolicy", "greeter-backup")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "backup"
    assert "ingress" not in policy["spec"], "nothing connects to the backup pod"
    db_rule, dns_rule = policy["spec"]["egress"]
    (peer,) = db_rule["to"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "database"
    assert db_rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert "to" not in dns_rule and {p["port"] for p in dns_rule["ports"]} == {53}
    # ...and PostgreSQL lets it in.
    (rule,) = one(objects, "NetworkPolicy", "greeter-postgresql")["spec"]["ingress"]
    assert "backup" in {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}
    # The job pods carry the labels the policy selects.
    labels = cronjob(objects)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("values", [{"backup": {"enabled": False}}, {"postgresql": {"enabled": False},
                                    "externalDatabase": {"host": "db", "existingSecret": "db"}}])
def test_no_backup_objects_when_disabled_or_external(chart, values):
    objects = render_values(chart, values)
    assert not find(objects, "CronJob") and not find(objects, "NetworkPolicy", "greeter-backup")
    assert not find(objects, "PersistentVolumeClaim")
    if values.get("backup"):
        (rule,) = one(objects, "NetworkPolicy", "greeter-postgresql")["spec"]["ingress"]
        assert "backup" not in {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}


@pytest.mark.parametrize("bad, message", [
    ({"backup": {"keep": 0}}, "/backup/keep"),
    ({"backup": {"schedule": ""}}, "/backup/schedule"),
    ({"postgresql": {"mode": "sqlite"}}, "/postgresql/mode"),
])
def test_schema_rejects_bad_backup_values(chart, bad, message):
    with pytest.raises(Exception, match=message):
        render_values(chart, bad)



def test_notes_tell_how_to_back_up_and_restore():
    notes = render_raw("defaults")["greeter/templates/NOTES.txt"]
    assert "CronJob greeter-backups" in notes and "nix run .#backup" in notes and "nix run .#restore" in notes
    assert "nix run .#backup" not in render_raw("production")["greeter/templates/NOTES.txt"], "external: no CronJob"
    assert "CloudNativePG Cluster greeter-db" in render_raw("cloudnativepg")["greeter/templates/NOTES.txt"]


def helm_waits_on(obj) -> bool:
    """`helm upgrade --install --wait --wait-for-jobs` waits for the release's
    Deployments/StatefulSets to be ready and its ordinary Jobs to complete; hook Jobs run
    outside that wait (and a CronJob's pods only come at its schedule)."""
    if obj["kind"] in ("Deployment", "StatefulSet"):
        return True
    return obj["kind"] == "Job" and "helm.sh/hook" not in obj["metadata"]["annotations"]


@pytest.mark.parametrize("value_set", ["defaults", "production", "staging", "cloudnativepg"])
def test_every_pvc_is_mounted_by_something_helm_waits_on(value_set):
    """A standalone PVC under a WaitForFirstConsumer StorageClass (kind's "standard",
    kind pkg/build/nodeimage/const_storage.go) binds only when a pod that mounts it is
    scheduled, and `--wait` waits for every PVC to be Bound: a PVC mounted only by a
    CronJob kept the first `nix run .#deploy` waiting until the Helm timeout."""
    objects = render(value_set)
    mounted = {
        v["persistentVolumeClaim"]["claimName"]
        for obj in objects
        if helm_waits_on(obj)
        for v in pod_spec(obj).get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    for pvc in find(objects, "PersistentVolumeClaim"):
        assert pvc["metadata"]["name"] in mounted, f"PVC {pvc['metadata']['name']} would stay Pending under --wait"


def backups_check(objects):
    (job,) = [j for j in find(objects, "Job") if j["metadata"]["name"].startswith("greeter-backups-check-")]
    return job


def test_backups_check_job_writes_to_the_pvc_restricted_without_network():
    objects = render("defaults", revision=4)
    job = backups_check(objects)
    assert job["metadata"]["name"] == "greeter-backups-check-4", "one Job per revision (the pod template is immutable)"
    assert "helm.sh/hook" not in job["metadata"]["annotations"], "a hook is outside --wait-for-jobs"
    pvc = one(objects, "PersistentVolumeClaim", "greeter-backups")
    assert "helm.sh/hook" not in pvc["metadata"]["annotations"], "before-hook-creation would delete the backups"
    spec = pod_spec(job)
    (c,) = spec["containers"]
    assert c["image"] == pod_spec(cronjob(objects))["containers"][0]["image"], "the backup image has a shell"
    assert "test -w /backups" in c["command"][-1]
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["backups"] == "/backups"
    assert {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}["backups"] == "greeter-backups"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["fsGroup"] == 65532
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert c["resources"]["limits"] and job["spec"]["activeDeadlineSeconds"] > 0
    # Network: the default-deny selects its pod, and no other policy does.
    labels = job["spec"]["template"]["metadata"]["labels"]
    selecting = [p["metadata"]["name"] for p in find(objects, "NetworkPolicy")
                 if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()]
    assert selecting == ["greeter-default-deny"]
    for p in find(objects, "NetworkPolicy"):
        for rule in p["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                sel = peer.get("podSelector", {}).get("matchLabels")
                assert not sel or not sel.items() <= labels.items(), f"{p['metadata']['name']} lets it in"


def test_no_backups_check_job_when_backups_are_off(chart):
    assert not [j for j in find(render_values(chart, {"backup": {"enabled": False}}), "Job")
                if j["metadata"]["name"].startswith("greeter-backups-check")]
