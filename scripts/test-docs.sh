#!/usr/bin/env bash
# The docs suite (scripts/test.sh docs). Run from anywhere; non-zero exit on any problem.
#   tests/docs/check_docs.py  README.md and DOCS.md against the code: the configuration
#                             table == src/config.rs VARIABLES, every command shown exists
#                             (nix apps and packages, paths, subcommands, flags, chart
#                             values), links and anchors resolve; shellcheck of
#                             scripts/*.sh and .ci/run (the nix suite covers nix/apps/)
#   tests/docs/selftest.py    each of those checks fails on a copy with a planted lie
# Needs python3 with pyyaml (.venv from scripts/setup-debian.sh), shellcheck, and the
# debug binaries (scripts/test.sh builds them; otherwise `cargo build --bins` runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
[ -x "$python" ] || python=python3

"$python" tests/docs/check_docs.py
"$python" tests/docs/selftest.py
