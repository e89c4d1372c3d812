#!/usr/bin/env bash
# The Helm chart's verification suite (tests/chart): render with the real Helm engine
# (helm-python-sdk), lint, schema rejections, kubernetes-validate, checkov,
# check-jsonschema, lookup against a fake API server, and the manifest-driven run of the
# real binaries against a throwaway PostgreSQL. Run from anywhere; exits non-zero on
# any failure. Extra arguments go to pytest (e.g. -k lookup).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, pytest, yaml' 2>/dev/null \
  || [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/check-jsonschema" ]; then
  # scripts/setup-debian.sh normally did this already.
  echo "test-chart: installing tests/chart/requirements.txt into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r tests/chart/requirements.txt
fi

exec "$venv/bin/python" -m pytest tests/chart -p no:cacheprovider -q --durations=8 "$@"
