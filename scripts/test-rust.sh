#!/usr/bin/env bash
# The Rust checks: formatting, clippy (warnings are errors), unit tests, the integration
# tests against a throwaway PostgreSQL, and the admin's real-browser test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
