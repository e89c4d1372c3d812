# `nix develop` (or direnv's `use flake`): the pinned Rust toolchain and every tool the
# apps, the tests and the chart work need.
{ pkgs, rust }:
pkgs.mkShell {
  packages = [
    rust.toolchain
    pkgs.kind
    pkgs.kubernetes-helm
    pkgs.kubectl
    pkgs.kubeconform
    pkgs.postgresql
    # The TLS tests make a throwaway CA with it.
    pkgs.openssl
    pkgs.jq
    pkgs.curl
    pkgs.shellcheck
    pkgs.nixfmt
    pkgs.deadnix
  ];
  # Test harnesses and the local mode find initdb/pg_ctl on PATH (from postgresql).
  shellHook = ''
    echo "greeter dev shell: $(rustc --version); nix run .#cluster-up, then nix run .#deploy"
  '';
}
