#!/usr/bin/env bash
# The docs tell the truth (tests/docs/check_docs.py: configuration table == the code's
# variables, every command shown exists, every link resolves), and every shell script
# outside nix/apps (which the nix suite checks) passes shellcheck.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
[ -x "$python" ] || python=python3
"$python" tests/docs/check_docs.py
shellcheck scripts/*.sh .ci/run
echo "ok    shellcheck: scripts/*.sh .ci/run"
