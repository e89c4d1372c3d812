"""External validators on the rendered manifests and the values files.

- kubernetes-validate --strict: every object against the Kubernetes OpenAPI schemas
  (the newest version the package ships, and the oldest version the chart supports).
- checkov (kubernetes framework, offline) on the rendered YAML: its helm mode needs a
  helm binary and silently passes without one, so the YAML rendered here is scanned.
- check-jsonschema: the values files against chart/values.schema.json.
- the helm CLI, when the dev shell has it: `helm lint --strict` and `helm template`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
import yaml

from conftest import CHART, VALUE_SETS, render, strip_private

BIN = Path(sys.executable).parent
SKIPS = yaml.safe_load((Path(__file__).parent / "checkov-skips.yaml").read_text())
# The newest schemas the package ships, and Chart.yaml's kubeVersion floor.
KUBE_VERSIONS = [kv_utils.latest_version(), "1.30.0"]


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or pytest.fail(f"{name} is not installed"))


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_kubernetes_validate_strict(value_set, kube_version):
    validated = 0
    for obj in render(value_set):
        if obj["apiVersion"].startswith(("monitoring.coreos.com/", "postgresql.cnpg.io/", "barmancloud.cnpg.io/")):
            # A CRD: kubernetes-validate has no schema for it (checked in test_render.py,
            # the CloudNativePG ones against their CRDs in test_cloudnativepg.py).
            continue
        kubernetes_validate.validate(strip_private(obj), kube_version, strict=True)
        validated += 1
    assert validated >= 10


@pytest.fixture(scope="module")
def rendered_dir(tmp_path_factory):
    """Every value set rendered to <dir>/<value set>.yaml."""
    out = tmp_path_factory.mktemp("rendered")
    for value_set in VALUE_SETS:
        docs = [strip_private(o) for o in render(value_set)]
        (out / f"{value_set}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


def test_checkov_skip_list_is_justified():
    for check, entry in SKIPS.items():
        assert len(str(entry.get("reason", "")).strip()) > 20, f"{check} needs a stated reason"


def test_checkov(rendered_dir):
    global_skips = [c for c, e in SKIPS.items() if not e.get("resources")]
    scoped = {c: set(e["resources"]) for c, e in SKIPS.items() if e.get("resources")}
    result = subprocess.run(
        [_tool("checkov"), "--framework", "kubernetes", "--skip-download", "--quiet", "--output", "json",
         "--directory", str(rendered_dir), "--skip-check", ",".join(global_skips)],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_EXPERIMENTAL_IMAGE_REFERENCING": "False"},
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0 and summary["passed"] > 100, summary
    unexpected, used = [], set()
    for rep in reports:
        for failure in rep["results"]["failed_checks"]:
            kind, _namespace, name = failure["resource"].split(".", 2)
            key = f"{kind}.{name}"
            if key in scoped.get(failure["check_id"], ()):
                used.add((failure["check_id"], key))
            else:
                unexpected.append(f"{failure['check_id']} {failure['check_name']} -> {failure['resource']} "
                                  f"({failure['file_path']})")
    assert not unexpected, "\n".join(unexpected)
    stale = {(c, r) for c, rs in scoped.items() for r in rs} - used
    assert not stale, f"checkov-skips.yaml entries that match nothing: {stale}"


def test_check_jsonschema_values_files(chart, tmp_path):
    # values.yaml is complete on its own; the environment files are overrides, so they
    # are checked as Helm sees them: coalesced with values.yaml by Helm's own merge.
    files = [str(CHART / "values.yaml")]
    for name in ("values-staging.yaml", "values-production.yaml"):
        merged = chart.merge_values(yaml.safe_load((CHART / name).read_text()))
        (tmp_path / name).write_text(yaml.safe_dump(merged))
        files.append(str(tmp_path / name))
    result = subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(CHART / "values.schema.json"), *files],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_check_jsonschema_rejects_a_bad_values_file(tmp_path):
    bad = tmp_path / "values-bad.yaml"
    bad.write_text("replicaCount: one\nservice:\n  type: NodePort\n  port: 80\n  nodePort: 8080\n")
    result = subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(CHART / "values.schema.json"), str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "replicaCount" in result.stdout and "nodePort" in result.stdout


@pytest.mark.skipif(shutil.which("helm") is None, reason="no helm CLI here (the nix dev shell has one)")
def test_helm_cli_agrees_with_the_sdk(tmp_path):
    lint = subprocess.run(["helm", "lint", "--strict", "--namespace", "greeter", str(CHART)],
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = subprocess.run(["helm", "template", "greeter", str(CHART), "--namespace", "greeter"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    cli = sorted((o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(out) if o)
    sdk = sorted((o["kind"], o["metadata"]["name"]) for o in render("defaults"))
    assert cli == sdk

