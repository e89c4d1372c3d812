# shellcheck shell=bash
# The one place that assembles an app script the way `nix run .#<app>` gets it: nix/apps.nix
# passes `text = lib.sh + <script>.sh` to writeShellApplication, whose header (nixpkgs
# pkgs/build-support/trivial-builders/default.nix) is the shebang, one `set -o` per
# bashOptions entry (errexit, nounset, pipefail), a blank line and the PATH export of the
# runtimeInputs (inheritPath: the caller's PATH after them), a blank line, then the text.
# Sourced by scripts/test-nix.sh (shellcheck) and tests/nix/test_apps.sh (behaviour).
#
#   assemble_app SCRIPT BIN_PATH OUT    SCRIPT e.g. deploy; BIN_PATH stands for
#                                       makeBinPath runtimeInputs
assemble_app() {
  local script=$1 bin_path=$2 out=$3 dir
  # GREETER_APPS_DIR: assemble other copies of the scripts (e.g. an older revision).
  dir=${GREETER_APPS_DIR:-$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)/nix/apps}
  {
    printf '#!%s\n' "$(command -v bash)"
    printf 'set -o %s\n' errexit nounset pipefail
    # shellcheck disable=SC2016 # $PATH is the script's, expanded when it runs
    printf '\nexport PATH="%s:$PATH"\n' "$bin_path"
    printf '\n'
    cat "$dir/lib.sh" "$dir/$script.sh"
    printf '\n'
  } >"$out"
  chmod +x "$out"
}
